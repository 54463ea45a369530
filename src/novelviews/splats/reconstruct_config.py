"""The settings of ``nvs reconstruct``: typed configs (generated views, initial Gaussians, outputs, the whole run)
and reading a run's saved config."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import check_range, from_dict, read_yaml
from ..errors import NovelViewsError
from ..multiview import AnchorConfig
from ..sampling import SamplingConfig
from ..views import ImageConfig, InputCameraConfig
from .backend import SplatRenderConfig
from .fit import FitConfig
from .posed_inputs import PLACEMENTS, PosedInputsConfig


@dataclass
class GeneratedViewsConfig:
    """The generated views the splats are fitted to."""

    num: int = 32
    elevation_offsets_deg: tuple[float, ...] = (0.0, 15.0, -10.0)
    """elevation offsets from the input's, used in turn by consecutive views"""
    holdout_every: int = 8
    """every this many generated views, one is held out of the fit and scored (0 = none)"""
    placement: str = "arc"
    """around a dataset's photos: arc (the azimuths they cover) | orbit (the whole circle); one photo: an orbit"""

    def validate(self) -> None:
        check_range("views.num", self.num, 1, 4096)
        check_range("views.holdout_every", self.holdout_every, 0, None)
        if self.holdout_every == 1:
            raise NovelViewsError("views.holdout_every=1 would hold out every generated view: use 0 or >= 2")
        for i, e in enumerate(self.elevation_offsets_deg):
            check_range(f"views.elevation_offsets_deg[{i}]", e, -89.0, 89.0)
        if self.placement not in PLACEMENTS:
            raise NovelViewsError(f"config key 'views.placement' = {self.placement!r}: choose one of "
                                  f"{', '.join(PLACEMENTS)}")


@dataclass
class InitConfig:
    """The Gaussians before the fit."""

    points: int = 5000
    radius: float = 0.0
    """radius of the ball of random initial points around the orbit centre (0 = the input frustum's
    half-width there, camera.distance x tan(fov / 2))"""
    opacity: float = 0.1
    visible_in: float = 1.0
    """a dataset's run keeps initial points seen by at least this fraction of its input photos (1 = their
    common view volume); one photo keeps every point"""

    def validate(self) -> None:
        check_range("init.points", self.points, 1, 10_000_000)
        check_range("init.radius", self.radius, 0.0, None)
        check_range("init.visible_in", self.visible_in, 0.0, 1.0)
        check_range("init.opacity", self.opacity, 0.0, 1.0, lo_open=True)
        if self.opacity >= 1.0:
            raise NovelViewsError("init.opacity must be below 1 (it is stored as a logit)")


@dataclass
class ReconstructOutputConfig:
    checkpoint_every: int = 500
    log_every: int = 50
    """progress events and metrics.csv every this many steps"""
    video_frames: int = 60
    fps: int = 24
    size: int = 0
    """side of the video and held-out renders (0 = the training views' size)"""

    def validate(self) -> None:
        check_range("output.checkpoint_every", self.checkpoint_every, 1, None)
        check_range("output.log_every", self.log_every, 1, None)
        check_range("output.video_frames", self.video_frames, 0, 100000)
        check_range("output.fps", self.fps, 1, 240)
        check_range("output.size", self.size, 0, 8192)


@dataclass
class ReconstructConfig:
    """``nvs reconstruct``: one image or a posed dataset -> generated views -> 3D Gaussian splats."""

    model: str = "demo"
    device: str = "auto"
    use_ema: bool = True
    input_weight: float = 4.0
    """loss weight of each input photo (the generated views weigh 1)"""
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """background colour of the renders (the photo's and the generated views' background)"""
    camera: InputCameraConfig = field(default_factory=InputCameraConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    inputs: PosedInputsConfig = field(default_factory=PosedInputsConfig)
    anchor: AnchorConfig = field(default_factory=AnchorConfig)
    """a dataset's run: each generated view from its k nearest input photos"""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    views: GeneratedViewsConfig = field(default_factory=GeneratedViewsConfig)
    init: InitConfig = field(default_factory=InitConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    splats: SplatRenderConfig = field(default_factory=SplatRenderConfig)
    output: ReconstructOutputConfig = field(default_factory=ReconstructOutputConfig)

    def validate(self) -> None:
        check_range("input_weight", self.input_weight, 0.0, None)
        for i, v in enumerate(self.background):
            check_range(f"background[{i}]", v, 0.0, 1.0)
        for sub in (self.camera, self.image, self.inputs, self.anchor, self.views, self.init, self.fit, self.splats,
                    self.output):
            sub.validate()


def read_run_config(path: Path) -> ReconstructConfig:
    return from_dict(ReconstructConfig, read_yaml(path))


__all__ = ["ReconstructConfig", "GeneratedViewsConfig", "InitConfig", "ReconstructOutputConfig", "read_run_config"]
