"""Novel views straight from the diffusion model, no NeRF.

* :func:`generate` - the core: conditioning views (images + OpenGL cameras) and target
  cameras, each target assigned to one conditioning view ("anchor"); batched over
  targets and CFG branches; per-view seeds.
* :func:`run_views` - ``nvs views IMAGE``: one photo -> a camera path -> PNGs,
  ``cameras.json``, ``video.mp4``, ``sheet.png``, ``config.yaml``.

Single image camera (documented defaults, all in :class:`InputCameraConfig`): the photo is
taken by a camera at ``elevation_deg``, azimuth 0 and ``distance`` from the origin of a
z-up world, looking at the origin, with vertical fov ``fov_deg`` (the reference's
distillation setup). The 6DoF+1 scene scale is, in order of preference: the 0.2-quantile
of a given depth map (``camera.depth``), else the 0.2-quantile of the depth predicted by a
local transformers depth model (``camera.depth_estimator``, a folder; metric models give
metres x ``camera.depth_estimator_units``, relative ones are refused unless
``camera.depth_estimator_allow_relative``; see :mod:`novelviews.depth`), else
``camera.scale`` (the reference's ``precomputed_scale``, 0.7: "how close the content is;
smaller is closer"). The path is
built around the input camera, orbiting / looking at the origin, so view 0 is the input.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal, Optional

import numpy as np
import torch

from . import cameras as C
from .config import check_range, save_config
from .errors import ConfigError, NovelViewsError
from .runtime import precision_dtype, resolve_device  # noqa: F401 - resolve_device re-exported for the commands
from .generation import Progress, generate
from .sampling import SamplingConfig

log = logging.getLogger(__name__)  # notes for the user; the CLI prints them

DEMO_MODEL = "demo"


# --------------------------------------------------------------------------- configs


@dataclass
class InputCameraConfig:
    """The single input photo's camera (z-up world, OpenGL axes, looking at the origin)."""

    fov_deg: float = 52.55  # vertical field of view of the photo
    elevation_deg: float = 31.0  # camera elevation above the xy plane
    distance: float = 1.0  # camera distance from the origin (the orbit centre)
    scale: float = 0.7  # 6DoF+1 scene scale when no depth is given (reference precomputed_scale)
    depth: Optional[str] = None  # optional depth map (.npy / 16-bit PNG in mm) -> 0.2-quantile scale
    depth_unit: float = 0.001  # metres per unit of an integer depth PNG
    depth_estimator: Optional[str] = None  # local transformers depth-model folder -> estimated 0.2-quantile scale
    depth_estimator_units: float = 1.0  # scene units per estimator depth unit (metres for metric models)
    depth_estimator_allow_relative: bool = False  # accept relative (disparity) models: scale in arbitrary units

    def validate(self) -> None:
        check_range("camera.fov_deg", self.fov_deg, 5.0, 170.0)
        check_range("camera.elevation_deg", self.elevation_deg, -89.0, 89.0)
        check_range("camera.distance", self.distance, 0.0, None, lo_open=True)
        check_range("camera.scale", self.scale, 0.0, None, lo_open=True)
        check_range("camera.depth_estimator_units", self.depth_estimator_units, 0.0, None, lo_open=True)


@dataclass
class PathConfig:
    """Which target cameras to generate."""

    kind: str = "orbit"  # orbit | spiral | zoom | pan | dolly | wiggle, or a .json file
    num_views: int = 16
    amount: Optional[float] = None  # strength of the path (see cameras.make_path); None = default
    up: Literal["world", "camera"] = "world"  # orbit/pan axis: world z or the input camera's up
    loop: bool = True

    def validate(self) -> None:
        check_range("path.num_views", self.num_views, 1, 10000)
        if not self.kind.endswith(".json") and self.kind not in C.PATH_KINDS:
            raise ConfigError(
                f"config key 'path.kind' = {self.kind!r}: choose one of {', '.join(C.PATH_KINDS)} or a .json file"
            )


@dataclass
class ImageConfig:
    """How the input photo is turned into the model's square input."""

    mode: Literal["crop", "pad"] = "crop"  # centre crop (default) or letterbox padding
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)  # for transparent pixels and padding

    def validate(self) -> None:
        for i, v in enumerate(self.background):
            check_range(f"image.background[{i}]", v, 0.0, 1.0)


@dataclass
class ViewsConfig:
    """``nvs views``: one image -> novel views along a camera path."""

    model: str = DEMO_MODEL  # "demo" (bundled) or a checkpoint path (.ckpt, .safetensors, folder)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    use_ema: bool = True  # official checkpoints: EMA weights (as the reference) or raw
    camera: InputCameraConfig = field(default_factory=InputCameraConfig)
    path: PathConfig = field(default_factory=PathConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    fps: int = 8
    include_input: bool = True  # frame 0 of the video is the input photo (views/000.png stays generated)


# --------------------------------------------------------------------------- helpers


def demo_model_path() -> Path:
    return Path(__file__).resolve().parent / "data" / "demo_model"


#: ``--model PRESET-random`` (e.g. ``zeronvs-random``): that preset's architecture with random
#: weights, built on the device (seed 0). For speed and memory benchmarks of the full-size model
#: without its checkpoint: speed and memory do not depend on the weights' values, the images do.
RANDOM_SUFFIX = "-random"


def random_model(preset: str, device: torch.device, dtype: torch.dtype = torch.float32, seed: int = 0):
    """A :class:`~novelviews.model.ViewConditionedLDM` of ``preset`` with random weights, built on
    ``device`` (no file is read; seeded, so two calls give the same weights on one device)."""
    from .model import PRESETS, ViewConditionedLDM, model_config

    if preset not in PRESETS:
        raise NovelViewsError(f"unknown model preset '{preset}' in '{preset}{RANDOM_SUFFIX}': use one of "
                              f"{', '.join(p + RANDOM_SUFFIX for p in PRESETS)}")
    torch.manual_seed(seed)
    with torch.device(device):
        model = ViewConditionedLDM(model_config(preset))
    return model.to(dtype).eval()


def load_any_model(spec: str, device: torch.device, dtype: torch.dtype = torch.float32, use_ema: bool = True):
    """``"demo"`` -> the bundled demo model; ``"PRESET-random"`` -> :func:`random_model` (when no
    file of that name exists); anything else -> a checkpoint path."""
    from .model.checkpoints import load_model

    if spec.endswith(RANDOM_SUFFIX) and not Path(spec).exists():
        return random_model(spec[: -len(RANDOM_SUFFIX)], device, dtype)
    if spec == DEMO_MODEL:
        path = demo_model_path()
        if not path.exists():
            raise NovelViewsError(
                "the bundled demo model is missing from this installation "
                f"({path}): reinstall novelviews or pass --model PATH to a checkpoint"
            )
    else:
        path = Path(spec)
    model, _report = load_model(path, use_ema=use_ema, device=device, dtype=dtype)
    model.eval()
    return model


# --------------------------------------------------------------------------- single image


def unusual_image_note(path: str | Path, height: int, width: int, size: int, mode: str) -> str | None:
    """A one-line note for a valid but unusual photo (tiny, or mostly cut away by the centre crop),
    or None."""
    notes = []
    if min(height, width) < size / 4:
        notes.append(f"it is only {width} x {height} pixels, upscaled to {size} x {size} (a blurry input)")
    kept = min(height, width) / max(height, width)
    if mode == "crop" and kept < 0.5:
        notes.append(f"the centre crop keeps {100 * kept:.1f} % of its {width} x {height} pixels "
                     "(image.mode=pad keeps all of it)")
    return f"note: '{Path(path).name}': {'; '.join(notes)}" if notes else None


def load_input_photo(path: str | Path, cfg: ImageConfig) -> np.ndarray:
    """The photo as it is (float32 HxWx3 in [0, 1], transparency on ``cfg.background``); missing,
    unreadable or not an image: ImageError. Commands read it before loading a model, so a bad
    photo fails in a moment."""
    from .io.images import load_image

    return load_image(path, background=cfg.background)


def square_input(photo: np.ndarray, size: int, cfg: ImageConfig, path: str | Path = "input") -> np.ndarray:
    """A loaded photo as the model's ``size x size`` input; an unusual photo
    (:func:`unusual_image_note`, named by ``path``) is noted through logging."""
    from .io.images import center_crop_resize

    note = unusual_image_note(path, photo.shape[0], photo.shape[1], size, cfg.mode)
    if note:
        log.info(note)
    out, _ = center_crop_resize(photo, None, size, mode=cfg.mode, pad_value=list(cfg.background))
    return out


def prepare_input_image(path: str | Path, size: int, cfg: ImageConfig) -> np.ndarray:
    """Load the photo and make it the model's ``size x size`` input (float32 HxWx3 in [0, 1])."""
    return square_input(load_input_photo(path, cfg), size, cfg, path)


def input_scale(cfg: InputCameraConfig, size: int, image_cfg: ImageConfig, image: Optional[np.ndarray] = None,
                device: str | torch.device = "cpu") -> tuple[float, str]:
    """The 6DoF+1 scene scale of the input view, and where it came from.

    Precedence: depth map (``cfg.depth``) > depth estimator (``cfg.depth_estimator``, run on
    ``image``, the model-size square input, float HxWx3 in [0, 1]) > ``cfg.scale``.
    """
    if cfg.depth is None and cfg.depth_estimator is not None:
        if image is None:
            raise NovelViewsError("camera.depth_estimator needs the input image: pass image= to input_scale")
        from .depth import estimated_scale

        return estimated_scale(image, cfg.depth_estimator, device=str(device),
                               allow_relative=cfg.depth_estimator_allow_relative, units=cfg.depth_estimator_units)
    if cfg.depth is None:
        return cfg.scale, "config (camera.scale)"
    from .io.images import center_crop_resize, load_depth_map

    # depth_unit converts integer PNGs (e.g. millimetres); float maps (.npy, .tif) are in scene units
    unit = 1.0 if Path(cfg.depth).suffix.lower() in (".npy", ".npz", ".tif", ".tiff", ".exr") else cfg.depth_unit
    depth = load_depth_map(cfg.depth, scale=unit)
    depth, _ = center_crop_resize(depth, None, size, mode=image_cfg.mode, pad_value=0.0, nearest=True)
    return float(C.depth_quantile_scale(torch.as_tensor(depth))), f"depth map {cfg.depth} (0.2-quantile)"


def input_camera(cfg: InputCameraConfig) -> torch.Tensor:
    return C.camera_on_sphere(math.radians(cfg.elevation_deg), 0.0, cfg.distance)


def target_path(cfg: PathConfig, c2w: torch.Tensor, fov: float, focus: float) -> tuple[torch.Tensor, torch.Tensor]:
    if cfg.kind.endswith(".json"):
        return C.load_path_json(cfg.kind, default_fov=fov)
    up = (0.0, 0.0, 1.0) if cfg.up == "world" else None
    return C.make_path(cfg.kind, c2w, fov, cfg.num_views, focus_distance=focus, up=up, amount=cfg.amount, loop=cfg.loop)


def write_view_outputs(out: Path, img: np.ndarray, frames: list[np.ndarray], c2w_in: torch.Tensor, fov_in: float,
                       targets: torch.Tensor, fovs: torch.Tensor, scale: float, scale_source: str,
                       cfg: ViewsConfig) -> tuple[Path, Path, Path]:
    """``cameras.json``, ``video.mp4`` (frame 0 = the photo when view 0 is the input camera) and
    ``sheet.png`` of a finished run whose ``views/NNN.png`` are written. Returns their paths."""
    from .io.runs import atomic_write_json
    from .io.video import save_contact_sheet, write_video

    size = img.shape[0]
    video_frames = list(frames)
    if cfg.include_input and torch.allclose(targets[0], c2w_in) and abs(float(fovs[0]) - fov_in) < 1e-9:
        video_frames[0] = img  # the input camera itself: the video starts on the real photo
    K = C.intrinsics_from_fov(fovs, size, size)
    cams = C.cameras_to_json(targets, fovs, size, size, extra=[{"file": f"views/{i:03d}.png", "fx": float(K[i, 0, 0]),
                                                                 "fy": float(K[i, 1, 1]), "cx": size / 2, "cy": size / 2}
                                                                for i in range(len(frames))])
    cams["input"] = {"c2w": c2w_in.tolist(), "fov_deg": cfg.camera.fov_deg, "file": "input.png"}
    cams["scene_scale"] = {"value": scale, "source": scale_source}
    cam_file = atomic_write_json(out / "cameras.json", cams)
    video = write_video(out / "video.mp4", video_frames, fps=cfg.fps)
    sheet = save_contact_sheet(out / "sheet.png", frames)
    return cam_file, video, sheet


def path_cameras(cfg: "ViewsConfig") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """``(input_c2w [4, 4], targets [N, 4, 4], target fovs [N] radians, input fov radians)`` of a ViewsConfig.

    OpenGL cam2world in the z-up world of this module (view 0 is the input camera).
    """
    c2w_in = input_camera(cfg.camera)
    fov_in = math.radians(cfg.camera.fov_deg)
    targets, fovs = target_path(cfg.path, c2w_in, fov_in, cfg.camera.distance)
    return c2w_in, targets, torch.as_tensor(fovs, dtype=torch.float64).expand(targets.shape[0]), fov_in


@dataclass
class ViewsProgress:
    """Where a :func:`iter_views` job stands: the views written so far (``frames`` and their
    ``paths`` under ``out/views``) out of ``total``; ``cameras`` / ``video`` / ``sheet`` are set on
    the last update, once the run's files are written."""

    out: Path
    total: int
    frames: list = field(default_factory=list)
    paths: list = field(default_factory=list)
    cameras: Optional[Path] = None
    video: Optional[Path] = None
    sheet: Optional[Path] = None


def iter_views(model, img: np.ndarray, out: Path, cfg: ViewsConfig, scale: float, scale_source: str,
               batch: int = 0, progress: Progress = True) -> Iterator[ViewsProgress]:
    """The views of ``nvs views`` into the existing run folder ``out``, ``batch`` targets at a time
    (0: all at once), yielding after each batch and once more when ``cameras.json``, the video and
    the contact sheet are written. ``img``: the prepared input photo (``S x S x 3`` in [0, 1]).
    View ``i`` uses seed ``cfg.sampling.seed + i`` whatever the batching, so the views are the
    same for every ``batch``. Closing the generator stops after the current batch."""
    from .io.images import image_to_tensor, save_image, tensor_to_image

    c2w_in, targets, fovs, fov_in = path_cameras(cfg)
    n = targets.shape[0]
    state = ViewsProgress(Path(out), n)
    cond = image_to_tensor(img)
    step = batch if batch > 0 else n
    for start in range(0, n, step):
        stop = min(n, start + step)
        views = generate(model, cond, c2w_in, targets[start:stop], fovs[start:stop], scale=scale, cfg=cfg.sampling,
                         seeds=range(cfg.sampling.seed + start, cfg.sampling.seed + stop), progress=progress)
        for i in range(views.shape[0]):
            frame = tensor_to_image(views[i])
            state.paths.append(save_image(state.out / "views" / f"{start + i:03d}.png", frame))
            state.frames.append(frame)
        yield state
    state.cameras, state.video, state.sheet = write_view_outputs(state.out, img, state.frames, c2w_in, fov_in,
                                                                 targets, fovs, scale, scale_source, cfg)
    yield state


def run_views(image: str | Path, out: str | Path, cfg: ViewsConfig, overwrite: bool = False,
              progress: Progress = True) -> dict:
    """``nvs views``: write ``views/NNN.png``, ``cameras.json``, ``video.mp4``, ``sheet.png``."""
    from .io.images import save_image
    from .io.runs import run_folder

    t0 = time.time()
    device = resolve_device(cfg.device)
    photo = load_input_photo(image, cfg.image)  # a bad photo fails before the model loads
    model = load_any_model(cfg.model, device, precision_dtype(cfg.sampling.precision, device), cfg.use_ema)
    size = model.config.image_size
    img = square_input(photo, size, cfg.image, image)
    scale, scale_source = input_scale(cfg.camera, size, cfg.image, image=img, device=device)

    with run_folder(out, overwrite=overwrite) as out:
        save_config(cfg, out / "config.yaml")
        save_image(out / "input.png", img)
        for state in iter_views(model, img, out, cfg, scale, scale_source, progress=progress):
            pass
        info = {"out": str(out), "views": len(state.frames), "video": str(state.video),
                "seconds": round(time.time() - t0, 2), "device": str(device), "scale": scale, "scale_source": scale_source}
        return info
