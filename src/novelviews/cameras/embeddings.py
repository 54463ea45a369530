"""Relative-pose camera embeddings: Zero-1-to-3's 3DoF and ZeroNVS's 6DoF+1 with its depth-quantile scale."""

from __future__ import annotations

import math
from typing import Literal

import torch

from ..errors import CameraError
from .poses import invert_pose, to_tensor

CameraMode = Literal["3dof", "6dof+1"]
EMBEDDING_DIMS: dict[str, int] = {"3dof": 4, "6dof+1": 19}


def embedding_dim(mode: str) -> int:
    """Size of the camera embedding: 4 for ``3dof`` (Zero-1-to-3), 19 for ``6dof+1`` (ZeroNVS)."""
    if mode not in EMBEDDING_DIMS:
        raise CameraError(f"unknown camera mode '{mode}': choose one of {', '.join(EMBEDDING_DIMS)}")
    return EMBEDDING_DIMS[mode]


def embed_3dof(cond_c2w, target_c2w) -> torch.Tensor:
    """Zero-1-to-3 relative camera: ``[d_polar, sin(d_azimuth), cos(d_azimuth), d_radius]``.

    Uses the camera *centres* in spherical coordinates around the world origin (polar
    angle from +z, azimuth in the xy plane, radians). Batched: ``[..., 4, 4] -> [..., 4]``.
    The embedding depends only on camera positions, not on the camera axes convention.
    """
    c = to_tensor(cond_c2w)[..., :3, 3]
    t = to_tensor(target_c2w)[..., :3, 3]

    def polar_az_r(p):
        r = p.norm(dim=-1)
        polar = torch.atan2(p[..., :2].norm(dim=-1), p[..., 2])
        az = torch.atan2(p[..., 1], p[..., 0])
        return polar, az, r

    pc, ac, rc = polar_az_r(c)
    pt, at, rt = polar_az_r(t)
    d_az = torch.remainder(at - ac, 2 * math.pi)
    return torch.stack([pt - pc, torch.sin(d_az), torch.cos(d_az), rt - rc], dim=-1)


def depth_quantile_scale(depth, quantile: float = 0.2, stride: int = 4, min_scale: float = 0.01,
                         mask=None) -> torch.Tensor:
    """ZeroNVS scene scale: the ``quantile`` of the conditioning view's depth map.

    ``depth`` is ``[H, W]`` or ``[B, H, W]`` (z-depth); it is subsampled every ``stride``
    pixels in each direction, as the reference; pixels with depth <= 0 or non-finite (no
    surface), or outside ``mask``, are ignored. The result is clipped to ``>= min_scale``.
    """
    d = to_tensor(depth)
    squeeze = d.ndim == 2
    if squeeze:
        d = d[None]
        mask = None if mask is None else to_tensor(mask, torch.bool)[None]
    out = []
    for i in range(d.shape[0]):
        di = d[i, ::stride, ::stride]
        valid = torch.isfinite(di) & (di > 0)
        if mask is not None:
            valid &= to_tensor(mask, torch.bool)[i, ::stride, ::stride]
        vals = di[valid]
        if vals.numel() == 0:
            raise CameraError(f"depth map {i} has no valid (positive, finite) pixels to compute a scene scale")
        out.append(torch.quantile(vals, quantile))
    s = torch.stack(out).clamp_min(min_scale)
    return s[0] if squeeze else s


def embed_6dof(cond_c2w, target_c2w, scale, fov, min_scale: float = 0.01) -> torch.Tensor:
    """ZeroNVS "6DoF+1 viewer" (``7dof_quantile_scale``) embedding, ``[..., 19]``.

    ``E = inv(cond_c2w) @ target_c2w`` (OpenGL axes); translation divided by the scene
    scale ``max(scale, min_scale)``; NaN -> 0, +-inf -> +-10; ``t -> 5 tanh(t / 10)``; the
    4x4 flattened row-major (16 values) followed by ``[fov, sin fov, cos fov]`` (radians).
    """
    c = to_tensor(cond_c2w)
    t = to_tensor(target_c2w)
    E = invert_pose(c) @ t
    s = to_tensor(scale).clamp_min(min_scale)
    trans = E[..., :3, 3] / s[..., None]
    trans = torch.nan_to_num(trans, nan=0.0, posinf=10.0, neginf=-10.0)
    trans = 5.0 * torch.tanh(trans / 10.0)
    E = E.clone()
    E[..., :3, 3] = trans
    flat = torch.nan_to_num(E.reshape(E.shape[:-2] + (16,)), nan=0.0, posinf=10.0, neginf=-10.0)
    f = to_tensor(fov)
    f = f.expand(flat.shape[:-1]) if f.ndim < flat.ndim else f
    return torch.cat([flat, torch.stack([f, torch.sin(f), torch.cos(f)], dim=-1)], dim=-1)


def camera_embedding(mode: str, cond_c2w, target_c2w, scale=1.0, fov=None) -> torch.Tensor:
    """Dispatch on the camera mode; ``scale`` and ``fov`` are used by ``6dof+1`` only."""
    embedding_dim(mode)
    if mode == "3dof":
        return embed_3dof(cond_c2w, target_c2w)
    if fov is None:
        raise CameraError("the 6dof+1 camera embedding needs the field of view (radians)")
    return embed_6dof(cond_c2w, target_c2w, scale, fov)
