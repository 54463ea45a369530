"""Gaussians from a distilled NeRF (``nvs export RUN --what splats``).

The field's density is sampled on the regular grid of the mesh export (``resolution``^3 points over
``[-bound, bound]^3``, :func:`novelviews.nerf.export.density_grid`); every grid point denser than the
iso-level (given, or the mesh export's automatic one) becomes one isotropic Gaussian: its centre
is the grid point, its standard deviation half the grid spacing ``h``, its opacity the absorption of
one cell ``1 - exp(-sigma h)`` (clipped to [0.01, 0.99]) and its colour the field's albedo there
(SH degree 0). Above ``max_gaussians`` points the densest are kept.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import NovelViewsError
from .gaussians import GaussianModel
from .sh import rgb_to_sh


@torch.no_grad()
def gaussians_from_field(field, resolution: int = 128, threshold: float | None = None, max_gaussians: int = 500_000,
                         chunk: int = 262144) -> tuple[GaussianModel, float]:
    """``(Gaussians, iso-level used)`` of a NeRF field (see the module docstring)."""
    from ..nerf.export import auto_threshold, density_grid

    if resolution < 8:
        raise NovelViewsError(f"grid resolution {resolution} is too small: use at least 8 (e.g. 128)")
    bound = float(field.cfg.bound)
    grid = density_grid(field, resolution, bound, chunk)
    level = auto_threshold(grid) if threshold is None else float(threshold)
    flat = grid.reshape(-1)
    idx = np.flatnonzero(flat > level)
    if idx.size == 0:
        raise NovelViewsError(f"no grid point is denser than {level:.4g} (densities {grid.min():.4g} to "
                              f"{grid.max():.4g}): lower --threshold or leave it unset for the automatic one")
    if idx.size > max_gaussians:
        idx = idx[np.argsort(flat[idx])[::-1][:max_gaussians]]
    h = 2.0 * bound / (resolution - 1)
    ijk = np.stack(np.unravel_index(idx, grid.shape), 1)
    points = torch.from_numpy((ijk * h - bound).astype(np.float32))
    dev = next(field.parameters()).device
    colours = torch.cat([field.albedo(points[a:a + chunk].to(dev)).float().cpu() for a in range(0, len(points), chunk)])
    sigma = torch.from_numpy(flat[idx].astype(np.float32))
    opacity = (1.0 - torch.exp(-sigma * h)).clamp(0.01, 0.99)
    n = len(points)
    quats = torch.zeros(n, 4)
    quats[:, 0] = 1.0
    model = GaussianModel(points, torch.full((n, 3), math.log(0.5 * h)), quats, torch.logit(opacity),
                          rgb_to_sh(colours.clamp(0, 1)), sh_degree=0)
    return model, level
