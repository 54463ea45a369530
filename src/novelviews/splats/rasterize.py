"""The reference rasterizer of 3D Gaussians: pure PyTorch, differentiable, CPU or GPU.

One camera (OpenGL ``c2w [4, 4]``: x right, y up, looking along -z; pinhole ``K [3, 3]`` in pixels
on the OpenCV pixel grid, pixel ``(row v, column u)`` centred at ``(u + 0.5, v + 0.5)``):

1. **Projection.** A mean ``p`` goes to camera space ``q = R^T (p - t)``; its depth is
   ``z = -q_z`` (the camera looks along -z) and its pixel ``u = fx q_x / z + cx``,
   ``v = -fy q_y / z + cy`` (image rows go down) - the inverse of :func:`cameras.ray_directions`.
   The covariance projects with the EWA local affine approximation ``S2 = J W S3 W^T J^T`` where
   ``W = R^T`` and ``J`` is the Jacobian of ``(u, v)`` with respect to ``q`` at the mean
   (its ``q_x / z`` and ``q_y / z`` clamped to 1.3 x the half field of view, as the reference, so
   Gaussians far outside the image do not explode); ``low_pass`` (0.3 px^2) is added to the
   diagonal (the reference's dilation, a pixel-sized low-pass filter).
2. **Culling.** Gaussians with ``z <= near`` or ``z >= far``, or whose 3-sigma box misses the
   image, are dropped; the rest are sorted by depth once.
3. **Compositing**, tile by tile (``tile_size`` px squares; only the Gaussians whose 3-sigma box
   touches the tile): ``alpha_i = min(0.99, o_i exp(-0.5 d^T S2^-1 d))``, ``alpha_i < 1/255``
   skipped, front to back with transmittance ``T_i = prod_{j<i} (1 - alpha_j)``, a pixel stops
   before the Gaussian that would take ``T`` below ``1e-4``; ``rgb = sum_i alpha_i T_i c_i + T bg``.

Memory is bounded by one tile's pixel x Gaussian pairs: with ``checkpoint=True`` each tile's
compositing is recomputed in the backward pass instead of stored (``torch.utils.checkpoint``),
so training memory does not grow with the image size either. Every float dtype works (float64
for gradient checks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .gaussians import covariances
from .sh import sh_colours

ALPHA_MAX = 0.99
ALPHA_MIN = 1.0 / 255.0
T_MIN = 1e-4
LOW_PASS = 0.3


@dataclass
class Render:
    """A rasterized view: ``rgb [H, W, 3]``, ``alpha [H, W]`` (1 - final transmittance), ``depth
    [H, W]`` (alpha-weighted z-depth, 0 on empty pixels), and per Gaussian ``means2d [N, 2]``
    (pixels; its ``.grad`` is the view-space gradient densification uses, when it required grad),
    ``radii [N]`` (3-sigma radius in pixels, 0 where culled) and ``visible [N]``."""

    rgb: torch.Tensor
    alpha: torch.Tensor
    depth: torch.Tensor
    means2d: torch.Tensor
    radii: torch.Tensor
    visible: torch.Tensor
    grad_source: torch.Tensor | None = None
    """the tensor whose ``.grad`` holds the view-space gradient, when it is not ``means2d`` itself
    (a backend's batched output of which ``means2d`` is a row)"""

    def means2d_grad(self) -> torch.Tensor | None:
        """The loss gradient with respect to ``means2d`` after ``backward()`` (None without one)."""
        if self.grad_source is not None:
            g = self.grad_source.grad
            return None if g is None else g[0]
        return self.means2d.grad


def project(means: torch.Tensor, cov3d: torch.Tensor, c2w: torch.Tensor, K: torch.Tensor, width: int, height: int,
            low_pass: float = LOW_PASS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(means2d [N, 2] pixels, cov2d [N, 2, 2] pixels^2 incl. the low-pass, depth [N])`` (see the
    module docstring; no culling here)."""
    R = c2w[:3, :3].to(means)
    t = c2w[:3, 3].to(means)
    q = (means - t) @ R  # rows of R^T (p - t)
    z = -q[:, 2]
    fx, fy, cx, cy = K[0, 0].to(means), K[1, 1].to(means), K[0, 2].to(means), K[1, 2].to(means)
    zs = torch.where(z.abs() < 1e-9, torch.full_like(z, 1e-9), z)
    u = fx * q[:, 0] / zs + cx
    v = -fy * q[:, 1] / zs + cy
    lim_x = 1.3 * 0.5 * width / fx
    lim_y = 1.3 * 0.5 * height / fy
    tx = torch.maximum(torch.minimum(q[:, 0] / zs, lim_x), -lim_x) * zs
    ty = torch.maximum(torch.minimum(q[:, 1] / zs, lim_y), -lim_y) * zs
    zero = torch.zeros_like(z)
    # d(u, v) / d(q_x, q_y, q_z), with z = -q_z
    J = torch.stack([torch.stack([fx / zs, zero, fx * tx / zs**2], -1),
                     torch.stack([zero, -fy / zs, -fy * ty / zs**2], -1)], -2)  # [N, 2, 3]
    T = J @ R.T  # d(u, v) / d(world)
    cov2d = T @ cov3d @ T.transpose(-1, -2)
    cov2d = cov2d + low_pass * torch.eye(2, dtype=means.dtype, device=means.device)
    return torch.stack([u, v], -1), cov2d, z


def _conics_and_radii(cov2d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse 2D covariances as ``(a, b, c)`` of ``[[a, b], [b, c]]`` and 3-sigma radii (pixels)."""
    a, b, c = cov2d[:, 0, 0], cov2d[:, 0, 1], cov2d[:, 1, 1]
    det = (a * c - b * b).clamp_min(1e-12)
    conic = torch.stack([c / det, -b / det, a / det], -1)
    mid = 0.5 * (a + c)
    lam = mid + torch.sqrt((mid * mid - det).clamp_min(0.1))
    return conic, torch.ceil(3.0 * torch.sqrt(lam.detach()))


def composite(pixels: torch.Tensor, means2d: torch.Tensor, conics: torch.Tensor, opacities: torch.Tensor,
              colours: torch.Tensor, depths: torch.Tensor, background: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Front-to-back compositing of depth-sorted 2D Gaussians at ``pixels [P, 2]`` (pixel
    coordinates): ``(rgb [P, 3], alpha [P], depth [P])``."""
    d = pixels[:, None, :] - means2d[None]  # [P, n, 2]
    power = -0.5 * (conics[:, 0] * d[..., 0] ** 2 + conics[:, 2] * d[..., 1] ** 2) - conics[:, 1] * d[..., 0] * d[..., 1]
    alpha = (opacities * torch.exp(power)).clamp(max=ALPHA_MAX)
    with torch.no_grad():  # skip alpha < 1/255; a pixel stops before the Gaussian taking T below T_MIN
        live = (alpha >= ALPHA_MIN) & (power <= 0)
        live &= torch.cumsum(torch.log1p(-alpha * live), 1) >= math.log(T_MIN)
    alpha = alpha * live
    # transmittance as exp(cumsum(log(1 - alpha))): 1 - alpha >= 0.01, and its backward is far
    # cheaper than cumprod's
    log_t = torch.cumsum(torch.log1p(-alpha), 1)
    before = torch.exp(torch.cat([torch.zeros_like(log_t[:, :1]), log_t[:, :-1]], 1))
    w = alpha * before
    final = torch.exp(log_t[:, -1]) if log_t.shape[1] else torch.ones_like(pixels[:, 0])
    rgb = w @ colours + final[:, None] * background
    return rgb, 1.0 - final, w @ depths


@dataclass
class Projected:
    """The culled, depth-sorted Gaussians of one camera, shared by the rasterizers: ``means2d [N, 2]``
    (all Gaussians, for the view-space gradient), ``radii [N]`` / ``visible [N]``, and for the ``M``
    visible ones front to back: ``index [M]`` (rows of the inputs), ``xy [M, 2]``, ``conic [M, 3]``,
    ``opacity [M]``, ``colour [M, 3]``, ``depth [M]`` and the detached ``u, v, r [M]`` of the 3-sigma
    boxes; ``background [3]``."""

    means2d: torch.Tensor
    radii: torch.Tensor
    visible: torch.Tensor
    index: torch.Tensor
    xy: torch.Tensor
    conic: torch.Tensor
    opacity: torch.Tensor
    colour: torch.Tensor
    depth: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    r: torch.Tensor
    background: torch.Tensor


def project_and_sort(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, opacities: torch.Tensor,
                     sh: torch.Tensor, sh_degree: int, c2w, K, width: int, height: int, background=None,
                     near: float = 0.01, far: float = 1e10, low_pass: float = LOW_PASS) -> Projected:
    """Steps 1 and 2 of the module docstring (projection, culling, the depth sort) and the SH colours."""
    dtype, dev = means.dtype, means.device
    c2w = torch.as_tensor(c2w, dtype=dtype, device=dev)
    K = torch.as_tensor(K, dtype=dtype, device=dev)
    bg = torch.zeros(3, dtype=dtype, device=dev) if background is None else torch.as_tensor(background).to(means)
    means2d, cov2d, z = project(means, covariances(quats, scales), c2w, K, width, height, low_pass)
    if means2d.requires_grad:
        means2d.retain_grad()
    conic, radii = _conics_and_radii(cov2d)
    u, v = means2d[:, 0].detach(), means2d[:, 1].detach()
    visible = ((z > near) & (z < far) & (u + radii > 0) & (u - radii < width) & (v + radii > 0)
               & (v - radii < height) & torch.isfinite(radii))
    radii = torch.where(visible, radii, torch.zeros_like(radii))
    idx = torch.nonzero(visible).squeeze(1)
    idx = idx[torch.argsort(z.detach()[idx], stable=True)]
    colours = sh_colours(sh_degree, sh[idx], means[idx], c2w[:3, 3])
    return Projected(means2d, radii, visible, idx, means2d[idx], conic[idx], opacities[idx], colours, z[idx],
                     u[idx], v[idx], radii[idx], bg)


def rasterize(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, opacities: torch.Tensor,
              sh: torch.Tensor, sh_degree: int, c2w, K, width: int, height: int, background=None,
              near: float = 0.01, far: float = 1e10, tile_size: int = 16, checkpoint: bool = False,
              low_pass: float = LOW_PASS) -> Render:
    """Render Gaussians (``means [N, 3]``, ``quats [N, 4]`` w x y z, linear ``scales [N, 3]``,
    ``opacities [N]`` in [0, 1], ``sh [N, K, 3]`` of which degree ``sh_degree`` is used) from one
    camera (see the module docstring). ``background``: RGB ``[3]`` (default black)."""
    dtype, dev = means.dtype, means.device
    p = project_and_sort(means, quats, scales, opacities, sh, sh_degree, c2w, K, width, height, background, near,
                         far, low_pass)
    m2, co, op, colours, dz, bg = p.xy, p.conic, p.opacity, p.colour, p.depth, p.background
    u, v, r = p.u, p.v, p.r

    boxes, tiles = [], []
    for y0 in range(0, height, tile_size):
        for x0 in range(0, width, tile_size):
            y1, x1 = min(height, y0 + tile_size), min(width, x0 + tile_size)
            sel = (u + r > x0) & (u - r < x1) & (v + r > y0) & (v - r < y1)
            ys, xs = torch.meshgrid(torch.arange(y0, y1, device=dev, dtype=dtype) + 0.5,
                                    torch.arange(x0, x1, device=dev, dtype=dtype) + 0.5, indexing="ij")
            pix = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)
            args = (pix, m2[sel], co[sel], op[sel], colours[sel], dz[sel], bg)
            if checkpoint and torch.is_grad_enabled():
                from torch.utils.checkpoint import checkpoint as ckpt

                c, a, d = ckpt(composite, *args, use_reentrant=False)
            else:
                c, a, d = composite(*args)
            boxes.append((y0, y1, x0, x1))
            tiles.append(torch.cat([c, a[:, None], d[:, None]], 1).reshape(y1 - y0, x1 - x0, 5))
    out = _assemble(tiles, boxes)
    rgb, alpha, depth = out[..., :3], out[..., 3], out[..., 4]
    return Render(rgb, alpha, depth, p.means2d, p.radii, p.visible)


def _assemble(parts: list[torch.Tensor], boxes: list[tuple[int, int, int, int]]) -> torch.Tensor:
    """Tiles (row-major boxes ``(y0, y1, x0, x1)``) back into one ``[H, W, ...]`` image."""
    out_rows, i = [], 0
    while i < len(boxes):
        y0 = boxes[i][0]
        row = []
        while i < len(boxes) and boxes[i][0] == y0:
            row.append(parts[i])
            i += 1
        out_rows.append(torch.cat(row, 1))
    return torch.cat(out_rows, 0)
