"""The tile-batched rasterizer: the reference's maths with no Python loop over tiles.

:func:`.rasterize.rasterize` composites one tile per loop iteration (about thirty small kernels each,
forward and backward), so at 256 px (256 tiles of 16 px) a fit step is bound by kernel launches,
not arithmetic. This module renders the same image with a fixed handful of batched tensor ops:

1. **Projection, culling, depth sort and SH colours**: :func:`.rasterize.project_and_sort`, shared
   with the reference (the same conventions: OpenGL ``c2w``, pixel centres at +0.5, EWA with the
   0.3 px^2 low-pass).
2. **Binning.** Every visible Gaussian is paired with each tile its 3-sigma box touches (the
   reference's test ``u + r > x0, u - r < x1, v + r > y0, v - r < y1`` against the tile's pixel
   box, applied exactly, so the two never disagree on a tile border). The pairs are sorted by
   ``(tile, depth rank)`` and scattered into an index matrix ``[tiles, max per tile]`` padded with
   an empty Gaussian (opacity 0, which the ``alpha < 1/255`` rule skips).
3. **Compositing** all tiles at once, or in chunks of tiles bounded by ``chunk`` pixel x Gaussian
   pairs (tiles ordered by their Gaussian count, so a chunk pads little): per pixel and Gaussian
   ``alpha = min(0.99, o exp(power))``, skipped where ``alpha < 1/255`` or ``power > 0``, front to
   back with ``T = exp(cumsum(log(1 - alpha)))``, stopped before ``T`` would fall below ``1e-4``;
   ``rgb = sum alpha T c + T_final bg``, alpha = ``1 - T_final``, depth = ``sum alpha T z``. The
   pixels of a tile that lie outside the image are composited and cropped.

Gradients are plain autograd. Without checkpointing, the saved intermediates of every chunk stay
until the backward pass (about 45 bytes per pixel x Gaussian pair in float32, so ``chunk`` bounds
only the forward's working set); ``checkpoint=True`` recomputes each chunk in the backward pass
instead, so memory is bounded by one chunk. ``means2d`` keeps its
``.grad`` for densification, as in the reference. Host syncs: the pair count and the per-tile
counts (two small copies per view). Any device and float dtype; the images and gradients equal
the reference's to rounding (tests/test_splats.py checks float64).
"""

from __future__ import annotations

import bisect
import math

import torch

from .rasterize import ALPHA_MAX, ALPHA_MIN, LOW_PASS, T_MIN, Render, project_and_sort

FILL = 0.75
"""a chunk holds the tiles with more than this fraction of its first (longest) tile's Gaussians"""
MIN_SPLIT = 64
"""tiles with up to this many Gaussians share a chunk whatever their counts"""
CHUNK = 1 << 25
"""default: pixel x Gaussian pairs composited at once (a working set of about 2 GB in float32)"""


def bin_tiles(u: torch.Tensor, v: torch.Tensor, r: torch.Tensor, width: int, height: int, tile_size: int
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(gaussian [P], tile [P])``: each (Gaussian, tile) pair whose 3-sigma box ``(u +- r, v +- r)``
    touches the tile (row-major tile ids), sorted by tile and, within a tile, by Gaussian index
    (the depth rank when the Gaussians are depth-sorted)."""
    nx, ny = -(-width // tile_size), -(-height // tile_size)
    dev = u.device
    # candidate tile ranges, widened by one tile each way against rounding; the exact test below decides
    x_lo = (torch.floor((u - r) / tile_size) - 1).clamp(0, nx - 1).long()
    x_hi = (torch.ceil((u + r) / tile_size) + 1).clamp(0, nx - 1).long()
    y_lo = (torch.floor((v - r) / tile_size) - 1).clamp(0, ny - 1).long()
    y_hi = (torch.ceil((v + r) / tile_size) + 1).clamp(0, ny - 1).long()
    w = x_hi - x_lo + 1
    counts = w * (y_hi - y_lo + 1)
    total = int(counts.sum())  # host sync: the size of the pair list
    g = torch.repeat_interleave(torch.arange(u.shape[0], device=dev), counts, output_size=total)
    start = torch.cumsum(counts, 0) - counts
    k = torch.arange(total, device=dev) - start[g]
    tx = x_lo[g] + k % w[g]
    ty = y_lo[g] + torch.div(k, w[g], rounding_mode="floor")
    x0 = (tx * tile_size).to(u.dtype)
    y0 = (ty * tile_size).to(u.dtype)
    x1 = torch.clamp_max(x0 + tile_size, width)
    y1 = torch.clamp_max(y0 + tile_size, height)
    ug, vg, rg = u[g], v[g], r[g]
    hit = (ug + rg > x0) & (ug - rg < x1) & (vg + rg > y0) & (vg - rg < y1)
    tile = torch.where(hit, ty * nx + tx, torch.full_like(tx, nx * ny))  # misses go to a dump tile past the end
    # pairs come out in Gaussian order: a stable sort by tile keeps the depth order within each tile
    tile, order = torch.sort(tile, stable=True)
    return g[order], tile


def composite_tiles(pix: torch.Tensor, index: torch.Tensor, xy: torch.Tensor, conic: torch.Tensor,
                    opacity: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Front-to-back compositing of ``C`` tiles at once: ``pix [C, P, 2]`` pixel centres, ``index
    [C, L]`` rows of the depth-sorted Gaussians (``xy [M, 2]``, ``conic [M, 3]``, ``opacity [M]``,
    ``features [M, F]``: colour and depth) front to back, padded with an opacity-0 row.
    Returns ``(sum_i alpha_i T_i features_i [C, P, F], final transmittance [C, P])``."""
    m = xy[index]  # [C, L, 2]
    co = conic[index]
    d = pix[:, :, None, :] - m[:, None]  # [C, P, L, 2]
    dx, dy = d[..., 0], d[..., 1]
    a, b, c = (co[:, None, :, i] for i in range(3))
    power = -0.5 * (a * dx * dx + c * dy * dy) - b * dx * dy
    alpha = (opacity[index][:, None, :] * torch.exp(power)).clamp(max=ALPHA_MAX)
    with torch.no_grad():
        live = (alpha >= ALPHA_MIN) & (power <= 0)
        live &= torch.cumsum(torch.log1p(-alpha * live), -1) >= math.log(T_MIN)
    alpha = alpha * live
    log_1ma = torch.log1p(-alpha)
    log_t = torch.cumsum(log_1ma, -1)
    w = alpha * torch.exp(log_t - log_1ma)  # T before each Gaussian (1 - alpha >= 0.01: no cancellation)
    return w @ features[index], torch.exp(log_t[..., -1])


def rasterize_batched(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, opacities: torch.Tensor,
                      sh: torch.Tensor, sh_degree: int, c2w, K, width: int, height: int, background=None,
                      near: float = 0.01, far: float = 1e10, tile_size: int = 16, checkpoint: bool = False,
                      low_pass: float = LOW_PASS, chunk: int = CHUNK) -> Render:
    """:func:`.rasterize.rasterize` (same arguments and result) without a loop over tiles; ``chunk``
    bounds the pixel x Gaussian pairs composited at once (see the module docstring)."""
    p = project_and_sort(means, quats, scales, opacities, sh, sh_degree, c2w, K, width, height, background, near,
                         far, low_pass)
    dtype, dev = means.dtype, means.device
    ts = int(tile_size)
    nx, ny = -(-width // ts), -(-height // ts)
    n_tiles, m = nx * ny, p.xy.shape[0]
    g, tile = bin_tiles(p.u, p.v, p.r, width, height, ts)
    counts = torch.bincount(tile, minlength=n_tiles + 1)[:n_tiles]
    start = torch.cumsum(counts, 0) - counts
    # tiles by decreasing count, so each chunk is padded to its own (first) tile's count
    tile_order = torch.argsort(counts, descending=True, stable=True)
    sorted_counts = counts[tile_order].tolist()  # host sync: the chunk shapes
    descending = [-c for c in sorted_counts]
    longest = max(1, sorted_counts[0] if sorted_counts else 1)
    # index matrix [tiles, longest], padded with row m: an empty Gaussian
    keep = tile < n_tiles
    g, tile = g[keep], tile[keep]
    slot = torch.arange(g.shape[0], device=dev) - start[tile]
    index = torch.full((n_tiles, longest), m, dtype=torch.long, device=dev)
    index[tile, slot] = g
    index = index[tile_order]
    zero1 = p.xy.new_zeros(1)
    xy = torch.cat([p.xy, p.xy.new_zeros(1, 2)])
    conic = torch.cat([p.conic, p.conic.new_zeros(1, 3)])
    opacity = torch.cat([p.opacity, zero1])
    features = torch.cat([torch.cat([p.colour, p.depth[:, None]], 1), p.xy.new_zeros(1, 4)])
    # pixel centres of every tile (row-major inside a tile), in tile_order
    ys, xs = torch.meshgrid(torch.arange(ts, device=dev, dtype=dtype), torch.arange(ts, device=dev, dtype=dtype),
                            indexing="ij")
    local = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1) + 0.5  # [P, 2]
    corner = torch.stack([tile_order % nx, torch.div(tile_order, nx, rounding_mode="floor")], -1).to(dtype) * ts
    px = ts * ts
    parts, i = [], 0
    while i < n_tiles:
        length = max(1, sorted_counts[i])
        n = max(1, min(n_tiles - i, chunk // (px * length)))
        # and only tiles with more than FILL x this one's count: padding adds at most 1 / FILL - 1 to the
        # work (a few chunks of geometrically falling lengths instead of one padded to the longest)
        if length > MIN_SPLIT:
            n = min(n, bisect.bisect_left(descending, -int(FILL * length), lo=i) - i)
        pix = corner[i:i + n, None, :] + local[None]
        idx = index[i:i + n, :length]
        if checkpoint and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint as ckpt

            f, final = ckpt(composite_tiles, pix, idx, xy, conic, opacity, features, use_reentrant=False)
        else:
            f, final = composite_tiles(pix, idx, xy, conic, opacity, features)
        parts.append(torch.cat([f[..., :3] + final[..., None] * p.background, 1.0 - final[..., None], f[..., 3:]],
                               -1))
        i += n
    out = torch.cat(parts)  # [tiles in tile_order, P, 5]
    out = out[torch.argsort(tile_order)]  # row-major tiles
    out = out.reshape(ny, nx, ts, ts, 5).permute(0, 2, 1, 3, 4).reshape(ny * ts, nx * ts, 5)[:height, :width]
    return Render(out[..., :3], out[..., 3], out[..., 4], p.means2d, p.radii, p.visible)
