"""Compositing along rays: the volume-rendering weights of intervals and their weighted sums.

Volume rendering of intervals ``[t_i, t_{i+1}]`` with density ``sigma_i`` and colour ``c_i``::

    alpha_i = 1 - exp(-sigma_i delta_i),  T_i = exp(-sum_{j<i} sigma_j delta_j),  w_i = T_i alpha_i
    rgb = sum_i w_i c_i + (1 - opacity) * background,   opacity = sum_i w_i
    depth = sum_i w_i z_i   (z_i = midpoint ray distance * cos; 0 where nothing is hit, i.e.
                             not normalised by opacity: divide by opacity for the surface depth)

Pure tensor functions (no modules, no random numbers): the samplers weigh their proposal
intervals with :func:`render_weights`, the renderer composites with :func:`volume_render`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class VolumeRenderOutput(NamedTuple):
    rgb: torch.Tensor  # [R, 3]
    depth: torch.Tensor  # [R] expected z-depth (unnormalised)
    opacity: torch.Tensor  # [R] in [0, 1]
    weights: torch.Tensor  # [R, S]


def render_weights(sigmas: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """Per-interval weights ``w_i = T_i (1 - exp(-sigma_i delta_i))``, ``[R, S]``.

    Uses the exclusive cumulative sum of optical depth (no products of transmittances), so
    ``sum_i w_i = 1 - exp(-sum_i sigma_i delta_i)`` exactly up to round-off.
    """
    tau = sigmas * deltas
    excl = torch.cumsum(tau, -1) - tau  # sum_{j<i}
    return torch.exp(-excl) * (1.0 - torch.exp(-tau))


def volume_render(sigmas: torch.Tensor, rgbs: torch.Tensor, t_edges: torch.Tensor,
                  background: torch.Tensor | None = None, z_scale: torch.Tensor | None = None) -> VolumeRenderOutput:
    """Composite ``R`` rays of ``S`` intervals.

    Args:
        sigmas: ``[R, S]`` densities >= 0 (1 / scene units).
        rgbs: ``[R, S, 3]`` colours in [0, 1].
        t_edges: ``[R, S + 1]`` sorted interval edges (ray distance, scene units).
        background: ``[R, 3]`` or ``[3]`` colour composited with weight ``1 - opacity``;
            ``None`` leaves the result premultiplied (a black background).
        z_scale: ``[R]`` cosine between each (unit) ray direction and the optical axis, to turn
            ray distance into z-depth; ``None`` returns the expected ray distance.
    """
    deltas = t_edges[:, 1:] - t_edges[:, :-1]
    w = render_weights(sigmas, deltas)
    opacity = w.sum(-1)
    rgb = (w[..., None] * rgbs).sum(-2)
    if background is not None:
        rgb = rgb + (1.0 - opacity)[..., None] * background
    t_mid = 0.5 * (t_edges[:, 1:] + t_edges[:, :-1])
    depth = (w * t_mid).sum(-1)
    if z_scale is not None:
        depth = depth * z_scale
    return VolumeRenderOutput(rgb, depth, opacity, w)


__all__ = ["VolumeRenderOutput", "render_weights", "volume_render"]
