"""A set of 3D Gaussians: the learnable parameters of a splat scene.

Parameters (all ``nn.Parameter``, one row per Gaussian, world frame of the scene):

* ``means [N, 3]`` - centres;
* ``log_scales [N, 3]`` - natural logs of the standard deviations along the Gaussian's own axes;
* ``quats [N, 4]`` - rotations as ``(w, x, y, z)`` quaternions (normalised when used);
* ``opacity_logits [N]`` - opacity = ``sigmoid(logit)``;
* ``sh_dc [N, 3]`` and ``sh_rest [N, (d + 1)^2 - 1, 3]`` - spherical-harmonics colour of degree
  ``sh_degree`` d (0..3, :mod:`.sh`).

The covariance of Gaussian i is ``R S S^T R^T`` with ``R`` the rotation of ``quats[i]`` and
``S = diag(exp(log_scales[i]))``. These are the quantities (and the storage: logs, logits, raw
quaternions) of the reference 3DGS and its ``.ply`` files (:mod:`.ply`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import NovelViewsError
from .sh import MAX_DEGREE, num_coefficients, rgb_to_sh

PARAMETERS = ("means", "log_scales", "quats", "opacity_logits", "sh_dc", "sh_rest")


def quaternion_to_rotation(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[..., 3, 3]`` of ``(w, x, y, z)`` quaternions ``[..., 4]`` (normalised here)."""
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    rows = [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]
    return torch.stack(rows, -1).reshape(q.shape[:-1] + (3, 3))


def covariances(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """World covariances ``[N, 3, 3]`` = ``R S S^T R^T`` from quaternions and (linear) scales."""
    M = quaternion_to_rotation(quats) * scales[..., None, :]  # R S
    return M @ M.transpose(-1, -2)


def check_sh_degree(degree: int) -> int:
    if not isinstance(degree, int) or not 0 <= degree <= MAX_DEGREE:
        raise NovelViewsError(f"spherical-harmonics degree must be an integer 0..{MAX_DEGREE}, got {degree!r}")
    return degree


def nearest_neighbour_distance(points: torch.Tensor, k: int = 3, chunk: int = 4096) -> torch.Tensor:
    """Root-mean-square distance ``[N]`` of every point to its ``k`` nearest other points (the initial
    scale of the reference 3DGS), computed ``chunk`` rows at a time."""
    n = points.shape[0]
    if n < 2:
        return torch.ones(n, dtype=points.dtype, device=points.device)
    k = min(k, n - 1)
    out = []
    for start in range(0, n, chunk):
        d2 = torch.cdist(points[start:start + chunk], points).square()
        d2[torch.arange(d2.shape[0]), torch.arange(start, start + d2.shape[0])] = math.inf
        out.append(d2.topk(k, dim=1, largest=False).values.mean(1).sqrt())
    return torch.cat(out).clamp_min(1e-7)


class GaussianModel(nn.Module):
    """The parameters of N Gaussians (see the module docstring); ``len(model)`` is N."""

    def __init__(self, means: torch.Tensor, log_scales: torch.Tensor, quats: torch.Tensor,
                 opacity_logits: torch.Tensor, sh_dc: torch.Tensor, sh_rest: torch.Tensor | None = None,
                 sh_degree: int | None = None):
        super().__init__()
        n = means.shape[0]
        if sh_rest is None:
            sh_rest = means.new_zeros(n, num_coefficients(sh_degree or 0) - 1, 3)
        degree = int(round(math.sqrt(sh_rest.shape[1] + 1))) - 1
        if sh_degree is not None and degree != sh_degree:
            raise NovelViewsError(f"{sh_rest.shape[1]} higher SH coefficients per channel do not match degree "
                                  f"{sh_degree} (it has {num_coefficients(sh_degree) - 1})")
        self.sh_degree = check_sh_degree(degree)
        shapes = {"means": (n, 3), "log_scales": (n, 3), "quats": (n, 4), "opacity_logits": (n,), "sh_dc": (n, 3),
                  "sh_rest": (n, num_coefficients(degree) - 1, 3)}
        for name, value in zip(PARAMETERS, (means, log_scales, quats, opacity_logits, sh_dc, sh_rest)):
            if tuple(value.shape) != shapes[name]:
                raise NovelViewsError(f"Gaussian parameter '{name}' has shape {tuple(value.shape)}, expected "
                                      f"{shapes[name]}")
            setattr(self, name, nn.Parameter(value.detach().clone()))

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_points(cls, points: torch.Tensor, colours: torch.Tensor, sh_degree: int = 0,
                    opacity: float = 0.1, scales: torch.Tensor | None = None) -> "GaussianModel":
        """Isotropic Gaussians at ``points [N, 3]`` with colours ``[N, 3]`` (in [0, 1]), opacity
        ``opacity`` and, unless ``scales [N]`` is given, the RMS distance to their 3 nearest
        neighbours as standard deviation; identity rotations, higher SH coefficients zero."""
        points = torch.as_tensor(points)
        n = points.shape[0]
        if n == 0:
            raise NovelViewsError("cannot build Gaussians from an empty point set")
        s = nearest_neighbour_distance(points) if scales is None else torch.as_tensor(scales, dtype=points.dtype)
        quats = points.new_zeros(n, 4)
        quats[:, 0] = 1.0
        logit = math.log(opacity / (1.0 - opacity))
        return cls(points, s.log()[:, None].expand(n, 3), quats, points.new_full((n,), logit),
                   rgb_to_sh(torch.as_tensor(colours, dtype=points.dtype).clamp(0, 1)), sh_degree=check_sh_degree(sh_degree))

    @classmethod
    def from_state(cls, state: dict) -> "GaussianModel":
        """The model of :meth:`tensors` (a checkpoint's or a .ply file's parameters)."""
        missing = [k for k in PARAMETERS if k not in state]
        if missing:
            raise NovelViewsError(f"Gaussian parameters are missing '{missing[0]}'")
        return cls(*(torch.as_tensor(state[k]) for k in PARAMETERS))

    def tensors(self) -> dict[str, torch.Tensor]:
        """The parameters, detached: ``{name: tensor}`` (``from_state`` reads it back)."""
        return {k: getattr(self, k).detach() for k in PARAMETERS}

    def __len__(self) -> int:
        return self.means.shape[0]

    # ------------------------------------------------------------------ derived quantities

    @property
    def scales(self) -> torch.Tensor:
        return self.log_scales.exp()

    @property
    def opacities(self) -> torch.Tensor:
        return torch.sigmoid(self.opacity_logits)

    @property
    def sh(self) -> torch.Tensor:
        """All SH coefficients ``[N, (d + 1)^2, 3]`` (DC first)."""
        return torch.cat([self.sh_dc[:, None], self.sh_rest], 1)

    def covariances(self) -> torch.Tensor:
        return covariances(self.quats, self.scales)

    # ------------------------------------------------------------------ editing (densification)

    def set_rows(self, tensors: dict[str, torch.Tensor]) -> None:
        """Replace every parameter by new rows (same names, any N); optimisers must follow
        (:func:`.density.edit_gaussians` does both)."""
        n = tensors["means"].shape[0]
        for name in PARAMETERS:
            value = tensors[name]
            if value.shape[0] != n:
                raise NovelViewsError(f"Gaussian parameter '{name}' has {value.shape[0]} rows, expected {n}")
            setattr(self, name, nn.Parameter(value.detach().clone()))
