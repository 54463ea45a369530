"""Fitting 3D Gaussians to posed images: the optimisation loop of 3D Gaussian splatting.

Each step renders one training view (drawn uniformly with the fitter's own generator), scores it
with ``(1 - lambda_dssim) L1 + lambda_dssim (1 - SSIM)`` times the view's weight (the input
photo of a reconstruction counts more than generated views), and takes one Adam step with the
reference's per-parameter learning rates (the means' decays exponentially and scales with the
scene extent). The SH degree in use grows by one every ``sh_increase_every`` steps up to
``sh_degree``. Between ``densify_start`` and ``densify_stop`` (fractions of the run) the
Gaussians are densified and pruned every ``densify_every`` steps (:mod:`.density`).

:class:`Fitter` holds the whole state (Gaussians, optimiser, statistics, step, generator) and
saves / loads it, so a run can stop and resume exactly where it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ..config import check_range
from .backend import SplatRenderConfig, render_model
from .density import DensityStats, densify, prune, reset_opacity
from .gaussians import GaussianModel
from .sh import MAX_DEGREE


@dataclass
class FitConfig:
    """The Gaussian fit (defaults: the reference 3DGS schedule compressed to ``steps``)."""

    steps: int = 3000
    sh_degree: int = 3
    """spherical-harmonics degree of the colours (0 = view-independent colour)"""
    sh_increase_every: int = 500
    """the degree in use grows by one every this many steps (reference: 1000)"""
    lambda_dssim: float = 0.2
    lr_means: float = 1.6e-4
    """x scene extent; decays exponentially to lr_means_final over the run"""
    lr_means_final: float = 1.6e-6
    lr_sh_dc: float = 0.0025
    lr_sh_rest: float = 0.000125
    lr_opacity: float = 0.05
    lr_scales: float = 0.005
    lr_quats: float = 0.001
    densify_every: int = 100
    densify_start: float = 0.1
    """fraction of the run where densification starts"""
    densify_stop: float = 0.5
    """fraction of the run where it stops"""
    grad_threshold: float = 0.0002
    """mean view-space gradient (normalised device units) that clones or splits a Gaussian"""
    percent_dense: float = 0.01
    """Gaussians larger than this x scene extent are split, smaller ones cloned"""
    min_opacity: float = 0.005
    max_world_size: float = 0.1
    """prune Gaussians larger than this x scene extent (0 = never)"""
    max_screen_size: float = 0.0
    """prune Gaussians whose screen radius exceeded this many pixels (0 = never; reference 20)"""
    opacity_reset_every: int = 0
    """cap opacities at 0.01 every this many steps while densifying (0 = never; reference 3000)"""
    max_gaussians: int = 500_000
    """densification stops adding Gaussians at this count"""
    seed: int = 0

    def validate(self) -> None:
        check_range("fit.steps", self.steps, 1, 10_000_000)
        check_range("fit.sh_degree", self.sh_degree, 0, MAX_DEGREE)
        check_range("fit.sh_increase_every", self.sh_increase_every, 1, None)
        check_range("fit.lambda_dssim", self.lambda_dssim, 0.0, 1.0)
        for k in ("lr_means", "lr_means_final", "lr_sh_dc", "lr_sh_rest", "lr_opacity", "lr_scales", "lr_quats",
                  "grad_threshold", "percent_dense", "max_world_size", "max_screen_size"):
            check_range(f"fit.{k}", getattr(self, k), 0.0, None)
        check_range("fit.densify_every", self.densify_every, 1, None)
        check_range("fit.densify_start", self.densify_start, 0.0, 1.0)
        check_range("fit.densify_stop", self.densify_stop, self.densify_start, 1.0)
        check_range("fit.min_opacity", self.min_opacity, 0.0, 1.0)
        check_range("fit.opacity_reset_every", self.opacity_reset_every, 0, None)
        check_range("fit.max_gaussians", self.max_gaussians, 1, None)


@dataclass
class TrainView:
    """One posed training image: ``image [H, W, 3]`` in [0, 1], OpenGL ``c2w [4, 4]``, ``K [3, 3]``
    (pixels), loss ``weight``."""

    image: torch.Tensor
    c2w: torch.Tensor
    K: torch.Tensor
    weight: float = 1.0


def ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - SSIM`` (11x11 Gaussian window, sigma 1.5) of two ``[H, W, 3]`` images, differentiable."""
    from ..evaluate.metrics import ssim

    return 1.0 - ssim(pred.permute(2, 0, 1)[None], target.permute(2, 0, 1)[None], gaussian=True)[0]


def image_loss(pred: torch.Tensor, target: torch.Tensor, lambda_dssim: float) -> torch.Tensor:
    loss = (1.0 - lambda_dssim) * F.l1_loss(pred, target)
    if lambda_dssim > 0 and min(pred.shape[:2]) >= 11:
        loss = loss + lambda_dssim * ssim_loss(pred, target).to(loss)
    return loss


def _param_groups(model: GaussianModel, cfg: FitConfig, extent: float) -> list[dict]:
    lrs = {"means": cfg.lr_means * extent, "log_scales": cfg.lr_scales, "quats": cfg.lr_quats,
           "opacity_logits": cfg.lr_opacity, "sh_dc": cfg.lr_sh_dc, "sh_rest": cfg.lr_sh_rest}
    return [{"params": [getattr(model, k)], "lr": lr, "name": k} for k, lr in lrs.items()]


class Fitter:
    """The state of one fit (see the module docstring)."""

    def __init__(self, model: GaussianModel, views: Sequence[TrainView], cfg: FitConfig, extent: float,
                 background=(1.0, 1.0, 1.0), render: Optional[SplatRenderConfig] = None):
        if not views:
            raise ValueError("a fit needs at least one training view")
        self.model, self.views, self.cfg, self.extent = model, list(views), cfg, float(extent)
        self.render_cfg = render or SplatRenderConfig()
        dev = model.means.device
        self.background = torch.as_tensor(background, dtype=model.means.dtype, device=dev)
        self.optimizer = torch.optim.Adam(_param_groups(model, cfg, self.extent), eps=1e-15)
        self.stats = DensityStats(len(model), device=dev)
        self.step = 0
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.history: list[dict] = []

    # ------------------------------------------------------------------ schedule

    def active_sh_degree(self, step: int | None = None) -> int:
        step = self.step if step is None else step
        return min(self.cfg.sh_degree, self.model.sh_degree, step // self.cfg.sh_increase_every)

    def _means_lr(self, step: int) -> float:
        t = min(1.0, step / max(1, self.cfg.steps))
        a, b = self.cfg.lr_means * self.extent, max(self.cfg.lr_means_final, 1e-20) * self.extent
        return math.exp((1 - t) * math.log(max(a, 1e-20)) + t * math.log(b))

    def densifying(self, step: int) -> bool:
        n = self.cfg.steps
        return self.cfg.densify_start * n <= step < self.cfg.densify_stop * n

    # ------------------------------------------------------------------ one step

    def train_step(self) -> dict:
        """One optimisation step (plus densification when it is due); returns the step's numbers."""
        cfg = self.cfg
        for group in self.optimizer.param_groups:
            if group["name"] == "means":
                group["lr"] = self._means_lr(self.step)
        i = int(torch.randint(len(self.views), (1,), generator=self.generator))
        view = self.views[i]
        H, W = view.image.shape[:2]
        out = render_model(self.model, view.c2w, view.K, W, H, self.background, self.active_sh_degree(),
                           self.render_cfg)
        target = view.image.to(out.rgb)
        loss = image_loss(out.rgb, target, cfg.lambda_dssim) * view.weight
        loss.backward()
        grad2d = out.means2d_grad()
        if self.densifying(self.step) and grad2d is not None:
            self.stats.update(grad2d, out.radii, out.visible, W, H)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        info = {"step": self.step, "loss": float(loss.detach()), "view": i, "gaussians": len(self.model),
                "sh_degree": self.active_sh_degree()}
        if self.densifying(self.step - 1) and self.step % cfg.densify_every == 0:
            cloned, split = densify(self.model, self.optimizer, self.stats, cfg.grad_threshold, cfg.percent_dense,
                                    self.extent, self.generator, cfg.max_gaussians)
            after_reset = cfg.opacity_reset_every and self.step > cfg.opacity_reset_every
            pruned = prune(self.model, self.optimizer, self.stats, cfg.min_opacity, self.extent,
                           cfg.max_world_size, cfg.max_screen_size if after_reset else 0.0)
            info.update(cloned=cloned, split=split, pruned=pruned, gaussians=len(self.model))
        if cfg.opacity_reset_every and self.densifying(self.step - 1) and self.step % cfg.opacity_reset_every == 0:
            reset_opacity(self.model, self.optimizer)
        self.history.append(info)
        return info

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict:
        return {"gaussians": {k: v.cpu() for k, v in self.model.tensors().items()},
                "optimizer": self.optimizer.state_dict(), "stats": self.stats.state_dict(), "step": self.step,
                "generator": self.generator.get_state(), "history": list(self.history)}

    def load_state_dict(self, state: dict) -> None:
        """Continue a saved fit: the Gaussians (any count), optimiser moments, statistics, step, RNG."""
        dev = self.model.means.device
        self.model.set_rows({k: torch.as_tensor(v).to(dev) for k, v in state["gaussians"].items()})
        self.optimizer = torch.optim.Adam(_param_groups(self.model, self.cfg, self.extent), eps=1e-15)
        self.optimizer.load_state_dict(state["optimizer"])
        self.stats = DensityStats.from_state(state["stats"])
        self.stats.grad_sum, self.stats.count, self.stats.max_radii = (t.to(dev) for t in (
            self.stats.grad_sum, self.stats.count, self.stats.max_radii))
        self.step = int(state["step"])
        self.generator.set_state(state["generator"])
        self.history = list(state.get("history", []))


@torch.no_grad()
def render_views(model: GaussianModel, c2w: torch.Tensor, K: torch.Tensor, width: int, height: int, background,
                 cfg: Optional[SplatRenderConfig] = None) -> torch.Tensor:
    """RGB ``[N, H, W, 3]`` of ``N`` cameras (``c2w [N, 4, 4]``, ``K [N, 3, 3]`` or one ``[3, 3]``)."""
    K = torch.as_tensor(K)
    Ks = K.expand(c2w.shape[0], 3, 3) if K.ndim == 2 else K
    bg = torch.as_tensor(background, dtype=model.means.dtype, device=model.means.device)
    return torch.stack([render_model(model, c2w[i], Ks[i], width, height, bg, cfg=cfg).rgb.clamp(0, 1)
                        for i in range(c2w.shape[0])])
