"""Geometry regularisers of the distillation: 2D normal smoothness and orientation.

Reference (docs/REFERENCE.md): ``loss.normal_smooth`` x 8 and ``loss.orientation`` x 5, both
computed on the random SDS renders.

Normals. ``n_i`` is the field's unit outward normal ``-grad(sigma) / |grad(sigma)|`` at the
midpoint of interval ``i`` (:meth:`~novelviews.nerf.field.NeRFField.normals`, finite
differences or autograd, world space). The *rendered normal* of a ray is composited with the
volume-rendering weights and rotated into the camera frame (OpenGL camera axes: x right,
y up, the camera looks along -z)::

    N_cam = R^T sum_i w_i n_i        (R = c2w[:3, :3]; not normalised by the opacity, so
                                     empty pixels render 0, as in threestudio's comp_normal)

2D normal smoothness (threestudio-style, here with an L1 penalty)::

    L_smooth = mean |N(u + 1, v) - N(u, v)| + mean |N(u, v + 1) - N(u, v)|

means over all pixel pairs and the 3 channels of an ``[..., H, W, 3]`` normal map.

Orientation (Ref-NeRF, as used by DreamFusion / threestudio): with unit ray directions
``d`` (pointing away from the camera), normals that face away from the camera are
penalised::

    L_orient = mean_rays sum_i stopgrad(w_i) max(0, n_i . d)^2

(the weights are detached by default so the loss cannot be lowered by removing density; pass
``detach_weights=False`` for the plain Ref-NeRF form).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..runtime import EAGER, to_device
from .render import chunk_interlevel, render_chunk

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn


def normal_smoothness_2d(normal_map: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between 1-pixel neighbours (right and down), summed over the two
    directions: ``[..., H, W, C]`` (any leading batch dims, e.g. ``[B, H, W, 3]``) -> scalar.

    0 for a constant map; for a checkerboard of the two values ``a`` and ``b`` it is
    ``2 * mean_c |a_c - b_c|``.
    """
    if normal_map.dim() < 3:
        raise ValueError(f"normal map must be [..., H, W, C], got shape {tuple(normal_map.shape)}")
    dx = (normal_map[..., :, 1:, :] - normal_map[..., :, :-1, :]).abs()
    dy = (normal_map[..., 1:, :, :] - normal_map[..., :-1, :, :]).abs()
    zero = normal_map.new_zeros(())
    return (dx.mean() if dx.numel() else zero) + (dy.mean() if dy.numel() else zero)


def orientation_loss(weights: torch.Tensor, normals: torch.Tensor, dirs: torch.Tensor,
                     detach_weights: bool = True) -> torch.Tensor:
    """Ref-NeRF orientation penalty ``mean_rays sum_i w_i max(0, n_i . d)^2``.

    Args:
        weights: ``[R, S]`` volume-rendering weights.
        normals: ``[R, S, 3]`` unit normals (world space, outward).
        dirs: ``[R, 3]`` unit ray directions (world space, from the camera into the scene).
        detach_weights: stop the gradient through the weights (DreamFusion / threestudio).
    """
    w = weights.detach() if detach_weights else weights
    cos = (normals * dirs[:, None, :]).sum(-1)
    return (w * cos.clamp_min(0.0).square()).sum(-1).mean()


def world_to_camera(vectors: torch.Tensor, c2w: torch.Tensor) -> torch.Tensor:
    """Rotate world-space directions ``[..., 3]`` into the OpenGL camera frame of ``c2w`` (4x4 or 3x4)."""
    R = to_device(torch.as_tensor(c2w)[:3, :3], vectors.device, vectors.dtype)
    return vectors @ R  # (R^T v) for row vectors


def render_rays_with_normals(field: "nn.Module", rays_o: torch.Tensor, rays_d: torch.Tensor, sampler: "nn.Module",
                             background: "nn.Module | torch.Tensor | None" = None, near: float = 0.05,
                             far: float = 1000.0, stratified: bool = False, z_scale: torch.Tensor | None = None,
                             bg_color: torch.Tensor | None = None, c2w: torch.Tensor | None = None,
                             min_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """Like :func:`~novelviews.nerf.render.render_rays` (one chunk, for training) plus normals.

    Same sampling, compositing and random-number use as ``render_rays`` with ``chunk >= R``, so
    ``rgb``, ``depth``, ``opacity`` and ``interlevel`` are identical. Adds ``weights [R, S]``,
    ``normals [R, S, 3]`` (per-sample unit outward normals, world space, from
    ``field.normals``; differentiable w.r.t. the field) and ``normal [R, 3]`` = the rendered
    normal ``sum_i w_i n_i``, rotated into the camera frame of ``c2w`` when it is given
    (else world space).

    ``min_weight > 0`` evaluates normals only at samples whose (detached) rendering weight
    exceeds it and uses ``n_i = 0`` elsewhere: finite-difference normals cost 6 density queries
    per sample, and most samples (empty space, rays that miss the object, samples behind the
    surface) carry almost no weight. Both losses change by at most the dropped weight mass
    (``|sum_dropped w_i n_i| <= sum_dropped w_i``); ``min_weight = 0`` is the exact path.
    """
    samples, pts, res = render_chunk(field, rays_o, rays_d, sampler, background, near, far, stratified, z_scale,
                                     bg_color)
    if min_weight > 0:
        keep = res.weights.detach() > min_weight  # [R, S]
        idx = keep.reshape(-1).nonzero().squeeze(1)  # the one host sync of the selection
        normals = pts.new_zeros(pts.shape)
        if idx.numel():
            flat = normals.reshape(-1, 3).index_put((idx,), field.normals(pts.reshape(-1, 3).index_select(0, idx)))
            normals = flat.reshape(pts.shape)
    else:
        normals = field.normals(pts)
    normal = (res.weights[..., None] * normals).sum(-2)
    if c2w is not None:
        normal = world_to_camera(normal, c2w)
    out = {"rgb": res.rgb, "depth": res.depth, "opacity": res.opacity, "weights": res.weights,
           "normals": normals, "normal": normal}
    inter = chunk_interlevel(samples, res, getattr(field, "fusion", EAGER))
    if inter is not None:
        out["interlevel"] = inter
    return out


__all__ = ["normal_smoothness_2d", "orientation_loss", "world_to_camera", "render_rays_with_normals"]
