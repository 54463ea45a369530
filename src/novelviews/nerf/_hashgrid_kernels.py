"""Triton kernels of the fused hash-grid encoding (imported only by :mod:`.hashgrid_triton`).

Both kernels run one program per (block of ``BLOCK`` points, level) and compute, per point and
level, exactly what :meth:`novelviews.nerf.encoding.HashGridEncoding._encode` computes (the
formulas are in that module's docstring): grid coordinate ``x = clamp(u, 0, 1) * N_l``, cell
corner ``c = min(floor(x), N_l - 1)``, weights ``w = x - c``, the 8 corner rows (dense index or
XOR hash of ``coordinate * prime`` in 64-bit integers, modulo the level's table size) and the
trilinear blend. Nothing per corner is written to memory:

* ``hash_encode_fwd``: gathers the corner features and writes only ``out [N, L * F]``;
* ``hash_encode_bwd``: recomputes rows and weights from ``u`` and adds
  ``weight * grad_out`` to each corner row of the table gradient with atomic adds (so the
  summation order, and the last bits of the result, vary from run to run). With ``REDUCE``
  (the default of the launcher) runs of consecutive points in one cell - samples of a ray near a
  surface, at the coarse levels - are summed in registers first (a segmented scan over the
  block), so each run costs one atomic per corner: the atomics on a few hot rows were what made
  the plain backward slow on the points a proposal sampler concentrates.

``F`` is padded to the power of two ``FP`` for the feature axis (masked loads / stores).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _level_rows(u_ptr, n, m, res):
    """Clamped points -> cell corner ``c = min(floor(u N), N - 1)`` and weights ``u N - c`` per axis."""
    ux = tl.minimum(tl.maximum(tl.load(u_ptr + n * 3 + 0, mask=m, other=0.0), 0.0), 1.0)
    uy = tl.minimum(tl.maximum(tl.load(u_ptr + n * 3 + 1, mask=m, other=0.0), 0.0), 1.0)
    uz = tl.minimum(tl.maximum(tl.load(u_ptr + n * 3 + 2, mask=m, other=0.0), 0.0), 1.0)
    rf = res.to(tl.float32)
    x, y, z = ux * rf, uy * rf, uz * rf
    cx = tl.minimum(tl.floor(x).to(tl.int64), res - 1)
    cy = tl.minimum(tl.floor(y).to(tl.int64), res - 1)
    cz = tl.minimum(tl.floor(z).to(tl.int64), res - 1)
    return cx, cy, cz, x - cx.to(tl.float32), y - cy.to(tl.float32), z - cz.to(tl.float32)


@triton.jit
def _corner(cx, cy, cz, wx, wy, wz, res, size, dense, dx: tl.constexpr, dy: tl.constexpr, dz: tl.constexpr):
    """Row (within the level) and trilinear weight of corner (dx, dy, dz)."""
    i, j, k = cx + dx, cy + dy, cz + dz
    r1 = res + 1
    dense_row = i + j * r1 + k * (r1 * r1)
    hashed_row = (i * 1 ^ j * 2654435761 ^ k * 805459861) % size
    row = tl.where(dense != 0, dense_row, hashed_row)
    w = (wz if dz else 1.0 - wz) * (wy if dy else 1.0 - wy) * (wx if dx else 1.0 - wx)
    return row, w


@triton.jit
def _program(u_ptr, res_ptr, size_ptr, offset_ptr, dense_ptr, N, F: tl.constexpr, FP: tl.constexpr,
             BLOCK: tl.constexpr):
    """This program's points ``n``, level, feature axis, mask, level layout and cell corners."""
    lvl = tl.program_id(1)
    n = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = n < N
    f = tl.arange(0, FP)
    mm = m[:, None] & (f < F)[None, :]
    res = tl.load(res_ptr + lvl)
    size = tl.load(size_ptr + lvl)
    off = tl.load(offset_ptr + lvl)
    dense = tl.load(dense_ptr + lvl)
    cx, cy, cz, wx, wy, wz = _level_rows(u_ptr, n, m, res)
    return n, lvl, f, mm, res, size, off, dense, cx, cy, cz, wx, wy, wz


@triton.jit
def hash_encode_fwd(u_ptr, table_ptr, res_ptr, size_ptr, offset_ptr, dense_ptr, out_ptr, N,
                    L: tl.constexpr, F: tl.constexpr, FP: tl.constexpr, BLOCK: tl.constexpr):
    n, lvl, f, mm, res, size, off, dense, cx, cy, cz, wx, wy, wz = _program(
        u_ptr, res_ptr, size_ptr, offset_ptr, dense_ptr, N, F, FP, BLOCK)
    acc = tl.zeros((BLOCK, FP), dtype=tl.float32)
    for c in tl.static_range(8):
        row, w = _corner(cx, cy, cz, wx, wy, wz, res, size, dense, c & 1, (c >> 1) & 1, (c >> 2) & 1)
        feats = tl.load(table_ptr + (off + row)[:, None] * F + f[None, :], mask=mm, other=0.0)
        acc += w[:, None] * feats
    tl.store(out_ptr + n[:, None] * (L * F) + lvl * F + f[None, :], acc, mask=mm)


@triton.jit
def _segment_sum(v1, s1, v2, s2):
    """Combine of a segmented inclusive sum: ``s`` marks the first element of a segment."""
    return tl.where(s2 != 0, v2, v1 + v2), s1 | s2


@triton.jit
def _same_cell(u_ptr, n, m, res, cx, cy, cz):
    """True where point ``n`` (valid where ``m``) lies in cell ``(cx, cy, cz)`` of the level."""
    ox, oy, oz, _, _, _ = _level_rows(u_ptr, n, m, res)
    return m & (ox == cx) & (oy == cy) & (oz == cz)


@triton.jit
def hash_encode_bwd(u_ptr, grad_out_ptr, res_ptr, size_ptr, offset_ptr, dense_ptr, grad_table_ptr, N,
                    L: tl.constexpr, F: tl.constexpr, FP: tl.constexpr, BLOCK: tl.constexpr,
                    REDUCE: tl.constexpr):
    n, lvl, f, mm, res, size, off, dense, cx, cy, cz, wx, wy, wz = _program(
        u_ptr, res_ptr, size_ptr, offset_ptr, dense_ptr, N, F, FP, BLOCK)
    g = tl.load(grad_out_ptr + n[:, None] * (L * F) + lvl * F + f[None, :], mask=mm, other=0.0)
    if REDUCE:
        # Consecutive points (samples along one ray) often share a cell, hence all 8 corner rows:
        # sum each run of equal cells in the block first, and only its last point adds the run's
        # sum to the table (one atomic per run and corner instead of one per point and corner).
        lane = tl.arange(0, BLOCK)
        m = n < N
        first = (lane == 0) | ~_same_cell(u_ptr, n - 1, m & (n > 0), res, cx, cy, cz)
        last = (lane == BLOCK - 1) | ~_same_cell(u_ptr, n + 1, (n + 1) < N, res, cx, cy, cz)
        starts = tl.broadcast_to(first.to(tl.int32)[:, None], (BLOCK, FP))
        mm = mm & last[:, None]
    for c in tl.static_range(8):
        row, w = _corner(cx, cy, cz, wx, wy, wz, res, size, dense, c & 1, (c >> 1) & 1, (c >> 2) & 1)
        v = w[:, None] * g
        if REDUCE:
            v, _ = tl.associative_scan((v, starts), 0, _segment_sum)
        tl.atomic_add(grad_table_ptr + (off + row)[:, None] * F + f[None, :], v, mask=mm, sem="relaxed")
