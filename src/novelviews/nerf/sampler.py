"""Where to sample along rays: stratified sampling and a proposal sampler (mip-NeRF 360).

Rays are ``o + t d`` with unit directions ``d``; ``t`` is the distance along the ray
(scene units), in ``[near, far]`` per ray. Samples are placed in a normalised
"s-space" ``s in [0, 1]`` and mapped to ``t`` by a spacing function:

* ``linear``: ``t = near + s (far - near)``;
* ``contracted``: uniform in ``g(t)``, the contraction of the field applied along the ray,
  ``g(t) = t / b`` for ``t <= b`` and ``2 - b / t`` beyond (``b`` = the field's ``bound``),
  i.e. ``s = (g(t) - g(near)) / (g(far) - g(near))``: linear near the camera, uniform in
  disparity far away, so ``far`` may be huge (1e3) for unbounded scenes.

A sampler returns the interval *edges* of every ray, ``[R, S + 1]`` in ``t`` (and ``s``);
the field is queried at interval midpoints. Two samplers:

* :class:`UniformSampler`: ``S`` stratified intervals (jittered in training, regular in
  evaluation). No parameters; the simple mode used by tests and small scenes.
* :class:`ProposalSampler`: ``P`` stratified intervals evaluated by a small density-only
  hash field; their weights form a histogram over ``s`` from which ``S`` new edges are
  drawn by inverse-CDF sampling (the histogram is mixed with a uniform one, fraction
  ``proposal_padding``, so empty space still gets a few samples). The proposal field is
  trained by :func:`interlevel_loss`, never by the photometric loss.
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
from .field import SkipsEmptySpace, density_from_raw, make_mlp, normalize_points
from .compositing import render_weights


# --------------------------------------------------------------------------- spacing


def _g(t: torch.Tensor, b: float) -> torch.Tensor:
    return torch.where(t <= b, t / b, 2.0 - b / t.clamp_min(1e-12))


def _g_inv(v: torch.Tensor, b: float) -> torch.Tensor:
    return torch.where(v <= 1.0, v * b, b / (2.0 - v).clamp_min(1e-12))


def s_to_t(s: torch.Tensor, near: torch.Tensor, far: torch.Tensor, spacing: str, bound: float) -> torch.Tensor:
    """Map s-space ``[R, K]`` in [0, 1] to ray distances ``t`` (``near``, ``far``: ``[R]``)."""
    near, far = near[:, None], far[:, None]
    if spacing == "linear":
        return near + s * (far - near)
    g0, g1 = _g(near, bound), _g(far, bound)
    return _g_inv(g0 + s * (g1 - g0), bound)


def stratified_edges(n_rays: int, n: int, stratified: bool, device=None, dtype=torch.float32,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """``n + 1`` sorted values in [0, 1] per ray (``[n_rays, n + 1]``), first 0 and last 1.

    Regular (``linspace``) unless ``stratified``: then each interior value moves uniformly
    at random between the midpoints of its neighbouring cells (so they stay sorted).
    """
    return edges_from_uniforms(n_rays, n, stratified_uniforms(n_rays, n, stratified, device, dtype, generator),
                               device, dtype)


def stratified_uniforms(n_rays: int, n: int, stratified: bool, device=None, dtype=torch.float32,
                        generator: torch.Generator | None = None) -> torch.Tensor | None:
    """The uniform draws ``[n_rays, n + 1]`` that jitter :func:`stratified_edges` (None when regular)."""
    return torch.rand(n_rays, n + 1, device=device, dtype=dtype, generator=generator) if stratified else None


def edges_from_uniforms(n_rays: int, n: int, r: torch.Tensor | None, device=None, dtype=torch.float32) -> torch.Tensor:
    """:func:`stratified_edges` given its uniform draws ``r [n_rays, n + 1]`` (None: the regular edges);
    a pure function."""
    base = torch.linspace(0.0, 1.0, n + 1, device=device, dtype=dtype).expand(n_rays, n + 1)
    if r is None:
        return base.contiguous()
    mids = 0.5 * (base[:, 1:] + base[:, :-1])
    lower = torch.cat([base[:, :1], mids], -1)
    upper = torch.cat([mids, base[:, -1:]], -1)
    out = lower + (upper - lower) * r
    # the end points stay at exactly 0 and 1 (written without in-place ops, for the compiled path)
    k = torch.arange(n + 1, device=device)
    return torch.where(k == 0, 0.0, torch.where(k == n, 1.0, out))


def sample_pdf(edges: torch.Tensor, weights: torch.Tensor, n: int, stratified: bool, padding: float = 0.05,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Inverse-CDF resampling: ``n + 1`` sorted new edges from a histogram.

    ``edges [R, P + 1]`` (sorted), ``weights [R, P]`` >= 0. The histogram is
    ``(1 - padding) w / sum(w) + padding / P`` (uniform where all weights are 0). Returns
    ``[R, n + 1]``, first and last equal to the first and last input edges.
    """
    u = stratified_edges(edges.shape[0], n, stratified, edges.device, edges.dtype, generator)
    return invert_cdf(edges, weights, u, padding)


def invert_cdf(edges: torch.Tensor, weights: torch.Tensor, u: torch.Tensor, padding: float = 0.05) -> torch.Tensor:
    """:func:`sample_pdf` given its sorted positions ``u [R, n + 1]`` in [0, 1] (pure function)."""
    P = weights.shape[-1]
    w = weights.detach().clamp_min(0.0)
    total = w.sum(-1, keepdim=True)
    pdf = torch.where(total > 0, w / total.clamp_min(1e-20), torch.full_like(w, 1.0 / P))
    pdf = (1.0 - padding) * pdf + padding / P
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1)
    cdf = cdf / cdf[:, -1:]
    idx = torch.searchsorted(cdf.contiguous(), u.contiguous(), right=True) - 1
    idx = idx.clamp(0, P - 1)
    c0, c1 = cdf.gather(-1, idx), cdf.gather(-1, idx + 1)
    e0, e1 = edges.gather(-1, idx), edges.gather(-1, idx + 1)
    frac = ((u - c0) / (c1 - c0).clamp_min(1e-12)).clamp(0.0, 1.0)
    out = e0 + frac * (e1 - e0)
    out = torch.cummax(out, -1).values  # guard against round-off
    return out.detach()


def interlevel_loss(s_final: torch.Tensor, w_final: torch.Tensor, s_prop: torch.Tensor, w_prop: torch.Tensor,
                    eps: float = 1e-7) -> torch.Tensor:
    """mip-NeRF-360 proposal loss (mean over rays).

    For each final interval ``[s0, s1]`` with weight ``w`` (treated as a constant), the
    proposal weights of all proposal intervals overlapping it sum to a bound ``B``; the loss is
    ``sum_i max(0, w_i - B_i)^2 / (w_i + eps)``: the proposal histogram must upper-bound the
    final one. Gradients reach only ``w_prop``.
    """
    w = w_final.detach()
    s0, s1 = s_final[:, :-1].detach(), s_final[:, 1:].detach()
    cw = torch.cat([torch.zeros_like(w_prop[:, :1]), torch.cumsum(w_prop, -1)], -1)  # [R, P + 1]
    P = w_prop.shape[-1]
    sp = s_prop.detach().contiguous()
    lo = (torch.searchsorted(sp, s0.contiguous(), right=True) - 1).clamp(0, P - 1)  # interval holding s0
    hi = (torch.searchsorted(sp, s1.contiguous(), right=False) - 1).clamp(0, P - 1)  # last starting before s1
    hi = torch.maximum(hi, lo)
    bound = cw.gather(-1, hi + 1) - cw.gather(-1, lo)
    return (F.relu(w - bound) ** 2 / (w + eps)).sum(-1).mean()


# --------------------------------------------------------------------------- configs


@dataclass
class ProposalFieldConfig:
    """The proposal sampler's small density-only field (nerfacc / threestudio sizes)."""

    grid: HashGridConfig = field(
        default_factory=lambda: HashGridConfig(
            n_levels=5, n_features_per_level=2, log2_hashmap_size=17, base_resolution=16, per_level_scale=1.4142
        )
    )
    mlp_width: int = 16
    mlp_hidden_layers: int = 1
    blob_density: float = 10.0
    blob_radius: float = 0.5
    checkpoint_points: int = 2**21
    """points per checkpointed chunk with autograd on (as the NeRF field's); 0 = keep all activations"""

    def validate(self) -> None:
        self.grid.validate()
        check_range("checkpoint_points", self.checkpoint_points, 0, None)
        check_range("mlp_width", self.mlp_width, 1, 1024)
        check_range("mlp_hidden_layers", self.mlp_hidden_layers, 0, 16)
        check_range("blob_density", self.blob_density, 0.0, None)
        check_range("blob_radius", self.blob_radius, 0.0, None, lo_open=True)


@dataclass
class SamplerConfig:
    """How rays are sampled. Defaults: the reference's 64 proposal + 64 final samples."""

    kind: Literal["proposal", "uniform"] = "proposal"
    num_samples: int = 64
    """final samples per ray (intervals the NeRF field is evaluated on)"""
    num_proposal_samples: int = 64
    spacing: Literal["auto", "contracted", "linear"] = "auto"
    """auto: contracted for unbounded fields, linear for bounded ones"""
    proposal_padding: float = 0.05
    """fraction of the resampling histogram that is uniform"""
    proposal: ProposalFieldConfig = field(default_factory=ProposalFieldConfig)

    def validate(self) -> None:
        check_range("num_samples", self.num_samples, 1, 4096)
        check_range("num_proposal_samples", self.num_proposal_samples, 1, 4096)
        check_range("proposal_padding", self.proposal_padding, 0.0, 1.0, lo_open=True)
        self.proposal.validate()


# --------------------------------------------------------------------------- samplers


@dataclass
class RaySamples:
    """Interval edges along rays: ``t`` (scene units) and ``s`` (normalised), ``[R, S + 1]``.

    ``aux`` carries what the interlevel loss needs (proposal ``s`` edges and weights).
    """

    t_edges: torch.Tensor
    s_edges: torch.Tensor
    aux: dict

    @property
    def t_mid(self) -> torch.Tensor:
        return 0.5 * (self.t_edges[:, 1:] + self.t_edges[:, :-1])

    def points(self, rays_o: torch.Tensor, rays_d: torch.Tensor) -> torch.Tensor:
        """Interval midpoints in world space, ``[R, S, 3]``."""
        return rays_o[:, None, :] + rays_d[:, None, :] * self.t_mid[..., None]


class UniformSampler(nn.Module):
    """``num_samples`` stratified intervals per ray (no parameters)."""

    def __init__(self, num_samples: int = 64, spacing: str = "linear", bound: float = 2.0):
        super().__init__()
        self.num_samples, self.spacing, self.bound = num_samples, spacing, bound

    def forward(self, rays_o, rays_d, near, far, stratified: bool = False) -> RaySamples:
        s = stratified_edges(rays_o.shape[0], self.num_samples, stratified, rays_o.device, rays_o.dtype)
        return RaySamples(s_to_t(s, near, far, self.spacing, self.bound), s, {})


def density_head(mlp: nn.Module, features: torch.Tensor, x: torch.Tensor, inside: torch.Tensor, blob_density: float,
                 blob_radius: float) -> torch.Tensor:
    """The proposal field after its encoding: MLP -> softplus density ``[...]`` (pure function)."""
    return density_from_raw(mlp(features)[..., 0], x, inside, "softplus", blob_density, blob_radius)


def proposal_points(rays_o: torch.Tensor, rays_d: torch.Tensor, near: torch.Tensor, far: torch.Tensor,
                    r: torch.Tensor | None, n: int, spacing: str, bound: float):
    """The proposal intervals of rays: ``(s edges [R, n + 1], t edges, midpoints [R, n, 3])`` from the
    uniform draws ``r`` (None: regular); a pure function."""
    s = edges_from_uniforms(rays_o.shape[0], n, r, rays_o.device, rays_o.dtype)
    t = s_to_t(s, near, far, spacing, bound)
    mid = 0.5 * (t[:, 1:] + t[:, :-1])
    return s, t, rays_o[:, None, :] + rays_d[:, None, :] * mid[..., None]


def resample(s_p: torch.Tensor, t_p: torch.Tensor, sigma_p: torch.Tensor, u: torch.Tensor, near: torch.Tensor,
             far: torch.Tensor, padding: float, spacing: str, bound: float):
    """Proposal densities -> ``(proposal weights [R, P], final s edges [R, S + 1], t edges)`` at the
    sorted positions ``u [R, S + 1]`` (inverse CDF); a pure function."""
    w_p = render_weights(sigma_p, t_p[:, 1:] - t_p[:, :-1])
    s_f = invert_cdf(s_p, w_p, u, padding)
    return w_p, s_f, s_to_t(s_f, near, far, spacing, bound)


class DensityField(SkipsEmptySpace, nn.Module):
    """Small density-only hash field of the proposal sampler (same contraction as the NeRF)."""

    def __init__(self, cfg: ProposalFieldConfig, bound: float, unbounded: bool):
        super().__init__()
        self.cfg, self.bound, self.unbounded = cfg, bound, unbounded
        self.encoding = HashGridEncoding(cfg.grid)
        self.mlp = make_mlp(self.encoding.output_dim, cfg.mlp_width, cfg.mlp_hidden_layers, 1)
        self.fusion = EAGER

    def skip_space(self) -> tuple[float, bool, int]:
        # with the NeRF field's occupancy grid set, the proposal density is 0 in its empty cells, so
        # the resampled intervals avoid what the NeRF has found empty
        return self.bound, self.unbounded, self.cfg.checkpoint_points

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._skipping_forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        fuse = self.fusion
        u, inside = fuse(normalize_points)(x, self.bound, self.unbounded)
        return fuse(density_head)(self.mlp, self.encoding(u), x, inside, self.cfg.blob_density, self.cfg.blob_radius)


class ProposalSampler(nn.Module):
    """Proposal sampling: P stratified samples -> proposal weights -> S resampled intervals."""

    def __init__(self, cfg: SamplerConfig, bound: float = 2.0, unbounded: bool = True):
        super().__init__()
        self.cfg = cfg
        self.spacing = cfg.spacing if cfg.spacing != "auto" else ("contracted" if unbounded else "linear")
        self.bound = bound
        self.density_field = DensityField(cfg.proposal, bound, unbounded)

    def forward(self, rays_o, rays_d, near, far, stratified: bool = False) -> RaySamples:
        cfg, fuse = self.cfg, self.density_field.fusion
        R, P, S = rays_o.shape[0], cfg.num_proposal_samples, cfg.num_samples
        # the uniform draws of stratified_edges / sample_pdf, in their order (the density field draws none)
        r_p = stratified_uniforms(R, P, stratified, rays_o.device, rays_o.dtype)
        s_p, t_p, pts = fuse(proposal_points)(rays_o, rays_d, near, far, r_p, P, self.spacing, self.bound)
        sigma_p = self.density_field(pts)
        u = stratified_edges(R, S, stratified, rays_o.device, rays_o.dtype)
        w_p, s_f, t_f = fuse(resample)(s_p, t_p, sigma_p, u, near, far, cfg.proposal_padding, self.spacing,
                                       self.bound)
        return RaySamples(t_f, s_f, {"prop_s_edges": s_p, "prop_weights": w_p})


def make_sampler(cfg: SamplerConfig | None, bound: float = 2.0, unbounded: bool = True) -> nn.Module:
    """Build the sampler a config asks for, using the field's ``bound`` / ``unbounded``."""
    cfg = cfg or SamplerConfig()
    cfg.validate()
    if cfg.kind == "uniform":
        spacing = cfg.spacing if cfg.spacing != "auto" else ("contracted" if unbounded else "linear")
        return UniformSampler(cfg.num_samples, spacing, bound)
    return ProposalSampler(cfg, bound, unbounded)


__all__ = [
    "s_to_t",
    "stratified_edges",
    "sample_pdf",
    "interlevel_loss",
    "ProposalFieldConfig",
    "SamplerConfig",
    "RaySamples",
    "UniformSampler",
    "DensityField",
    "ProposalSampler",
    "make_sampler",
]
