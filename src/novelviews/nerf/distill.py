"""``nvs distill`` / ``nvs export``: SDS distillation (with anchoring) of the prior into a NeRF.

A plain PyTorch training loop (not Lightning: exact resume of the loss curve, the Ctrl-C
checkpoint and per-step RNG control are simpler to get right and to test in a loop we own).

World and cameras (docs/REFERENCE.md): z-up world, OpenGL cam2world (x right, y up,
looking along -z); a camera at elevation e, azimuth a, distance d sits at
``d (cos e cos a, cos e sin a, sin e)`` looking at the origin; fov is vertical. The input
photo is seen from azimuth 0, ``camera.elevation_deg``, ``camera.distance``, with
``camera.fov_deg``; its 6DoF+1 scene scale is ``camera.scale`` (or a depth map's 0.2-quantile).

One training step (:func:`train_step`):

* ``B`` random cameras (:func:`sample_views`): azimuth, elevation and distance uniform in
  ranges that widen linearly from the input pose to the full ranges over the first
  ``cameras.widen_fraction`` of the run (reference: 1000 of 4000 steps); fov = input fov;
  distances are multiples of ``camera.distance``.
* each is rendered at ``r x r`` pixels (stratified samples, a random background colour per
  image), VAE-encoded and scored by SDS (:mod:`.guidance`) conditioned on the input or on its
  nearest anchor (:mod:`.anchors`);
* the input camera is rendered at ``r x r`` and compared with the input photo (MSE);
* ``loss = loss.lambda_sds * sds + loss.lambda_rgb * rgb + loss.lambda_interlevel * interlevel
  + loss.normal_smooth * smooth + loss.orientation * orient`` (the last two on the SDS renders,
  :mod:`.losses`; a weight of 0 skips the normal computation).

Batch size and render resolution follow ``schedule`` (reference: batch 6 at half the model's
size for the first half of the run, then batch 1 at full size). All step milestones are
fractions of ``schedule.steps``, so short runs keep the reference's shape.

Run folder: ``config.yaml``, ``input.png``, ``anchors/`` (PNGs + cameras.json),
``checkpoints/last.pt`` (field + sampler + background + optimizer + step + RNG + loss
history), ``metrics.csv``, ``previews/step_NNNNNN.png``, and at the end ``video.mp4``
(orbit), ``depth.mp4``, ``views/`` (at ``output.cameras``) and ``info.json``.
"""

from __future__ import annotations

import logging
import contextlib
import csv
import io
import math
import signal
import threading
import time
from dataclasses import dataclass
from dataclasses import field as _field
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import torch
from torch.nn import functional as F

from .. import cameras as C
from ..config import check_range, from_dict, read_yaml, save_config, to_dict
from ..errors import ConfigError, NovelViewsError
from ..runtime import Fusion, to_device
from ..views import ImageConfig, InputCameraConfig
from .anchors import AnchoringConfig, anchor_probability, choose_conditions, load_anchors, sample_anchors, save_anchors
from .field import Background, BackgroundConfig, NeRFField, NeRFFieldConfig
from .guidance import GuidanceConfig, SDSDenoiser, encode_renders, sds_gradient, sds_loss_from_grad, timestep_range
from .losses import normal_smoothness_2d, orientation_loss, render_rays_with_normals
from .render import get_rays, render_image, render_rays
from .occupancy import OccupancyGrid, OccupancyGridConfig
from .sampler import SamplerConfig, make_sampler

log = logging.getLogger(__name__)  # notes for the user; the CLI prints them

CHECKPOINT = "checkpoints/last.pt"
MESH_FORMATS = ("obj", "ply", "glb")

# --------------------------------------------------------------------------- configs


def _check_pair(key: str, pair, lo=None, hi=None) -> None:
    check_range(f"{key}[0]", pair[0], lo, hi)
    check_range(f"{key}[1]", pair[1], pair[0], hi)


@dataclass
class RandomCameraConfig:
    """Random SDS cameras (reference: full azimuth, elevation 5..80 deg, distance 0.8..1.8)."""

    azimuth_deg: tuple[float, float] = (-180.0, 180.0)
    """azimuth range relative to the input view (degrees)"""
    elevation_deg: tuple[float, float] = (5.0, 80.0)
    distance: tuple[float, float] = (0.8, 1.8)
    """distance range as multiples of camera.distance"""
    widen_fraction: float = 0.25
    """ranges widen linearly from the input pose to the full ranges over this fraction of the run"""

    def validate(self) -> None:
        _check_pair("cameras.azimuth_deg", self.azimuth_deg, -360.0, 360.0)
        _check_pair("cameras.elevation_deg", self.elevation_deg, -89.0, 89.0)
        _check_pair("cameras.distance", self.distance, 0.05, 100.0)
        check_range("cameras.widen_fraction", self.widen_fraction, 0.0, 1.0)


@dataclass
class ScheduleConfig:
    """Steps, and the batch / resolution phases (low resolution first)."""

    steps: int = 4000
    batch_sizes: tuple[int, ...] = (6, 1)
    """SDS views per step in each phase"""
    render_scales: tuple[float, ...] = (0.5, 1.0)
    """render side as a fraction of the model's image size in each phase (demo model: 64 then 128 px)"""
    milestones: tuple[float, ...] = (0.5,)
    """fractions of the run where the next phase starts"""

    def validate(self) -> None:
        check_range("schedule.steps", self.steps, 1, 10_000_000)
        n = len(self.batch_sizes)
        if n == 0 or len(self.render_scales) != n or len(self.milestones) != n - 1:
            raise ConfigError("config keys 'schedule.batch_sizes' and 'schedule.render_scales' need one entry per "
                              "phase and 'schedule.milestones' one fewer (e.g. [6, 1], [0.5, 1.0], [0.5])")
        for i, b in enumerate(self.batch_sizes):
            check_range(f"schedule.batch_sizes[{i}]", b, 1, 256)
        for i, s in enumerate(self.render_scales):
            check_range(f"schedule.render_scales[{i}]", s, 0.0, 4.0, lo_open=True)
        last = 0.0
        for i, m in enumerate(self.milestones):
            check_range(f"schedule.milestones[{i}]", m, last, 1.0)
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
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    """autocast of the diffusion model on GPU (auto: bf16 where supported); CPU always fp32"""
    use_ema: bool = True
    seed: int = 0
    offload_unused: bool = True
    """on a GPU, keep the image encoder and the VAE decoder on the CPU while training (a step runs
    only the UNet and the VAE encoder; ZeroNVS's CLIP ViT-L/14 and decoder hold 1.4 GB)"""
    camera: InputCameraConfig = _field(default_factory=InputCameraConfig)
    image: ImageConfig = _field(default_factory=ImageConfig)
    cameras: RandomCameraConfig = _field(default_factory=RandomCameraConfig)
    schedule: ScheduleConfig = _field(default_factory=ScheduleConfig)
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

    def validate(self) -> None:
        for sub in (self.camera, self.image, self.cameras, self.schedule, self.guidance, self.anchors, self.loss,
                    self.optim, self.field, self.sampler, self.occupancy, self.background, self.render,
                    self.output):
            sub.validate()


#: ``nvs distill --low-memory``: settings that bound a step's memory further: half the first phase's
#: batch (3 views instead of 6), 48 final samples per ray instead of 64, the fields' activation
#: checkpoints every 2**18 points instead of 2**21, the VAE encoder one render at a time, and
#: evaluation renders in smaller chunks. They are the base of the config: ``--config`` files and
#: ``key=value`` overrides still win.
LOW_MEMORY: dict[str, object] = {
    "schedule.batch_sizes": [3, 1],
    "sampler.num_samples": 48,
    "render.chunk": 4096,
    "field.checkpoint_points": 2**18,
    "sampler.proposal.checkpoint_points": 2**18,
    "guidance.encoder_chunk": 1,
}


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


#: A distillation a CPU finishes in minutes: 200 steps, one view per step at 32 then 64 px, 32 samples
#: per ray, 16 px normal renders (the demo model on 2 cores: ~2.2 / ~5.7 s per step in the two
#: phases, ~13 min in all). The ``key=value`` overrides of ``nvs distill``'s CPU recipe.
CPU_RECIPE: tuple[str, ...] = ("schedule.steps=200", "schedule.batch_sizes=[1,1]", "schedule.render_scales=[0.25,0.5]",
                               "sampler.num_samples=32", "sampler.num_proposal_samples=32", "loss.geometry_size=16")


def cpu_note(cfg: DistillConfig) -> str:
    """The note of a distillation started on the CPU: how long the defaults take there, and the recipe."""
    return (f"note: distilling on the CPU: a step at the default settings takes ~50 s on 2 cores (days for "
            f"{cfg.schedule.steps} steps); a GPU takes minutes. For a quick CPU run (~13 min on 2 cores) add: "
            f"{' '.join(CPU_RECIPE)}")


# --------------------------------------------------------------------------- schedules and cameras


def phase(step: int, sched: ScheduleConfig, image_size: int) -> tuple[int, int]:
    """``(batch size, render side in pixels)`` at ``step``."""
    frac = step / sched.steps
    i = sum(1 for m in sched.milestones if frac >= m)
    return sched.batch_sizes[i], max(8, int(round(sched.render_scales[i] * image_size)))


def camera_ranges(step: int, cfg: DistillConfig) -> dict[str, tuple[float, float]]:
    """Ranges (radians / scene units) of the random cameras at ``step``, widened from the input pose."""
    end = cfg.cameras.widen_fraction * cfg.schedule.steps
    w = 1.0 if end <= 0 else min(step / end, 1.0)
    inp = {"azimuth": 0.0, "elevation": math.radians(cfg.camera.elevation_deg), "distance": cfg.camera.distance}
    full = {"azimuth": tuple(math.radians(a) for a in cfg.cameras.azimuth_deg),
            "elevation": tuple(math.radians(e) for e in cfg.cameras.elevation_deg),
            "distance": tuple(cfg.camera.distance * d for d in cfg.cameras.distance)}
    return {k: (inp[k] + w * (full[k][0] - inp[k]), inp[k] + w * (full[k][1] - inp[k])) for k in inp}


def sample_views(step: int, batch: int, cfg: DistillConfig, generator: torch.Generator) -> torch.Tensor:
    """``batch`` random SDS cameras (OpenGL c2w ``[B, 4, 4]`` float64) at ``step``."""
    r = camera_ranges(step, cfg)
    u = torch.rand(3, batch, generator=generator, dtype=torch.float64)
    az = r["azimuth"][0] + u[0] * (r["azimuth"][1] - r["azimuth"][0])
    el = r["elevation"][0] + u[1] * (r["elevation"][1] - r["elevation"][0])
    d = r["distance"][0] + u[2] * (r["distance"][1] - r["distance"][0])
    return C.camera_on_sphere(el, az, d)


def orbit_cameras(cfg: DistillConfig, n: int) -> torch.Tensor:
    """``n`` cameras on a full circle at the input elevation and distance, starting at the input."""
    az = torch.arange(n, dtype=torch.float64) * (2.0 * math.pi / max(n, 1))
    el = torch.full_like(az, math.radians(cfg.camera.elevation_deg))
    return C.camera_on_sphere(el, az, torch.full_like(az, cfg.camera.distance))


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for the diffusion model, or None (fp32)."""
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]


# --------------------------------------------------------------------------- state


@dataclass
class Scene:
    """What a run renders: the NeRF modules and the fixed input camera."""

    field: NeRFField
    sampler: torch.nn.Module
    background: Background
    fov: float  # vertical, radians
    input_c2w: torch.Tensor  # 4x4 OpenGL, float64
    image_size: int  # the model's image side (default render side)
    occupancy: OccupancyGrid | None = None  # empty-space skipping of field and proposal queries

    def parameters(self):
        return list(self.field.parameters()) + list(self.sampler.parameters()) + list(self.background.parameters())

    def modules(self) -> dict[str, torch.nn.Module]:
        mods = {"field": self.field, "sampler": self.sampler, "background": self.background}
        if self.occupancy is not None:
            mods["occupancy"] = self.occupancy
        return mods

    def query_counts(self) -> dict[str, float]:
        """Field / proposal points queried per ray-sample since the last call, then reset:
        ``{"field_kept": fraction, "proposal_kept": fraction}`` (empty without a grid)."""
        out = {}
        for name, m in (("field", self.field), ("proposal", getattr(self.sampler, "density_field", None))):
            counts = getattr(m, "query_counts", None)
            if counts and counts.get("points"):
                out[f"{name}_kept"] = float(counts["kept"]) / float(counts["points"])
                counts.clear()
        return out


def build_scene(cfg: DistillConfig, image_size: int, device: torch.device) -> Scene:
    """Fresh NeRF modules (initialised from ``torch``'s global RNG; seed it first)."""
    f = NeRFField(cfg.field).to(device)
    s = make_sampler(cfg.sampler, cfg.field.bound, cfg.field.unbounded).to(device)
    b = Background(cfg.background).to(device)
    if cfg.render.compile == "on":
        fusion = Fusion(True)  # one per run: its compiled functions serve the field and the proposal field
        f.fusion = fusion
        if hasattr(s, "density_field"):
            s.density_field.fusion = fusion
    grid = None
    if cfg.occupancy.enabled:
        grid = OccupancyGrid(cfg.occupancy).to(device)
        f.set_occupancy(grid)
        if hasattr(s, "density_field"):
            s.density_field.set_occupancy(grid)
    return Scene(f, s, b, math.radians(cfg.camera.fov_deg), C.camera_on_sphere(
        math.radians(cfg.camera.elevation_deg), 0.0, cfg.camera.distance), image_size, grid)


def render_view(scene: Scene, cfg: DistillConfig, c2w, size: int, fov: float | None = None) -> dict[str, torch.Tensor]:
    """Evaluation render (no grad) of one camera at ``size x size``: rgb ``[H, W, 3]``, depth, opacity."""
    K = C.intrinsics_from_fov(scene.fov if fov is None else fov, size, size)
    return render_image(scene.field, c2w, K, size, size, scene.sampler, scene.background, cfg.render.near,
                        cfg.render.far, chunk=cfg.render.chunk)


@dataclass
class Conditioning:
    """The pool of conditioning views: index 0 the input, then the anchors."""

    c2w: torch.Tensor  # [M, 4, 4] float64 OpenGL
    image_emb: torch.Tensor  # [M, context_dim]
    cond_latent: torch.Tensor  # [M, C, h, w] (posterior mode, unscaled)
    scale: torch.Tensor  # [M] float64 6DoF+1 scene scale


@torch.no_grad()
def embed_pool(model, images: torch.Tensor, c2w: torch.Tensor, scale: float) -> Conditioning:
    """Embed ``[M, 3, S, S]`` ``[-1, 1]`` views like the input (image embedding + VAE mode)."""
    emb, lat = model.embed_image(images.to(model.device))
    return Conditioning(c2w.to(torch.float64), emb, lat, torch.full((c2w.shape[0],), float(scale), dtype=torch.float64))


# --------------------------------------------------------------------------- one step


def _resize_image(img: torch.Tensor, size: int) -> torch.Tensor:
    """``[1, 3, S, S]`` -> ``[1, 3, size, size]`` (bilinear, antialiased when shrinking)."""
    if img.shape[-1] == size:
        return img
    return F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def train_step(step: int, scene: Scene, model, pool: Conditioning, target: torch.Tensor, cfg: DistillConfig,
               gen: torch.Generator, alphas: torch.Tensor, amp_dtype: torch.dtype | None,
               denoiser: SDSDenoiser | None = None) -> tuple[torch.Tensor, dict]:
    """Losses of one step (not yet backpropagated). ``target``: input photo ``[1, 3, S, S]`` in [0, 1].
    ``denoiser``: the run's :class:`~novelviews.nerf.guidance.SDSDenoiser` (its CUDA graphs live
    across steps); None = a plain one for this step."""
    if denoiser is None:
        denoiser = make_denoiser(model, cfg, amp_dtype, cuda_graph=False)

    dev = next(scene.field.parameters()).device
    occ_info = {}
    if scene.occupancy is not None and scene.occupancy.should_update(step):
        occ_info = scene.occupancy.update(scene.field.density_at_grid, step, gen if dev.type == "cpu" else None)
    B, r = phase(step, cfg.schedule, scene.image_size)
    c2w = sample_views(step, B, cfg, gen)
    K = C.intrinsics_from_fov(scene.fov, r, r)
    bg = torch.rand(B, 3, generator=gen) if cfg.render.random_background else None
    rgbs: list[torch.Tensor | None] = [None] * B
    inter: list[torch.Tensor] = []
    # normals only when a geometry regulariser is on
    geo = cfg.loss.normal_smooth > 0 or cfg.loss.orientation > 0
    smooth, orient = [], []
    n_geo = B if cfg.loss.geometry_views == 0 else min(B, cfg.loss.geometry_views)
    g = r if cfg.loss.geometry_size == 0 else min(r, cfg.loss.geometry_size)  # side of the normal renders
    rays = [get_rays(c2w[b], K, r, r, device=dev)[:2] for b in range(B)]
    for b in range(n_geo if geo else 0):  # the views are i.i.d., so the first n_geo are a random subset
        og, dg = rays[b] if g == r else get_rays(c2w[b], C.intrinsics_from_fov(scene.fov, g, g), g, g,
                                                 device=dev)[:2]
        geo_out = render_rays_with_normals(scene.field, og, dg, scene.sampler, scene.background,
                                           cfg.render.near, cfg.render.far, stratified=True,
                                           bg_color=None if bg is None else to_device(bg[b], dev),
                                           c2w=c2w[b], min_weight=cfg.loss.normal_min_weight)
        smooth.append(normal_smoothness_2d(geo_out["normal"].reshape(g, g, 3)))
        orient.append(orientation_loss(geo_out["weights"], geo_out["normals"], dg))
        if g == r:  # at the render size it is also this view's SDS render
            rgbs[b] = geo_out["rgb"].reshape(r, r, 3).permute(2, 0, 1)
            if "interlevel" in geo_out:
                inter.append(geo_out["interlevel"])
    # the other views' SDS renders, render.view_batch views per call (their rays concatenated); with
    # all views in one call (view_batch 0) the input view's reconstruction render joins that call
    todo = [b for b in range(B) if rgbs[b] is None]
    vb = cfg.render.view_batch or max(len(todo), 1)
    groups = [todo[i:i + vb] for i in range(0, len(todo), vb)]
    o_in, d_in, _ = get_rays(scene.input_c2w, K, r, r, device=dev)
    input_rgb = None
    for gi, group in enumerate(groups):
        with_input = cfg.render.view_batch == 0 and gi == len(groups) - 1
        o = torch.cat([rays[b][0] for b in group] + ([o_in] if with_input else []))
        d = torch.cat([rays[b][1] for b in group] + ([d_in] if with_input else []))
        bgc = None if bg is None else to_device(bg[group], dev).repeat_interleave(r * r, 0)
        if bgc is not None and with_input:  # the input view keeps the background model's colour
            bgc = torch.cat([bgc, scene.background(d_in)])
        out = render_rays(scene.field, o, d, scene.sampler, scene.background, cfg.render.near, cfg.render.far,
                          stratified=True, chunk=o.shape[0], bg_color=bgc)
        for k, b in enumerate(group):
            rgbs[b] = out["rgb"][k * r * r:(k + 1) * r * r].reshape(r, r, 3).permute(2, 0, 1)
        if with_input:
            input_rgb = out["rgb"][len(group) * r * r:]
        if "interlevel" in out:  # the mean over the call's rays = the mean of its views' (equal sizes)
            inter.extend([out["interlevel"]] * (len(group) + with_input))
    rgb = torch.stack(rgbs)  # [B, 3, r, r] in [0, 1]
    zero = torch.zeros((), device=dev)
    loss_smooth = torch.stack(smooth).mean() if smooth else zero
    loss_orient = torch.stack(orient).mean() if orient else zero

    # SDS on the renders, each conditioned on the input or its nearest anchor
    lat = encode_renders(model, rgb, cfg.guidance.sample_posterior, gen if dev.type == "cpu" else None, amp_dtype,
                         cfg.guidance.encoder_chunk, denoiser.encoder_graphs)
    t_min, t_max = timestep_range(step, cfg.schedule.steps, cfg.guidance.t_keyframes, len(alphas))
    t_cpu = torch.randint(t_min, t_max + 1, (B,), generator=gen)
    t = to_device(t_cpu, dev)
    noise = to_device(torch.randn(lat.shape, generator=gen), dev)
    p = anchor_probability(step, cfg.schedule.steps, cfg.anchors)
    idx = choose_conditions(c2w, pool.c2w, p, torch.rand(B, generator=gen, dtype=torch.float64))
    cam = C.camera_embedding(model.config.camera_mode, pool.c2w[idx], c2w, pool.scale[idx],
                             torch.full((B,), scene.fov, dtype=torch.float64))
    idx_d = to_device(idx, dev)
    with torch.no_grad():
        ctx = model.context(pool.image_emb[idx_d], to_device(cam, dev, pool.image_emb.dtype))
    eps_fn = denoiser(ctx, pool.cond_latent[idx_d])
    grad, _ = sds_gradient(lat, t, noise, eps_fn, alphas, cfg.guidance.weighting, cfg.guidance.grad_clip)
    loss_sds = sds_loss_from_grad(lat, grad)

    # reconstruction of the input view (rendered above with the SDS views, or on its own)
    if input_rgb is None:
        out = render_rays(scene.field, o_in, d_in, scene.sampler, scene.background, cfg.render.near,
                          cfg.render.far, stratified=True, chunk=o_in.shape[0])
        input_rgb = out["rgb"]
        if "interlevel" in out:
            inter.append(out["interlevel"])
    tgt = to_device(_resize_image(target, r)[0].permute(1, 2, 0).reshape(-1, 3), dev)
    loss_rgb = F.mse_loss(input_rgb, tgt)
    loss_inter = torch.stack(inter).mean() if inter else torch.zeros((), device=dev)
    total = cfg.loss.lambda_sds * loss_sds + cfg.loss.lambda_rgb * loss_rgb + cfg.loss.lambda_interlevel * loss_inter
    total = total + cfg.loss.normal_smooth * loss_smooth + cfg.loss.orientation * loss_orient
    # the losses stay on the device (no host sync in the step): step_info turns them into numbers
    info = {"loss": total.detach(), "sds": loss_sds.detach(), "rgb": loss_rgb.detach(),
            "interlevel": loss_inter.detach(), "normal_smooth": loss_smooth.detach(),
            "orientation": loss_orient.detach(), "t_mean": float(t_cpu.float().mean()),
            "anchor_frac": float((idx > 0).double().mean()), "batch": B, "res": r}
    if scene.occupancy is not None:
        info.update(scene.query_counts())
        if occ_info:
            info["occupied_fraction"] = occ_info["occupied_fraction"]
    return total, info


def step_info(info: dict) -> dict:
    """``info`` of :func:`train_step` with its tensors as Python numbers, read back in one copy.

    Call it after the step's backward and optimiser update have been queued, so that the one
    host sync of the step waits for work the GPU already has rather than stalling the launches."""
    keys = [k for k, v in info.items() if isinstance(v, torch.Tensor)]
    if not keys:
        return dict(info)
    values = torch.stack([info[k].float().reshape(()) for k in keys]).tolist()
    return {**info, **dict(zip(keys, values))}


def make_denoiser(model, cfg: DistillConfig, amp_dtype: torch.dtype | None, cuda_graph: bool | None = None
                  ) -> SDSDenoiser:
    """The run's guided denoiser (``guidance.cuda_graph`` unless ``cuda_graph`` says otherwise)."""
    graph = cfg.guidance.cuda_graph if cuda_graph is None else cuda_graph
    return SDSDenoiser(model, cfg.guidance.guidance_scale, amp_dtype or torch.float32, graph)


def make_optimizer(scene: Scene, cfg: DistillConfig, amp: torch.dtype | None):
    """Adam over the scene's parameters, and a loss scaler when the guidance runs in fp16."""
    params = list(scene.parameters())
    # on CUDA one fused kernel updates every parameter (the same update as the per-tensor loop)
    fused = bool(params) and all(p.is_cuda and p.dtype.is_floating_point for p in params)
    opt = torch.optim.Adam(params, lr=cfg.optim.lr, betas=cfg.optim.betas, eps=cfg.optim.eps, fused=fused or None)
    return opt, (torch.amp.GradScaler("cuda") if amp == torch.float16 else None)


def optimizer_step(loss: torch.Tensor, opt: torch.optim.Optimizer, scaler=None) -> None:
    """Backward of one step's loss and the optimiser update (loss scaling for fp16)."""
    opt.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        opt.step()


# --------------------------------------------------------------------------- checkpoints


def _rng_state(gen: torch.Generator) -> dict:
    st = {"gen": gen.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict, gen: torch.Generator) -> None:
    gen.set_state(st["gen"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def save_checkpoint(path: Path, step: int, scene: Scene, opt, scaler, gen, history: list[dict],
                    meta: dict) -> Path:
    from ..io.runs import atomic_save

    state = {"format": "novelviews-distill", "version": 1, "step": int(step), "meta": meta,
             "modules": {k: m.state_dict() for k, m in scene.modules().items()},
             "optimizer": opt.state_dict() if opt is not None else None,
             "scaler": scaler.state_dict() if scaler is not None else None,
             "rng": _rng_state(gen) if gen is not None else None, "history": history}
    return atomic_save(Path(path), lambda p: torch.save(state, p))


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise NovelViewsError(f"no distillation checkpoint at '{path}': run `nvs distill` first "
                              "(or drop --resume to start a new run)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt or foreign file
        raise NovelViewsError(f"cannot read the checkpoint '{path}' ({exc.__class__.__name__}): "
                              "it is corrupt or not from `nvs distill`") from None
    if not isinstance(state, dict) or state.get("format") != "novelviews-distill":
        raise NovelViewsError(f"'{path}' is not an `nvs distill` checkpoint")
    return state


def _load_modules(scene: Scene, state: dict) -> None:
    """The scene's modules from a checkpoint; an occupancy grid missing from it (a run saved
    without one) starts all occupied, which skips nothing."""
    for k, m in scene.modules().items():
        if k == "occupancy" and k not in state["modules"]:
            continue
        m.load_state_dict(state["modules"][k])


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[DistillConfig, Scene, dict]:
    """Rebuild a run's NeRF from ``config.yaml`` + ``checkpoints/last.pt`` (no diffusion model needed)."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise NovelViewsError(f"'{run_dir}' is not a distillation run (no config.yaml): pass the --out folder "
                              "of `nvs distill`")
    cfg = read_run_config(cfg_path)
    dev = torch.device(device)
    state = load_checkpoint(run_dir / CHECKPOINT, map_location=dev)
    scene = build_scene(cfg, int(state["meta"]["image_size"]), dev)
    _load_modules(scene, state)
    scene.fov = float(state["meta"]["fov"])
    for m in scene.modules().values():
        m.eval()
    return cfg, scene, state


# --------------------------------------------------------------------------- outputs


def _write_metrics(path: Path, history: list[dict]) -> None:
    from ..io.runs import atomic_write_text

    if not history:
        return
    keys = list(history[0].keys())
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    for row in history:
        w.writerow({k: row.get(k) for k in keys})
    atomic_write_text(path, buf.getvalue())


def depth_frames(depths: list[torch.Tensor], opacities: list[torch.Tensor]) -> list[np.ndarray]:
    """Grey-scale depth images (near = bright), one normalisation for all frames
    (2nd-98th percentile of the surface depth ``depth / opacity`` where ``opacity > 0.5``)."""
    surf = [(d / o.clamp_min(1e-6)).float() for d, o in zip(depths, opacities)]
    valid = torch.cat([s[o > 0.5].flatten() for s, o in zip(surf, opacities)])
    if valid.numel() > 0:
        lo, hi = torch.quantile(valid, 0.02).item(), torch.quantile(valid, 0.98).item()
    else:
        lo, hi = 0.0, 1.0
    hi = max(hi, lo + 1e-6)
    out = []
    for s, o in zip(surf, opacities):
        g = (1.0 - (s - lo) / (hi - lo)).clamp(0, 1) * (o > 0.5).float()
        out.append(np.repeat(g.cpu().numpy()[..., None], 3, axis=-1).astype(np.float32))
    return out


def render_orbit(scene: Scene, cfg: DistillConfig, n: int, size: int, progress: bool = False
                 ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """RGB and depth frames (float32 HxWx3 in [0, 1]) of an orbit at the input elevation/distance."""
    from tqdm.auto import tqdm

    rgb, depth, opac = [], [], []
    for c in tqdm(orbit_cameras(cfg, n), desc="orbit", disable=not progress, leave=False):
        out = render_view(scene, cfg, c, size)
        rgb.append(out["rgb"].clamp(0, 1).cpu().numpy().astype(np.float32))
        depth.append(out["depth"].cpu())
        opac.append(out["opacity"].cpu())
    return rgb, depth_frames(depth, opac)


def write_views(scene: Scene, cfg: DistillConfig, cameras_json: str | Path, folder: Path, size: int) -> int:
    """Render the cameras of a JSON camera path into ``folder/NNN.png`` + ``cameras.json``."""
    from ..io.images import save_image
    from ..io.runs import atomic_write_json

    c2w, fov = C.load_path_json(cameras_json, default_fov=scene.fov)
    for i in range(c2w.shape[0]):
        out = render_view(scene, cfg, c2w[i], size, float(fov[i]))
        save_image(folder / f"{i:03d}.png", out["rgb"].clamp(0, 1).cpu().numpy())
    atomic_write_json(folder / "cameras.json", C.cameras_to_json(c2w, fov, size, size, extra=[
        {"file": f"{i:03d}.png"} for i in range(c2w.shape[0])]))
    return int(c2w.shape[0])


def write_preview(path: Path, scene: Scene, cfg: DistillConfig, size: int) -> None:
    """Input view and three more azimuths side by side."""
    from ..io.images import save_image

    cams = orbit_cameras(cfg, 4)
    with torch.no_grad():
        tiles = [render_view(scene, cfg, c, size)["rgb"].clamp(0, 1).cpu().numpy() for c in cams]
    save_image(path, np.concatenate(tiles, axis=1))


# --------------------------------------------------------------------------- run


@contextlib.contextmanager
def unused_parts_offloaded(model, enabled: bool = True):
    """For the block, the model's image encoder and VAE decoder (+ its post-quant conv) live on
    the CPU; they are moved back after it, whatever happens (a caller's model stays usable)."""
    parts = [getattr(model, "image_encoder", None), getattr(model.vae, "decoder", None),
             getattr(model.vae, "post_quant_conv", None)] if enabled else []
    parts = [p for p in parts if isinstance(p, torch.nn.Module)]
    devices = [next(p.parameters(), torch.empty(0)).device for p in parts]
    try:
        for p in parts:
            p.to("cpu")
        if parts and torch.cuda.is_available():
            torch.cuda.empty_cache()
        yield model
    finally:
        for p, d in zip(parts, devices):
            p.to(d)


class _StopFlag:
    """Ctrl-C handler: the first press finishes the current step, saves and stops; the second aborts."""

    def __init__(self):
        self.stop = False
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.getsignal(signal.SIGINT)

            def handler(signum, frame):
                if self.stop:
                    raise KeyboardInterrupt
                self.stop = True
                log.info("\ninterrupt: saving a checkpoint after this step (press Ctrl-C again to abort)")

            signal.signal(signal.SIGINT, handler)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def read_run_config(path: Path) -> DistillConfig:
    """A run's saved ``config.yaml``; configs written before the hash grid's backend moved to
    ``field.grid.backend`` (``field.backend``: torch | tcnn | auto) are read too."""
    data = read_yaml(path)
    fld = data.get("field") if isinstance(data, dict) else None
    if isinstance(fld, dict) and "backend" in fld:
        old = fld.pop("backend")
        if old == "tcnn":  # the only layout that differs; torch / auto weights load on every backend
            fld.setdefault("grid", {})["backend"] = "tcnn"
    return from_dict(DistillConfig, data)


def config_differences(a: DistillConfig, b: DistillConfig) -> list[str]:
    """Dotted keys whose values differ between two configs (``device`` not counted: a resumed run
    may move to another device)."""

    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    fa, fb = flat(to_dict(a)), flat(to_dict(b))
    return sorted(k for k in fa.keys() | fb.keys() if k != "device" and fa.get(k) != fb.get(k))


def run_distill(image: str | Path, out: str | Path, cfg: DistillConfig, resume: bool = False,
                overwrite: bool = False, progress: bool = True, model=None, stop_after: int | None = None,
                max_seconds: float | None = None, write_outputs: bool = True) -> dict:
    """``nvs distill``: distil the diffusion prior into a NeRF of the scene behind ``image``.

    ``resume`` continues ``out/checkpoints/last.pt`` with the run's saved config in full (same
    step count, same loss curve, same outputs; only ``device`` comes from ``cfg``; the settings of
    ``cfg`` that differ are named in a note). ``model``: an already loaded ViewConditionedLDM (tests);
    ``stop_after``: stop once this many steps are done (the run can be resumed);
    ``max_seconds``: stop training after this much wall time (benchmarks). Ctrl-C saves a
    checkpoint and raises KeyboardInterrupt. Returns a summary dict.
    """
    from tqdm.auto import tqdm

    from ..io.images import image_to_tensor, load_image, save_image
    from ..io.runs import atomic_write_json, run_folder
    from ..io.video import write_video
    from ..sampling import schedule_alphas
    from ..views import check_input_image, input_scale, load_any_model, prepare_input_image, resolve_device

    t_start = time.time()
    out = Path(out)
    if resume:
        if not (out / CHECKPOINT).is_file():
            raise NovelViewsError(f"cannot resume: '{out / CHECKPOINT}' does not exist (start without --resume)")
        saved = read_run_config(out / "config.yaml")
        ignored = config_differences(saved, cfg)
        if ignored:
            log.info(f"note: resuming with the run's saved config ({out / 'config.yaml'}); these settings of this "
                     f"call are ignored: {', '.join(ignored)}")
        saved.device = cfg.device  # the one setting a resumed run takes from the new call
        cfg = saved
    cfg.validate()
    device = resolve_device(cfg.device)
    amp = resolve_precision(cfg.precision, device)
    if not resume:
        check_input_image(image)  # a bad photo fails before the model loads
    if device.type == "cpu" and model is None:
        log.info(cpu_note(cfg))
    if model is None:
        model = load_any_model(cfg.model, device, torch.float32, cfg.use_ema)
    model = model.to(device).eval().requires_grad_(False)
    S = model.config.image_size

    if not resume:
        img = prepare_input_image(image, S, cfg.image)  # validate the input before touching --out
        scale, scale_source = input_scale(cfg.camera, S, cfg.image, image=img, device=device)
    else:
        scale, scale_source = None, None
    with run_folder(out, overwrite=overwrite, resume=resume) as out:
        if not resume:
            save_config(cfg, out / "config.yaml")
            save_image(out / "input.png", img)
        input_img = image_to_tensor(load_image(out / "input.png"))  # [1, 3, S, S] in [-1, 1] (as saved)

        torch.manual_seed(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        scene = build_scene(cfg, S, device)
        opt, scaler = make_optimizer(scene, cfg, amp)
        history: list[dict] = []
        step = 0
        meta = {"image_size": S, "fov": scene.fov, "scale": scale, "scale_source": scale_source,
                "model": cfg.model}
        if resume:
            state = load_checkpoint(out / CHECKPOINT, map_location=device)
            _load_modules(scene, state)
            opt.load_state_dict(state["optimizer"])
            if scaler is not None and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            _set_rng_state(state["rng"], gen)
            step, history, meta = int(state["step"]), list(state["history"]), dict(state["meta"])
            scale = float(meta["scale"])

        # conditioning pool: input + anchors (sampled once, saved with the run, reloaded from PNGs)
        anchors_dir = out / "anchors"
        if not resume:
            a_imgs, a_c2w = sample_anchors(model, input_img.to(device), scene.input_c2w, scene.fov, scale, cfg.anchors,
                                           math.radians(cfg.camera.elevation_deg), cfg.camera.distance,
                                           "fp32" if amp is None else ("bf16" if amp == torch.bfloat16 else "fp16"),
                                           progress)
            save_anchors(anchors_dir, a_imgs, a_c2w, scene.fov)
        a_imgs, a_c2w = load_anchors(anchors_dir)
        pool_imgs = torch.cat([input_img, a_imgs]) if a_c2w.shape[0] else input_img
        pool = embed_pool(model, pool_imgs, torch.cat([scene.input_c2w[None], a_c2w]), scale)
        target = (input_img + 1.0) / 2.0
        alphas = schedule_alphas(model.config.schedule).to(device)

        total = cfg.schedule.steps
        end = total if stop_after is None else min(total, int(stop_after))
        denoiser = make_denoiser(model, cfg, amp)
        preview_size = cfg.output.size or S
        for m in scene.modules().values():
            m.train()
        bar = tqdm(total=total, initial=step, desc="distill", unit="step", disable=not progress, dynamic_ncols=True)
        t_train = time.time()
        steps_done = 0
        stopped = None
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with _StopFlag() as flag, unused_parts_offloaded(model, cfg.offload_unused and device.type == "cuda"):
            while step < end:
                loss, info = train_step(step, scene, model, pool, target, cfg, gen, alphas, amp, denoiser)
                optimizer_step(loss, opt, scaler)
                step += 1
                steps_done += 1
                info = {"step": step, **step_info(info), "seconds": round(time.time() - t_train, 3)}
                history.append(info)
                bar.update(1)
                bar.set_postfix(loss=f"{info['loss']:.4g}", rgb=f"{info['rgb']:.3g}", t=int(info["t_mean"]))
                if step % cfg.output.log_every == 0:
                    _write_metrics(out / "metrics.csv", history)
                if cfg.output.preview_every and step % cfg.output.preview_every == 0:
                    write_preview(out / "previews" / f"step_{step:06d}.png", scene, cfg, preview_size)
                if step % cfg.output.checkpoint_every == 0:
                    save_checkpoint(out / CHECKPOINT, step, scene, opt, scaler, gen, history, meta)
                if flag.stop:
                    stopped = "interrupt"
                    break
                if max_seconds is not None and time.time() - t_train > max_seconds:
                    stopped = "time budget"
                    break
        bar.close()
        train_seconds = time.time() - t_train
        save_checkpoint(out / CHECKPOINT, step, scene, opt, scaler, gen, history, meta)
        _write_metrics(out / "metrics.csv", history)
        if stopped == "interrupt":
            log.info(f"saved {out / CHECKPOINT} at step {step}/{total}; continue with --resume")
            raise KeyboardInterrupt

        info = {"out": str(out), "step": step, "steps": total, "steps_this_call": steps_done,
                "train_seconds": round(train_seconds, 3),
                "steps_per_second": round(steps_done / max(train_seconds, 1e-9), 4),
                "device": str(device), "precision": "fp32" if amp is None else str(amp).replace("torch.", ""),
                "anchors": int(a_c2w.shape[0]), "scale": scale, "final_loss": history[-1]["loss"] if history else None,
                "stopped": stopped}
        if device.type == "cuda":
            info["peak_memory_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
        if write_outputs:
            for m in scene.modules().values():
                m.eval()
            if cfg.output.video_frames > 0:
                rgb, depth = render_orbit(scene, cfg, cfg.output.video_frames, preview_size, progress)
                info["video"] = str(write_video(out / "video.mp4", rgb, fps=cfg.output.fps))
                info["depth_video"] = str(write_video(out / "depth.mp4", depth, fps=cfg.output.fps))
            if cfg.output.cameras:
                info["views"] = write_views(scene, cfg, cfg.output.cameras, out / "views", preview_size)
        info["seconds"] = round(time.time() - t_start, 3)
        atomic_write_json(out / "info.json", info)
        return info


# --------------------------------------------------------------------------- export


def run_export(run_dir: str | Path, out: str | Path | None = None, what: str = "mesh", format: str = "obj",
               resolution: int = 256, threshold: float | None = None, device: str = "auto",
               frames: int | None = None, size: int | None = None, cameras: str | Path | None = None,
               overwrite: bool = False, progress: bool = True) -> dict:
    """``nvs export``: mesh / orbit video / views from a distillation run, headless, CPU or GPU.

    ``what``: ``mesh`` (marching cubes at ``resolution``^3 over the field's box; ``threshold``
    = density iso-level or None for the automatic one; vertex colours from the albedo;
    ``format`` obj | ply | glb), ``video`` (``video.mp4`` + ``depth.mp4``, ``frames`` frames at
    ``size`` px) or ``views`` (the cameras of a JSON camera path). ``out`` defaults to
    ``RUN/export``; existing files are kept unless ``overwrite``.
    """
    from ..io.video import write_video
    from ..views import resolve_device

    if what not in ("mesh", "video", "views"):
        raise NovelViewsError(f"unknown export '{what}': use mesh, video or views")
    cfg, scene, state = load_run(run_dir, resolve_device(device))
    out = Path(run_dir) / "export" if out is None else Path(out)
    if out.exists() and not out.is_dir():
        raise NovelViewsError(f"output path '{out}' exists and is not a folder: choose another --out")

    def fresh(path: Path) -> Path:
        if path.exists() and not overwrite:
            raise NovelViewsError(f"'{path}' already exists: pass --overwrite to replace it or choose another --out")
        return path

    size = int(size or cfg.output.size or scene.image_size)
    info: dict = {"run": str(run_dir), "step": int(state["step"]), "out": str(out)}
    if what == "mesh":
        from .export import export_mesh

        fmt = format.lower().lstrip(".")
        if fmt not in MESH_FORMATS:
            raise NovelViewsError(f"unknown mesh format '{format}': use one of {', '.join(MESH_FORMATS)}")
        res = export_mesh(scene.field, fresh(out / f"mesh.{fmt}"), resolution=resolution, threshold=threshold)
        info.update(res)
    elif what == "video":
        n = int(frames or cfg.output.video_frames or 60)
        rgb, depth = render_orbit(scene, cfg, n, size, progress)
        info["video"] = str(write_video(fresh(out / "video.mp4"), rgb, fps=cfg.output.fps))
        info["depth_video"] = str(write_video(fresh(out / "depth.mp4"), depth, fps=cfg.output.fps))
        info["frames"] = n
    else:
        cams = cameras or cfg.output.cameras
        if not cams:
            raise NovelViewsError("export of views needs a camera path: pass --cameras FILE.json")
        fresh(out / "views" / "cameras.json")
        info["views"] = write_views(scene, cfg, cams, out / "views", size)
    return info


__all__ = ["RandomCameraConfig", "ScheduleConfig", "LossConfig", "OptimConfig", "RenderConfig", "OutputConfig",
           "DistillOccupancyConfig", "DistillConfig", "LOW_MEMORY", "REFERENCE_PATH", "phase", "camera_ranges",
           "sample_views", "orbit_cameras", "resolve_precision", "Scene", "build_scene", "render_view",
           "Conditioning", "embed_pool", "train_step", "make_denoiser", "save_checkpoint", "load_checkpoint",
           "load_run", "read_run_config", "unused_parts_offloaded", "depth_frames", "render_orbit", "write_views",
           "run_distill", "run_export", "CHECKPOINT"]
