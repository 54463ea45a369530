"""The phases and cameras of a distillation: the phase (batch, render size) of a step (``phases``),
the widening ranges of the random SDS cameras (``sds_cameras``), random SDS views, orbit cameras."""

from __future__ import annotations

import math

import torch

from .. import cameras as C

from .distill_config import DistillConfig, PhasesConfig


# --------------------------------------------------------------------------- phases and cameras


def phase(step: int, sched: PhasesConfig, image_size: int) -> tuple[int, int]:
    """``(batch size, render side in pixels)`` at ``step``."""
    frac = step / sched.steps
    i = sum(1 for m in sched.milestones if frac >= m)
    return sched.batch_sizes[i], max(8, int(round(sched.render_scales[i] * image_size)))


def camera_ranges(step: int, cfg: DistillConfig) -> dict[str, tuple[float, float]]:
    """Ranges (radians / scene units) of the random cameras at ``step``, widened from the input pose."""
    end = cfg.sds_cameras.widen_fraction * cfg.phases.steps
    w = 1.0 if end <= 0 else min(step / end, 1.0)
    inp = {"azimuth": 0.0, "elevation": math.radians(cfg.camera.elevation_deg), "distance": cfg.camera.distance}
    full = {"azimuth": tuple(math.radians(a) for a in cfg.sds_cameras.azimuth_deg),
            "elevation": tuple(math.radians(e) for e in cfg.sds_cameras.elevation_deg),
            "distance": tuple(cfg.camera.distance * d for d in cfg.sds_cameras.distance)}
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
