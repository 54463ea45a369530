"""Pinhole intrinsics (from a fov or focal lengths, back to a fov, validation) and pixel rays.

``K`` is a 3x3 matrix in pixels on the OpenCV pixel grid (pixel (i, j) centred at
(i + 0.5, j + 0.5)); fovs are vertical, in radians.
"""

from __future__ import annotations

import torch

from ..errors import CameraError
from .poses import to_tensor


def validate_intrinsics(K, what: str = "camera") -> torch.Tensor:
    """Check 3x3 pinhole matrices (positive focal lengths, finite); returns float64 [N, 3, 3]."""
    k = to_tensor(K)
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


def intrinsics_from_fov(fov_y, width: int, height: int, fov_x=None) -> torch.Tensor:
    """Pinhole K (pixels) from the vertical fov (radians); square pixels unless fov_x is given.

    The principal point is the image centre (width / 2, height / 2).
    """
    fov_y = to_tensor(fov_y)
    fy = 0.5 * height / torch.tan(0.5 * fov_y)
    fx = fy if fov_x is None else 0.5 * width / torch.tan(0.5 * to_tensor(fov_x))
    return intrinsics_from_focal(fx, fy, width / 2.0, height / 2.0)


def intrinsics_from_focal(fx, fy, cx, cy) -> torch.Tensor:
    """K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] (pixels), batched over the inputs."""
    fx, fy, cx, cy = torch.broadcast_tensors(to_tensor(fx), to_tensor(fy), to_tensor(cx), to_tensor(cy))
    K = torch.zeros(fx.shape + (3, 3), dtype=torch.float64)
    K[..., 0, 0] = fx
    K[..., 1, 1] = fy
    K[..., 0, 2] = cx
    K[..., 1, 2] = cy
    K[..., 2, 2] = 1.0
    return K


def fov_from_intrinsics(K, height) -> torch.Tensor:
    """Vertical fov (radians) of a pinhole K for an image of the given height (pixels)."""
    K = to_tensor(K)
    return 2.0 * torch.atan(0.5 * to_tensor(height) / K[..., 1, 1])


# --------------------------------------------------------------------------- pixel rays


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
