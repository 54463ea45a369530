"""Empty-space skipping: an occupancy grid over the hash grid's unit cube (instant-ngp / nerfacc).

Space. The grid lives in the field's *grid coordinates* ``u`` in ``[0, 1]^3`` (what
:func:`~novelviews.nerf.field.normalize_points` returns: the mip-NeRF-360 contraction for
unbounded scenes, the scaled box for bounded ones), so ``R^3`` cells cover all of space, the
contracted shell included. A point ``u`` (clamped to ``[0, 1]^3``) falls in the cell
``(i, j, k) = min(floor(u * R), R - 1)`` (per axis), stored at the flat, row-major index
``i + j R + k R^2`` (x fastest, as the hash grid's dense levels). :func:`cell_index` is that map.

State (three persistent buffers, so a ``state_dict`` round-trips through checkpoints):

* ``density`` ``[R^3]`` float32: a decayed running maximum of the density measured in each
  cell (1 / scene units); ``+inf`` marks a cell never measured yet (every cell at the start);
* ``occupied`` ``[R^3]`` bool: the cells ray sampling must not skip; all True at the start;
* ``updates``: how many updates have run (int64 scalar).

One update (:meth:`OccupancyGrid.update`, at a training ``step``):

1. Cells. While ``step < warmup_steps`` every cell; afterwards the union of all cells occupied
   now and ``floor(R^3 / 4)`` distinct cells drawn uniformly at random (each cell is evaluated
   at most once per update).
2. Jitter. Each chosen cell ``(i, j, k)`` is measured at one point ``u = ((i, j, k) + r) / R``,
   ``r`` uniform in ``[0, 1)^3``, fresh per cell and per update; ``density_fn`` gets these
   points in batches of at most ``2**18`` (:data:`UPDATE_BATCH`), so memory stays bounded
   whatever ``R``. Measured values are read as float32, NaN and negative values as 0 and
   ``+inf`` as the largest float32.
3. EMA-max. A measured cell becomes ``max(decay * old, measured)`` (just ``measured`` the first
   time, when ``old`` is ``+inf``); every other cell becomes ``decay * old`` (``+inf`` stays).
   A cell's value is thus the largest ``decay^age * measurement`` of its history: after the
   density of a region drops to zero it fades by ``decay`` per update.
4. Threshold. With ``mean`` = the mean of ``density`` over the measured (finite) cells (``+inf``
   when there are none), a cell is occupied iff its value is ``> 0`` and
   ``>= min(density_threshold, mean)``. The ``min`` is instant-ngp's guard against culling a
   faint field altogether: while the whole field is fainter than ``density_threshold`` the
   cells at or above its mean stay. So a region that empties while the rest of the scene keeps
   ``mean >= density_threshold`` is skipped after the first ``n`` with
   ``value * decay^n < density_threshold``; a field that drops to 0 *everywhere* keeps its
   above-mean cells (everything decays at the same rate) until they reach 0.

The grid never changes the rendered function by itself: a caller skips samples whose cell is
not occupied (:meth:`OccupancyGrid.occupied_at`), which is exact wherever the grid is right
and drops density below the threshold (thin or faint matter) where it is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..config import check_range

UPDATE_BATCH = 2**18
"""most points passed to ``density_fn`` in one call of :meth:`OccupancyGrid.update`"""

_FLOAT32_MAX = float(torch.finfo(torch.float32).max)


@dataclass
class OccupancyGridConfig:
    """Occupancy grid for empty-space skipping (see the module docstring for the rule)."""

    enabled: bool = False
    """off by default: nothing is skipped"""
    resolution: int = 64
    """cells per axis R of the grid over the unit cube of grid coordinates u"""
    update_every: int = 16
    """training steps between updates"""
    warmup_steps: int = 256
    """before this step every update measures every cell; afterwards the occupied cells plus a
    random quarter of all cells (instant-ngp)"""
    density_threshold: float = 0.01
    """1 / scene units: a cell is occupied when its decayed maximum density is >= min(this, the
    grid's mean density) (and > 0)"""
    decay: float = 0.95
    """factor applied to every cell's stored density at each update (EMA-max)"""

    def validate(self) -> None:
        check_range("resolution", self.resolution, 1, 512)
        check_range("update_every", self.update_every, 1, None)
        check_range("warmup_steps", self.warmup_steps, 0, None)
        check_range("density_threshold", self.density_threshold, 0.0, None)
        check_range("decay", self.decay, 0.0, 1.0)


def cell_index(u: torch.Tensor, resolution: int) -> torch.Tensor:
    """Flat cell index ``[...]`` (int64) of grid points ``u [..., 3]``: ``u`` is clamped to
    ``[0, 1]``, ``(i, j, k) = min(floor(u * R), R - 1)`` and the index is ``i + j R + k R^2``.
    NaN coordinates land in some valid cell (never out of range)."""
    if u.dtype not in (torch.float32, torch.float64):
        u = u.float()  # half precision cannot tell the cells of a fine grid apart
    R = int(resolution)
    ijk = torch.floor(u.clamp(0.0, 1.0) * R).long().clamp(0, R - 1)
    return ijk[..., 0] + R * ijk[..., 1] + (R * R) * ijk[..., 2]


def _generator_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    return device if generator is None else generator.device


def _rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Uniform ``[0, 1)`` float32 on ``device``, drawn on the generator's own device (a CPU
    generator then gives the same numbers for a grid on any device)."""
    gdev = _generator_device(generator, device)
    return torch.rand(shape, generator=generator, device=gdev, dtype=torch.float32).to(device)


def _randperm(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    gdev = _generator_device(generator, device)
    return torch.randperm(n, generator=generator, device=gdev).to(device)


class OccupancyGrid(nn.Module):
    """``R^3`` occupancy cells over grid coordinates ``u`` in ``[0, 1]^3`` (module docstring).

    Typical use: ``if grid.should_update(step): grid.update(lambda u: field.density_from_u(u),
    step)``, then skip ray samples where ``grid.occupied_at(u)`` is False. The grid starts all
    occupied, so skipping before the first update changes nothing.
    """

    density: torch.Tensor
    occupied: torch.Tensor
    updates: torch.Tensor

    def __init__(self, cfg: OccupancyGridConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or OccupancyGridConfig()
        cfg.validate()
        n = int(cfg.resolution) ** 3
        self.register_buffer("density", torch.full((n,), float("inf"), dtype=torch.float32))
        self.register_buffer("occupied", torch.ones(n, dtype=torch.bool))
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))

    @property
    def resolution(self) -> int:
        return int(self.cfg.resolution)

    @property
    def n_cells(self) -> int:
        return self.resolution**3

    def should_update(self, step: int) -> bool:
        """True when the grid is enabled and ``step`` is a multiple of ``update_every``."""
        return bool(self.cfg.enabled) and int(step) % int(self.cfg.update_every) == 0

    def effective_threshold(self) -> float:
        """``min(density_threshold, mean density of the measured cells)`` (the occupancy cut)."""
        finite = torch.isfinite(self.density)
        count = int(finite.count_nonzero().item())
        if count == 0:
            return float(self.cfg.density_threshold)
        mean = float(torch.where(finite, self.density, torch.zeros_like(self.density)).sum().item()) / count
        return min(float(self.cfg.density_threshold), mean)

    def _refresh_occupied(self) -> None:
        thr = self.effective_threshold()
        self.occupied.copy_((self.density > 0) & (self.density >= thr))

    def _chosen_cells(self, step: int, generator: torch.Generator | None) -> torch.Tensor:
        n, dev = self.n_cells, self.density.device
        if int(step) < int(self.cfg.warmup_steps):
            return torch.arange(n, device=dev)
        mask = self.occupied.clone()
        mask[_randperm(n, generator, dev)[: n // 4]] = True
        return mask.nonzero().squeeze(1)

    @torch.no_grad()
    def update(self, density_fn: Callable[[torch.Tensor], torch.Tensor], step: int,
               generator: torch.Generator | None = None) -> dict:
        """One update at training ``step`` (the rule of the module docstring).

        ``density_fn(u [M, 3] float32 in [0, 1]^3, on the grid's device) -> density [M]`` (any
        shape of ``M`` values) is called with ``M <= 2**18``. ``generator`` (on any device; None:
        the global RNG of the grid's device) draws the random cells and the jitter, so the same
        seed gives the same update. Returns ``occupied_fraction`` (after the update) and
        ``cells_evaluated``.
        """
        cfg = self.cfg
        R, dev, decay = self.resolution, self.density.device, float(cfg.decay)
        idx = self._chosen_cells(step, generator)
        old = self.density
        unknown = torch.isinf(old)
        new = torch.where(unknown, old, old * decay)  # (decay 0 must not turn +inf into NaN)
        for a in range(0, idx.numel(), UPDATE_BATCH):
            c = idx[a:a + UPDATE_BATCH]
            ijk = torch.stack([c % R, (c // R) % R, c // (R * R)], -1).to(torch.float32)
            u = ((ijk + _rand((c.numel(), 3), generator, dev)) / R).clamp(0.0, 1.0)
            sigma = torch.as_tensor(density_fn(u))
            if sigma.numel() != c.numel():
                raise ValueError(f"density_fn returned {tuple(sigma.shape)} for {c.numel()} points; "
                                 f"it must return one density per point")
            sigma = sigma.reshape(-1).to(device=dev, dtype=torch.float32)
            sigma = sigma.nan_to_num(nan=0.0, posinf=_FLOAT32_MAX, neginf=0.0).clamp_min(0.0)
            prev = old[c]
            new[c] = torch.where(unknown[c], sigma, torch.maximum(prev * decay, sigma))
        self.density.copy_(new)
        self._refresh_occupied()
        self.updates += 1
        return {"occupied_fraction": self.occupied_fraction(), "cells_evaluated": int(idx.numel())}

    def occupied_at(self, u: torch.Tensor, fusion=None) -> torch.Tensor:
        """Bool ``[...]``: whether the cell holding each grid point ``u [..., 3]`` (clamped to
        ``[0, 1]^3``) is occupied. ``u`` must be on the grid's device; ``fusion``: a
        :class:`~novelviews.runtime.Fusion` for the cell index (None: eager)."""
        index = cell_index if fusion is None else fusion(cell_index)
        return self.occupied[index(u, self.resolution)]

    def occupied_fraction(self) -> float:
        """Fraction of the ``R^3`` cells that are occupied, in ``[0, 1]``."""
        return int(self.occupied.count_nonzero().item()) / self.n_cells

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, enabled={self.cfg.enabled}"


__all__ = ["UPDATE_BATCH", "OccupancyGridConfig", "cell_index", "OccupancyGrid"]
