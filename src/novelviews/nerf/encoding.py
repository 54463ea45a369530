"""Multiresolution hash-grid encoding (Instant-NGP, Mueller et al. 2022) in pure PyTorch.

Input: points ``u`` in the unit cube ``[0, 1]^3`` (float, ``[N, 3]``; values outside are
clamped). Output: ``[N, L * F]`` features, level-major (level 0's F features first).

Level ``l`` (0-based) has resolution ``N_l = floor(base_resolution * per_level_scale ** l)``
cells per axis, i.e. ``N_l + 1`` grid vertices per axis. A point ``u`` lies at grid
coordinate ``x = u * N_l``; its cell corner is ``c = min(floor(x), N_l - 1)`` and its
trilinear weights are ``w = x - c`` (per axis), so features are continuous in ``u``.

Vertex ``(i, j, k)`` of level ``l`` is stored in that level's table of
``T_l = min(2**log2_hashmap_size, (N_l + 1)**3)`` rows:

* dense (``(N_l + 1)**3 <= 2**log2_hashmap_size``): row ``i + j (N_l + 1) + k (N_l + 1)^2``;
* hashed otherwise: row ``(i * 1) XOR (j * 2654435761) XOR (k * 805459861) mod T_l``.

All level tables are packed into one parameter ``[sum_l T_l, F]`` (level ``l`` starts at
``offsets[l]``), initialised uniformly in ``[-1e-4, 1e-4]`` as in Instant-NGP.

Backends (``HashGridConfig.backend``), all computing this one function:

* ``torch``: the vectorised PyTorch path (:meth:`HashGridEncoding._encode`), the reference
  and the CPU path; :func:`hash_encode_reference` is a slow, obviously-correct per-point loop
  the tests check it against;
* ``triton``: the fused CUDA kernels of :mod:`.hashgrid_triton` (same table, same values; the
  table gradient accumulated with atomics, so equal up to float32 reordering). Calls whose
  points need a gradient (autograd normals) take the torch path;
* ``auto`` (default): ``triton`` for CUDA inputs when Triton imports, else ``torch``; chosen
  per call, so a module moved between devices keeps working;
* ``tcnn``: tinycudann's kernels when that optional package is installed; its parameters are
  laid out differently, so it is not weight-compatible with the others (never chosen by auto).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..config import check_range
from ..errors import ConfigError

PRIMES = (1, 2654435761, 805459861)
BACKENDS = ("auto", "torch", "triton", "tcnn")

# The 8 corners of a cell, as (dx, dy, dz) in {0, 1}^3, x fastest.
_CORNERS = ((0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 0), (0, 0, 1), (1, 0, 1), (0, 1, 1), (1, 1, 1))


@dataclass
class HashGridConfig:
    """Hash-grid settings; the defaults are the reference's (ZeroNVS / threestudio) geometry grid."""

    n_levels: int = 16
    """number of resolution levels L"""
    n_features_per_level: int = 2
    """features F per level"""
    log2_hashmap_size: int = 19
    """log2 of the maximum number of table rows per level (T)"""
    base_resolution: int = 16
    """cells per axis of the coarsest level"""
    per_level_scale: float = 1.4473
    """resolution growth factor between levels"""
    backend: Literal["auto", "torch", "triton", "tcnn"] = "auto"
    """implementation: auto (fused Triton kernels on CUDA, PyTorch elsewhere), torch, triton, tcnn"""

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"hash grid backend {self.backend!r} is not one of "
                              f"{', '.join(repr(b) for b in BACKENDS)}")
        check_range("n_levels", self.n_levels, 1, 32)
        check_range("n_features_per_level", self.n_features_per_level, 1, 16)
        check_range("log2_hashmap_size", self.log2_hashmap_size, 4, 26)
        check_range("base_resolution", self.base_resolution, 1, 4096)
        check_range("per_level_scale", self.per_level_scale, 1.0, 4.0)

    @property
    def output_dim(self) -> int:
        return self.n_levels * self.n_features_per_level


def level_resolutions(cfg: HashGridConfig) -> list[int]:
    """Cells per axis ``N_l = floor(base * scale**l)`` for each level."""
    return [int(math.floor(cfg.base_resolution * cfg.per_level_scale**lvl + 1e-9)) for lvl in range(cfg.n_levels)]


def level_layout(cfg: HashGridConfig) -> tuple[list[int], list[int], list[int], list[bool]]:
    """(resolutions, table sizes, table offsets, dense flags) of every level."""
    res = level_resolutions(cfg)
    tmax = 2**cfg.log2_hashmap_size
    sizes, offsets, dense = [], [], []
    total = 0
    for r in res:
        n = (r + 1) ** 3
        d = n <= tmax
        size = n if d else tmax
        sizes.append(size)
        offsets.append(total)
        dense.append(d)
        total += size
    return res, sizes, offsets, dense


class HashGridEncoding(nn.Module):
    """Multiresolution hash encoding of points in ``[0, 1]^3`` -> ``[N, L*F]`` features.

    ``backend`` (default: ``cfg.backend``; see the module docstring): ``"auto"``, ``"torch"``,
    ``"triton"`` (CUDA inputs only; MissingDependencyError without Triton or CUDA) or ``"tcnn"``
    (tinycudann, CUDA only; MissingDependencyError if absent).
    """

    def __init__(self, cfg: HashGridConfig | None = None, backend: str | None = None):
        super().__init__()
        self.cfg = cfg = cfg or HashGridConfig()
        cfg.validate()
        backend = cfg.backend if backend is None else backend
        if backend not in BACKENDS:
            raise ConfigError(f"hash grid backend {backend!r} is not one of {', '.join(repr(b) for b in BACKENDS)}")
        self.requested_backend = backend
        res, sizes, offsets, dense = level_layout(cfg)
        self.resolutions = res
        self.sizes = sizes
        self.offsets_list = offsets
        self.dense = dense
        self.num_dense_levels = sum(dense)  # resolutions grow, so dense levels come first
        self.output_dim = cfg.output_dim
        self._tcnn = _make_tcnn(cfg, required=True) if backend == "tcnn" else None
        if self._tcnn is None:  # the torch / triton table layout
            self.table = nn.Parameter(torch.empty(sum(sizes), cfg.n_features_per_level).uniform_(-1e-4, 1e-4))
            self.register_buffer("_res", torch.tensor(res, dtype=torch.int64), persistent=False)
            self.register_buffer("_size", torch.tensor(sizes, dtype=torch.int64), persistent=False)
            self.register_buffer("_offset", torch.tensor(offsets, dtype=torch.int64), persistent=False)
            self.register_buffer("_dense", torch.tensor(dense, dtype=torch.bool), persistent=False)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Encode ``u`` (``[..., 3]`` in ``[0, 1]``) -> ``[..., L*F]`` (dtype of the table)."""
        lead = u.shape[:-1]
        u = u.reshape(-1, 3)
        if self._tcnn is not None:
            out = self._tcnn(u.clamp(0.0, 1.0)).float()
            return out.reshape(*lead, self.output_dim)
        if self._use_triton(u):
            from .hashgrid_triton import hash_encode_triton

            out = hash_encode_triton(u, self.table, self._res, self._size, self._offset, self._dense)
        else:
            out = self._encode(u)
        return out.reshape(*lead, self.output_dim)

    def _use_triton(self, u: torch.Tensor) -> bool:
        """Whether this call takes the fused kernels (see the module docstring)."""
        if self.requested_backend not in ("auto", "triton"):
            return False
        from .hashgrid_triton import triton_available

        if self.requested_backend == "triton" and not (u.is_cuda and triton_available()):
            from ..errors import MissingDependencyError

            raise MissingDependencyError(
                "hash grid backend 'triton' needs CUDA tensors and the triton package (it ships with the CUDA "
                "builds of PyTorch): run on a CUDA device or set the grid's backend to 'torch' or 'auto'")
        needs_point_grad = u.requires_grad and torch.is_grad_enabled()
        return u.is_cuda and triton_available() and self.table.dtype == torch.float32 and not needs_point_grad

    def _encode(self, u: torch.Tensor) -> torch.Tensor:
        # Per-axis work first ([N, L, 2] per axis for the two corner coordinates c, c + 1), then
        # broadcast to the 8 corners as a [N, L, 2(z), 2(y), 2(x)] block: 4x fewer integer ops
        # than working on [N, L, 8, 3].
        n = u.shape[0]
        L, F = self.cfg.n_levels, self.cfg.n_features_per_level
        u = u.to(self.table.dtype).clamp(0.0, 1.0)
        x = u[:, None, :] * self._res.to(u.dtype)[None, :, None]  # [N, L, 3] grid coordinates
        c0 = torch.minimum(x.floor().long(), (self._res - 1)[None, :, None])  # [N, L, 3]
        w = x - c0.to(x.dtype)  # [N, L, 3] in [0, 1]
        c = torch.stack([c0, c0 + 1], -1)  # [N, L, 3, 2]
        wc = torch.stack([1.0 - w, w], -1)  # [N, L, 3, 2]
        weights = wc[:, :, 2, :, None, None] * wc[:, :, 1, None, :, None] * wc[:, :, 0, None, None, :]
        nd = self.num_dense_levels
        parts = []
        if nd > 0:  # dense levels: row = i + j (N + 1) + k (N + 1)^2
            cd = c[:, :nd]
            r1 = (self._res[:nd] + 1)[None, :, None]
            iy, iz = cd[:, :, 1] * r1, cd[:, :, 2] * (r1 * r1)
            parts.append(iz[:, :, :, None, None] + iy[:, :, None, :, None] + cd[:, :, 0, None, None, :])
        if nd < L:  # hashed levels: XOR of coordinate * prime, modulo the table size
            ch = c[:, nd:]
            hx, hy, hz = ch[:, :, 0] * PRIMES[0], ch[:, :, 1] * PRIMES[1], ch[:, :, 2] * PRIMES[2]
            h = hz[:, :, :, None, None] ^ hy[:, :, None, :, None] ^ hx[:, :, None, None, :]
            parts.append(h % self._size[nd:][None, :, None, None, None])
        idx = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
        idx = (idx + self._offset[None, :, None, None, None]).reshape(n, L * 8)
        feats = self.table.index_select(0, idx.reshape(-1)).reshape(n, L, 8, F)
        return corner_sum(weights.reshape(n, L, 8), feats, batched_matmul=not feats.is_cuda).reshape(n, L * F)


def corner_sum(weights: torch.Tensor, feats: torch.Tensor, batched_matmul: bool) -> torch.Tensor:
    """Trilinear blend ``sum_c weights[..., c] * feats[..., c, :]`` of ``[N, L, 8]`` x ``[N, L, 8, F]``.

    Two equal ways (tested against each other): a batched matmul of ``[N L, 1, 8] x [N L, 8, F]``
    - the fast one on CPU - or multiply + reduce, used on CUDA, where cuBLAS runs millions of
    such tiny products as dozens of gemm / gemv launches per call: 75 % of a distillation step's
    GPU time in the profile of ``benchmarks/distill_step.py``.
    """
    n, L, _, F = feats.shape
    if batched_matmul:
        return torch.bmm(weights.reshape(n * L, 1, 8), feats.reshape(n * L, 8, F)).reshape(n, L, F)
    return (weights[..., None] * feats).sum(2)


def _make_tcnn(cfg: HashGridConfig, required: bool):
    try:
        import tinycudann as tcnn  # noqa: F401
    except ImportError:
        if required:
            from ..errors import MissingDependencyError

            raise MissingDependencyError(
                "hash grid backend 'tcnn' needs the optional package 'tinycudann' (CUDA only): install it from "
                "https://github.com/NVlabs/tiny-cuda-nn or use backend='torch'"
            ) from None
        return None
    return tcnn.Encoding(
        3,
        {
            "otype": "HashGrid",
            "n_levels": cfg.n_levels,
            "n_features_per_level": cfg.n_features_per_level,
            "log2_hashmap_size": cfg.log2_hashmap_size,
            "base_resolution": cfg.base_resolution,
            "per_level_scale": cfg.per_level_scale,
        },
    )


def hash_encode_reference(enc: HashGridEncoding, u: torch.Tensor) -> torch.Tensor:
    """Slow reference of :meth:`HashGridEncoding.forward`: loops over points, levels, corners.

    Written for clarity, used only in tests (a few dozen points).
    """
    cfg = enc.cfg
    table = enc.table
    out = []
    for p in u.reshape(-1, 3).tolist():
        p = [min(max(v, 0.0), 1.0) for v in p]
        feats = []
        for lvl in range(cfg.n_levels):
            res = enc.resolutions[lvl]
            size = enc.sizes[lvl]
            offset = enc.offsets_list[lvl]
            x = [v * res for v in p]
            c = [min(int(math.floor(v)), res - 1) for v in x]
            w = [x[a] - c[a] for a in range(3)]
            acc = torch.zeros(cfg.n_features_per_level, dtype=table.dtype)
            for dx, dy, dz in _CORNERS:
                i, j, k = c[0] + dx, c[1] + dy, c[2] + dz
                if enc.dense[lvl]:
                    row = i + j * (res + 1) + k * (res + 1) ** 2
                else:
                    row = ((i * PRIMES[0]) ^ (j * PRIMES[1]) ^ (k * PRIMES[2])) % size
                weight = (w[0] if dx else 1 - w[0]) * (w[1] if dy else 1 - w[1]) * (w[2] if dz else 1 - w[2])
                acc = acc + weight * table[offset + row]
            feats.append(acc)
        out.append(torch.cat(feats))
    return torch.stack(out).reshape(*u.shape[:-1], cfg.output_dim)


__all__ = ["BACKENDS", "HashGridConfig", "HashGridEncoding", "hash_encode_reference", "level_resolutions", "level_layout", "PRIMES"]
