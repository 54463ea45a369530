"""Random cameras of a scene (:func:`sample_cameras`) within :class:`CameraRanges`.

Cameras are OpenGL camera-to-world ``[N, 4, 4]`` float64 and pinhole ``K [N, 3, 3]`` in
pixels, drawn from their own seeded stream so a scene never depends on how many views are taken.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ...errors import ConfigError
from .scene import Scene


@dataclass
class CameraRanges:
    """Ranges of the random cameras (degrees / scene units)."""

    fov_deg: tuple[float, float] = (40.0, 60.0)
    elevation_deg: tuple[float, float] = (5.0, 60.0)
    distance: tuple[float, float] = (2.5, 4.0)
    look_jitter: float = 0.1
    orbit_path: str = "mixed"  # random | ordered | arc | mixed (per scene)
    arc_deg: tuple[float, float] = (30.0, 150.0)  # arc: range of the azimuth span of the scene's views
    arc_fraction: float = 0.0  # mixed: share of scenes on an arc (the rest ordered / random, half each)


def sample_cameras(
    scene: Scene,
    views: int,
    width: int,
    height: int,
    ranges: CameraRanges | None = None,
    seed: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cameras of a scene: ``(c2w [N, 4, 4] OpenGL float64, K [N, 3, 3] float64 pixels)``.

    One fov per scene (shared intrinsics). Deterministic in ``(seed or scene.seed,
    views, width, height, ranges)``; uses its own random stream, independent of the
    scene's. ``orbit``: cameras on a sphere around the origin looking at a jittered
    origin - ``random`` (azimuth, elevation and distance per view), ``ordered`` (evenly round
    the full circle, one distance), ``arc`` (evenly along an arc of ``arc_deg`` azimuth, one
    distance and look-at point, elevation +-10 deg about the scene's: many small offsets, as
    when walking round an object), ``mixed`` (per scene: ``arc`` with probability
    ``arc_fraction``, else ordered or random); ``walk``: views spaced evenly along
    ``scene.path`` with small jitter.
    """
    from ...cameras import intrinsics_from_fov, look_at

    r = ranges or CameraRanges()
    if views < 1:
        raise ConfigError("sample_cameras: views must be >= 1")
    seed = scene.seed if seed is None else seed
    rng = np.random.default_rng([0 if seed is None else int(seed), 1])
    fov = math.radians(rng.uniform(*r.fov_deg))
    K = intrinsics_from_fov(torch.full((views,), fov, dtype=torch.float64), width, height)
    if scene.family == "walk":
        if scene.path is None:
            raise ConfigError("sample_cameras: a walk scene needs a path (use scene_from_seed)")
        path = scene.path.detach().cpu().double().numpy()
        s = np.linspace(0, len(path) - 1, views) if views > 1 else np.array([0.0])
        idx = np.arange(len(path))
        cols = [np.interp(s, idx, path[:, c]) for c in range(5)]
        x, y, z, yaw, pitch = cols
        yaw = yaw + np.deg2rad(rng.uniform(-2, 2, views))
        pitch = pitch + np.deg2rad(rng.uniform(-1.5, 1.5, views))
        eye = np.stack([x, y, z + rng.uniform(-0.03, 0.03, views)], 1)
        fwd = np.stack([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)], 1)
        return look_at(eye, eye + fwd), K
    mode = r.orbit_path
    if not 0.0 <= r.arc_fraction <= 1.0:
        raise ConfigError(f"arc_fraction must be in [0, 1], got {r.arc_fraction}")
    if mode == "mixed":  # one draw; arc_fraction = 0 keeps the cameras of earlier versions
        u = rng.random()
        f = r.arc_fraction
        mode = "arc" if u < f else "ordered" if u < f + 0.5 * (1 - f) else "random"
    if mode == "arc":
        lo, hi = r.arc_deg
        if not 0.0 <= lo <= hi <= 360.0:
            raise ConfigError(f"arc_deg must be 0 <= low <= high <= 360, got {r.arc_deg}")
        span = math.radians(rng.uniform(lo, hi))
        az = rng.uniform(0, 2 * math.pi) + span * (np.arange(views) / max(views - 1, 1))
        e_lo, e_hi = r.elevation_deg
        e0 = rng.uniform(e_lo, e_hi)
        el = np.deg2rad(np.clip(e0 + rng.uniform(-10, 10, views), e_lo, e_hi))
        dist = np.full(views, rng.uniform(*r.distance))
        eye = np.stack([dist * np.cos(el) * np.cos(az), dist * np.cos(el) * np.sin(az), dist * np.sin(el)], 1)
        target = rng.uniform(-r.look_jitter, r.look_jitter, size=3)
        target[2] = abs(target[2]) + 0.15
        return look_at(eye, np.broadcast_to(target, eye.shape).copy()), K
    if mode == "ordered":
        az0 = rng.uniform(0, 2 * math.pi)
        az = az0 + 2 * math.pi * np.arange(views) / views
        e0, e1 = rng.uniform(*r.elevation_deg, size=2)
        el = np.deg2rad(e0 + (e1 - e0) * 0.5 * (1 - np.cos(2 * math.pi * np.arange(views) / views)))
        dist = np.full(views, rng.uniform(*r.distance))
    elif mode == "random":
        az = rng.uniform(0, 2 * math.pi, views)
        el = np.deg2rad(rng.uniform(*r.elevation_deg, size=views))
        dist = rng.uniform(*r.distance, size=views)
    else:
        raise ConfigError(f"unknown orbit_path '{r.orbit_path}': use random, ordered, arc or mixed")
    eye = np.stack([dist * np.cos(el) * np.cos(az), dist * np.cos(el) * np.sin(az), dist * np.sin(el)], 1)
    target = rng.uniform(-r.look_jitter, r.look_jitter, size=(views, 3))
    target[:, 2] = np.abs(target[:, 2]) + 0.15  # look slightly above the ground's origin
    return look_at(eye, target), K
