"""Which rasterizer renders the splats: the PyTorch reference, its tile-batched twin or gsplat.

``splats.backend``:

* ``torch`` - :mod:`.rasterize`, the reference: any device, a Python loop over pixel tiles (on a
  GPU each fit step is bound by the ~30 kernel launches per tile);
* ``batched`` - :mod:`.rasterize_batched`: the same maths and results (to rounding) with all tiles
  composited in a few batched ops (``splats.chunk`` bounds the pixel x Gaussian pairs at once);
  any device, no extra packages;
* ``gsplat`` - CUDA only; the optional ``gsplat`` package (its CUDA code is compiled the first
  time it is used, which takes minutes once and needs nvcc);
* ``auto`` - gsplat where it is installed and the Gaussians live on a CUDA device, else batched.

All take the same inputs and return a :class:`~.rasterize.Render` with the same conventions
(OpenGL ``c2w``; pixel centres at +0.5; low-pass 0.3 px^2; alpha clamp 0.99, skip below 1/255);
gsplat is imported only when chosen.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Literal

import torch

from .. import cameras as C
from ..config import check_range
from ..errors import NovelViewsError
from .rasterize import LOW_PASS, Render, rasterize
from .rasterize_batched import CHUNK, rasterize_batched

BACKENDS = ("auto", "torch", "batched", "gsplat")


@dataclass
class SplatRenderConfig:
    """How splats are rasterized."""

    backend: Literal["auto", "torch", "batched", "gsplat"] = "auto"
    """auto: gsplat on CUDA when installed (its CUDA code builds on first use), else batched (the reference's
    maths with all tiles at once); torch: the reference (a loop over tiles)"""
    tile_size: int = 16
    """side of the pixel tiles (the torch reference's memory is bounded by one tile's pixel x Gaussian pairs)"""
    chunk: int = CHUNK
    """batched: most pixel x Gaussian pairs composited at once. Autograd keeps ~45 bytes (float32) per pair of
    the whole image for the backward pass; with checkpoint only one chunk's"""
    checkpoint: bool = False
    """torch / batched: recompute each tile (chunk of tiles) in the backward pass instead of storing it, so
    training memory is bounded by one tile (chunk) too (slower: about twice the compositing work)"""
    near: float = 0.01
    far: float = 1e10

    def validate(self) -> None:
        check_range("splats.tile_size", self.tile_size, 1, 1024)
        check_range("splats.chunk", self.chunk, 1, None)
        check_range("splats.near", self.near, 0.0, None, lo_open=True)
        check_range("splats.far", self.far, self.near, None, lo_open=True)


def gsplat_available() -> bool:
    return importlib.util.find_spec("gsplat") is not None


def resolve_backend(backend: str, device: torch.device) -> str:
    """The backend a config asks for on ``device``: ``torch``, ``batched`` or ``gsplat`` (one line naming
    the fix if gsplat is asked for where it cannot run)."""
    if backend not in BACKENDS:
        raise NovelViewsError(f"unknown splat backend '{backend}': use one of {', '.join(BACKENDS)}")
    if backend in ("torch", "batched"):
        return backend
    usable = device.type == "cuda" and gsplat_available()
    if backend == "gsplat" and not usable:
        why = "it needs a CUDA device" if device.type != "cuda" else "it is not installed (pip install gsplat)"
        raise NovelViewsError(f"splats.backend=gsplat cannot be used: {why}; use splats.backend=batched, torch or auto")
    return "gsplat" if usable else "batched"


def rasterize_gsplat(means, quats, scales, opacities, sh, sh_degree: int, c2w, K, width: int, height: int,
                     background=None, near: float = 0.01, far: float = 1e10, tile_size: int = 16) -> Render:
    """:func:`.rasterize.rasterize` through ``gsplat.rasterization`` (CUDA)."""
    import gsplat

    dtype, dev = means.dtype, means.device
    c2w_cv = C.opengl_to_opencv(torch.as_tensor(c2w, dtype=torch.float64).cpu())
    viewmat = C.invert_pose(c2w_cv).to(device=dev, dtype=dtype)[None]
    Ks = torch.as_tensor(K, dtype=dtype).to(dev)[None]
    k = (sh_degree + 1) ** 2
    bg = None if background is None else torch.as_tensor(background).to(means)[None]
    colours, alphas, meta = gsplat.rasterization(
        means, quats, scales, opacities, sh[:, :k].contiguous(), viewmat, Ks, width, height, near_plane=near,
        far_plane=far, eps2d=LOW_PASS, sh_degree=sh_degree, packed=False, tile_size=tile_size, backgrounds=bg,
        render_mode="RGB+D", rasterize_mode="classic")
    source = meta["means2d"]
    if source.requires_grad:
        source.retain_grad()
    radii = meta["radii"][0]
    if radii.ndim == 2:  # newer gsplat: one radius per image axis
        radii = radii.max(-1).values
    radii = radii.to(dtype)
    return Render(colours[0, ..., :3], alphas[0, ..., 0], colours[0, ..., 3], source[0], radii, radii > 0,
                  grad_source=source)


def render_model(model, c2w, K, width: int, height: int, background=None, sh_degree: int | None = None,
                 cfg: SplatRenderConfig | None = None) -> Render:
    """Render a :class:`~.gaussians.GaussianModel` from one camera with the configured backend."""
    cfg = cfg or SplatRenderConfig()
    degree = model.sh_degree if sh_degree is None else min(int(sh_degree), model.sh_degree)
    args = (model.means, model.quats, model.scales, model.opacities, model.sh, degree, c2w, K, width, height,
            background)
    backend = resolve_backend(cfg.backend, model.means.device)
    if backend == "gsplat":
        return rasterize_gsplat(*args, near=cfg.near, far=cfg.far, tile_size=cfg.tile_size)
    if backend == "batched":
        return rasterize_batched(*args, near=cfg.near, far=cfg.far, tile_size=cfg.tile_size,
                                 checkpoint=cfg.checkpoint, chunk=cfg.chunk)
    return rasterize(*args, near=cfg.near, far=cfg.far, tile_size=cfg.tile_size, checkpoint=cfg.checkpoint)
