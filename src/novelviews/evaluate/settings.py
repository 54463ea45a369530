"""The settings of ``nvs eval``: methods, image handling, anchors, the typed config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional


from ..config import check_range
from ..errors import ConfigError
from ..multiview import SCALE_MODES, AnchorConfig
from ..sampling import SamplingConfig
from .holdout import holdout_spec


# --------------------------------------------------------------------------- config


METHODS = ("nearest", "reproject", "model", "model_k")
METHOD_LABELS = {"nearest": "nearest input (copy)", "reproject": "depth reprojection",
                 "model": "model, 1 anchor", "model_k": "model, k anchors"}
MODEL_METHODS = ("model", "model_k")


def method_label(method: str, k: int) -> str:
    """Human-readable name of a method (``model_k`` names its k)."""
    return f"model, {k} anchors" if method == "model_k" else METHOD_LABELS.get(method, method)


@dataclass
class EvalImageConfig:
    """How views are brought to the evaluation resolution (the same for inputs and ground truth)."""

    mode: Literal["crop", "pad"] = "crop"  # centre crop (default, as the reference) or letterbox
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)  # transparent pixels and padding

    def validate(self) -> None:
        for i, v in enumerate(self.background):
            check_range(f"image.background[{i}]", v, 0.0, 1.0)


@dataclass
class EvalAnchorConfig(AnchorConfig):
    """Anchor selection of ``nvs eval``; ``k`` is the number of anchors of the ``model_k`` method."""

    k: int = 2


@dataclass
class EvalConfig:
    """``nvs eval``: hold out views of a posed scene, regenerate them, score against baselines."""

    model: str = "demo"  # "demo" (bundled) or a checkpoint path; unused if no model method is run
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    use_ema: bool = True  # official checkpoints: EMA weights (as the reference) or raw
    format: str = "auto"  # dataset layout: auto | transforms | colmap | co3d | re10k
    holdout: str = "every:8"  # every:K (views 0, K, 2K...) | list:0,5,9 | loo (each view from all others)
    max_views: Optional[int] = None  # score at most this many held-out views (the first ones)
    methods: tuple[str, ...] = METHODS  # any of nearest, reproject, model, model_k
    anchor: EvalAnchorConfig = field(default_factory=EvalAnchorConfig)  # k = anchors of model_k
    sampling: SamplingConfig = field(default_factory=SamplingConfig)  # view i uses seed + scene index
    scale_mode: str = "auto"  # 6DoF+1 scale per input: auto (depth > dataset > camera layout > scale) | ...
    scale: float = 0.7  # 6DoF+1 scale when nothing better is known (reference precomputed_scale)
    image: EvalImageConfig = field(default_factory=EvalImageConfig)
    size: Optional[int] = None  # evaluation resolution: the model's (None); needed only without a model
    ssim: Literal["skimage", "gaussian", "both"] = "skimage"  # 7x7 uniform (reference) / 11x11 Gaussian
    lpips: Literal["vgg", "alex", "off"] = "vgg"  # LPIPS network (vgg = the reference's)
    lpips_weights: Optional[str] = None  # torchvision backbone state dict (local file; never downloaded)
    reproject_supersample: int = 2  # sub-pixel splats per source pixel side
    reproject_sky: bool = True  # pixels without depth are at infinity (synth sky) rather than holes
    save_images: bool = True  # write views/*.png besides the report

    def validate(self) -> None:
        if not self.methods:
            raise ConfigError("config key 'methods' is empty: list some of " + ", ".join(METHODS))
        for m in self.methods:
            if m not in METHODS:
                raise ConfigError(f"config key 'methods': '{m}' is not one of {', '.join(METHODS)}")
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError("config key 'methods' lists a method twice")
        if "model_k" in self.methods and self.anchor.k < 2:
            raise ConfigError("method 'model_k' needs anchor.k >= 2 (anchor.k=1 is the 'model' method)")
        holdout_spec(self.holdout)
        if self.scale_mode not in SCALE_MODES:
            raise ConfigError(f"config key 'scale_mode' = {self.scale_mode!r}: choose one of {', '.join(SCALE_MODES)}")
        check_range("scale", self.scale, 0.0, None, lo_open=True)
        if self.size is not None:
            check_range("size", self.size, 8, 4096)
        if self.max_views is not None:
            check_range("max_views", self.max_views, 1)
        check_range("reproject_supersample", self.reproject_supersample, 1, 8)
