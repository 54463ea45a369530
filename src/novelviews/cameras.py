"""Cameras: conventions, intrinsics, look-at, paths, relative-pose embeddings, nearest cameras.

Conventions (see docs/ARCHITECTURE.md):

* ``c2w`` is a 4x4 camera-to-world matrix with **OpenGL camera axes** (x right, y up,
  the camera looks along -z) unless a function's name says ``opencv``. OpenCV axes are
  x right, y down, z forward; the two differ by flipping the camera's y and z axes.
* ``K`` is a 3x3 pinhole matrix in pixels, pixel (i, j) centred at (i + 0.5, j + 0.5).
* ``fov`` is the vertical field of view in radians.
* Spherical coordinates (z-up world, as the reference's single-image setup): a point at
  elevation ``e``, azimuth ``a``, radius ``r`` is ``r * (cos e cos a, cos e sin a, sin e)``.

All functions are batched over leading dimensions and work in float64 by default
(poses are small; precision is free). Inputs may be numpy arrays or tensors.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal, Sequence

import torch

from .errors import CameraError

CameraMode = Literal["3dof", "6dof+1"]
EMBEDDING_DIMS: dict[str, int] = {"3dof": 4, "6dof+1": 19}
PATH_KINDS = ("orbit", "spiral", "zoom", "pan", "dolly", "wiggle")

_FLIP_YZ = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))


def _t(x, dtype=torch.float64) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(dtype)
    return torch.as_tensor(x, dtype=dtype)


# --------------------------------------------------------------------------- validation


def validate_poses(c2w, what: str = "camera", atol: float = 1e-3) -> torch.Tensor:
    """Check camera-to-world matrices and return them as float64 ``[N, 4, 4]``.

    Accepts ``[4, 4]``, ``[3, 4]``, ``[N, 4, 4]`` or ``[N, 3, 4]``. Raises
    :class:`CameraError` naming the first bad camera: wrong shape, NaN/inf, a
    rotation that is not orthonormal or has det != +1, or a bottom row that is not
    ``[0, 0, 0, 1]``.
    """
    try:
        m = _t(c2w)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CameraError(f"{what} poses are not a numeric array: {exc}") from None
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3 or m.shape[-1] != 4 or m.shape[-2] not in (3, 4):
        raise CameraError(
            f"{what} poses must have shape [4, 4], [3, 4], [N, 4, 4] or [N, 3, 4]; got {list(m.shape)}"
        )
    if m.shape[-2] == 3:
        bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=m.dtype).expand(m.shape[0], 1, 4)
        m = torch.cat([m, bottom], dim=1)
    for i in range(m.shape[0]):
        mi = m[i]
        if not torch.isfinite(mi).all():
            raise CameraError(f"{what} {i}: pose contains NaN or inf")
        if not torch.allclose(mi[3], torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=mi.dtype), atol=atol):
            raise CameraError(f"{what} {i}: bottom row of the 4x4 pose must be [0, 0, 0, 1], got {mi[3].tolist()}")
        r = mi[:3, :3]
        err = (r.T @ r - torch.eye(3, dtype=r.dtype)).abs().max().item()
        if err > atol:
            raise CameraError(
                f"{what} {i}: rotation is not orthonormal (max |R^T R - I| = {err:.3g}); "
                "poses must be rigid camera-to-world matrices without scale"
            )
        det = torch.linalg.det(r).item()
        if det < 0:
            raise CameraError(
                f"{what} {i}: rotation has det {det:.3f} (a reflection); "
                "check the camera convention (flip one axis) of your poses"
            )
    return m


def validate_intrinsics(K, what: str = "camera") -> torch.Tensor:
    """Check 3x3 pinhole matrices (positive focal lengths, finite); returns float64 [N, 3, 3]."""
    k = _t(K)
    if k.ndim == 2:
        k = k[None]
    if k.ndim != 3 or k.shape[-2:] != (3, 3):
        raise CameraError(f"{what} intrinsics must have shape [3, 3] or [N, 3, 3]; got {list(k.shape)}")
    for i in range(k.shape[0]):
        if not torch.isfinite(k[i]).all():
            raise CameraError(f"{what} {i}: intrinsics contain NaN or inf")
        if k[i, 0, 0] <= 0 or k[i, 1, 1] <= 0:
            raise CameraError(f"{what} {i}: focal lengths must be positive, got fx={k[i,0,0]:.4g}, fy={k[i,1,1]:.4g}")
    return k


# --------------------------------------------------------------------------- conventions


def opencv_to_opengl(c2w) -> torch.Tensor:
    """Camera-to-world with OpenCV axes (x right, y down, z forward) -> OpenGL axes.

    Flips the camera's y and z axes (right-multiplication by diag(1, -1, -1, 1)); the
    camera centre is unchanged. The map is its own inverse.
    """
    m = _t(c2w)
    return m @ _FLIP_YZ.to(m.dtype)


def opengl_to_opencv(c2w) -> torch.Tensor:
    """Camera-to-world with OpenGL axes (x right, y up, z back) -> OpenCV axes."""
    return opencv_to_opengl(c2w)


def invert_pose(c2w) -> torch.Tensor:
    """Inverse of rigid 4x4 transforms (exact: R^T, -R^T t)."""
    m = _t(c2w)
    r = m[..., :3, :3]
    t = m[..., :3, 3:]
    out = torch.zeros_like(m)
    out[..., :3, :3] = r.transpose(-1, -2)
    out[..., :3, 3:] = -r.transpose(-1, -2) @ t
    out[..., 3, 3] = 1.0
    return out


# --------------------------------------------------------------------------- intrinsics


def intrinsics_from_fov(fov_y, width: int, height: int, fov_x=None) -> torch.Tensor:
    """Pinhole K (pixels) from the vertical fov (radians); square pixels unless fov_x is given.

    The principal point is the image centre (width / 2, height / 2).
    """
    fov_y = _t(fov_y)
    fy = 0.5 * height / torch.tan(0.5 * fov_y)
    fx = fy if fov_x is None else 0.5 * width / torch.tan(0.5 * _t(fov_x))
    return intrinsics_from_focal(fx, fy, width / 2.0, height / 2.0)


def intrinsics_from_focal(fx, fy, cx, cy) -> torch.Tensor:
    """K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] (pixels), batched over the inputs."""
    fx, fy, cx, cy = torch.broadcast_tensors(_t(fx), _t(fy), _t(cx), _t(cy))
    K = torch.zeros(fx.shape + (3, 3), dtype=torch.float64)
    K[..., 0, 0] = fx
    K[..., 1, 1] = fy
    K[..., 0, 2] = cx
    K[..., 1, 2] = cy
    K[..., 2, 2] = 1.0
    return K


def fov_from_intrinsics(K, height) -> torch.Tensor:
    """Vertical fov (radians) of a pinhole K for an image of the given height (pixels)."""
    K = _t(K)
    return 2.0 * torch.atan(0.5 * _t(height) / K[..., 1, 1])


# --------------------------------------------------------------------------- look-at, spherical


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> torch.Tensor:
    """OpenGL camera-to-world at ``eye`` looking at ``target`` with world ``up`` (batched).

    The camera's -z axis points from eye to target; its x axis is horizontal with respect
    to ``up``. Raises CameraError if the view direction is parallel to ``up``.
    """
    eye, target, up = torch.broadcast_tensors(_t(eye), _t(target), _t(up))
    fwd = target - eye
    n = fwd.norm(dim=-1, keepdim=True)
    if (n < 1e-12).any():
        raise CameraError("look_at: eye and target coincide")
    fwd = fwd / n
    right = torch.linalg.cross(fwd, up, dim=-1)
    rn = right.norm(dim=-1, keepdim=True)
    if (rn < 1e-9).any():
        raise CameraError("look_at: the view direction is parallel to the up vector; choose another up")
    right = right / rn
    cam_up = torch.linalg.cross(right, fwd, dim=-1)
    c2w = torch.zeros(eye.shape[:-1] + (4, 4), dtype=torch.float64)
    c2w[..., :3, 0] = right
    c2w[..., :3, 1] = cam_up
    c2w[..., :3, 2] = -fwd
    c2w[..., :3, 3] = eye
    c2w[..., 3, 3] = 1.0
    return c2w


def spherical_to_cartesian(elevation, azimuth, radius) -> torch.Tensor:
    """(elevation, azimuth, radius) in radians / scene units -> xyz, z-up world."""
    e, a, r = torch.broadcast_tensors(_t(elevation), _t(azimuth), _t(radius))
    return torch.stack([r * torch.cos(e) * torch.cos(a), r * torch.cos(e) * torch.sin(a), r * torch.sin(e)], -1)


def cartesian_to_spherical(xyz) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """xyz (z-up) -> (elevation, azimuth in (-pi, pi], radius)."""
    p = _t(xyz)
    r = p.norm(dim=-1)
    elev = torch.asin(torch.clamp(p[..., 2] / r.clamp_min(1e-12), -1.0, 1.0))
    az = torch.atan2(p[..., 1], p[..., 0])
    return elev, az, r


def camera_on_sphere(elevation, azimuth, radius, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)) -> torch.Tensor:
    """OpenGL c2w of a camera at (elevation, azimuth, radius) around ``target`` looking at it.

    The reference's single-image convention (docs/REFERENCE.md): elevation e, azimuth a, distance d
    -> position d (cos e cos a, cos e sin a, sin e).
    """
    eye = spherical_to_cartesian(elevation, azimuth, radius) + _t(target)
    return look_at(eye, _t(target).expand_as(eye), up)


def orbit_about_vertical(c2w_in, azimuth_offsets, elevation_offsets=None, min_elevation: float = -math.pi / 2 + 1e-3,
                         max_elevation: float = math.pi / 2 - 1e-3) -> torch.Tensor:
    """Cameras orbiting the input camera's look-at point: ``[N, 4, 4]`` OpenGL c2w.

    The input camera (``c2w_in [4, 4]``, z-up world) is moved on its sphere about the world
    origin by ``azimuth_offsets [N]`` (radians, about the z axis) and ``elevation_offsets [N]``
    (radians, default 0; the new elevation is clipped to ``[min_elevation, max_elevation]``),
    keeping its distance from the origin, and turned to look at the point of its optical axis
    nearest the origin (the origin itself for a ``camera_on_sphere`` input). Offsets of 0 give
    the input camera back (a look-at input; up to rounding).
    """
    c2w_in = _t(c2w_in)
    if c2w_in.shape != (4, 4):
        raise CameraError(f"orbit_about_vertical: c2w_in must be one [4, 4] pose, got {tuple(c2w_in.shape)}")
    d_az = _t(azimuth_offsets).reshape(-1)
    d_el = torch.zeros_like(d_az) if elevation_offsets is None else _t(elevation_offsets).reshape(-1)
    if d_el.shape != d_az.shape:
        raise CameraError(f"orbit_about_vertical: {d_az.numel()} azimuth offsets but {d_el.numel()} elevation offsets")
    eye = c2w_in[:3, 3]
    elev, az, r = cartesian_to_spherical(eye)
    fwd = -c2w_in[:3, 2]
    target = eye + fwd * float(-(eye @ fwd))  # the optical axis' point nearest the origin
    e = torch.clamp(elev + d_el, min_elevation, max_elevation)
    return look_at(spherical_to_cartesian(e, az + d_az, r), target.expand(d_az.numel(), 3))


# --------------------------------------------------------------------------- relative pose embeddings


def embedding_dim(mode: str) -> int:
    """Size of the camera embedding: 4 for ``3dof`` (Zero-1-to-3), 19 for ``6dof+1`` (ZeroNVS)."""
    if mode not in EMBEDDING_DIMS:
        raise CameraError(f"unknown camera mode '{mode}': choose one of {', '.join(EMBEDDING_DIMS)}")
    return EMBEDDING_DIMS[mode]


def embed_3dof(cond_c2w, target_c2w) -> torch.Tensor:
    """Zero-1-to-3 relative camera: ``[d_polar, sin(d_azimuth), cos(d_azimuth), d_radius]``.

    Uses the camera *centres* in spherical coordinates around the world origin (polar
    angle from +z, azimuth in the xy plane, radians). Batched: ``[..., 4, 4] -> [..., 4]``.
    The embedding depends only on camera positions, not on the camera axes convention.
    """
    c = _t(cond_c2w)[..., :3, 3]
    t = _t(target_c2w)[..., :3, 3]

    def polar_az_r(p):
        r = p.norm(dim=-1)
        polar = torch.atan2(p[..., :2].norm(dim=-1), p[..., 2])
        az = torch.atan2(p[..., 1], p[..., 0])
        return polar, az, r

    pc, ac, rc = polar_az_r(c)
    pt, at, rt = polar_az_r(t)
    d_az = torch.remainder(at - ac, 2 * math.pi)
    return torch.stack([pt - pc, torch.sin(d_az), torch.cos(d_az), rt - rc], dim=-1)


def depth_quantile_scale(depth, quantile: float = 0.2, stride: int = 4, min_scale: float = 0.01,
                         mask=None) -> torch.Tensor:
    """ZeroNVS scene scale: the ``quantile`` of the conditioning view's depth map.

    ``depth`` is ``[H, W]`` or ``[B, H, W]`` (z-depth); it is subsampled every ``stride``
    pixels in each direction, as the reference; pixels with depth <= 0 or non-finite (no
    surface), or outside ``mask``, are ignored. The result is clipped to ``>= min_scale``.
    """
    d = _t(depth)
    squeeze = d.ndim == 2
    if squeeze:
        d = d[None]
        mask = None if mask is None else _t(mask, torch.bool)[None]
    out = []
    for i in range(d.shape[0]):
        di = d[i, ::stride, ::stride]
        valid = torch.isfinite(di) & (di > 0)
        if mask is not None:
            valid &= _t(mask, torch.bool)[i, ::stride, ::stride]
        vals = di[valid]
        if vals.numel() == 0:
            raise CameraError(f"depth map {i} has no valid (positive, finite) pixels to compute a scene scale")
        out.append(torch.quantile(vals, quantile))
    s = torch.stack(out).clamp_min(min_scale)
    return s[0] if squeeze else s


def embed_6dof(cond_c2w, target_c2w, scale, fov, min_scale: float = 0.01) -> torch.Tensor:
    """ZeroNVS "6DoF+1 viewer" (``7dof_quantile_scale``) embedding, ``[..., 19]``.

    ``E = inv(cond_c2w) @ target_c2w`` (OpenGL axes); translation divided by the scene
    scale ``max(scale, min_scale)``; NaN -> 0, +-inf -> +-10; ``t -> 5 tanh(t / 10)``; the
    4x4 flattened row-major (16 values) followed by ``[fov, sin fov, cos fov]`` (radians).
    """
    c = _t(cond_c2w)
    t = _t(target_c2w)
    E = invert_pose(c) @ t
    s = _t(scale).clamp_min(min_scale)
    trans = E[..., :3, 3] / s[..., None]
    trans = torch.nan_to_num(trans, nan=0.0, posinf=10.0, neginf=-10.0)
    trans = 5.0 * torch.tanh(trans / 10.0)
    E = E.clone()
    E[..., :3, 3] = trans
    flat = torch.nan_to_num(E.reshape(E.shape[:-2] + (16,)), nan=0.0, posinf=10.0, neginf=-10.0)
    f = _t(fov)
    f = f.expand(flat.shape[:-1]) if f.ndim < flat.ndim else f
    return torch.cat([flat, torch.stack([f, torch.sin(f), torch.cos(f)], dim=-1)], dim=-1)


def camera_embedding(mode: str, cond_c2w, target_c2w, scale=1.0, fov=None) -> torch.Tensor:
    """Dispatch on the camera mode; ``scale`` and ``fov`` are used by ``6dof+1`` only."""
    embedding_dim(mode)
    if mode == "3dof":
        return embed_3dof(cond_c2w, target_c2w)
    if fov is None:
        raise CameraError("the 6dof+1 camera embedding needs the field of view (radians)")
    return embed_6dof(cond_c2w, target_c2w, scale, fov)


# --------------------------------------------------------------------------- distances, nearest cameras


def rotation_angle(Ra, Rb) -> torch.Tensor:
    """Geodesic angle (radians) between rotations, batched (broadcasting)."""
    Ra, Rb = _t(Ra), _t(Rb)
    rel = Ra.transpose(-1, -2) @ Rb
    cos = (rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0
    return torch.acos(cos.clamp(-1.0, 1.0))


def pose_distance(c2w_a, c2w_b, rotation_weight: float = 1.0, translation_weight: float = 1.0,
                  scale: float = 1.0) -> torch.Tensor:
    """All-pairs distance ``[N, M]``: ``w_r * angle(R_a, R_b) + w_t * |t_a - t_b| / scale``.

    Angle in radians; ``scale`` normalises translations (e.g. the scene's radius) so the
    weights are unit-free.
    """
    a = _t(c2w_a).reshape(-1, 4, 4)
    b = _t(c2w_b).reshape(-1, 4, 4)
    ang = rotation_angle(a[:, None, :3, :3], b[None, :, :3, :3])
    dist = torch.cdist(a[:, :3, 3], b[:, :3, 3])
    return rotation_weight * ang + translation_weight * dist / max(float(scale), 1e-12)


def nearest_cameras(query_c2w, pool_c2w, k: int = 1, **distance_kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``[N, k]`` and distances ``[N, k]`` of the k nearest pool cameras per query."""
    d = pose_distance(query_c2w, pool_c2w, **distance_kwargs)
    if k < 1 or k > d.shape[1]:
        raise CameraError(f"nearest_cameras: k={k} must be between 1 and the number of input cameras ({d.shape[1]})")
    dist, idx = torch.topk(d, k, dim=1, largest=False, sorted=True)
    return idx, dist


def scene_scale_from_cameras(c2w, quantile: float = 0.5) -> float:
    """A scene scale from the camera layout alone: quantile of camera distances to the point
    nearest all optical axes (least squares), falling back to the camera centroid."""
    m = _t(c2w).reshape(-1, 4, 4)
    centres = m[:, :3, 3]
    dirs = -m[:, :3, 2]
    eye3 = torch.eye(3, dtype=torch.float64)
    A = torch.zeros(3, 3, dtype=torch.float64)
    b = torch.zeros(3, dtype=torch.float64)
    for c, d in zip(centres, dirs):
        P = eye3 - torch.outer(d, d)
        A += P
        b += P @ c
    focus = centres.mean(0)
    if m.shape[0] > 1 and torch.linalg.cond(A) < 1e6:
        focus = torch.linalg.solve(A, b)
    dist = (centres - focus).norm(dim=-1)
    return float(torch.quantile(dist, quantile).clamp_min(1e-6))


# --------------------------------------------------------------------------- camera paths


def _rotation_about(axis, angle) -> torch.Tensor:
    """Rodrigues rotation matrices ``[..., 3, 3]`` about a unit axis by angles (radians)."""
    axis = _t(axis)
    axis = axis / axis.norm()
    angle = _t(angle)
    x, y, z = axis
    Kx = torch.tensor([[0, -z, y], [z, 0, -x], [-y, x, 0]], dtype=torch.float64)
    s = torch.sin(angle)[..., None, None]
    c = torch.cos(angle)[..., None, None]
    return torch.eye(3, dtype=torch.float64) + s * Kx + (1 - c) * (Kx @ Kx)


def make_path(kind: str, input_c2w, fov, num_views: int, focus_distance: float = 1.0,
              up=None, amount: float | None = None, loop: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """A camera path around one input camera; view 0 reproduces the input exactly.

    ``input_c2w``: OpenGL c2w ``[4, 4]``; ``fov``: vertical fov (radians) of the input;
    ``focus_distance``: distance from the camera to the point it orbits / looks at (the
    focus point is ``focus_distance`` along the optical axis); ``up``: orbit axis (world
    vector), default the input camera's own up axis; ``amount``: the kind's strength
    (defaults below). Returns ``(c2w [N, 4, 4], fov [N])``.

    * ``orbit``  - rotate about the focus point around ``up`` by ``amount`` degrees in total
      (default 360).
    * ``spiral`` - circle of radius ``amount * focus_distance`` (default 0.25) in the image
      plane plus a forward/back motion, always looking at the focus point (LLFF-style).
    * ``zoom``   - same pose, fov narrowed to fov / ``amount`` (default 2) and back if ``loop``.
    * ``dolly``  - move along the optical axis by ``amount * focus_distance`` (default 0.5)
      toward the focus point (and back if ``loop``).
    * ``pan``    - rotate the camera in place about ``up`` by +-``amount`` degrees (default 30).
    * ``wiggle`` - small circle (radius ``amount * focus_distance``, default 0.05) in the
      image plane while looking at the focus point.
    """
    if kind not in PATH_KINDS:
        raise CameraError(f"unknown camera path '{kind}': choose one of {', '.join(PATH_KINDS)} or a JSON file")
    if num_views < 1:
        raise CameraError(f"num_views must be >= 1, got {num_views}")
    if not (focus_distance > 0 and math.isfinite(focus_distance)):
        raise CameraError(f"focus distance must be a positive number, got {focus_distance}")
    c2w = validate_poses(input_c2w, "input camera")[0]
    fov = float(fov)
    n = num_views
    # phase in [0, 1): view 0 at phase 0; a looping path does not repeat the start at the end
    phase = torch.arange(n, dtype=torch.float64) / (n if loop else max(n - 1, 1))
    R, centre = c2w[:3, :3], c2w[:3, 3]
    right, cam_up, back = R[:, 0], R[:, 1], R[:, 2]
    focus = centre - back * focus_distance
    axis = cam_up if up is None else _t(up) / _t(up).norm()
    fovs = torch.full((n,), fov, dtype=torch.float64)
    out = c2w.expand(n, 4, 4).clone()

    if kind in ("orbit", "pan"):
        deg = (360.0 if kind == "orbit" else 30.0) if amount is None else amount
        if kind == "orbit":
            angles = phase * math.radians(deg)
        else:
            angles = torch.sin(2 * math.pi * phase) * math.radians(deg)
        Rot = _rotation_about(axis, angles)  # [n, 3, 3]
        out[:, :3, :3] = Rot @ R
        if kind == "orbit":
            out[:, :3, 3] = (Rot @ (centre - focus)) + focus
    elif kind in ("spiral", "wiggle"):
        a = (0.25 if kind == "spiral" else 0.05) if amount is None else amount
        r = a * focus_distance
        ang = 2 * math.pi * phase
        # offsets vanish at phase 0 so view 0 is the input
        dx = r * torch.sin(ang)
        dy = r * (1 - torch.cos(ang)) * 0.5
        dz = (r * 0.5 * torch.sin(ang / 2) ** 2) if kind == "spiral" else torch.zeros_like(ang)
        eyes = centre + dx[:, None] * right + dy[:, None] * cam_up - dz[:, None] * back
        out = look_at(eyes, focus.expand_as(eyes), cam_up.expand_as(eyes))
        out[0] = c2w
    elif kind == "dolly":
        a = 0.5 if amount is None else amount
        prof = torch.sin(math.pi * phase) if loop else phase
        out[:, :3, 3] = centre - (a * focus_distance * prof)[:, None] * back
    elif kind == "zoom":
        a = 2.0 if amount is None else amount
        if a <= 0:
            raise CameraError(f"zoom amount must be positive, got {a}")
        prof = torch.sin(math.pi * phase) if loop else phase
        factor = 1.0 + (a - 1.0) * prof
        fovs = 2 * torch.atan(math.tan(fov / 2) / factor)
    return out, fovs


def load_path_json(path: str | Path, default_fov: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a custom camera path: ``(c2w [N, 4, 4] OpenGL, fov [N] radians)``.

    Accepted layouts:

    * our ``cameras.json``: ``{"convention": "opengl" | "opencv", "cameras": [{"c2w": 4x4,
      "fov_deg": 50}, ...]}``;
    * a plain list of ``{"c2w" | "transform_matrix": 4x4, "fov_deg"?: ...}`` or of 4x4 lists;
    * a nerfstudio camera path: ``{"camera_path": [{"camera_to_world": 16 numbers (row-major,
      OpenGL), "fov": degrees (vertical)}, ...]}``.
    Missing fovs fall back to ``default_fov`` (radians).
    """
    p = Path(path)
    if not p.is_file():
        raise CameraError(f"camera path file '{p}' does not exist")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CameraError(f"camera path file '{p}' is not valid JSON: {exc}") from None
    convention = "opengl"
    if isinstance(data, dict) and "camera_path" in data:
        items = data["camera_path"]
        nerfstudio = True
    elif isinstance(data, dict) and "cameras" in data:
        items = data["cameras"]
        convention = str(data.get("convention", "opengl")).lower()
        nerfstudio = False
    elif isinstance(data, list):
        items = data
        nerfstudio = False
    else:
        raise CameraError(
            f"camera path file '{p}': expected a list of cameras, {{'cameras': [...]}} or a nerfstudio "
            "{'camera_path': [...]}"
        )
    if convention not in ("opengl", "opencv"):
        raise CameraError(f"camera path file '{p}': unknown convention '{convention}' (opengl or opencv)")
    if not isinstance(items, list) or not items:
        raise CameraError(f"camera path file '{p}' holds no cameras: give a non-empty list of cameras")
    mats, fovs = [], []
    for i, item in enumerate(items):
        where = f"camera path file '{p}': camera {i}"
        if isinstance(item, dict):
            m = item.get("c2w", item.get("transform_matrix", item.get("camera_to_world")))
            if m is None:
                raise CameraError(f"{where} has no 'c2w' / 'transform_matrix'")
            try:
                if "fov_deg" in item:
                    f = math.radians(float(item["fov_deg"]))
                elif "fov" in item:
                    f = math.radians(float(item["fov"])) if nerfstudio else float(item["fov"])
                else:
                    f = default_fov
            except (TypeError, ValueError):
                raise CameraError(f"{where}: its fov must be a number") from None
        else:
            m, f = item, default_fov
        try:
            mt = _t(m)
        except (TypeError, ValueError, RuntimeError, OverflowError):
            raise CameraError(f"{where}: the matrix must be a 4x4 (or 3x4) list of numbers") from None
        if mt.numel() == 16:
            mt = mt.reshape(4, 4)
        elif mt.numel() == 12:
            mt = mt.reshape(3, 4)
        else:
            raise CameraError(f"{where}: the matrix must be a 4x4 (or 3x4) list of numbers, got {mt.numel()} numbers")
        mats.append(mt)
        if f is None:
            raise CameraError(f"camera path file '{p}': camera {i} has no fov and no default was given")
        fovs.append(f)
    try:
        c2w = torch.stack([torch.cat([m, torch.tensor([[0, 0, 0, 1.0]], dtype=torch.float64)]) if m.shape[0] == 3 else m for m in mats])
    except RuntimeError:
        raise CameraError(f"camera path file '{p}': every camera must be a 4x4 (or 3x4) matrix") from None
    c2w = validate_poses(c2w, f"camera in '{p.name}'")
    if convention == "opencv":
        c2w = opencv_to_opengl(c2w)
    fov_t = torch.tensor(fovs, dtype=torch.float64)
    if not ((fov_t > 0) & (fov_t < math.pi)).all():
        raise CameraError(f"camera path file '{p}': fov must be in (0, 180) degrees")
    return c2w, fov_t


def cameras_to_json(c2w, fov, width: int | None = None, height: int | None = None, extra: Sequence[dict] | None = None) -> dict:
    """Our ``cameras.json`` layout (OpenGL c2w, vertical fov in degrees); readable by load_path_json."""
    c2w = validate_poses(c2w)
    fov = _t(fov).expand(c2w.shape[0])
    cams = []
    for i in range(c2w.shape[0]):
        cam = {"c2w": c2w[i].tolist(), "fov_deg": math.degrees(float(fov[i]))}
        if extra is not None:
            cam.update(extra[i])
        cams.append(cam)
    out: dict = {"convention": "opengl", "fov": "vertical", "cameras": cams}
    if width is not None and height is not None:
        out["width"], out["height"] = int(width), int(height)
    return out


def ray_directions(K, c2w, height: int, width: int, offset: tuple[float, float] = (0.5, 0.5)
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """World-space rays of every pixel: ``(origins [N, H, W, 3], directions [N, H, W, 3])``.

    Reference implementation, float64. ``K [N, 3, 3]`` (pixels, OpenCV pixel grid), ``c2w
    [N, 4, 4]`` OpenGL. Pixel ``(row v, column u)`` is sampled at ``(u + offset[0], v +
    offset[1])``; its camera-space direction in OpenGL axes is ``((x - cx) / fx,
    -(y - cy) / fy, -1)`` (y flips because image rows go down, z because the camera looks
    along -z), rotated to the world by ``c2w[:3, :3]`` and normalised to unit length.
    """
    K = torch.as_tensor(K, dtype=torch.float64).reshape(-1, 3, 3)
    c2w = torch.as_tensor(c2w, dtype=torch.float64).reshape(-1, 4, 4)
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float64),
                          torch.arange(width, dtype=torch.float64), indexing="ij")
    x = (u + offset[0])[None] - K[:, 0, 2, None, None]
    y = (v + offset[1])[None] - K[:, 1, 2, None, None]
    cam = torch.stack([x / K[:, 0, 0, None, None], -y / K[:, 1, 1, None, None],
                       -torch.ones_like(x)], dim=-1)  # [N, H, W, 3]
    dirs = torch.einsum("nij,nhwj->nhwi", c2w[:, :3, :3], cam)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    origins = c2w[:, None, None, :3, 3].expand_as(dirs)
    return origins, dirs
