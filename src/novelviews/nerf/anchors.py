"""SDS anchoring (ZeroNVS section "SDS anchoring"): condition far-away SDS views on sampled views.

Before distillation, ``K`` anchor views are sampled once from the input image with the
diffusion model (DDIM, CFG 3, eta 1): anchor ``i`` (0-based) sits at the input's elevation
and distance and at azimuth ``input + 360 (i + 1) / (K + 1)`` degrees (z-up world, OpenGL
camera axes, looking at the origin, the input's vertical fov). Each anchor is then embedded
like the input (image embedding + VAE posterior-mode latent).

During SDS every rendered view picks the nearest of ``{input, anchors}`` by the geodesic
angle between camera rotations; with probability ``p(step)`` (linearly ``p_start -> p_end``
over the first ``end_fraction`` of the run; the reference: 1 -> 0 over steps 0..2000 of 4000)
it is conditioned on that view (image + relative pose), else on the input. ``K = 0`` is
plain SDS. Index 0 of the pool is always the input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import cameras as C
from ..config import check_range
from ..errors import NovelViewsError


@dataclass
class AnchoringConfig:
    """SDS anchoring; ``num = 0`` switches it off (the reference ships it off)."""

    num: int = 0
    """number of anchor views K (reference paper: a few, e.g. 4; 0 = plain SDS)"""
    steps: int = 50
    """DDIM steps to sample each anchor (reference: 500; 50 is usually enough)"""
    guidance_scale: float = 3.0
    eta: float = 1.0
    p_start: float = 1.0
    """probability of conditioning on the nearest anchor at step 0"""
    p_end: float = 0.0
    """... and from `end_fraction` of the run on (linear in between)"""
    end_fraction: float = 0.5
    """fraction of the run over which p goes from p_start to p_end (reference: 2000 of 4000 steps)"""
    seed: int = 1234
    """anchor i is sampled with seed + i"""

    def validate(self) -> None:
        check_range("anchors.num", self.num, 0, 64)
        check_range("anchors.steps", self.steps, 1, 1000)
        check_range("anchors.guidance_scale", self.guidance_scale, 0.0, 100.0)
        check_range("anchors.eta", self.eta, 0.0, 1.0)
        check_range("anchors.p_start", self.p_start, 0.0, 1.0)
        check_range("anchors.p_end", self.p_end, 0.0, 1.0)
        check_range("anchors.end_fraction", self.end_fraction, 0.0, 1.0, lo_open=True)


def anchor_azimuths(num: int, input_azimuth: float = 0.0) -> torch.Tensor:
    """Azimuths (radians, float64 ``[K]``): ``input + 2 pi (i + 1) / (K + 1)``."""
    i = torch.arange(num, dtype=torch.float64)
    return input_azimuth + 2.0 * math.pi * (i + 1.0) / (num + 1.0)


def anchor_cameras(num: int, elevation: float, distance: float, input_azimuth: float = 0.0) -> torch.Tensor:
    """OpenGL c2w ``[K, 4, 4]`` of the anchors (elevation / azimuth in radians, z-up, look at origin)."""
    if num == 0:
        return torch.zeros(0, 4, 4, dtype=torch.float64)
    az = anchor_azimuths(num, input_azimuth)
    return C.camera_on_sphere(torch.full_like(az, elevation), az, torch.full_like(az, distance))


def nearest_condition(view_c2w, pool_c2w) -> torch.Tensor:
    """Index ``[B]`` of the pool camera (``[M, 4, 4]``, index 0 = input) whose rotation is
    nearest (geodesic angle) to each view (``[B, 4, 4]``); ties go to the lower index."""
    v = torch.as_tensor(view_c2w, dtype=torch.float64).reshape(-1, 4, 4)
    p = torch.as_tensor(pool_c2w, dtype=torch.float64).reshape(-1, 4, 4)
    ang = C.rotation_angle(v[:, None, :3, :3], p[None, :, :3, :3])  # [B, M]
    return ang.argmin(dim=1)


def anchor_probability(step: int, total_steps: int, cfg: AnchoringConfig) -> float:
    """``p(step)``: linear from ``p_start`` (step 0) to ``p_end`` (``end_fraction`` of the run), then held."""
    if cfg.num == 0:
        return 0.0
    end = cfg.end_fraction * max(int(total_steps), 1)
    a = min(max(step / end, 0.0), 1.0)
    return float(cfg.p_start + a * (cfg.p_end - cfg.p_start))


def choose_conditions(view_c2w, pool_c2w, p: float, uniforms: torch.Tensor) -> torch.Tensor:
    """Conditioning view per SDS view: the nearest pool view where ``uniforms < p``, else 0 (input)."""
    nearest = nearest_condition(view_c2w, pool_c2w)
    use = torch.as_tensor(uniforms, dtype=torch.float64).reshape(-1) < p
    return torch.where(use, nearest, torch.zeros_like(nearest))


@torch.no_grad()
def sample_anchors(model, input_image: torch.Tensor, input_c2w: torch.Tensor, fov: float, scale: float,
                   cfg: AnchoringConfig, elevation: float, distance: float, precision: str = "fp32",
                   progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample the anchors with :func:`novelviews.generation.generate` (DDIM).

    ``input_image``: ``[1, 3, S, S]`` in ``[-1, 1]`` at the model's size; ``input_c2w``: 4x4
    OpenGL; ``fov``: vertical, radians; ``scale``: the input's 6DoF+1 scene scale;
    ``elevation`` radians. Returns ``(images [K, 3, S, S] in [-1, 1] on the CPU, c2w [K, 4, 4])``.
    """
    from ..sampling import SamplingConfig
    from ..views import generate

    c2w = anchor_cameras(cfg.num, elevation, distance)
    if cfg.num == 0:
        S = input_image.shape[-1]
        return torch.zeros(0, 3, S, S), c2w
    scfg = SamplingConfig(steps=cfg.steps, guidance_scale=cfg.guidance_scale, eta=cfg.eta, seed=cfg.seed,
                          batch_size=max(1, cfg.num), precision=precision)
    imgs = generate(model, input_image, torch.as_tensor(input_c2w, dtype=torch.float64)[None], c2w,
                    torch.full((cfg.num,), float(fov), dtype=torch.float64), scale=scale, cfg=scfg,
                    progress=progress)
    return imgs, c2w


def save_anchors(folder: str | Path, images: torch.Tensor, c2w: torch.Tensor, fov: float) -> None:
    """Write ``anchors/NNN.png`` and ``anchors/cameras.json`` (OpenGL c2w, fov in degrees)."""
    from ..io.images import save_image, tensor_to_image
    from ..io.runs import atomic_write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for i in range(images.shape[0]):
        save_image(folder / f"{i:03d}.png", tensor_to_image(images[i]))
        frames.append({"file": f"{i:03d}.png", "c2w": c2w[i].tolist(), "fov_deg": math.degrees(fov)})
    atomic_write_json(folder / "cameras.json", {"convention": "opengl c2w, z-up world", "frames": frames})


def load_anchors(folder: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read what :func:`save_anchors` wrote: ``(images [K, 3, S, S] in [-1, 1], c2w [K, 4, 4])``."""
    import json

    from ..io.images import image_to_tensor, load_image

    folder = Path(folder)
    meta_path = folder / "cameras.json"
    if not meta_path.is_file():
        raise NovelViewsError(f"anchor views are missing from '{folder}' (no cameras.json): "
                              "rerun without --resume or with --overwrite")
    frames = json.loads(meta_path.read_text())["frames"]
    if not frames:
        return torch.zeros(0, 3, 1, 1), torch.zeros(0, 4, 4, dtype=torch.float64)
    imgs = torch.cat([image_to_tensor(load_image(folder / f["file"])) for f in frames])
    c2w = torch.tensor(np.array([f["c2w"] for f in frames]), dtype=torch.float64)
    return imgs, c2w


__all__ = ["AnchoringConfig", "anchor_azimuths", "anchor_cameras", "nearest_condition", "anchor_probability",
           "choose_conditions", "sample_anchors", "save_anchors", "load_anchors"]
