"""The fused hash-grid encoding (Triton, CUDA): same function as the PyTorch encoding, less memory.

The PyTorch encoding (:class:`~novelviews.nerf.encoding.HashGridEncoding` with the ``torch``
backend, the reference and the CPU path) materialises per point, level and corner an int64 row,
a weight and the gathered features (~400 bytes per point for the 16-level grid), and its
backward is an ``index_add_`` over all of them. The fused path keeps nothing but the output:

* forward: one kernel hashes, gathers and blends; writes ``[N, L * F]`` float32 (a program per
  block of 128 points and level; a tiled variant with the levels across a warp's lanes was
  slower in both directions on an H200, docs/BENCHMARKS.md);
* backward: one kernel recomputes rows and weights from ``u`` and accumulates the table
  gradient with atomic adds (float32), after summing in registers each run of consecutive points
  that fall in one cell (samples of one ray near a surface share the coarse levels' cells; the
  atomics on those few rows were ~60 % of a ZeroNVS-size distillation step's GPU time). Atomics
  make the summation order vary, so the table gradient equals the reference's up to float32 rounding of a reordered sum (relative error of
  the order of 1e-6; the CUDA test allows 1e-5 relative + 1e-7 absolute), and two runs of the
  same step can differ in the last bits.

Gradients reach the table only: a ``u`` that requires grad (autograd normals) is refused here
and the encoding module falls back to the PyTorch path for that call.
Triton ships with the CUDA builds of PyTorch; nothing is compiled ahead of time (the kernels are
JIT-compiled on first use, a few seconds, and cached by Triton on disk).
"""

from __future__ import annotations

import functools

import torch

BLOCK = 128


@functools.lru_cache(maxsize=1)
def triton_available() -> bool:
    """True when Triton imports and a CUDA device is present (the fused path can run)."""
    if not torch.cuda.is_available():
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _kernels():
    from . import _hashgrid_kernels

    return _hashgrid_kernels


def _next_pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


def _launch(kind: str, u, src, res, size, offset, dense, dst, n_levels: int, F: int, reduce_runs: bool = True) -> None:
    k = _kernels()
    grid = (triton_grid(u.shape[0]), n_levels)
    args = (u, src, res, size, offset, dense, dst, u.shape[0])
    if kind == "fwd":
        k.hash_encode_fwd[grid](*args, L=n_levels, F=F, FP=_next_pow2(F), BLOCK=BLOCK)
    else:
        k.hash_encode_bwd[grid](*args, L=n_levels, F=F, FP=_next_pow2(F), BLOCK=BLOCK, REDUCE=bool(reduce_runs))


class HashEncodeFunction(torch.autograd.Function):
    """``u [N, 3]`` float32 CUDA, ``table [T, F]`` float32 -> ``[N, L * F]``; grad to the table only."""

    @staticmethod
    def forward(ctx, u, table, res, size, offset, dense, n_levels: int, reduce_runs: bool = True):
        N = u.shape[0]
        F = table.shape[1]
        out = torch.empty(N, n_levels * F, device=u.device, dtype=torch.float32)
        if N > 0:
            _launch("fwd", u, table, res, size, offset, dense, out, n_levels, F)
        ctx.save_for_backward(u, res, size, offset, dense)
        ctx.meta = (n_levels, tuple(table.shape), reduce_runs)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        u, res, size, offset, dense = ctx.saved_tensors
        n_levels, shape, reduce_runs = ctx.meta
        grad_table = torch.zeros(shape, device=u.device, dtype=torch.float32)
        if u.shape[0] > 0 and ctx.needs_input_grad[1]:
            _launch("bwd", u, grad_out.contiguous().float(), res, size, offset, dense, grad_table, n_levels,
                    shape[1], reduce_runs)
        return None, grad_table, None, None, None, None, None, None


def triton_grid(n: int) -> int:
    return (int(n) + BLOCK - 1) // BLOCK


def hash_encode_triton(u: torch.Tensor, table: torch.Tensor, res: torch.Tensor, size: torch.Tensor,
                       offset: torch.Tensor, dense: torch.Tensor, reduce_runs: bool = True) -> torch.Tensor:
    """Fused encoding of ``u [N, 3]`` (CUDA; clamped to [0, 1] in the kernel) -> ``[N, L * F]`` float32.

    ``reduce_runs``: in the backward, sum runs of consecutive points that share a cell before the
    atomic adds (same gradient up to float32 reordering; ``False`` is the plain one-atomic-per-point
    kernel, kept for the benchmark).

    ``res``, ``size``, ``offset``: int64 ``[L]`` (cells per axis, table rows, first row of each
    level); ``dense``: ``[L]`` (non-zero for dense levels), all on ``u``'s device.
    """
    if u.requires_grad:
        raise ValueError("the fused hash-grid encoding has no gradient with respect to the points")
    if table.dtype != torch.float32:
        raise ValueError(f"the fused hash-grid encoding needs a float32 table, got {table.dtype}")
    u = u.detach().to(torch.float32).contiguous()
    return HashEncodeFunction.apply(u, table.contiguous(), res, size, offset, dense.to(torch.int32),
                                    int(res.numel()), bool(reduce_runs))


__all__ = ["triton_available", "hash_encode_triton", "HashEncodeFunction", "BLOCK"]
