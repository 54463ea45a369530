"""Exact rendering of photo-plane scenes by ray-plane intersection: :func:`render_photo_planes`.

For pixel ``(u, v)`` of a view, the camera-space direction
``q = ((u + 0.5 - cx) / fx, -(v + 0.5 - cy) / fy, -1)`` (the rays of
:func:`novelviews.cameras.ray_directions` before normalisation) is rotated to the world,
``d = R q``; the point ``o + s d`` then has z-depth exactly ``s``. The ray meets a plane
at ``s = ((c - o) . n) / (d . n)``; the hit counts if ``|d . n| > 1e-12``,
``s > near``, the point lies inside the rectangle and the bilinearly interpolated mask
there is at least 1/2 (no mask: opaque). The nearest hit (smallest ``s``) wins; ties
go to the plane listed first. Colour is the bilinear texture lookup
(``torch.nn.functional.grid_sample``, ``align_corners=False``: the texel-centre
convention of :mod:`.planes`, clamped to the border texel; mirrored for tiled planes). Geometry is computed in ``dtype``
(float64 by default), textures are sampled in float32. Supersampling (``spp``)
averages colours over an ``spp x spp`` sub-pixel grid (plus the centre for even
``spp``); depth and masks always come from the pixel-centre ray, as in
:func:`novelviews.synth.render.render`. Every ray is independent: a view's result does
not depend on the views batched with it (bitwise on this CPU, up to the last bit of
vectorised math in general), and repeated calls are bitwise equal.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...cameras import validate_intrinsics, validate_poses
from ...errors import CameraError, ConfigError
from .planes import PhotoPlaneScene


def _samples(spp: int) -> list[tuple[float, float]]:
    g = [(i + 0.5) / spp for i in range(spp)]
    grid = [(x, y) for y in g for x in g]
    return grid if (0.5, 0.5) in grid else grid + [(0.5, 0.5)]


def _check_size(v, what: str) -> int:
    """``v`` as an int >= 1, else :class:`ConfigError`."""
    try:
        ok = not isinstance(v, bool) and int(v) == v and int(v) >= 1
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ConfigError(f"{what} must be a positive integer, got {v!r}")
    return int(v)


def _trace(scene: PhotoPlaneScene, o: torch.Tensor, d: torch.Tensor, near: float,
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest plane hit of rays ``o [M, 3]``, ``d [M, 3]`` (unnormalised, z-depth scaled).

    Returns ``s [M]`` (inf on a miss), ``winner [M]`` int64 (-1 on a miss) and the
    per-plane texture coordinates for ``grid_sample`` ``[P, M, 2]`` (rectangle
    coordinates ``2 a / width, -2 b / height`` in [-1, 1], rescaled to the tile if any).
    """
    P, M = len(scene.planes), o.shape[0]
    s_all = torch.full((P, M), math.inf, dtype=o.dtype, device=o.device)
    grids = torch.empty((P, M, 2), dtype=o.dtype, device=o.device)
    for k, pl in enumerate(scene.planes):
        n = pl.normal.to(o)
        c = pl.centre.to(o)
        denom = d @ n
        ok = denom.abs() > 1e-12
        s = ((c - o) @ n) / torch.where(ok, denom, torch.ones_like(denom))
        x = o + s[:, None] * d - c
        gx = (x @ pl.right.to(o)) * (2.0 / pl.width)
        gy = (x @ pl.up.to(o)) * (-2.0 / pl.height)
        hit = ok & (s > near) & (gx.abs() <= 1.0) & (gy.abs() <= 1.0)
        grids[k, :, 0], grids[k, :, 1] = gx, gy
        if pl.mask is not None and bool(hit.any()):
            idx = hit.nonzero().squeeze(1)
            g = grids[k, idx].to(torch.float32).reshape(1, 1, -1, 2)
            alpha = F.grid_sample(pl.mask.to(o.device)[None, None], g, mode="bilinear",
                                  padding_mode="border", align_corners=False).reshape(-1)
            hit[idx] = alpha >= 0.5
        if pl.tile is not None:
            grids[k, :, 0] *= pl.width / pl.tile[0]
            grids[k, :, 1] *= pl.height / pl.tile[1]
        s_all[k] = torch.where(hit, s, math.inf)
    s_min, winner = s_all.min(dim=0)
    winner = torch.where(torch.isfinite(s_min), winner, -1)
    return s_min, winner, grids


def _shade(scene: PhotoPlaneScene, winner: torch.Tensor, grids: torch.Tensor) -> torch.Tensor:
    """Bilinear texture colour ``[M, 3]`` float32 of each ray's winning plane (0 on a miss)."""
    rgb = torch.zeros(winner.shape[0], 3, dtype=torch.float32, device=winner.device)
    for k, pl in enumerate(scene.planes):
        idx = (winner == k).nonzero().squeeze(1)
        if idx.numel() == 0:
            continue
        g = grids[k, idx].to(torch.float32).reshape(1, 1, -1, 2)
        tex = pl.texture.to(winner.device).permute(2, 0, 1)[None]
        pad = "border" if pl.tile is None else "reflection"
        col = F.grid_sample(tex, g, mode="bilinear", padding_mode=pad, align_corners=False)
        rgb[idx] = col.reshape(3, -1).T
    return rgb


def render_photo_planes(scene: PhotoPlaneScene, c2w, K, height: int, width: int, *, spp: int = 1,
                        device=None, chunk: int | None = None, near: float = 1e-6,
                        dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    """Render views of a photo-plane scene (algorithm: this module's docstring;
    conventions: :mod:`novelviews.synth.photo_planes`).

    Args:
        scene: the scene.
        c2w: ``[N, 4, 4]`` (or ``[4, 4]``) OpenGL camera-to-world; checked by
            :func:`novelviews.cameras.validate_poses`.
        K: ``[N, 3, 3]`` or one ``[3, 3]`` for every view, pixels, pixel centres at +0.5.
        height, width: image size in pixels.
        spp: supersampling grid per axis for ``rgb`` (depth and masks: pixel centres).
        device: where to compute (default: the device of the first plane's texture).
        chunk: rays per batch (whole views are batched; default 2**19 on CPU, 2**22 on GPU).
        near: smallest accepted z-depth of a hit.
        dtype: float type of the ray geometry (float64 default; float32 is faster on GPUs).

    Returns (on ``device``): ``rgb [N, H, W, 3]`` float32 in [0, 1] (0 where nothing is
    hit); ``depth [N, H, W]`` float32 z-depth (0 where nothing is hit); ``mask [N, H, W]``
    bool (any plane hit); ``card_mask [N, H, W]`` bool (a plane other than the
    background hit); ``plane [N, H, W]`` int64 index of the visible plane (-1 for none).
    Raises :class:`CameraError` for malformed cameras and :class:`ConfigError` for bad
    sizes or settings.
    """
    if not isinstance(scene, PhotoPlaneScene):
        raise ConfigError(f"render_photo_planes needs a PhotoPlaneScene, got {type(scene).__name__}")
    H, W = _check_size(height, "height"), _check_size(width, "width")
    spp = _check_size(spp, "spp")
    if dtype not in (torch.float32, torch.float64):
        raise ConfigError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if not (near >= 0 and math.isfinite(near)):
        raise ConfigError(f"near must be a finite number >= 0, got {near}")
    poses = validate_poses(c2w, "camera")
    N = poses.shape[0]
    Ks = validate_intrinsics(K, "camera")
    if Ks.shape[0] not in (1, N):
        raise CameraError(f"got {Ks.shape[0]} intrinsics for {N} cameras: give one K or one per camera")
    Ks = Ks.expand(N, 3, 3)
    device = torch.device(device) if device is not None else scene.planes[0].texture.device
    scene = scene.to(device)
    if chunk is None:
        chunk = 2**22 if device.type == "cuda" else 2**19
    if chunk < 1:
        raise ConfigError(f"chunk must be >= 1 rays, got {chunk}")
    views_per_chunk = max(1, chunk // (H * W))

    R = poses[:, :3, :3].to(device, dtype)
    t = poses[:, :3, 3].to(device, dtype)
    Kd = Ks.to(device, dtype)
    rows = torch.arange(H, dtype=dtype, device=device)
    cols = torch.arange(W, dtype=dtype, device=device)
    samples = _samples(spp)
    rgb = torch.zeros(N, H, W, 3, dtype=torch.float32, device=device)
    depth = torch.zeros(N, H, W, dtype=torch.float32, device=device)
    plane = torch.full((N, H, W), -1, dtype=torch.int64, device=device)
    for v0 in range(0, N, views_per_chunk):
        v1 = min(N, v0 + views_per_chunk)
        k = Kd[v0:v1]
        o = t[v0:v1, None, None, :].expand(v1 - v0, H, W, 3).reshape(-1, 3)
        for ox, oy in samples:
            x = (cols[None, None, :] + ox - k[:, 0, 2, None, None]) / k[:, 0, 0, None, None]
            y = -(rows[None, :, None] + oy - k[:, 1, 2, None, None]) / k[:, 1, 1, None, None]
            x, y = torch.broadcast_tensors(x, y)
            q = torch.stack([x, y, -torch.ones_like(x)], dim=-1)  # [n, H, W, 3]
            d = torch.einsum("nij,nhwj->nhwi", R[v0:v1], q).reshape(-1, 3)
            s, winner, grids = _trace(scene, o, d, near)
            rgb[v0:v1] += _shade(scene, winner, grids).reshape(v1 - v0, H, W, 3)
            if (ox, oy) == (0.5, 0.5):
                hit = winner >= 0
                depth[v0:v1] = torch.where(hit, s, 0.0).to(torch.float32).reshape(v1 - v0, H, W)
                plane[v0:v1] = winner.reshape(v1 - v0, H, W)
    if len(samples) > 1:
        rgb /= len(samples)
    mask = plane >= 0
    card = mask if scene.background is None else mask & (plane != scene.background)
    return {"rgb": rgb, "depth": depth, "mask": mask, "card_mask": card, "plane": plane}
