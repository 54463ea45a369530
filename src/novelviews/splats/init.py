"""The cameras and the initial Gaussians of ``nvs reconstruct``: the generated views' orbit and which of them
are held out, the video's orbit, and random initial points coloured by the photos that see them."""

from __future__ import annotations

import math

import torch

from .. import cameras as C
from ..errors import NovelViewsError
from .gaussians import GaussianModel
from .reconstruct_config import GeneratedViewsConfig, InitConfig

INIT_DRAWS = 64


def generated_cameras(c2w_in: torch.Tensor, cfg: GeneratedViewsConfig) -> torch.Tensor:
    """``[N, 4, 4]`` OpenGL c2w of the generated views (see :mod:`.reconstruct`)."""
    n = cfg.num
    az = 2 * math.pi * torch.arange(1, n + 1, dtype=torch.float64) / (n + 1)
    offs = torch.tensor([math.radians(cfg.elevation_offsets_deg[i % len(cfg.elevation_offsets_deg)])
                         for i in range(n)], dtype=torch.float64) if cfg.elevation_offsets_deg else None
    return C.orbit_about_vertical(c2w_in, az, offs)


def held_out(cfg: GeneratedViewsConfig) -> list[int]:
    """Indices of the generated views held out of the fit."""
    k = cfg.holdout_every
    return [i for i in range(cfg.num) if k and i % k == k - 1]


def orbit_video_cameras(c2w_in: torch.Tensor, frames: int) -> torch.Tensor:
    return C.orbit_about_vertical(c2w_in, 2 * math.pi * torch.arange(frames, dtype=torch.float64) / max(frames, 1))


def _seen_colours(pts: torch.Tensor, photos: torch.Tensor, c2w: torch.Tensor, K: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """For points ``[n, 3]`` and photos ``[M, H, W, 3]`` with cameras ``c2w [M, 4, 4]``, ``K [M, 3, 3]``:
    how many photos see each point (in front, inside the image) and the mean colour there (grey if none)."""
    H, W = photos.shape[1:3]
    seen = torch.zeros(pts.shape[0], dtype=torch.long)
    total = torch.zeros(pts.shape[0], 3, dtype=torch.float64)
    for m in range(c2w.shape[0]):
        q = (pts - c2w[m, :3, 3]) @ c2w[m, :3, :3]
        z = (-q[:, 2]).clamp_min(1e-6)
        u = (K[m, 0, 0] * q[:, 0] / z + K[m, 0, 2]).floor().long()
        v = (-K[m, 1, 1] * q[:, 1] / z + K[m, 1, 2]).floor().long()
        inside = (u >= 0) & (u < W) & (v >= 0) & (v < H) & (q[:, 2] < 0)
        seen += inside.long()
        total[inside] += photos[m][v[inside], u[inside]].double()
    colours = torch.full((pts.shape[0], 3), 0.5, dtype=torch.float64)
    hit = seen > 0
    colours[hit] = total[hit] / seen[hit, None].double()
    return seen, colours


def random_init(photo: torch.Tensor, c2w: torch.Tensor, K: torch.Tensor, cfg: InitConfig, radius: float,
                sh_degree: int, generator: torch.Generator, min_visible: float = 0.0) -> GaussianModel:
    """``cfg.points`` points uniform in the ball of ``radius`` about the origin, coloured by the mean of
    the photo pixels they project to (grey where no photo sees them). ``photo``: ``[H, W, 3]`` or
    ``[M, H, W, 3]`` with ``c2w`` ``[(M,) 4, 4]`` and ``K`` ``[(M,) 3, 3]``; ``min_visible`` > 0 keeps only
    points seen by at least that fraction of the photos (drawing more until there are enough, or
    ``INIT_DRAWS`` draws)."""
    photos = photo[None] if photo.ndim == 3 else photo
    c2ws = torch.as_tensor(c2w, dtype=torch.float64)
    c2ws = c2ws[None] if c2ws.ndim == 2 else c2ws
    Ks = torch.as_tensor(K, dtype=torch.float64)
    Ks = Ks.expand(c2ws.shape[0], 3, 3) if Ks.ndim == 2 else Ks
    n = cfg.points
    need = math.ceil(min_visible * c2ws.shape[0] - 1e-9) if min_visible > 0 else 0
    kept_pts, kept_cols, found = [], [], 0
    for _ in range(INIT_DRAWS):
        d = torch.randn(n, 3, generator=generator, dtype=torch.float64)
        d = d / d.norm(dim=1, keepdim=True).clamp_min(1e-12)
        pts = d * radius * torch.rand(n, 1, generator=generator, dtype=torch.float64) ** (1 / 3)
        seen, colours = _seen_colours(pts, photos, c2ws, Ks)
        ok = seen >= need
        kept_pts.append(pts[ok])
        kept_cols.append(colours[ok])
        found += int(ok.sum())
        if found >= n:
            break
    if found == 0:
        raise NovelViewsError(f"no initial point within {radius:.3g} of the inputs' focus is seen by {need} of the "
                              f"{c2ws.shape[0]} input photos: lower init.visible_in (e.g. 0.5) or set init.radius")
    pts, colours = torch.cat(kept_pts)[:n], torch.cat(kept_cols)[:n]
    return GaussianModel.from_points(pts.float(), colours.float(), sh_degree=sh_degree, opacity=cfg.opacity)


__all__ = ["generated_cameras", "held_out", "orbit_video_cameras", "random_init", "INIT_DRAWS"]
