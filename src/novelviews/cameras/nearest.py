"""Distances between camera poses, the k nearest cameras of a pool, a scene scale from a camera layout."""

from __future__ import annotations

import torch

from ..errors import CameraError
from .poses import to_tensor


def rotation_angle(Ra, Rb) -> torch.Tensor:
    """Geodesic angle (radians) between rotations, batched (broadcasting)."""
    Ra, Rb = to_tensor(Ra), to_tensor(Rb)
    rel = Ra.transpose(-1, -2) @ Rb
    cos = (rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0
    return torch.acos(cos.clamp(-1.0, 1.0))


def pose_distance(c2w_a, c2w_b, rotation_weight: float = 1.0, translation_weight: float = 1.0,
                  scale: float = 1.0) -> torch.Tensor:
    """All-pairs distance ``[N, M]``: ``w_r * angle(R_a, R_b) + w_t * |t_a - t_b| / scale``.

    Angle in radians; ``scale`` normalises translations (e.g. the scene's radius) so the
    weights are unit-free.
    """
    a = to_tensor(c2w_a).reshape(-1, 4, 4)
    b = to_tensor(c2w_b).reshape(-1, 4, 4)
    ang = rotation_angle(a[:, None, :3, :3], b[None, :, :3, :3])
    dist = torch.cdist(a[:, :3, 3], b[:, :3, 3])
    return rotation_weight * ang + translation_weight * dist / max(float(scale), 1e-12)


def nearest_cameras(query_c2w, pool_c2w, k: int = 1, **distance_kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``[N, k]`` and distances ``[N, k]`` of the k nearest pool cameras per query."""
    d = pose_distance(query_c2w, pool_c2w, **distance_kwargs)
    if k < 1 or k > d.shape[1]:
        raise CameraError(f"nearest_cameras: k={k} must be between 1 and the number of input cameras ({d.shape[1]})")
    dist, idx = torch.topk(d, k, dim=1, largest=False, sorted=True)
    return idx, dist


def nearest_point_to_axes(c2w, max_cond: float = 1e6) -> torch.Tensor | None:
    """The point nearest all the cameras' optical axes (least squares), float64 ``[3]``; None for
    one camera or axes too close to parallel (the normal matrix's condition number >= ``max_cond``)."""
    m = to_tensor(c2w).reshape(-1, 4, 4)
    centres, dirs = m[:, :3, 3], -m[:, :3, 2]
    P = torch.eye(3, dtype=m.dtype) - dirs[:, :, None] * dirs[:, None, :]  # projections off each axis
    A, b = P.sum(0), (P @ centres[:, :, None]).sum(0)[:, 0]
    if m.shape[0] < 2 or torch.linalg.cond(A) >= max_cond:
        return None
    return torch.linalg.solve(A, b)


def scene_scale_from_cameras(c2w, quantile: float = 0.5) -> float:
    """A scene scale from the camera layout alone: quantile of camera distances to the point
    nearest all optical axes (least squares), falling back to the camera centroid."""
    m = to_tensor(c2w).reshape(-1, 4, 4)
    centres = m[:, :3, 3]
    focus = nearest_point_to_axes(m)
    if focus is None:
        focus = centres.mean(0)
    dist = (centres - focus).norm(dim=-1)
    return float(torch.quantile(dist, quantile).clamp_min(1e-6))
