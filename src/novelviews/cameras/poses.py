"""Camera poses: validation, OpenGL / OpenCV axes, inversion, look-at and spherical placement.

``c2w`` is a 4x4 camera-to-world matrix with OpenGL camera axes (x right, y up, looking
along -z); spherical coordinates are about a z-up world (see :mod:`novelviews.cameras`).
"""

from __future__ import annotations

import math

import torch

from ..errors import CameraError

_FLIP_YZ = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))


def to_tensor(x, dtype=torch.float64) -> torch.Tensor:
    """``x`` (numpy array, list, number or tensor) as a tensor of ``dtype`` (float64 by default)."""
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
        m = to_tensor(c2w)
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



# --------------------------------------------------------------------------- conventions


def opencv_to_opengl(c2w) -> torch.Tensor:
    """Camera-to-world with OpenCV axes (x right, y down, z forward) -> OpenGL axes.

    Flips the camera's y and z axes (right-multiplication by diag(1, -1, -1, 1)); the
    camera centre is unchanged. The map is its own inverse.
    """
    m = to_tensor(c2w)
    return m @ _FLIP_YZ.to(m.dtype)


def opengl_to_opencv(c2w) -> torch.Tensor:
    """Camera-to-world with OpenGL axes (x right, y up, z back) -> OpenCV axes."""
    return opencv_to_opengl(c2w)


def invert_pose(c2w) -> torch.Tensor:
    """Inverse of rigid 4x4 transforms (exact: R^T, -R^T t)."""
    m = to_tensor(c2w)
    r = m[..., :3, :3]
    t = m[..., :3, 3:]
    out = torch.zeros_like(m)
    out[..., :3, :3] = r.transpose(-1, -2)
    out[..., :3, 3:] = -r.transpose(-1, -2) @ t
    out[..., 3, 3] = 1.0
    return out


# --------------------------------------------------------------------------- look-at, spherical


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> torch.Tensor:
    """OpenGL camera-to-world at ``eye`` looking at ``target`` with world ``up`` (batched).

    The camera's -z axis points from eye to target; its x axis is horizontal with respect
    to ``up``. Raises CameraError if the view direction is parallel to ``up``.
    """
    eye, target, up = torch.broadcast_tensors(to_tensor(eye), to_tensor(target), to_tensor(up))
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
    e, a, r = torch.broadcast_tensors(to_tensor(elevation), to_tensor(azimuth), to_tensor(radius))
    return torch.stack([r * torch.cos(e) * torch.cos(a), r * torch.cos(e) * torch.sin(a), r * torch.sin(e)], -1)


def cartesian_to_spherical(xyz) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """xyz (z-up) -> (elevation, azimuth in (-pi, pi], radius)."""
    p = to_tensor(xyz)
    r = p.norm(dim=-1)
    elev = torch.asin(torch.clamp(p[..., 2] / r.clamp_min(1e-12), -1.0, 1.0))
    az = torch.atan2(p[..., 1], p[..., 0])
    return elev, az, r


def camera_on_sphere(elevation, azimuth, radius, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)) -> torch.Tensor:
    """OpenGL c2w of a camera at (elevation, azimuth, radius) around ``target`` looking at it.

    The reference's single-image convention (docs/REFERENCE.md): elevation e, azimuth a, distance d
    -> position d (cos e cos a, cos e sin a, sin e).
    """
    eye = spherical_to_cartesian(elevation, azimuth, radius) + to_tensor(target)
    return look_at(eye, to_tensor(target).expand_as(eye), up)


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
    c2w_in = to_tensor(c2w_in)
    if c2w_in.shape != (4, 4):
        raise CameraError(f"orbit_about_vertical: c2w_in must be one [4, 4] pose, got {tuple(c2w_in.shape)}")
    d_az = to_tensor(azimuth_offsets).reshape(-1)
    d_el = torch.zeros_like(d_az) if elevation_offsets is None else to_tensor(elevation_offsets).reshape(-1)
    if d_el.shape != d_az.shape:
        raise CameraError(f"orbit_about_vertical: {d_az.numel()} azimuth offsets but {d_el.numel()} elevation offsets")
    eye = c2w_in[:3, 3]
    elev, az, r = cartesian_to_spherical(eye)
    fwd = -c2w_in[:3, 2]
    target = eye + fwd * float(-(eye @ fwd))  # the optical axis' point nearest the origin
    e = torch.clamp(elev + d_el, min_elevation, max_elevation)
    return look_at(spherical_to_cartesian(e, az + d_az, r), target.expand(d_az.numel(), 3))
