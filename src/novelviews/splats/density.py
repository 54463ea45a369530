"""Adaptive density control of 3D Gaussians (the reference 3DGS schedule's operations).

* :class:`DensityStats` accumulates, per Gaussian, the norm of the view-space gradient of the loss
  with respect to its projected mean (in normalised device units, ``d/du * W / 2``, so the
  reference's threshold 0.0002 applies), the number of views that saw it and its largest
  screen radius.
* :func:`densify` clones the small Gaussians (largest scale <= ``percent_dense`` x the scene
  extent) whose mean gradient reaches ``grad_threshold`` (under-reconstruction) and splits the
  large ones into two, drawn from the Gaussian itself, with scales / 1.6 (over-reconstruction).
* :func:`prune` removes Gaussians of opacity below ``min_opacity``, and (optionally) those
  larger than ``max_world_size`` x extent in the world or ``max_screen_size`` px on screen.
* :func:`reset_opacity` caps every opacity at a small value (lets densification start over).

Every edit keeps an Adam optimiser in step (:func:`edit_gaussians`): surviving rows keep their
moment estimates, new rows start at zero.
"""

from __future__ import annotations

import math
import torch

from .gaussians import PARAMETERS, GaussianModel, quaternion_to_rotation


def edit_gaussians(model: GaussianModel, optimizer: torch.optim.Optimizer | None, keep: torch.Tensor | None = None,
                   new_rows: dict[str, torch.Tensor] | None = None) -> None:
    """Keep the rows ``keep`` (bool ``[N]``, default all) and append ``new_rows`` (every parameter),
    in the model and in ``optimizer`` (param groups named after the parameters, one tensor each)."""
    old = {name: getattr(model, name) for name in PARAMETERS}
    n = len(model)
    keep = torch.ones(n, dtype=torch.bool, device=model.means.device) if keep is None else keep
    rows = {}
    for name, p in old.items():
        value = p.detach()[keep]
        if new_rows is not None:
            value = torch.cat([value, new_rows[name].to(value)], 0)
        rows[name] = value
    model.set_rows(rows)
    if optimizer is None:
        return
    added = 0 if new_rows is None else new_rows["means"].shape[0]
    for group in optimizer.param_groups:
        name = group.get("name")
        if name not in old:
            continue
        p_old, p_new = old[name], getattr(model, name)
        group["params"] = [p_new]
        state = optimizer.state.pop(p_old, None)
        if state:
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    s = state[key][keep]
                    state[key] = torch.cat([s, s.new_zeros((added,) + s.shape[1:])], 0)
            optimizer.state[p_new] = state


class DensityStats:
    """Per-Gaussian statistics between two densifications (see the module docstring)."""

    def __init__(self, n: int, device=None):
        self.grad_sum = torch.zeros(n, device=device)
        self.count = torch.zeros(n, device=device)
        self.max_radii = torch.zeros(n, device=device)

    def update(self, means2d_grad: torch.Tensor, radii: torch.Tensor, visible: torch.Tensor, width: int,
               height: int) -> None:
        g = means2d_grad.detach().float() * torch.tensor([0.5 * width, 0.5 * height], device=means2d_grad.device)
        norm = g.norm(dim=-1)
        self.grad_sum += torch.where(visible, norm, torch.zeros_like(norm))
        self.count += visible.float()
        self.max_radii = torch.maximum(self.max_radii, torch.where(visible, radii.float(), torch.zeros_like(norm)))

    def reset(self, n: int) -> None:
        """Start over for ``n`` Gaussians (after a densification)."""
        dev = self.count.device
        self.grad_sum, self.count, self.max_radii = (torch.zeros(n, device=dev), torch.zeros(n, device=dev),
                                                     torch.zeros(n, device=dev))

    def mean_grad(self) -> torch.Tensor:
        return torch.where(self.count > 0, self.grad_sum / self.count.clamp_min(1), torch.zeros_like(self.grad_sum))

    def edited(self, keep: torch.Tensor, added: int) -> "DensityStats":
        """The statistics after :func:`edit_gaussians` with ``keep`` and ``added`` new rows (zeros)."""
        out = DensityStats(0)
        for key in ("grad_sum", "count", "max_radii"):
            v = getattr(self, key)[keep]
            setattr(out, key, torch.cat([v, v.new_zeros(added)]))
        return out

    def state_dict(self) -> dict:
        return {"grad_sum": self.grad_sum, "count": self.count, "max_radii": self.max_radii}

    @classmethod
    def from_state(cls, state: dict) -> "DensityStats":
        out = cls(0)
        for key in ("grad_sum", "count", "max_radii"):
            setattr(out, key, torch.as_tensor(state[key]).float())
        return out


def densify(model: GaussianModel, optimizer, stats: DensityStats, grad_threshold: float, percent_dense: float,
            extent: float, generator: torch.Generator | None = None, max_gaussians: int = 0) -> tuple[int, int]:
    """Clone and split (see the module docstring); ``max_gaussians`` > 0 caps the count (the
    Gaussians of largest gradient go first). Returns ``(cloned, split)``; ``stats`` start over."""
    grad = stats.mean_grad().to(model.means.device)
    big = model.scales.detach().max(1).values > percent_dense * extent
    want = grad >= grad_threshold
    if max_gaussians > 0:
        room = max(0, max_gaussians - len(model))
        if int(want.sum()) > room:  # children: a clone adds 1 Gaussian, a split 1 (2 replace 1)
            order = torch.argsort(torch.where(want, grad, torch.full_like(grad, -1.0)), descending=True)
            want = torch.zeros_like(want)
            want[order[:room]] = True
    clone, split = want & ~big, want & big
    p = model.tensors()
    new = {k: p[k][clone] for k in PARAMETERS}
    if split.any():
        s = model.scales.detach()[split]
        R = quaternion_to_rotation(p["quats"][split])
        noise = torch.randn(2, s.shape[0], 3, generator=generator, dtype=torch.float32).to(s) * s
        centres = (R @ noise[..., None]).squeeze(-1) + p["means"][split]  # [2, n, 3]
        child = {k: p[k][split].repeat(2, *([1] * (p[k].ndim - 1))) for k in PARAMETERS}
        child["means"] = centres.reshape(-1, 3)
        child["log_scales"] = (s / (0.8 * 2)).log().repeat(2, 1)
        new = {k: torch.cat([new[k], child[k]], 0) for k in PARAMETERS}
    keep = ~split
    edit_gaussians(model, optimizer, keep, new)
    stats.reset(len(model))
    return int(clone.sum()), int(split.sum())


def prune(model: GaussianModel, optimizer, stats: DensityStats | None, min_opacity: float, extent: float,
          max_world_size: float = 0.0, max_screen_size: float = 0.0) -> int:
    """Remove low-opacity and (with the limits > 0) too-large Gaussians; returns how many. At least one
    Gaussian is always kept."""
    drop = model.opacities.detach() < min_opacity
    if max_world_size > 0:
        drop |= model.scales.detach().max(1).values > max_world_size * extent
    if max_screen_size > 0 and stats is not None:
        drop |= stats.max_radii.to(drop.device) > max_screen_size
    if bool(drop.all()):
        drop[torch.argmax(model.opacities.detach())] = False
    if not drop.any():
        return 0
    keep = ~drop
    edit_gaussians(model, optimizer, keep)
    if stats is not None:
        fresh = stats.edited(keep.to(stats.count.device), 0)
        stats.grad_sum, stats.count, stats.max_radii = fresh.grad_sum, fresh.count, fresh.max_radii
    return int(drop.sum())


def reset_opacity(model: GaussianModel, optimizer, value: float = 0.01) -> None:
    """Cap every opacity at ``value`` and forget the opacity's Adam moments."""
    cap = math.log(value / (1.0 - value))
    with torch.no_grad():
        model.opacity_logits.clamp_(max=cap)
    if optimizer is not None:
        state = optimizer.state.get(model.opacity_logits)
        if state:
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    state[key].zero_()
