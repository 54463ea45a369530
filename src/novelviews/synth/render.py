"""Batched PyTorch sphere tracer for :class:`~novelviews.synth.scenes.Scene`.

Conventions: ``c2w [N, 4, 4]`` OpenGL camera-to-world (x right, y up, camera looks
along -z); ``K [N, 3, 3]`` pinhole intrinsics in pixels with pixel ``(i, j)`` centred
at ``(i + 0.5, j + 0.5)`` (u right, v down); depth is **z-depth** (distance along the
camera's optical axis, not the ray length), ``0`` where no surface is hit; world z-up.

Algorithm (all rays of all views at once, in chunks of ``chunk`` rays):

1. rays from ``K``/``c2w`` (:func:`ray_directions`; the chunked path computes the same
   rays from flat pixel indices);
2. each ray is clipped against the primitives' bounding spheres and the ground plane
   (intersected analytically, never marched); rays that miss every bound skip the march;
3. sphere tracing of the union of the primitives' exact SDFs with a hit threshold
   relative to the distance travelled (``eps_rel * t``), a step cap, and **active-ray
   compaction** (finished rays are dropped from the working set every step, so they
   cost nothing); converged hits are refined by two Newton steps along the ray;
4. normals by central differences of the SDF; Lambert + hemispheric sky ambient +
   Blinn-Phong specular, soft shadows by a second sphere-traced march toward the
   light (penumbra ``min(k h / t)``), a short ambient-occlusion probe, distance fog;
5. supersampling (``spp x spp`` sub-pixel grid, plus the centre for even ``spp``)
   averages colours; depth and masks always come from the pixel-centre ray.

Every operation is per-ray elementwise, so a ray's result does not depend on the
chunk or batch it was traced in, up to the last bit of vectorised CPU math (colours
may differ by ~1e-7 between chunkings; the same call is bitwise deterministic):
re-rendering a subset of cameras reproduces the same pixels.
"""

from __future__ import annotations

import math

import torch

from ..cameras import ray_directions  # noqa: F401 - re-exported (synth.ray_directions)
from .scenes import BOX, CHECKER, CYLINDER, NOISE, PHOTO, SPHERE, STRIPES, TORUS, Scene
from .scenes.photo_textures import triplanar

_INF = float("inf")


# --------------------------------------------------------------------------- rays


def _as_tensor(x, device=None) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.float64).to(device)


def _chunk_rays(flat: torch.Tensor, cams: torch.Tensor, height: int, width: int,
                offset) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rays (float32) of the flat pixel indices ``flat`` (view * H * W + row * W + col).

    ``offset``: sub-pixel sample position, a pair or per-ray ``[M, 2]`` (0.5 = centre).

    ``cams [N, 17]`` per view: fx, fy, cx, cy, R (row-major 9), t (3), float32.
    Returns origins, unit directions, the view's forward axis (for z-depth) and the
    per-ray angular pixel size ``1 / fy`` (for texture filtering).
    """
    hw = height * width
    view = torch.div(flat, hw, rounding_mode="floor")
    pix = flat - view * hw
    row = torch.div(pix, width, rounding_mode="floor")
    col = pix - row * width
    c = cams[view]  # [M, 17]
    off = torch.as_tensor(offset, dtype=torch.float32, device=flat.device).reshape(-1, 2)
    x = (col.to(torch.float32) + off[:, 0] - c[:, 2]) / c[:, 0]
    y = -(row.to(torch.float32) + off[:, 1] - c[:, 3]) / c[:, 1]
    R = c[:, 4:13]
    d = torch.stack([R[:, 0] * x + R[:, 1] * y - R[:, 2],
                     R[:, 3] * x + R[:, 4] * y - R[:, 5],
                     R[:, 6] * x + R[:, 7] * y - R[:, 8]], dim=-1)
    d = d / torch.sqrt((d * d).sum(-1, keepdim=True))
    fwd = -torch.stack([R[:, 2], R[:, 5], R[:, 8]], dim=-1)
    return c[:, 13:16], d, fwd, 1.0 / c[:, 1]


# --------------------------------------------------------------------------- SDF


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1)


def primitive_sdf(scene: Scene, p: torch.Tensor) -> torch.Tensor:
    """Signed distance ``[M, P]`` of points ``p [M, 3]`` (world) to each primitive (exact SDFs)."""
    q = p[:, None, :] - scene.center[None]  # [M, P, 3]
    R = scene.rotation
    # local coordinates: x_i = sum_j q_j R[j, i]   (R is local -> world)
    x = q[..., 0:1] * R[:, 0, :] + q[..., 1:2] * R[:, 1, :] + q[..., 2:3] * R[:, 2, :]
    parts = []
    for kind, s, e in scene.groups():
        xs, prm = x[:, s:e], scene.params[s:e]
        if kind == SPHERE:
            d = torch.sqrt(_dot(xs, xs)) - prm[:, 0]
        elif kind == BOX:
            rr = prm[:, 3]
            qd = xs.abs() - (prm[:, :3] - rr[:, None])
            out = qd.clamp_min(0.0)
            d = torch.sqrt(_dot(out, out)) + qd.amax(-1).clamp_max(0.0) - rr
        elif kind == CYLINDER:
            dx = torch.sqrt(xs[..., 0] ** 2 + xs[..., 1] ** 2) - prm[:, 0]
            dy = xs[..., 2].abs() - prm[:, 1]
            d = torch.maximum(dx, dy).clamp_max(0.0) + torch.sqrt(
                dx.clamp_min(0.0) ** 2 + dy.clamp_min(0.0) ** 2)
        elif kind == TORUS:
            qx = torch.sqrt(xs[..., 0] ** 2 + xs[..., 1] ** 2) - prm[:, 0]
            d = torch.sqrt(qx * qx + xs[..., 2] ** 2) - prm[:, 1]
        else:  # pragma: no cover - build_scene validates kinds
            raise ValueError(f"unknown primitive kind {kind}")
        parts.append(d)
    if not parts:
        return p.new_full((p.shape[0], 0), _INF)
    return torch.cat(parts, dim=1)


def scene_sdf(scene: Scene, p: torch.Tensor) -> torch.Tensor:
    """Distance ``[M]`` from points ``[M, 3]`` to the union of the primitives (ground excluded)."""
    if scene.num_primitives == 0:
        return p.new_full((p.shape[0],), _INF)
    return primitive_sdf(scene, p).amin(dim=1)


def _bounds(scene: Scene, o: torch.Tensor, d: torch.Tensor, extra: torch.Tensor | float = 0.0
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray interval ``[t0, t1]`` covering all (inflated) bounding spheres; t0 > t1 if none."""
    if scene.num_primitives == 0:
        n = o.shape[0]
        return o.new_full((n,), _INF), o.new_full((n,), -_INF)
    oc = o[:, None, :] - scene.center[None]  # [M, P, 3]
    b = _dot(oc, d[:, None, :])
    r = scene.bound[None] * 1.001 + 1e-4 + extra
    disc = b * b - (_dot(oc, oc) - r * r)
    ok = disc > 0
    sq = torch.sqrt(disc.clamp_min(0.0))
    t_in = torch.where(ok, -b - sq, _INF).amin(1)
    t_out = torch.where(ok, -b + sq, -_INF).amax(1)
    return t_in, t_out


# --------------------------------------------------------------------------- marching


def _compact_every(device: torch.device) -> int:
    """Steps between compactions: every step on CPU (work saved), every 4 on GPU (syncs saved)."""
    return 1 if device.type == "cpu" else 4


def march(scene: Scene, o: torch.Tensor, d: torch.Tensor, t0: torch.Tensor, t1: torch.Tensor,
          max_steps: int = 128, eps_rel: float = 2e-4, eps_abs: float = 1e-5,
          compact_every: int | None = None) -> torch.Tensor:
    """Sphere-trace rays against the primitives; ray length of the first hit in ``[t0, t1]``, or inf.

    Fast path with active-ray compaction: every ``compact_every`` steps finished rays
    leave the working set (in between they are frozen, so the result does not depend
    on the interval). A ray converges when the SDF falls below ``eps_rel * t + eps_abs``;
    rays still running after ``max_steps`` count as hits if within 20 thresholds of a
    surface (grazing silhouettes). Hits are refined by two Newton steps along the ray
    (:func:`_refine`), exact even at grazing incidence.
    """
    M = o.shape[0]
    every = compact_every or _compact_every(o.device)
    t_hit = o.new_full((M,), _INF)
    idx = torch.nonzero(t0 <= t1).squeeze(1)
    t, te, oa, da = t0[idx].clamp_min(0.0), t1[idx], o[idx], d[idx]
    active = torch.ones_like(t, dtype=torch.bool)
    hit = torch.zeros_like(active)
    for step in range(max_steps):
        dist = scene_sdf(scene, oa + da * t[:, None])
        h = active & (dist < eps_rel * t + eps_abs)
        hit = hit | h
        t_next = t + dist
        go = active & ~h
        active = go & (t_next <= te)
        t = torch.where(active, t_next, t)
        if (step + 1) % every == 0 or step == max_steps - 1:
            t_hit[idx[hit]] = t[hit]
            keep = active
            idx, t, te, oa, da, active = idx[keep], t[keep], te[keep], oa[keep], da[keep], active[keep]
            hit = torch.zeros_like(active)
            if idx.numel() == 0:
                break
    if idx.numel():
        dist = scene_sdf(scene, oa + da * t[:, None])
        near = dist < 20 * (eps_rel * t + eps_abs)
        t_hit[idx[near]] = t[near]
    hit_idx = torch.nonzero(torch.isfinite(t_hit)).squeeze(1)
    if hit_idx.numel():
        t_hit[hit_idx] = _refine(scene, o[hit_idx], d[hit_idx], t_hit[hit_idx])
    return t_hit


def _refine(scene: Scene, o: torch.Tensor, d: torch.Tensor, t: torch.Tensor, iters: int = 2) -> torch.Tensor:
    """Newton steps on ``f(t) = sdf(o + d t)`` along each ray (derivative by central differences).

    Sphere tracing stops at ``sdf < eps``, i.e. ``eps / cos(incidence)`` before the
    surface along the ray: large at grazing angles. Newton's step ``-f / f'`` removes
    that (quadratically); steps are clamped to ``2 %`` of ``t`` and skipped where the ray
    does not enter the surface (``f' >= -0.01``).
    """
    for _ in range(iters):
        h = (1e-4 * t).clamp_min(1e-5)
        pts = torch.cat([o + d * t[:, None], o + d * (t + h)[:, None], o + d * (t - h)[:, None]], 0)
        f = scene_sdf(scene, pts).reshape(3, -1)
        slope = (f[1] - f[2]) / (2 * h)
        step = torch.where(slope < -0.01, -f[0] / slope.clamp_max(-0.01), f[0])
        t = t + torch.maximum(torch.minimum(step, 0.02 * t), -0.02 * t)
    return t


def march_reference(scene: Scene, o: torch.Tensor, d: torch.Tensor, t0: torch.Tensor,
                    t1: torch.Tensor, max_steps: int = 128, eps_rel: float = 2e-4,
                    eps_abs: float = 1e-5) -> torch.Tensor:
    """Slow, obviously-correct reference of :func:`march`: every ray every step, no compaction."""
    t = t0.clamp_min(0.0).clone()
    alive = t0 <= t1
    t_hit = torch.full_like(t, _INF)
    for _ in range(max_steps):
        dist = scene_sdf(scene, o + d * t[:, None])
        hit = alive & (dist < eps_rel * t + eps_abs)
        t_hit = torch.where(hit, t, t_hit)
        t_next = t + dist
        alive = alive & ~hit & (t_next <= t1)
        t = torch.where(alive, t_next, t)
    dist = scene_sdf(scene, o + d * t[:, None])
    t_hit = torch.where(alive & (dist < 20 * (eps_rel * t + eps_abs)), t, t_hit)
    fin = torch.isfinite(t_hit)
    return torch.where(fin, _refine(scene, o, d, torch.where(fin, t_hit, 1.0)), t_hit)


def soft_shadow(scene: Scene, p: torch.Tensor, max_steps: int = 48,
                compact_every: int | None = None) -> torch.Tensor:
    """Visibility ``[M]`` in [0, 1] of the light from points ``p`` (already offset off the surface).

    Marches toward ``scene.light_dir`` accumulating the penumbra estimate
    ``min(k * h / t)`` (``k = scene.shadow_k``); rays that miss every bounding sphere,
    inflated by the penumbra width, are fully lit without marching.
    """
    M = p.shape[0]
    res = p.new_ones(M)
    if scene.num_primitives == 0 or M == 0:
        return res
    L = scene.light_dir.expand(M, 3)
    k = scene.shadow_k
    dist_c = torch.sqrt(_dot(p[:, None, :] - scene.center[None], p[:, None, :] - scene.center[None]))
    margin = (dist_c + scene.bound[None]) / k  # [M, P] penumbra width at the far side
    t0, t1 = _bounds(scene, p, L, extra=margin)
    idx = torch.nonzero(t0 <= t1).squeeze(1)
    t = torch.maximum(t0[idx], torch.full_like(t0[idx], 1e-3))
    te, pa, r = t1[idx], p[idx], res[idx]
    La = scene.light_dir[None]
    active = torch.ones_like(t, dtype=torch.bool)
    every = compact_every or _compact_every(p.device)
    for step in range(max_steps):
        if idx.numel() == 0:
            break
        h = scene_sdf(scene, pa + La * t[:, None])
        r = torch.where(active, torch.minimum(r, k * h / t), r)
        t = torch.where(active, t + h.clamp_min(0.004 + 0.002 * t), t)
        active = active & (r >= 1e-3) & (t <= te)
        if (step + 1) % every == 0:
            done = ~active
            res[idx[done]] = r[done]
            idx, t, te, pa, r, active = idx[active], t[active], te[active], pa[active], r[active], active[active]
    if idx.numel():
        res[idx] = r
    res = res.clamp(0.0, 1.0)
    return res * res * (3.0 - 2.0 * res)


def _normals(scene: Scene, p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Unit normals by central differences of the SDF, step relative to the ray length."""
    h = (5e-4 * t).clamp_min(1e-4)[:, None]
    M = p.shape[0]
    offs = torch.eye(3, device=p.device, dtype=p.dtype)
    pts = torch.cat([p[None] + h[None] * offs[:, None, :], p[None] - h[None] * offs[:, None, :]], 0)
    d = scene_sdf(scene, pts.reshape(-1, 3)).reshape(6, M)
    n = (d[:3] - d[3:]).T
    return n / torch.sqrt(_dot(n, n)).clamp_min(1e-12)[:, None]


def _ambient_occlusion(scene: Scene, p: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """A 5-tap SDF ambient-occlusion estimate in [0, 1] (1 = open)."""
    M = p.shape[0]
    ao = p.new_ones(M)
    if scene.num_primitives == 0 or M == 0:
        return ao
    gap = torch.sqrt(_dot(p[:, None, :] - scene.center[None], p[:, None, :] - scene.center[None]))
    near = torch.nonzero((gap - scene.bound[None]).amin(1) < 0.5).squeeze(1)
    if near.numel() == 0:
        return ao
    pn, nn = p[near], n[near]
    hs = torch.tensor([0.02, 0.08, 0.16, 0.26, 0.4], device=p.device, dtype=p.dtype)
    pts = pn[None] + hs[:, None, None] * nn[None]
    dist = scene_sdf(scene, pts.reshape(-1, 3)).reshape(5, -1)
    w = torch.tensor([1.0, 0.7, 0.5, 0.35, 0.25], device=p.device, dtype=p.dtype)
    occ = ((hs[:, None] - dist).clamp_min(0.0) * w[:, None]).sum(0)
    ao[near] = (1.0 - 2.0 * occ).clamp(0.0, 1.0)
    return ao


# --------------------------------------------------------------------------- shading


def _to_local(v: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """World vectors ``v [M, 3]`` in the frames of local -> world rotations ``R [M, 3, 3]``: ``R^T v``."""
    return v[:, 0:1] * R[:, 0, :] + v[:, 1:2] * R[:, 1, :] + v[:, 2:3] * R[:, 2, :]


def _albedo(scene: Scene, mat: torch.Tensor, x: torch.Tensor, footprint: torch.Tensor,
            normal: torch.Tensor | None = None) -> torch.Tensor:
    """Texture colour ``[M, 3]`` of material rows ``mat`` at local coordinates ``x [M, 3]``.

    ``footprint`` is the pixel size in scene units at the point; texture contrast fades
    as cells shrink below a couple of pixels (cheap anti-aliasing / mip filtering).
    ``normal``: local unit normals ``[M, 3]``, needed by ``photo`` materials (triplanar
    mapping with trilinear mip filtering, :mod:`~novelviews.synth.scenes.photo_textures`).
    """
    a, b = scene.mat_color_a[mat], scene.mat_color_b[mat]
    tex = scene.mat_texture[mat]
    scale = scene.mat_scale[mat]
    y = x * scale[:, None] + scene.mat_offset[mat]
    cells = footprint * scale  # texture cycles per pixel
    fade = (1.0 - 2.0 * cells).clamp(0.0, 1.0)
    checker = torch.remainder(torch.floor(y).sum(-1), 2.0)
    stripes = (torch.sin(2 * math.pi * _dot(y, scene.mat_axis[mat])) > 0).to(y.dtype)
    w = scene.mat_waves[mat]  # [M, K, 4]
    freq = torch.sqrt(_dot(w[..., :3], w[..., :3]))
    wfade = (1.0 - 0.7 * freq * cells[:, None]).clamp(0.0, 1.0)
    s = (torch.sin(_dot(y[:, None, :], w[..., :3]) + w[..., 3]) * wfade).sum(-1)
    noise = 0.5 + 0.5 * torch.tanh(s / math.sqrt(w.shape[1] / 2.0))
    v = torch.where(tex == CHECKER, 0.5 + (checker - 0.5) * fade,
                    torch.where(tex == STRIPES, 0.5 + (stripes - 0.5) * fade,
                                torch.where(tex == NOISE, noise, torch.zeros_like(noise))))
    col = a + (b - a) * v[:, None]
    if scene.photos is not None and scene.mat_photo is not None:
        rows = torch.nonzero(tex == PHOTO).squeeze(1)
        if rows.numel():
            if normal is None:
                raise ValueError("photo materials need the local normals")
            col[rows] = a[rows] * triplanar(scene.photos, scene.mat_photo[mat[rows]], y[rows], normal[rows],
                                            cells[rows])
    return col


def _sky(scene: Scene, d: torch.Tensor) -> torch.Tensor:
    e = d[:, 2].clamp(0.0, 1.0) ** 0.6
    col = scene.sky_horizon + (scene.sky_zenith - scene.sky_horizon) * e[:, None]
    sun = _dot(d, scene.light_dir[None]).clamp_min(0.0) ** 400
    return col + 0.6 * sun[:, None] * scene.light_color


def trace(scene: Scene, o: torch.Tensor, d: torch.Tensor, pixel_angle: torch.Tensor, *,
          shadows: bool = True, ao: bool = True, max_steps: int = 128, eps_rel: float = 2e-4
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Trace and shade rays: ``(rgb [M, 3] in [0, 1], t [M] ray length (inf = sky), what [M])``.

    ``what`` is 0 for sky, 1 for ground, 2 for an object. ``o``/``d`` world-space origins
    and unit directions (float32); ``pixel_angle`` the angular size of a pixel (radians).
    """
    M = o.shape[0]
    far = scene.far
    t_ground = _ground_t(scene, o, d)
    t0, t1 = _bounds(scene, o, d)
    t1 = torch.minimum(t1, torch.minimum(t_ground, o.new_full((M,), far)))
    t_obj = march(scene, o, d, t0, t1, max_steps=max_steps, eps_rel=eps_rel)
    is_obj = torch.isfinite(t_obj)
    is_ground = ~is_obj & torch.isfinite(t_ground)
    what = is_obj.to(torch.int64) * 2 + is_ground.to(torch.int64)
    t = torch.where(is_obj, t_obj, t_ground)

    rgb = _sky(scene, d)
    hit = torch.nonzero(what > 0).squeeze(1)
    if hit.numel():
        oh, dh, th = o[hit], d[hit], t[hit]
        ph = oh + dh * th[:, None]
        obj = what[hit] == 2
        P = scene.num_primitives
        n = torch.zeros_like(ph)
        n[:, 2] = 1.0
        mat = torch.full((hit.numel(),), P, dtype=torch.int64, device=o.device)
        x = ph.clone()
        # triplanar photo mapping needs the normals in the primitives' frames (the ground's is +z)
        n_local = n.clone() if scene.photos is not None else None
        oi = torch.nonzero(obj).squeeze(1)
        if oi.numel():
            po = ph[oi]
            n[oi] = _normals(scene, po, th[oi])
            m = primitive_sdf(scene, po).argmin(1)
            mat[oi] = m
            Rm = scene.rotation[m]  # local -> world
            x[oi] = _to_local(po - scene.center[m], Rm)
            if n_local is not None:
                n_local[oi] = _to_local(n[oi], Rm)
        cos_v = _dot(n, dh).abs().clamp_min(0.15)
        footprint = th * pixel_angle[hit] / cos_v
        albedo = _albedo(scene, mat, x, footprint, n_local)
        L = scene.light_dir[None]
        ndl = _dot(n, L).clamp_min(0.0)
        vis = torch.ones_like(ndl)
        lit = torch.nonzero(ndl > 0).squeeze(1)
        if shadows and lit.numel():
            start = ph[lit] + n[lit] * (2e-3 + 1e-3 * th[lit])[:, None]
            vis[lit] = soft_shadow(scene, start)
        occl = _ambient_occlusion(scene, ph, n) if ao else torch.ones_like(ndl)
        sky_amb = scene.sky_horizon + (scene.sky_zenith - scene.sky_horizon) * (0.5 + 0.5 * n[:, 2:3])
        sky_amb = sky_amb / sky_amb.mean(-1, keepdim=True).clamp_min(1e-3)
        light = scene.ambient * occl[:, None] * sky_amb + (ndl * vis)[:, None] * scene.light_color
        col = albedo * light
        half = L - dh
        half = half / torch.sqrt(_dot(half, half)).clamp_min(1e-9)[:, None]
        spec = scene.mat_specular[mat] * _dot(n, half).clamp_min(0.0) ** scene.mat_shininess[mat]
        col = col + (spec * vis * (ndl > 0).to(col.dtype))[:, None] * scene.light_color
        fog = 1.0 - torch.exp(-scene.fog_density * th)
        edge = ((th - 0.5 * far) / (0.5 * far)).clamp(0.0, 1.0)
        fog = torch.maximum(fog, edge * edge * (3 - 2 * edge))
        horizon = _sky(scene, torch.nn.functional.normalize(dh * dh.new_tensor([1.0, 1.0, 0.0]) + 1e-9, dim=-1))
        rgb[hit] = col + (horizon - col) * fog[:, None]
    return rgb.clamp(0.0, 1.0), t, what


# --------------------------------------------------------------------------- public render


def _samples(spp: int) -> list[tuple[float, float]]:
    """Sub-pixel sample positions: an ``spp x spp`` grid, plus the centre when ``spp`` is even."""
    g = [(i + 0.5) / spp for i in range(spp)]
    grid = [(x, y) for y in g for x in g]
    return grid if (0.5, 0.5) in grid else grid + [(0.5, 0.5)]


def render(scene: Scene, c2w, K, height: int, width: int, *, device=None, chunk: int | None = None,
           spp: int = 1, shadows: bool = True, ao: bool = True, max_steps: int = 128,
           eps_rel: float = 2e-4) -> dict[str, torch.Tensor]:
    """Render views of ``scene``.

    Args:
        scene: the scene (moved to ``device``).
        c2w: ``[N, 4, 4]`` OpenGL camera-to-world (x right, y up, looking along -z).
        K: ``[N, 3, 3]`` (or ``[3, 3]``, shared) intrinsics in pixels, pixel centres at +0.5.
        height, width: image size in pixels.
        device: where to trace (default: the scene's device).
        chunk: rays per batch (default 2**17 on CPU, 2**22 on GPU); all sub-pixel
            samples of all views share one ray index space, so few large batches run.
        spp: supersampling: an ``spp x spp`` grid of sub-pixel samples (plus the pixel
            centre when ``spp`` is even), averaged for ``rgb``.
        shadows / ao: soft shadows and ambient occlusion on/off.
        max_steps / eps_rel: sphere-tracing step cap and relative hit threshold.

    Returns (on ``device``): ``rgb [N, H, W, 3]`` float32 in [0, 1]; ``depth [N, H, W]``
    float32 z-depth (0 for sky); ``mask [N, H, W]`` bool (objects or ground hit);
    ``object_mask [N, H, W]`` bool (objects only). Depth and masks come from the
    pixel-centre ray.
    """
    device = torch.device(device) if device is not None else scene.device
    scene = scene.to(device)
    c2w = _as_tensor(c2w).reshape(-1, 4, 4)
    N = c2w.shape[0]
    K = _as_tensor(K).reshape(-1, 3, 3).expand(N, 3, 3)
    if spp < 1:
        raise ValueError("spp must be >= 1")
    cams = torch.cat([K[:, 0, 0:1], K[:, 1, 1:2], K[:, 0, 2:3], K[:, 1, 2:3],
                      c2w[:, :3, :3].reshape(N, 9), c2w[:, :3, 3]], dim=1).to(device, torch.float32)
    if chunk is None:
        chunk = 2**22 if device.type == "cuda" else 2**17
    total = N * height * width
    samples = _samples(spp)
    centre = samples.index((0.5, 0.5))
    offs = torch.tensor(samples, dtype=torch.float32, device=device)
    rgb = torch.zeros(total, 3, device=device)
    depth = torch.zeros(total, device=device)
    what = torch.zeros(total, dtype=torch.int64, device=device)
    n_rays = len(samples) * total  # ray index = sample * total + flat pixel index
    for s in range(0, n_rays, chunk):
        e = min(s + chunk, n_rays)
        g = torch.arange(s, e, device=device)
        samp = torch.div(g, total, rounding_mode="floor")
        flat = g - samp * total
        o, d, fwd, pix = _chunk_rays(flat, cams, height, width, offs[samp])
        c, t, w = trace(scene, o, d, pix / spp, shadows=shadows, ao=ao, max_steps=max_steps,
                        eps_rel=eps_rel)
        # a chunk spans contiguous pixel ranges of one or more samples: accumulate in order
        for k in range(s // total, (e - 1) // total + 1):
            a0, a1 = max(s, k * total) - s, min(e, (k + 1) * total) - s
            f0, f1 = a0 + s - k * total, a1 + s - k * total
            rgb[f0:f1] += c[a0:a1]
            if k == centre:
                depth[f0:f1] = torch.where(w[a0:a1] > 0, t[a0:a1] * _dot(d[a0:a1], fwd[a0:a1]), 0.0)
                what[f0:f1] = w[a0:a1]
    rgb = rgb / len(samples)
    return {
        "rgb": rgb.reshape(N, height, width, 3),
        "depth": depth.reshape(N, height, width),
        "mask": (what > 0).reshape(N, height, width),
        "object_mask": (what == 2).reshape(N, height, width),
    }


def _ground_t(scene: Scene, o: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    if not scene.ground:
        return o.new_full((o.shape[0],), _INF)
    going_down = (d[:, 2] < -1e-9) & (o[:, 2] > 0)
    t = torch.where(going_down, -o[:, 2] / torch.where(going_down, d[:, 2], -1.0), _INF)
    return torch.where(t < scene.far, t, _INF)


__all__ = ["render", "ray_directions", "trace", "march", "march_reference", "soft_shadow",
           "primitive_sdf", "scene_sdf"]
