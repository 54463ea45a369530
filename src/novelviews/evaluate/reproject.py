"""The depth-reprojection baseline: the nearest input forward-splatted into the target camera."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .. import cameras as C


# --------------------------------------------------------------------------- reprojection baseline


def _opencv_rt(c2w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    m = C.opengl_to_opencv(torch.as_tensor(c2w, dtype=torch.float64))
    return m[:3, :3], m[:3, 3]


def reproject(image: np.ndarray, depth: np.ndarray, src_K, src_c2w, tgt_K, tgt_c2w, size: int,
              supersample: int = 2, sky: bool = True, fill: Sequence[float] | None = None,
              dilate: int = 2, depth_tolerance: float = 0.02) -> tuple[np.ndarray, float]:
    """Forward-splat a source view into a target camera with a z-buffer.

    ``image``: float32 ``H x W x 3`` in ``[0, 1]``; ``depth``: ``H x W`` z-depth (scene
    units; ``<= 0`` or non-finite = no surface); ``src_K`` / ``tgt_K``: 3x3 pixels
    (pixel centres at ``i + 0.5``); ``*_c2w``: OpenGL camera-to-world; the target image is
    ``size x size``. Every source pixel is splatted from ``supersample^2`` sub-pixel
    positions (its colour and depth); a target pixel keeps the samples within
    ``depth_tolerance`` (relative) of its nearest depth, averaged. With ``sky`` pixels
    without depth are points at infinity (moved by the rotation only, behind all
    surfaces); otherwise they are dropped. Holes are filled from valid 3x3 neighbours
    (``dilate`` passes), then with ``fill`` (default: the source's mean colour).
    Returns ``(image float32 size x size x 3, fraction of pixels covered by a splat)``.
    """
    img = torch.as_tensor(np.asarray(image, dtype=np.float32)).double()
    dep = torch.as_tensor(np.asarray(depth, dtype=np.float32)).double()
    H, W = dep.shape
    if img.shape[:2] != (H, W):
        raise ValueError(f"image {tuple(img.shape)} and depth {tuple(dep.shape)} differ in size")
    ss = max(1, int(supersample))
    off = (torch.arange(ss, dtype=torch.float64) + 0.5) / ss
    v = (torch.arange(H, dtype=torch.float64)[:, None] + off[None, :]).reshape(-1)  # H*ss rows
    u = (torch.arange(W, dtype=torch.float64)[:, None] + off[None, :]).reshape(-1)
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    rows = torch.arange(H).repeat_interleave(ss)
    cols = torch.arange(W).repeat_interleave(ss)
    ri, ci = torch.meshgrid(rows, cols, indexing="ij")
    d = dep[ri, ci].reshape(-1)
    col = img[ri, ci].reshape(-1, 3)
    pix = torch.stack([uu.reshape(-1), vv.reshape(-1), torch.ones_like(d)], 1)
    Ks = torch.as_tensor(src_K, dtype=torch.float64)
    Kt = torch.as_tensor(tgt_K, dtype=torch.float64)
    Rs, ts = _opencv_rt(src_c2w)
    Rt, tt = _opencv_rt(tgt_c2w)
    rays = pix @ torch.linalg.inv(Ks).T  # OpenCV camera coordinates at z = 1
    has = torch.isfinite(d) & (d > 0)
    Xw = (rays * torch.where(has, d, 0.0)[:, None]) @ Rs.T + ts
    Xc = (Xw - tt) @ Rt  # = Rt^T (Xw - tt), row vectors
    Dc = (rays @ Rs.T) @ Rt  # directions (points at infinity)
    P = torch.where(has[:, None], Xc, Dc)
    z = P[:, 2]
    keep = (z > 1e-9) & (has | sky)
    q = P[keep] @ Kt.T
    uv = q[:, :2] / q[:, 2:3]
    zk = torch.where(has[keep], z[keep], torch.full_like(z[keep], math.inf))
    ck = col[keep]
    j = torch.floor(uv[:, 0]).long()
    i = torch.floor(uv[:, 1]).long()
    inb = (i >= 0) & (i < size) & (j >= 0) & (j < size)
    idx, zk, ck = i[inb] * size + j[inb], zk[inb], ck[inb]
    zbuf = torch.full((size * size,), math.inf, dtype=torch.float64)
    zbuf.scatter_reduce_(0, idx, zk, reduce="amin", include_self=True)
    win = (zk <= zbuf[idx] * (1.0 + depth_tolerance)).double()
    acc = torch.zeros(size * size, 3, dtype=torch.float64).index_add_(0, idx, ck * win[:, None])
    cnt = torch.zeros(size * size, dtype=torch.float64).index_add_(0, idx, win)
    valid = cnt > 0
    out = torch.where(valid[:, None], acc / cnt.clamp_min(1)[:, None], 0.0).reshape(size, size, 3)
    coverage = float(valid.double().mean())
    valid = valid.reshape(size, size)
    kernel = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    for _ in range(max(0, int(dilate))):
        if bool(valid.all()):
            break
        m = valid.double()[None, None]
        s = F.conv2d((out.permute(2, 0, 1) * m[0])[:, None], kernel, padding=1)[:, 0].permute(1, 2, 0)
        c = F.conv2d(m, kernel, padding=1)[0, 0]
        grow = (~valid) & (c > 0)
        out[grow] = s[grow] / c[grow][:, None]
        valid = valid | grow
    fill_c = img.reshape(-1, 3).mean(0) if fill is None else torch.as_tensor(fill, dtype=torch.float64)
    out[~valid] = fill_c
    return out.clamp(0, 1).float().numpy(), coverage
