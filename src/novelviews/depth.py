"""Optional monocular depth estimator for the 6DoF+1 scene scale (local weights only).

ZeroNVS normalises the 6DoF+1 camera translation by a scene scale: the 0.2-quantile of
the conditioning view's z-depth (:func:`novelviews.cameras.depth_quantile_scale`). When
the user has no depth map for the input photo, ``nvs views`` can estimate one with a
transformers depth model stored in a *local* folder (``config.json``,
``preprocessor_config.json`` and the weights, as written by ``save_pretrained``). Nothing
is ever downloaded: a folder that does not exist is an error, never a hub name.

Units. A *metric* model (Depth Anything V2 Metric, ZoeDepth, Depth Pro, GLPN converted to
transformers format) predicts z-depth in metres, so the scale is in metres times
``units`` (scene units per model unit). A *relative* model (Depth Anything V1/V2
"relative", DPT/MiDaS) predicts affine-invariant inverse depth (disparity) in arbitrary
units: it is converted to depth as ``1 / disparity`` (pixels with disparity <= 0 become 0,
"no surface"), which orders near/far correctly but leaves the scale in *arbitrary
units*. Relative models are therefore refused unless ``allow_relative=True``; then
``units`` is the user's calibration. The type is read from the model's config where
possible (``depth_estimation_type`` of Depth Anything configs; the model family
otherwise) and may be forced with ``depth_type``.

No global state: :class:`DepthEstimator` holds one loaded model; :func:`estimate_depth`
loads the model once per call (for one image or a list of images) and drops it after.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, Union

import numpy as np

from .errors import CheckpointError, ConfigError, ImageError, require

DepthType = Literal["metric", "relative"]

#: model families (``config.model_type``) whose transformers heads predict metric z-depth
METRIC_MODEL_TYPES = frozenset({"zoedepth", "depth_pro", "glpn"})
#: families whose heads predict relative inverse depth (disparity)
RELATIVE_MODEL_TYPES = frozenset({"dpt"})

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")
_HINT = ("provide a local transformers depth-estimation folder (config.json, preprocessor_config.json and "
         "model.safetensors), e.g. a metric model such as Depth Anything V2 Metric or ZoeDepth saved with "
         "save_pretrained")


def detect_depth_type(config: Any) -> Optional[DepthType]:
    """``"metric"`` / ``"relative"`` from a transformers config (object or dict), or ``None`` if unknown.

    Depth Anything configs say it in ``depth_estimation_type``; otherwise the model family
    decides (ZoeDepth, Depth Pro, GLPN: metric; DPT/MiDaS: relative).
    """
    get = config.get if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
    kind = get("depth_estimation_type", None)
    if kind in ("metric", "relative"):
        return kind
    model_type = get("model_type", None)
    if model_type in METRIC_MODEL_TYPES:
        return "metric"
    if model_type in RELATIVE_MODEL_TYPES:
        return "relative"
    return None


def check_model_dir(model_dir: Union[str, Path]) -> Path:
    """Check that ``model_dir`` is a local depth-model folder; return it. Raises CheckpointError."""
    path = Path(model_dir).expanduser()
    if not path.exists():
        raise CheckpointError(f"depth estimator folder {str(path)!r} does not exist (weights are never "
                              f"downloaded): {_HINT}")
    if not path.is_dir():
        raise CheckpointError(f"depth estimator {str(path)!r} is a file, not a folder: {_HINT}")
    missing = [n for n in ("config.json", "preprocessor_config.json") if not (path / n).is_file()]
    if not any((path / n).is_file() for n in _WEIGHT_FILES):
        missing.append("model.safetensors")
    if missing:
        raise CheckpointError(f"depth estimator folder {str(path)!r} lacks {', '.join(missing)}: {_HINT}")
    return path


def _check_image(image: Any, name: str = "image") -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError(f"{name} for depth estimation must be an HxWx3 RGB array, got shape {arr.shape}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all() or arr.min() < 0.0 or arr.max() > 1.0:
        raise ImageError(f"{name} for depth estimation must hold finite values in [0, 1] (float RGB); "
                         "divide 8-bit images by 255")
    return arr


@dataclass
class DepthEstimator:
    """One loaded depth model. Call it on an ``HxWx3`` float image in ``[0, 1]``.

    ``depth_type`` is what the predictions are (``metric`` z-depth or ``relative`` inverse
    depth); the call always returns z-depth (``HxW`` float32, 0 = no surface) times ``units``.
    """

    model: Any
    processor: Any
    depth_type: DepthType
    model_type: str
    device: Any
    units: float = 1.0

    @classmethod
    def load(cls, model_dir: Union[str, Path], device: str = "cpu", allow_relative: bool = False,
             depth_type: Optional[DepthType] = None, units: float = 1.0) -> "DepthEstimator":
        """Load ``AutoModelForDepthEstimation`` + ``AutoImageProcessor`` from a local folder.

        ``depth_type`` forces metric/relative for configs that do not say; a relative model
        raises :class:`CheckpointError` unless ``allow_relative``.
        """
        if depth_type not in (None, "metric", "relative"):
            raise ConfigError(f"depth_type = {depth_type!r}: choose 'metric', 'relative' or leave it unset")
        if not (units > 0 and np.isfinite(units)):
            raise ConfigError(f"depth estimator units = {units!r} must be a positive number "
                              "(scene units per model depth unit)")
        path = check_model_dir(model_dir)
        try:
            raw = json.loads((path / "config.json").read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{path / 'config.json'} is not valid JSON ({exc}): {_HINT}") from exc
        kind = depth_type or detect_depth_type(raw)
        if kind is None:
            raise CheckpointError(
                f"cannot tell whether the depth model in {str(path)!r} (model_type "
                f"{raw.get('model_type')!r}) predicts metric or relative depth: set its type explicitly "
                "(depth_type='metric' or 'relative')")
        if kind == "relative" and not allow_relative:
            raise CheckpointError(
                f"the depth model in {str(path)!r} predicts relative inverse depth (disparity), whose scale is "
                "in arbitrary units: use a metric model (e.g. Depth Anything V2 Metric, ZoeDepth), or allow it "
                "explicitly (allow_relative=True / camera.depth_estimator_allow_relative=true) and calibrate "
                "with the units setting")
        require("transformers", "the depth estimator")
        import torch
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        try:
            processor = AutoImageProcessor.from_pretrained(str(path), local_files_only=True)
            model = AutoModelForDepthEstimation.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(f"could not load a depth-estimation model from {str(path)!r}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; {_HINT}") from exc
        dev = torch.device(device)
        model = model.to(dev).eval()
        return cls(model=model, processor=processor, depth_type=kind, model_type=str(raw.get("model_type")),
                   device=dev, units=float(units))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """z-depth ``HxW`` float32 of ``image`` (``HxWx3`` float in ``[0, 1]``), times ``units``.

        The prediction is resized back to ``HxW`` bilinearly; relative predictions are
        inverted (``1 / disparity``, non-positive -> 0) and stay in arbitrary units.
        """
        import torch
        import torch.nn.functional as F

        img = _check_image(image)
        H, W = img.shape[:2]
        kwargs: dict = {"return_tensors": "pt", "do_rescale": False}
        if self.model_type == "zoedepth":
            kwargs["do_pad"] = False  # keep the prediction aligned with the image
        inputs = self.processor(images=img, **kwargs)
        inputs = {k: (v.to(self.device) if hasattr(v, "to") else v) for k, v in inputs.items()}
        with torch.no_grad():
            out = self.model(**inputs)
        pred = out.predicted_depth.float()
        if pred.ndim == 4:  # [B, 1, h, w]
            pred = pred[:, 0]
        if pred.ndim == 2:
            pred = pred[None]
        pred = F.interpolate(pred[:1, None], size=(H, W), mode="bilinear", align_corners=False)[0, 0]
        pred = torch.nan_to_num(pred, nan=0.0, posinf=0.0, neginf=0.0)
        if self.depth_type == "relative":
            pred = torch.where(pred > 1e-8, 1.0 / pred.clamp_min(1e-8), torch.zeros_like(pred))
        else:
            pred = pred.clamp_min(0.0)
        return (pred * self.units).cpu().numpy().astype(np.float32)


def estimate_depth(image: Union[np.ndarray, Sequence[np.ndarray]], model_dir: Union[str, Path],
                   device: str = "cpu", allow_relative: bool = False, depth_type: Optional[DepthType] = None,
                   units: float = 1.0) -> Union[np.ndarray, list]:
    """z-depth of one image (``HxWx3`` float in ``[0, 1]`` -> ``HxW`` float32) or of a list of images.

    Loads the transformers model in ``model_dir`` (local files only) once for this call.
    Metric models give metres (times ``units``); relative (inverse-depth / disparity) models
    give depth in arbitrary units and are refused unless ``allow_relative=True``.
    """
    est = DepthEstimator.load(model_dir, device=device, allow_relative=allow_relative, depth_type=depth_type,
                              units=units)
    if isinstance(image, np.ndarray) and image.ndim == 3:
        return est(image)
    return [est(im) for im in image]


def estimated_scale(image: np.ndarray, model_dir: Union[str, Path], device: str = "cpu",
                    allow_relative: bool = False, units: float = 1.0) -> tuple[float, str]:
    """The 6DoF+1 scene scale of ``image`` from an estimated depth map, and its description.

    The 0.2-quantile of the predicted z-depth (every 4th pixel, ``>= 0.01``), as
    :func:`novelviews.cameras.depth_quantile_scale`; in metres x ``units`` for metric
    models, arbitrary units x ``units`` for relative ones.
    """
    import torch

    from .cameras import depth_quantile_scale

    est = DepthEstimator.load(model_dir, device=device, allow_relative=allow_relative, units=units)
    depth = est(image)
    scale = float(depth_quantile_scale(torch.as_tensor(depth)))
    unit = "metres" if est.depth_type == "metric" else "arbitrary units"
    return scale, f"depth estimator {model_dir} ({est.depth_type}, {unit} x {units:g}, 0.2-quantile)"


__all__ = ["DepthEstimator", "estimate_depth", "estimated_scale", "detect_depth_type", "check_model_dir",
           "METRIC_MODEL_TYPES", "RELATIVE_MODEL_TYPES"]
