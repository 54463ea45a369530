"""Real spherical harmonics of degree 0..3 as 3D Gaussian splatting uses them (view-dependent colour).

A Gaussian's colour seen along the unit direction ``d`` (world frame, from the camera centre to the
Gaussian's mean) is ``max(0, sum_k c_k Y_k(d) + 0.5)`` with ``(degree + 1)^2`` coefficients per
colour channel: the DC term ``c_0`` stores ``(rgb - 0.5) / Y_0``. The basis and its signs are the
ones of the 3DGS reference (and of the viewers that read its ``.ply``), so exported coefficients
mean the same colours there.
"""

from __future__ import annotations

import torch

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792,
         0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
         -0.4570457994644658, 1.445305721320277, -0.5900435899266435)
MAX_DEGREE = 3


def num_coefficients(degree: int) -> int:
    """Coefficients per colour channel of a degree: 1, 4, 9, 16."""
    return (degree + 1) ** 2


def rgb_to_sh(rgb: torch.Tensor) -> torch.Tensor:
    """The DC coefficient that gives colour ``rgb`` (in [0, 1]) from every direction."""
    return (rgb - 0.5) / SH_C0


def sh_to_rgb(dc: torch.Tensor) -> torch.Tensor:
    """The colour of a DC coefficient alone (before the clamp at 0)."""
    return dc * SH_C0 + 0.5


def eval_sh(degree: int, coeffs: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """``sum_k coeffs[..., k, :] Y_k(dirs)`` over the first ``(degree + 1)^2`` coefficients.

    ``coeffs``: ``[..., K, 3]`` with ``K >= (degree + 1)^2``; ``dirs``: ``[..., 3]`` unit vectors.
    Returns ``[..., 3]`` (without the +0.5 offset and the clamp: :func:`sh_colours` adds them).
    """
    if not 0 <= degree <= MAX_DEGREE:
        raise ValueError(f"spherical-harmonics degree must be 0..{MAX_DEGREE}, got {degree}")
    if coeffs.shape[-2] < num_coefficients(degree):
        raise ValueError(f"degree {degree} needs {num_coefficients(degree)} coefficients, got {coeffs.shape[-2]}")
    c = coeffs
    out = SH_C0 * c[..., 0, :]
    if degree == 0:
        return out
    x, y, z = (dirs[..., i:i + 1] for i in range(3))
    out = out - SH_C1 * y * c[..., 1, :] + SH_C1 * z * c[..., 2, :] - SH_C1 * x * c[..., 3, :]
    if degree == 1:
        return out
    xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
    out = (out + SH_C2[0] * xy * c[..., 4, :] + SH_C2[1] * yz * c[..., 5, :]
           + SH_C2[2] * (2.0 * zz - xx - yy) * c[..., 6, :] + SH_C2[3] * xz * c[..., 7, :]
           + SH_C2[4] * (xx - yy) * c[..., 8, :])
    if degree == 2:
        return out
    return (out + SH_C3[0] * y * (3.0 * xx - yy) * c[..., 9, :] + SH_C3[1] * xy * z * c[..., 10, :]
            + SH_C3[2] * y * (4.0 * zz - xx - yy) * c[..., 11, :]
            + SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy) * c[..., 12, :]
            + SH_C3[4] * x * (4.0 * zz - xx - yy) * c[..., 13, :] + SH_C3[5] * z * (xx - yy) * c[..., 14, :]
            + SH_C3[6] * x * (xx - 3.0 * yy) * c[..., 15, :])


def sh_colours(degree: int, coeffs: torch.Tensor, means: torch.Tensor, camera_centre: torch.Tensor) -> torch.Tensor:
    """RGB ``[N, 3]`` of Gaussians at ``means [N, 3]`` seen from ``camera_centre [3]`` (world frame)."""
    d = means - camera_centre.to(means)
    d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (eval_sh(degree, coeffs, d) + 0.5).clamp_min(0.0)
