"""The settings of ``nvs distill`` and ``nvs export``: typed configs, the --low-memory and reference-path presets, the
CPU recipe, reading a run's saved config."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as _field
from pathlib import Path
from typing import ClassVar, Literal, Optional


from ..config import check_range, from_dict, read_yaml, to_dict
from ..errors import ConfigError
from ..runtime import Precision
from ..views import ImageConfig, InputCameraConfig
from .anchors import AnchoringConfig
from .field import BackgroundConfig, NeRFFieldConfig
from .guidance import GuidanceConfig
from .occupancy import OccupancyGridConfig
from .sampler import SamplerConfig



# --------------------------------------------------------------------------- configs


def _check_pair(key: str, pair, lo=None, hi=None) -> None:
    check_range(f"{key}[0]", pair[0], lo, hi)
    check_range(f"{key}[1]", pair[1], pair[0], hi)


@dataclass
class RandomCameraConfig:
    """``sds_cameras``: the ranges of the random cameras SDS renders from (reference: full azimuth, elevation 5..80 deg, distance 0.8..1.8)."""

    azimuth_deg: tuple[float, float] = (-180.0, 180.0)
    """azimuth range relative to the input view (degrees)"""
    elevation_deg: tuple[float, float] = (5.0, 80.0)
    distance: tuple[float, float] = (0.8, 1.8)
    """distance range as multiples of camera.distance"""
    widen_fraction: float = 0.25
    """ranges widen linearly from the input pose to the full ranges over this fraction of the run"""

    def validate(self) -> None:
        _check_pair("sds_cameras.azimuth_deg", self.azimuth_deg, -360.0, 360.0)
        _check_pair("sds_cameras.elevation_deg", self.elevation_deg, -89.0, 89.0)
        _check_pair("sds_cameras.distance", self.distance, 0.05, 100.0)
        check_range("sds_cameras.widen_fraction", self.widen_fraction, 0.0, 1.0)


@dataclass
class PhasesConfig:
    """``phases``: steps, and the batch / resolution phases of the run (low resolution first); named
    apart from the diffusion model's noise schedule (``model.schedule``)."""

    steps: int = 4000
    batch_sizes: tuple[int, ...] = (6, 1)
    """SDS views per step in each phase"""
    render_scales: tuple[float, ...] = (0.5, 1.0)
    """render side as a fraction of the model's image size in each phase (demo model: 64 then 128 px)"""
    milestones: tuple[float, ...] = (0.5,)
    """fractions of the run where the next phase starts"""

    def validate(self) -> None:
        check_range("phases.steps", self.steps, 1, 10_000_000)
        n = len(self.batch_sizes)
        if n == 0 or len(self.render_scales) != n or len(self.milestones) != n - 1:
            raise ConfigError("config keys 'phases.batch_sizes' and 'phases.render_scales' need one entry per "
                              "phase and 'phases.milestones' one fewer (e.g. [6, 1], [0.5, 1.0], [0.5])")
        for i, b in enumerate(self.batch_sizes):
            check_range(f"phases.batch_sizes[{i}]", b, 1, 256)
        for i, s in enumerate(self.render_scales):
            check_range(f"phases.render_scales[{i}]", s, 0.0, 4.0, lo_open=True)
        last = 0.0
        for i, m in enumerate(self.milestones):
            check_range(f"phases.milestones[{i}]", m, last, 1.0)
            last = m


@dataclass
class LossConfig:
    """Loss weights (reference: SDS x 0.1, input-view RGB x 1500, normal smoothness x 8, orientation x 5)."""

    lambda_sds: float = 0.1
    lambda_rgb: float = 1500.0
    lambda_interlevel: float = 1.0
    """proposal-sampler loss (trains only the proposal field)"""
    # geometry regularisers on the SDS renders (nerf/losses.py); 0 disables
    normal_smooth: float = 8.0
    """2D smoothness of the rendered camera-space normal map (mean |n(x) - n(x + 1px)|)"""
    orientation: float = 5.0
    """Ref-NeRF orientation penalty: normals facing away from the camera"""
    geometry_views: int = 1
    """how many of the step's SDS views carry the two regularisers (0 = all, the reference);
    normals are the most expensive part of a step (6 density queries per sample)"""
    normal_min_weight: float = 1e-3
    """normals only at samples of rendering weight above this (0 = every sample; each normal
    costs 6 density queries); the regularisers change by at most the dropped weight mass"""
    geometry_size: int = 64
    """side in pixels of the normal renders the regularisers use: where the step renders larger
    (the 128-256 px phases), the geometry view is rendered a second time at this size for them
    and its full-size render serves SDS alone; 0 = at the render size (the reference). Bounds the
    memory peak: normals' autograd graph grows with pixels x samples x 6 density queries"""

    def validate(self) -> None:
        for k in ("lambda_sds", "lambda_rgb", "lambda_interlevel", "normal_smooth", "orientation"):
            check_range(f"loss.{k}", getattr(self, k), 0.0, None)
        check_range("loss.normal_min_weight", self.normal_min_weight, 0.0, 1.0)
        check_range("loss.geometry_views", self.geometry_views, 0, None)
        check_range("loss.geometry_size", self.geometry_size, 0, None)
        if 0 < self.geometry_size < 8:
            raise ConfigError(f"loss.geometry_size must be 0 (render size) or at least 8 pixels, "
                              f"got {self.geometry_size}")


@dataclass
class OptimConfig:
    lr: float = 0.005
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-15

    def validate(self) -> None:
        check_range("optim.lr", self.lr, 0.0, 10.0, lo_open=True)


@dataclass
class RenderConfig:
    near: float = 0.05
    far: float = 1000.0
    chunk: int = 16384
    """rays per chunk (bounds memory of evaluation renders)"""
    view_batch: int = 0
    """SDS views rendered in one call during training (their rays concatenated; memory stays
    bounded by the field's checkpoint_points); 0 = all of a step's views and the input view's
    reconstruction at once, 1 = one by one"""
    random_background: bool = True
    """a random background colour per SDS image (reference)"""
    compile: Literal["off", "on"] = "off"
    """on: the training renders' pure tensor parts (point normalisation, field heads, proposal
    intervals, resampling, compositing, interlevel loss) through torch.compile, ~20 % fewer kernel
    launches per step; measured slower end to end on an H200 (a 56-78 s compile, then no faster
    than eager: docs/BENCHMARKS.md), so off by default"""

    def validate(self) -> None:
        check_range("render.near", self.near, 0.0, None)
        check_range("render.far", self.far, self.near, None, lo_open=True)
        check_range("render.chunk", self.chunk, 1, None)
        check_range("render.view_batch", self.view_batch, 0, None)


@dataclass
class OutputConfig:
    checkpoint_every: int = 500
    preview_every: int = 250
    """0 = no previews"""
    log_every: int = 10
    """metrics.csv is rewritten every this many steps"""
    video_frames: int = 60
    fps: int = 24
    size: int = 0
    """side of videos, previews and views (pixels); 0 = the model's image size"""
    cameras: Optional[str] = None
    """JSON camera path (cameras.json / nerfstudio) of novel views to render at the end"""

    def validate(self) -> None:
        check_range("output.checkpoint_every", self.checkpoint_every, 1, None)
        check_range("output.preview_every", self.preview_every, 0, None)
        check_range("output.log_every", self.log_every, 1, None)
        check_range("output.video_frames", self.video_frames, 0, 100000)
        check_range("output.fps", self.fps, 1, 240)
        check_range("output.size", self.size, 0, 8192)


@dataclass
class DistillOccupancyConfig(OccupancyGridConfig):
    """The occupancy grid of a distillation: on, 128^3 cells (64 across the inner ball of radius
    ``field.bound``, 1/16 of a scene unit each at the default bound)."""

    enabled: bool = True
    resolution: int = 128


@dataclass
class DistillConfig:
    """``nvs distill``: one image -> a NeRF by SDS (with optional anchoring)."""

    model: str = "demo"
    device: str = "auto"
    precision: Precision = "auto"
    """autocast of the diffusion model on GPU (auto: bf16 where supported); CPU always fp32"""
    use_ema: bool = True
    seed: int = 0
    offload_unused: bool = True
    """on a GPU, keep the image encoder and the VAE decoder on the CPU while training (a step runs
    only the UNet and the VAE encoder; ZeroNVS's CLIP ViT-L/14 and decoder hold 1.4 GB)"""
    camera: InputCameraConfig = _field(default_factory=InputCameraConfig)
    """the input photo's camera"""
    image: ImageConfig = _field(default_factory=ImageConfig)
    sds_cameras: RandomCameraConfig = _field(default_factory=RandomCameraConfig)
    """the random cameras of the SDS views (``output.cameras`` is a camera path file to render)"""
    phases: PhasesConfig = _field(default_factory=PhasesConfig)
    guidance: GuidanceConfig = _field(default_factory=GuidanceConfig)
    anchors: AnchoringConfig = _field(default_factory=AnchoringConfig)
    loss: LossConfig = _field(default_factory=LossConfig)
    optim: OptimConfig = _field(default_factory=OptimConfig)
    field: NeRFFieldConfig = _field(default_factory=NeRFFieldConfig)
    sampler: SamplerConfig = _field(default_factory=SamplerConfig)
    occupancy: DistillOccupancyConfig = _field(default_factory=DistillOccupancyConfig)
    """empty-space skipping: field and proposal queries in cells the grid finds empty are skipped"""
    background: BackgroundConfig = _field(default_factory=BackgroundConfig)
    render: RenderConfig = _field(default_factory=RenderConfig)
    output: OutputConfig = _field(default_factory=OutputConfig)

    #: old key names, still read (README.md, "Renamed config keys")
    RENAMED: ClassVar[dict[str, str]] = {"schedule": "phases", "cameras": "sds_cameras"}

    def validate(self) -> None:
        for sub in (self.camera, self.image, self.sds_cameras, self.phases, self.guidance, self.anchors, self.loss,
                    self.optim, self.field, self.sampler, self.occupancy, self.background, self.render,
                    self.output):
            sub.validate()


@dataclass
class ExportConfig:
    """``nvs export``: what to make of a distilled run, headless (``nerf.distill.run_export``)."""

    what: Literal["mesh", "video", "views", "splats"] = "mesh"
    format: Literal["obj", "ply", "glb"] = "obj"
    """mesh file format (vertex colours from the albedo)"""
    resolution: int = 256
    """marching-cubes grid points per axis"""
    threshold: Optional[float] = None
    """density iso-level of the mesh; null = automatic (reported)"""
    frames: int = 0
    """video frames; 0 = the run's output.video_frames"""
    size: int = 0
    """video / view side in pixels; 0 = the run's output.size or the model's image size"""
    cameras: Optional[str] = None
    """JSON camera path of ``what=views``; null = the run's output.cameras"""
    device: str = "auto"

    def validate(self) -> None:
        check_range("resolution", self.resolution, 8, 2048)
        check_range("frames", self.frames, 0, 100000)
        check_range("size", self.size, 0, 8192)


#: The bundled preset of ``nvs distill --low-memory`` (src/novelviews/configs/distill-low-memory.yaml: half
#: the first phase's batch, 48 samples per ray, 2**18-point checkpoint chunks, the VAE encoder one render
#: at a time); :func:`preset_settings` reads it.
LOW_MEMORY_PRESET = "distill-low-memory"
#: The bundled preset of a distillation a CPU finishes in minutes (``--config distill-cpu``: 200 steps,
#: one view per step at a quarter then half size, 32 samples per ray; ~13 min on 2 cores).
CPU_PRESET = "distill-cpu"


def preset_settings(name: str) -> dict[str, object]:
    """A bundled (or YAML) preset as dotted keys -> values, e.g. the base of ``--low-memory``."""
    from ..config import flatten_dotted, preset_path

    return flatten_dotted(read_yaml(preset_path(name)))


#: The plain PyTorch path of a distillation step, the reference the fast defaults are checked against
#: (benchmarks ``--reference-path``): the PyTorch hash grid, no activation checkpointing, the VAE
#: encoder on the whole batch, every model part on the device, one render per SDS view, no
#: empty-space skipping. The same function up to what the occupancy grid skips (density below its
#: threshold) and the order of random draws; more memory and time.
REFERENCE_PATH: dict[str, object] = {
    "field.grid.backend": "torch",
    "sampler.proposal.grid.backend": "torch",
    "field.checkpoint_points": 0,
    "sampler.proposal.checkpoint_points": 0,
    "guidance.encoder_chunk": 0,
    "offload_unused": False,
    "guidance.cuda_graph": False,
    "render.view_batch": 1,
    "occupancy.enabled": False,
}


def cpu_note(cfg: DistillConfig) -> str | None:
    """The note of a distillation started on the CPU at GPU-sized settings (several views per step or
    over 1000 steps): how long the defaults take there, and the CPU preset; None for lighter runs."""
    if max(cfg.phases.batch_sizes) <= 1 and cfg.phases.steps <= 1000:
        return None
    return (f"note: distilling on the CPU: a step at the default settings takes ~50 s on 2 cores (days for "
            f"{cfg.phases.steps} steps); a GPU takes minutes. For a quick CPU run (~13 min on 2 cores) add: "
            f"--config {CPU_PRESET}")


def read_run_config(path: Path) -> DistillConfig:
    """A run's saved ``config.yaml``; configs written before the hash grid's backend moved to
    ``field.grid.backend`` (``field.backend``: torch | tcnn | auto) are read too, and so are those
    written under the old key names (``schedule``, ``cameras``: read silently, the user did not
    write them)."""
    import warnings

    from ..config import RenamedKeyWarning

    data = read_yaml(path)
    fld = data.get("field") if isinstance(data, dict) else None
    if isinstance(fld, dict) and "backend" in fld:
        old = fld.pop("backend")
        if old == "tcnn":  # the only layout that differs; torch / auto weights load on every backend
            fld.setdefault("grid", {})["backend"] = "tcnn"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RenamedKeyWarning)
        return from_dict(DistillConfig, data)


def config_differences(a: DistillConfig, b: DistillConfig) -> list[str]:
    """Dotted keys whose values differ between two configs (``device`` not counted: a resumed run
    may move to another device)."""
    from ..config import flatten_dotted

    fa, fb = flatten_dotted(to_dict(a)), flatten_dotted(to_dict(b))
    return sorted(k for k in fa.keys() | fb.keys() if k != "device" and fa.get(k) != fb.get(k))
