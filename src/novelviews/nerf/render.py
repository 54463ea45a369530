"""Volume rendering: ray generation, chunked ray / image rendering (compositing itself:
:mod:`novelviews.nerf.compositing`, re-exported here).

Conventions (docs/ARCHITECTURE.md): ``c2w`` is a 4x4 camera-to-world with OpenGL camera
axes (x right, y up, the camera looks along -z); ``K`` is a 3x3 pinhole matrix in pixels with
pixel (i, j) centred at (i + 0.5, j + 0.5), u to the right and v down. Ray directions are
unit vectors in world space, so ``t`` is the Euclidean distance along the ray; ``depth`` is
the *z-depth* (distance along the optical axis), ``t * cos(angle to the optical axis)``.
Colours are RGB in [0, 1]; densities are in 1 / scene units.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..runtime import EAGER, to_device
from .compositing import VolumeRenderOutput, render_weights, volume_render  # noqa: F401 - re-exported
from .sampler import interlevel_loss

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn


# --------------------------------------------------------------------------- rays


def get_rays(c2w: torch.Tensor, K: torch.Tensor, H: int, W: int, dtype=torch.float32,
             device=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rays through the pixel centres of one camera, row-major (v outer, u inner).

    ``c2w``: 4x4 OpenGL camera-to-world; ``K``: 3x3 pixels. Returns ``rays_o [H*W, 3]``,
    unit ``rays_d [H*W, 3]`` (world) and ``z_scale [H*W]`` = cosine to the optical axis.
    """
    from ..cameras import ray_directions

    # rays are built on the CPU in float64 whatever device the camera comes from, then copied once
    # (constants: no gradient flows back to a camera tensor)
    c2w, K = (x.detach().to("cpu", torch.float64) if isinstance(x, torch.Tensor)
              else torch.as_tensor(x, dtype=torch.float64) for x in (c2w, K))
    if c2w.shape[-2:] == (3, 4):
        c2w = torch.cat([c2w, torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)], 0)
    o, d = (t.reshape(-1, 3) for t in ray_directions(K, c2w, H, W))
    z_scale = -(d @ c2w[:3, 2])  # cosine to the optical axis (the camera looks along -z)
    if device is None:
        return o.to(dtype).contiguous(), d.to(dtype).contiguous(), z_scale.to(dtype)
    # one non-blocking copy for all three (a training step builds rays for every view)
    flat = to_device(torch.cat([o, d, z_scale[:, None]], 1), device, dtype)
    return flat[:, :3].contiguous(), flat[:, 3:6].contiguous(), flat[:, 6].contiguous()


def near_far_box(rays_o: torch.Tensor, rays_d: torch.Tensor, bound: float, near: float = 0.0,
                 far: float = 1e10) -> tuple[torch.Tensor, torch.Tensor]:
    """Slab intersection of rays with ``[-bound, bound]^3``, clipped to ``[near, far]``.

    Rays that miss the box get ``near == far`` (zero-length intervals, so zero weight).
    """
    inv = 1.0 / torch.where(rays_d.abs() < 1e-12, torch.full_like(rays_d, 1e-12), rays_d)
    t0 = (-bound - rays_o) * inv
    t1 = (bound - rays_o) * inv
    tmin = torch.minimum(t0, t1).amax(-1).clamp_min(near)
    tmax = torch.maximum(t0, t1).amin(-1).clamp_max(far)
    tmax = torch.maximum(tmax, tmin)
    return tmin, tmax


def render_chunk(field: "nn.Module", o: torch.Tensor, d: torch.Tensor, sampler: "nn.Module",
                 background: "nn.Module | torch.Tensor | None", near: float, far: float, stratified: bool,
                 z_scale: torch.Tensor | None, bg_color: torch.Tensor | None):
    """One chunk of rays: ``(samples, points [R, S, 3], VolumeRender result)``.

    ``[near, far]`` is clipped to the field's box for a bounded field; ``background`` is a
    :class:`~novelviews.nerf.field.Background`, a colour tensor, or None (premultiplied).
    """
    cfg = getattr(field, "cfg", None)
    if cfg is not None and not getattr(cfg, "unbounded", True):
        nr, fr = near_far_box(o, d, cfg.bound, near, far)
    else:
        nr = torch.full(o.shape[:1], float(near), dtype=o.dtype, device=o.device)
        fr = torch.full(o.shape[:1], float(far), dtype=o.dtype, device=o.device)
    samples = sampler(o, d, nr, fr, stratified=stratified)
    pts = samples.points(o, d)
    sigma, rgb = field(pts)
    if background is None:
        bg = None
    elif isinstance(background, torch.Tensor):
        bg = background.to(o)
    else:
        bg = background(d, bg_color)
    if bg is not None:  # one layout for every kind of background (a compiled volume_render sees one)
        bg = bg.expand(o.shape[0], 3).contiguous()
    return samples, pts, getattr(field, "fusion", EAGER)(volume_render)(sigma, rgb, samples.t_edges, bg, z_scale)


def chunk_interlevel(samples, res, fusion=EAGER) -> torch.Tensor | None:
    """The proposal sampler's interlevel loss of one :func:`render_chunk` (None for other samplers);
    ``fusion``: the field's :class:`~novelviews.runtime.Fusion`."""
    if "prop_weights" not in samples.aux:
        return None
    return fusion(interlevel_loss)(samples.s_edges, res.weights, samples.aux["prop_s_edges"],
                                   samples.aux["prop_weights"])


def render_rays(field: "nn.Module", rays_o: torch.Tensor, rays_d: torch.Tensor, sampler: "nn.Module",
                background: "nn.Module | torch.Tensor | None" = None, near: float = 0.05, far: float = 1000.0,
                stratified: bool = False, chunk: int = 8192, z_scale: torch.Tensor | None = None,
                bg_color: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Render rays ``o + t d`` (world, unit ``d``) in chunks of ``chunk`` rays.

    ``field(x) -> (sigma, albedo)`` (a :class:`~novelviews.nerf.field.NeRFField`);
    ``sampler`` from :func:`~novelviews.nerf.sampler.make_sampler`. For a bounded field
    (``field.cfg.unbounded`` False) ``[near, far]`` is clipped to the field's box.
    ``background``: a :class:`~novelviews.nerf.field.Background`, a colour tensor, or None
    (premultiplied); ``bg_color`` overrides a Background module's colour.

    Returns ``rgb [R, 3]``, ``depth [R]`` (z-depth if ``z_scale`` is given, else ray
    distance; unnormalised), ``opacity [R]`` and, for a proposal sampler, the scalar
    ``interlevel`` loss (mean over rays). Without grad, memory is bounded by ``chunk``.
    """
    outs: dict[str, list[torch.Tensor]] = {"rgb": [], "depth": [], "opacity": []}
    inter: list[torch.Tensor] = []
    n = rays_o.shape[0]
    for a in range(0, n, max(int(chunk), 1)):
        o, d = rays_o[a:a + chunk], rays_d[a:a + chunk]
        zs = None if z_scale is None else z_scale[a:a + chunk]
        samples, _, res = render_chunk(field, o, d, sampler, background, near, far, stratified, zs, bg_color)
        outs["rgb"].append(res.rgb)
        outs["depth"].append(res.depth)
        outs["opacity"].append(res.opacity)
        loss = chunk_interlevel(samples, res, getattr(field, "fusion", EAGER))
        if loss is not None:
            inter.append(loss * o.shape[0])
    out = {k: torch.cat(v, 0) for k, v in outs.items()}
    if inter:
        out["interlevel"] = torch.stack(inter).sum() / n
    return out


def render_image(field: "nn.Module", c2w, K, H: int, W: int, sampler: "nn.Module",
                 background: "nn.Module | torch.Tensor | None" = None, near: float = 0.05, far: float = 1000.0,
                 chunk: int = 8192, bg_color: torch.Tensor | None = None,
                 grad: bool = False) -> dict[str, torch.Tensor]:
    """Render one camera: ``c2w`` 4x4 OpenGL camera-to-world, ``K`` 3x3 pixels.

    Returns ``rgb [H, W, 3]`` in [0, 1], ``depth [H, W]`` (expected z-depth, 0 where empty;
    divide by opacity for the surface depth) and ``opacity [H, W]``. Runs without autograd
    unless ``grad``; evaluation sampling (no jitter).
    """
    param = next(field.parameters())
    rays_o, rays_d, zs = get_rays(c2w, K, H, W, dtype=param.dtype, device=param.device)
    with torch.set_grad_enabled(grad):
        out = render_rays(field, rays_o, rays_d, sampler, background, near, far, stratified=False, chunk=chunk,
                          z_scale=zs, bg_color=bg_color)
    return {"rgb": out["rgb"].reshape(H, W, 3), "depth": out["depth"].reshape(H, W),
            "opacity": out["opacity"].reshape(H, W)}


__all__ = ["VolumeRenderOutput", "render_weights", "volume_render", "get_rays", "near_far_box", "render_rays",
           "render_image"]
