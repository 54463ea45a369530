"""The NeRF geometry: a hash-grid density + albedo field, and a background model.

Coordinates: world space, scene units, the z-up canonical frame of single-image runs
(any right-handed frame works; nothing here depends on "up").

Scene box and contraction. The field covers the box ``[-bound, bound]^3`` (``bound = 2``
by default, the reference's). With ``unbounded=True`` (the default) a world point ``x``
is first scaled, ``y = x / bound``, then contracted as in mip-NeRF 360::

    contract(y) = y                              if |y| <= 1
                = (2 - 1 / |y|) * y / |y|        otherwise     (|.| = Euclidean norm)

so the ball of radius ``bound`` is kept as is and all of space beyond it is squeezed into
the shell ``1 < |contract(y)| < 2``. The hash grid sees ``u = (contract(y) + 2) / 4`` in
``[0, 1]^3``. With ``unbounded=False`` the grid sees ``u = (x / bound + 1) / 2`` and the
density is zero outside the box.

Density: ``sigma(x) = act(raw(x) + blob(x))`` with ``act`` = softplus (default) or exp and
the centred blob bias of Magic3D / threestudio's ``blob_magic3d``::

    blob(x) = blob_density * (1 - |x| / blob_radius)       (|x| in world units)

which is positive inside the ball of radius ``blob_radius`` and pulls the initial geometry
to the centre (``blob_density = 0`` switches it off). Colour is albedo only (no view
dependence): ``albedo(x) = sigmoid(mlp(x)[1:4])`` in ``[0, 1]``. Densities are in 1 / scene
units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from ..config import check_range
from ..runtime import EAGER
from .encoding import HashGridConfig, HashGridEncoding


def contract(y: torch.Tensor) -> torch.Tensor:
    """mip-NeRF-360 contraction ``[..., 3] -> [..., 3]``: identity for ``|y| <= 1``, else
    ``(2 - 1/|y|) y/|y|`` (so the result has norm < 2). Continuous and differentiable."""
    mag = y.norm(dim=-1, keepdim=True)
    safe = mag.clamp_min(1.0)
    return torch.where(mag <= 1.0, y, (2.0 - 1.0 / safe) * (y / safe))


def normalize_points(x: torch.Tensor, bound: float, unbounded: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """World points ``[..., 3]`` -> (grid coordinates ``u`` in ``[0, 1]^3``, inside mask ``[...]``).

    Unbounded: ``u = (contract(x / bound) + 2) / 4`` and every point is inside. Bounded:
    ``u = (x / bound + 1) / 2`` and points outside ``[-bound, bound]^3`` are marked outside.
    """
    y = x / bound
    if unbounded:
        return (contract(y) + 2.0) / 4.0, torch.ones(x.shape[:-1], dtype=torch.bool, device=x.device)
    inside = (y.abs() <= 1.0).all(-1)
    return ((y + 1.0) / 2.0).clamp(0.0, 1.0), inside


def checkpointed(fn, x: torch.Tensor, chunk: int):
    """``fn(x)`` (a tensor or a tuple of tensors with leading shape ``x.shape[:-1]``), evaluated in
    chunks of ``chunk`` points under activation checkpointing when autograd is on.

    Only each chunk's points and outputs are kept for the backward, which recomputes the chunk's
    forward: memory is bounded by ``chunk`` points, not by the render (the hash-grid gathers and
    the MLP's activations of millions of samples were most of a distillation step's peak). The
    values and gradients are those of ``fn(x)`` (the tests compare them). Plain ``fn(x)`` when
    ``chunk`` is 0, autograd is off or ``x`` needs a gradient itself (autograd normals). ``fn``
    must be deterministic (it runs twice).
    """
    if chunk <= 0 or not torch.is_grad_enabled() or x.requires_grad:
        return fn(x)
    from torch.utils.checkpoint import checkpoint

    lead = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1])
    parts = [checkpoint(fn, c, use_reentrant=False) for c in flat.split(int(chunk))]
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(parts).reshape(*lead, *parts[0].shape[1:])
    return tuple(torch.cat(p).reshape(*lead, *p[0].shape[1:]) for p in zip(*parts))


def grid_to_world(u: torch.Tensor, bound: float, unbounded: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`normalize_points`: grid coordinates ``u [..., 3]`` -> (world points, valid ``[...]``).

    Unbounded: ``c = 4 u - 2``; ``y = c`` for ``|c| <= 1`` and ``y = c / (|c| (2 - |c|))`` for
    ``1 < |c| < 2`` (the contraction inverted); corners of the cube with ``|c| >= 2`` are images of
    no point (``valid`` False, placed at a finite point). Bounded: ``x = (2 u - 1) bound``, all valid.
    """
    if not unbounded:
        return (2.0 * u - 1.0) * bound, torch.ones(u.shape[:-1], dtype=torch.bool, device=u.device)
    c = 4.0 * u - 2.0
    mag = c.norm(dim=-1, keepdim=True)
    valid = mag[..., 0] < 2.0 - 1e-6
    far = c / mag.clamp_min(1e-12) / (2.0 - mag).clamp_min(1e-6)
    return torch.where(mag <= 1.0, c, far) * bound, valid


def query_occupied(fn, x: torch.Tensor, keep: torch.Tensor, counts: dict | None = None):
    """``fn`` on the points of ``x [..., 3]`` where ``keep [...]``, zeros elsewhere (the occupancy
    grid's empty-space skipping). ``fn(points [M, 3])`` returns a tensor or a tuple of tensors with
    leading dimension ``M``; the result has ``x``'s leading shape, differentiable through ``fn``.
    ``counts`` (optional): ``points`` and ``kept`` are incremented (as tensors: no host sync)."""
    lead = x.shape[:-1]
    idx = keep.reshape(-1).nonzero().squeeze(1)
    if counts is not None:
        counts["points"] = counts.get("points", 0) + keep.numel()
        counts["kept"] = counts.get("kept", 0) + idx.numel()
    out = fn(x.reshape(-1, x.shape[-1]).index_select(0, idx))
    n = keep.numel()

    def scatter(v: torch.Tensor) -> torch.Tensor:
        full = v.new_zeros((n,) + v.shape[1:]).index_put((idx,), v)
        return full.reshape(*lead, *v.shape[1:])

    return scatter(out) if isinstance(out, torch.Tensor) else tuple(scatter(v) for v in out)


class SkipsEmptySpace:
    """Empty-space skipping for a field module whose ``_forward(x)`` maps world points to its
    outputs and which has ``skip_space() -> (bound, unbounded, checkpoint_points)`` (and optionally
    a ``fusion``, a :class:`~novelviews.runtime.Fusion`; default eager): with an
    occupancy grid set, points in empty cells get zeros without being computed; every call runs
    in activation-checkpointed chunks (:func:`checkpointed`)."""

    def set_occupancy(self, grid) -> None:
        """Skip the points whose cell of ``grid`` (an :class:`~novelviews.nerf.occupancy.OccupancyGrid`
        over the field's grid coordinates) is empty: outputs 0 there, not computed. ``None``
        switches it off. The grid is not a submodule (the scene saves it once);
        ``query_counts`` counts the points asked for and kept."""
        self.__dict__["_occupancy"] = grid
        self.query_counts: dict = {}

    @property
    def occupancy(self):
        return self.__dict__.get("_occupancy")

    def _skipping_forward(self, x: torch.Tensor):
        bound, unbounded, chunk = self.skip_space()
        fuse = getattr(self, "fusion", EAGER)
        grid = self.occupancy
        if grid is None:
            return checkpointed(self._forward, x, chunk)
        u = fuse(normalize_points)(x.reshape(-1, 3), bound, unbounded)[0]  # flat: one compiled graph
        keep = grid.occupied_at(u, fuse).reshape(x.shape[:-1])
        return query_occupied(lambda p: checkpointed(self._forward, p, chunk), x, keep, self.query_counts)


def make_mlp(n_in: int, width: int, hidden_layers: int, n_out: int) -> nn.Sequential:
    """``hidden_layers`` ReLU layers of ``width`` then a linear output layer."""
    layers: list[nn.Module] = []
    d = n_in
    for _ in range(hidden_layers):
        layers += [nn.Linear(d, width), nn.ReLU(inplace=True)]
        d = width
    layers.append(nn.Linear(d, n_out))
    return nn.Sequential(*layers)


@dataclass
class NeRFFieldConfig:
    """Geometry + albedo field; defaults are the reference's (ZeroNVS's threestudio config)."""

    bound: float = 2.0
    """half-size of the scene box [-bound, bound]^3 (scene units)"""
    unbounded: bool = True
    """mip-NeRF-360 contraction outside the ball of radius `bound` (else density 0 outside the box)"""
    grid: HashGridConfig = field(default_factory=HashGridConfig)
    mlp_width: int = 32
    mlp_hidden_layers: int = 2
    density_activation: Literal["softplus", "exp"] = "softplus"
    blob_density: float = 10.0
    """peak of the centred density bias blob_density * (1 - |x| / blob_radius); 0 disables it"""
    blob_radius: float = 0.5
    """radius (scene units) where the blob bias crosses zero"""
    normal_method: Literal["finite_difference", "autograd"] = "finite_difference"
    normal_eps: float = 0.01
    """finite-difference step (scene units)"""
    checkpoint_points: int = 2**21
    """with autograd on, the field runs in chunks of this many points whose activations are
    recomputed in the backward (memory bounded by the chunk, not the render); 0 = keep them all"""

    def validate(self) -> None:
        check_range("bound", self.bound, 0.0, None, lo_open=True)
        check_range("mlp_width", self.mlp_width, 1, 1024)
        check_range("mlp_hidden_layers", self.mlp_hidden_layers, 0, 16)
        check_range("blob_density", self.blob_density, 0.0, None)
        check_range("blob_radius", self.blob_radius, 0.0, None, lo_open=True)
        check_range("normal_eps", self.normal_eps, 0.0, None, lo_open=True)
        check_range("checkpoint_points", self.checkpoint_points, 0, None)
        self.grid.validate()


def _activate(raw: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "exp":
        return torch.exp(raw.clamp(max=15.0))  # truncated exp: bounded forward and gradient
    return F.softplus(raw)


def density_from_raw(raw: torch.Tensor, x: torch.Tensor, inside: torch.Tensor, activation: str,
                     blob_density: float, blob_radius: float) -> torch.Tensor:
    """``act(raw + blob(x))`` inside the field, 0 outside (``raw``, ``inside``: ``[...]``; ``x [..., 3]``)."""
    if blob_density != 0:
        raw = raw + blob_density * (1.0 - x.norm(dim=-1) / blob_radius)
    sigma = _activate(raw, activation)
    return torch.where(inside, sigma, torch.zeros_like(sigma))


def field_head(mlp: nn.Module, features: torch.Tensor, x: torch.Tensor, inside: torch.Tensor, activation: str,
               blob_density: float, blob_radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The field after its encoding: MLP -> (density ``[...]``, albedo ``[..., 3]``); a pure function
    (compiled by a :class:`~novelviews.runtime.Fusion`)."""
    h = mlp(features)
    return density_from_raw(h[..., 0], x, inside, activation, blob_density, blob_radius), torch.sigmoid(h[..., 1:4])


class NeRFField(SkipsEmptySpace, nn.Module):
    """Density + albedo field on world points (see the module docstring for the formulas)."""

    def __init__(self, cfg: NeRFFieldConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or NeRFFieldConfig()
        cfg.validate()
        self.encoding = HashGridEncoding(cfg.grid)
        self.mlp = make_mlp(self.encoding.output_dim, cfg.mlp_width, cfg.mlp_hidden_layers, 4)
        self.fusion = EAGER  # a compiling Fusion makes the pure parts of a query a few fused kernels

    # -- core
    def blob(self, x: torch.Tensor) -> torch.Tensor:
        """Density bias ``blob_density * (1 - |x| / blob_radius)`` at world points ``[..., 3]``."""
        if self.cfg.blob_density == 0:
            return torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)
        return self.cfg.blob_density * (1.0 - x.norm(dim=-1) / self.cfg.blob_radius)

    # -- empty-space skipping (SkipsEmptySpace)
    def skip_space(self) -> tuple[float, bool, int]:
        return self.cfg.bound, self.cfg.unbounded, self.cfg.checkpoint_points

    def density_at_grid(self, u: torch.Tensor) -> torch.Tensor:
        """Density ``[...]`` at grid coordinates ``u [..., 3]`` (0 where no world point maps),
        never skipped: what the occupancy grid measures."""
        x, valid = grid_to_world(u, self.cfg.bound, self.cfg.unbounded)
        return torch.where(valid, self._forward(x)[0], torch.zeros((), device=u.device, dtype=u.dtype))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World points ``[..., 3]`` -> (density ``[...]`` >= 0, albedo ``[..., 3]`` in [0, 1])."""
        return self._skipping_forward(x)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, fuse = self.cfg, self.fusion
        u, inside = fuse(normalize_points)(x, cfg.bound, cfg.unbounded)
        return fuse(field_head)(self.mlp, self.encoding(u), x, inside, cfg.density_activation, cfg.blob_density,
                                cfg.blob_radius)

    def density(self, x: torch.Tensor) -> torch.Tensor:
        """Density ``[...]`` (1 / scene units) at world points ``[..., 3]``."""
        return self.forward(x)[0]

    def albedo(self, x: torch.Tensor) -> torch.Tensor:
        """Albedo ``[..., 3]`` in [0, 1] at world points ``[..., 3]``."""
        return self.forward(x)[1]

    def normals(self, x: torch.Tensor, method: str | None = None) -> torch.Tensor:
        """Unit outward normals ``-grad(sigma) / |grad(sigma)|`` at world points ``[..., 3]``.

        ``finite_difference``: central differences with step ``normal_eps`` (6 extra density
        queries, differentiable w.r.t. the field); ``autograd``: the exact gradient (works
        inside ``torch.no_grad`` too; differentiable w.r.t. the field only when grad is on).
        """
        method = method or self.cfg.normal_method
        if method == "autograd":
            keep_graph = torch.is_grad_enabled()
            with torch.enable_grad():
                xg = x.detach().requires_grad_(True)
                sigma = self.density(xg)
                (grad,) = torch.autograd.grad(sigma.sum(), xg, create_graph=keep_graph)
        elif method == "finite_difference":
            eps = self.cfg.normal_eps
            offs = torch.eye(3, dtype=x.dtype, device=x.device) * eps  # [3, 3]
            pts = torch.cat([x[..., None, :] + offs, x[..., None, :] - offs], dim=-2)  # [..., 6, 3]
            s = self.density(pts)
            grad = (s[..., :3] - s[..., 3:]) / (2.0 * eps)
        else:
            raise ValueError(f"unknown normal method {method!r}")
        return -grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-12)


@dataclass
class BackgroundConfig:
    """Background colour seen where rays leave the scene (threestudio: grey 0.5)."""

    kind: Literal["fixed", "mlp"] = "fixed"
    """fixed colour, or a small MLP on the (unit) view direction for unbounded scenes"""
    color: tuple[float, float, float] = (0.5, 0.5, 0.5)
    """RGB in [0, 1] for kind=fixed"""
    mlp_width: int = 16
    n_frequencies: int = 2
    """sin/cos frequencies of the direction fed to the MLP"""

    def validate(self) -> None:
        for i, c in enumerate(self.color):
            check_range(f"color[{i}]", c, 0.0, 1.0)
        check_range("mlp_width", self.mlp_width, 1, 1024)
        check_range("n_frequencies", self.n_frequencies, 0, 16)


class Background(nn.Module):
    """``forward(dirs [R, 3] unit world directions, color=None) -> [R, 3]`` RGB in [0, 1].

    ``color`` (``[3]`` or ``[R, 3]``) overrides the model, e.g. the random background colour
    per image used during distillation.
    """

    def __init__(self, cfg: BackgroundConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or BackgroundConfig()
        cfg.validate()
        self.register_buffer("color", torch.tensor(cfg.color, dtype=torch.float32))
        self.mlp = None
        if cfg.kind == "mlp":
            n_in = 3 + 6 * cfg.n_frequencies
            self.mlp = make_mlp(n_in, cfg.mlp_width, 1, 3)

    def forward(self, dirs: torch.Tensor, color: torch.Tensor | None = None) -> torch.Tensor:
        if color is not None:
            return torch.as_tensor(color, dtype=dirs.dtype, device=dirs.device).expand(dirs.shape[:-1] + (3,))
        if self.mlp is None:
            return self.color.to(dirs).expand(dirs.shape[:-1] + (3,))
        feats = [dirs]
        for k in range(self.cfg.n_frequencies):
            feats += [torch.sin((2.0**k) * torch.pi * dirs), torch.cos((2.0**k) * torch.pi * dirs)]
        return torch.sigmoid(self.mlp(torch.cat(feats, -1)))


__all__ = [
    "SkipsEmptySpace",
    "checkpointed",
    "contract",
    "grid_to_world",
    "query_occupied",
    "normalize_points",
    "make_mlp",
    "NeRFFieldConfig",
    "NeRFField",
    "BackgroundConfig",
    "Background",
]
