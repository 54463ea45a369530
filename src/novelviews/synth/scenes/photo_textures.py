"""Photographs as surface textures of procedural scenes (the ``photo`` texture).

A :class:`PhotoTextures` holds ``T`` square textures of side ``S`` (a power of two) as a
mip pyramid (2 x 2 box filter per level, down to 4 px), channels last. A surface point
with texture coordinates ``u, v`` (in tiles: one tile = one whole texture) reads its
texture with **mirrored repeat** (``u mod 2``, folded back on ``[1, 2)``, so tiles meet
without seams) and **trilinear** filtering: bilinear within the two pyramid levels whose
texel size brackets the pixel footprint, blended linearly in ``log2`` of the footprint
in texels. On primitives the coordinates come from **triplanar** mapping: the point's
local coordinates are projected on the three local planes and the three reads blended
with weights ``|n_k|^4 / sum |n|^4`` of the local normal ``n``; on the ground (normal
``+z``) that is the plain ``xy`` projection.

Built from photographs by :func:`textures_from_photos` (seeded random augmented crops of
:mod:`novelviews.synth.photos`); used by :func:`~novelviews.synth.scenes.scene_from_seed`
(``photos=``, ``photo_share=``) and :func:`novelviews.synth.render.render`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from ...errors import ConfigError

MIN_LEVEL_SIZE = 4
"""The smallest mip level's side, pixels."""


@dataclass(frozen=True)
class PhotoTextures:
    """``levels[l]``: ``[T, S / 2**l, S / 2**l, 3]`` float32 in [0, 1] (level 0 the textures)."""

    levels: tuple[torch.Tensor, ...]

    @property
    def count(self) -> int:
        return int(self.levels[0].shape[0])

    @property
    def size(self) -> int:
        return int(self.levels[0].shape[1])

    def to(self, device: torch.device | str | None) -> "PhotoTextures":
        if device is None:
            return self
        return PhotoTextures(tuple(v.to(device) for v in self.levels))


def textures_from_images(images: torch.Tensor) -> PhotoTextures:
    """A :class:`PhotoTextures` of ``images [T, S, S, 3]`` (float in [0, 1]; ``S`` a power of two >= 4)."""
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2] or images.shape[0] < 1:
        raise ConfigError(f"photo textures must have shape [T, S, S, 3] with T >= 1, got {list(images.shape)}")
    S = int(images.shape[1])
    if S < MIN_LEVEL_SIZE or S & (S - 1):
        raise ConfigError(f"photo texture side must be a power of two >= {MIN_LEVEL_SIZE}, got {S}")
    x = images.to(torch.float32)
    if not torch.isfinite(x).all():
        raise ConfigError("photo textures contain NaN or inf")
    x = x.clamp(0.0, 1.0)
    levels = [x.contiguous()]
    t = x.permute(0, 3, 1, 2)
    while t.shape[-1] > MIN_LEVEL_SIZE:
        t = F.avg_pool2d(t, 2)
        levels.append(t.permute(0, 2, 3, 1).contiguous())
    return PhotoTextures(tuple(levels))


def textures_from_photos(photos: Sequence[torch.Tensor], count: int, size: int = 128, seed: int = 0,
                         scale: tuple[float, float] = (0.3, 1.0)) -> PhotoTextures:
    """``count`` textures cut from ``photos`` (``[H, W, 3]`` uint8 or float each), deterministic in ``seed``.

    Texture ``i`` is a random augmented crop (:func:`~novelviews.synth.photos.random_crop`,
    crop side ``scale`` of the photo's shorter side, flips and colour jitter) of a photo
    drawn uniformly, all from one generator seeded by ``seed``.
    """
    from ..photos import CropConfig, random_crop

    if not photos:
        raise ConfigError("photo textures need at least one photo")
    if count < 1:
        raise ConfigError(f"photo texture count must be >= 1, got {count}")
    cfg = CropConfig(size=int(size), scale=tuple(scale))
    g = torch.Generator().manual_seed(int(seed))
    crops = []
    for _ in range(int(count)):
        k = int(torch.randint(len(photos), (1,), generator=g))
        crops.append(random_crop(photos[k], g, cfg)[0])
    return textures_from_images(torch.stack(crops))


def _mirror(u: torch.Tensor) -> torch.Tensor:
    """Mirrored repeat of tile coordinates: ``[0, 1]`` within a tile, reflected every other tile."""
    f = torch.remainder(u, 2.0)
    return torch.where(f > 1.0, 2.0 - f, f)


def _bilinear(level: torch.Tensor, index: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Bilinear reads ``[M, 3]`` of ``level [T, s, s, 3]``, texture ``index [M]``, at ``u, v`` in [0, 1]
    (``u`` along a row, ``v`` down the rows; texel centres at ``(i + 0.5) / s``, edges clamped)."""
    s = level.shape[1]
    flat = level.reshape(-1, 3)
    px, py = u * s - 0.5, v * s - 0.5
    x0, y0 = torch.floor(px), torch.floor(py)
    wx, wy = (px - x0)[:, None], (py - y0)[:, None]
    x0l, y0l = x0.long(), y0.long()
    x0c, x1c = x0l.clamp(0, s - 1), (x0l + 1).clamp(0, s - 1)
    y0c, y1c = y0l.clamp(0, s - 1), (y0l + 1).clamp(0, s - 1)
    base = index * (s * s)

    def at(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        return flat[base + yy * s + xx]

    top = at(y0c, x0c) * (1 - wx) + at(y0c, x1c) * wx
    bottom = at(y1c, x0c) * (1 - wx) + at(y1c, x1c) * wx
    return top * (1 - wy) + bottom * wy


def sample(tex: PhotoTextures, index: torch.Tensor, uv: torch.Tensor, tiles_per_pixel: torch.Tensor) -> torch.Tensor:
    """Trilinear, mirrored-repeat reads ``[M, 3]`` of textures ``index [M]`` at tile coordinates
    ``uv [M, 2]``; ``tiles_per_pixel [M]`` is the pixel footprint in tiles (it picks the levels)."""
    u, v = _mirror(uv[:, 0]), _mirror(uv[:, 1])
    top = len(tex.levels) - 1
    lod = torch.log2((tiles_per_pixel * tex.size).clamp_min(1.0)).clamp(0.0, float(top))
    lo = torch.floor(lod)
    frac = (lod - lo)[:, None]
    out = torch.zeros(uv.shape[0], 3, dtype=tex.levels[0].dtype, device=uv.device)
    lo_i = lo.long()
    for lvl in range(top + 1):  # each point reads levels lo and lo + 1 (weight 0 beyond the top)
        w = torch.where(lo_i == lvl, 1.0 - frac[:, 0], torch.where(lo_i + 1 == lvl, frac[:, 0], 0.0))
        rows = torch.nonzero(w > 0).squeeze(1)
        if rows.numel():
            out[rows] += w[rows, None] * _bilinear(tex.levels[lvl], index[rows], u[rows], v[rows])
    return out


# the two in-plane coordinates of the projection along local axis k (u, v), v pointing "down"
_PLANES = ((1, 2), (0, 2), (0, 1))


def triplanar(tex: PhotoTextures, index: torch.Tensor, y: torch.Tensor, normal: torch.Tensor,
              tiles_per_pixel: torch.Tensor, sharpness: float = 4.0) -> torch.Tensor:
    """Triplanar reads ``[M, 3]``: local tile coordinates ``y [M, 3]``, local unit normals ``normal [M, 3]``.

    The three planar reads are weighted by ``|n_k| ** sharpness``, weights below 1e-3 of the
    sum dropped (those reads are skipped), the rest normalised to sum 1.
    """
    w = normal.abs() ** sharpness
    w = w / w.sum(-1, keepdim=True).clamp_min(1e-12)
    w = torch.where(w > 1e-3, w, 0.0)
    w = w / w.sum(-1, keepdim=True).clamp_min(1e-12)
    out = torch.zeros(y.shape[0], 3, dtype=tex.levels[0].dtype, device=y.device)
    for k, (a, b) in enumerate(_PLANES):
        rows = torch.nonzero(w[:, k] > 0).squeeze(1)
        if rows.numel():
            uv = torch.stack([y[rows, a], -y[rows, b]], -1)
            out[rows] += w[rows, k, None] * sample(tex, index[rows], uv, tiles_per_pixel[rows])
    return out


def mean_colors(tex: PhotoTextures) -> torch.Tensor:
    """Each texture's mean colour ``[T, 3]`` (its top mip level averaged)."""
    return tex.levels[-1].mean(dim=(1, 2))


__all__ = ["PhotoTextures", "textures_from_images", "textures_from_photos", "sample", "triplanar",
           "mean_colors", "MIN_LEVEL_SIZE"]
