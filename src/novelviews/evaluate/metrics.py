"""Image metrics computed the way the ZeroNVS evaluation did: PSNR, SSIM (scikit-image's and the
Gaussian variant), LPIPS from local weights, and scoring a prediction with all of them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, NovelViewsError


def _batch(x: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(x)
    return x[None] if x.ndim == 3 else x


def psnr(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """PSNR (dB) per image, data range 1. ``[B, C, H, W] -> [B]``."""
    p, t = _batch(pred).double(), _batch(target).double()
    mse = ((p - t) ** 2).flatten(1).mean(1)
    return (-10.0 * torch.log10(mse.clamp_min(eps))).float()


def _gaussian_1d(sigma: float, radius: int, dtype, device) -> torch.Tensor:
    """Normalised 1-D Gaussian taps ``[2 radius + 1]``."""
    coords = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur ``[B, C, H, W]`` (or ``[C, H, W]``) with a Gaussian of ``sigma`` pixels, edges replicated;
    separable, kernel radius ``ceil(3 sigma)``. ``sigma = 0`` returns the input. A baseline: a
    blurred copy of the input view scores well in PSNR, which rewards hedging over detail."""
    if sigma < 0 or sigma != sigma:
        raise ValueError(f"gaussian_blur: sigma must be >= 0, got {sigma}")
    images = torch.as_tensor(images)
    if sigma == 0:
        return images.clone()
    x = _batch(images)
    c, r = x.shape[1], max(1, math.ceil(3 * sigma))
    g = _gaussian_1d(sigma, r, x.dtype, x.device).repeat(c, 1, 1)  # [C, 1, 2r+1]
    y = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), g[:, :, None, :], groups=c)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), g[:, :, :, None], groups=c)
    return y[0] if images.ndim == 3 else y


def _window(gaussian: bool, dtype, device) -> torch.Tensor:
    if gaussian:
        g = _gaussian_1d(1.5, 5, dtype, device)
        return torch.outer(g, g)
    return torch.full((7, 7), 1.0 / 49.0, dtype=dtype, device=device)


def ssim(pred: torch.Tensor, target: torch.Tensor, gaussian: bool = False) -> torch.Tensor:
    """SSIM per image (scikit-image's ``structural_similarity`` defaults). ``-> [B]``."""
    p, t = _batch(pred).double(), _batch(target).double()
    B, Cc, H, W = p.shape
    w = _window(gaussian, p.dtype, p.device)
    k = w.shape[0]
    if H < k or W < k:
        raise ValueError(f"SSIM needs images of at least {k}x{k} pixels, got {H}x{W}")
    kernel = w.expand(Cc, 1, k, k)

    def filt(x):
        return F.conv2d(x, kernel, groups=Cc)

    n = k * k
    cov_norm = 1.0 if gaussian else n / (n - 1.0)
    ux, uy = filt(p), filt(t)
    uxx, uyy, uxy = filt(p * p), filt(t * t), filt(p * t)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1, c2 = (0.01 * 1.0) ** 2, (0.03 * 1.0) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3)).float()


# --------------------------------------------------------------------------- LPIPS


LPIPS_NETS = ("vgg", "alex")
# file names torchvision gives the ImageNet backbones in its cache (looked for, never fetched)
TORCHVISION_BACKBONE_FILES = {"vgg": "vgg16-397923af.pth", "alex": "alexnet-owt-7be5be79.pth"}


def lpips_backbone_state(net_module: torch.nn.Module, state_dict: dict) -> dict:
    """Map a torchvision backbone state dict (``features.N.weight``...) onto ``lpips``' slices.

    ``lpips`` splits torchvision's ``features`` into children ``slice1..slice5`` that keep
    the layer numbers (``slice2.5.weight`` is ``features.5.weight``). Keys already in that
    form (``slice2.5.weight`` or ``net.slice2.5.weight``) pass through. Raises
    :class:`NovelViewsError` if a parameter of ``net_module`` is not covered.
    """
    owner: dict[str, str] = {}
    for slice_name, child in net_module.named_children():
        for layer_name, _ in child.named_children():
            owner[layer_name] = slice_name
    out = {}
    for key, value in state_dict.items():
        key = key[4:] if key.startswith("net.") else key
        if key.startswith("slice"):
            out[key] = value
            continue
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "features" and parts[1] in owner:
            out[f"{owner[parts[1]]}.{parts[1]}.{parts[2]}"] = value
    wanted = set(net_module.state_dict())
    missing = sorted(wanted - set(out))
    if missing:
        raise NovelViewsError(
            f"LPIPS backbone weights do not fit the network (missing {missing[0]} and {len(missing) - 1} more): "
            "pass torchvision's vgg16 / alexnet ImageNet state dict"
        )
    return {k: v for k, v in out.items() if k in wanted}


def load_lpips(net: str = "vgg", weights: str | Path | None = None, device="cpu") -> tuple[Optional[torch.nn.Module], str]:
    """An ``lpips.LPIPS`` metric built only from local files, or ``(None, reason)``.

    The ``lpips`` package ships its linear calibration layers; the ImageNet backbone
    (torchvision's ``vgg16`` or ``alexnet`` state dict) comes from ``weights`` or, if that
    is ``None``, from torch's hub cache (``<torch hub dir>/checkpoints/vgg16-397923af.pth``,
    ``alexnet-owt-7be5be79.pth``). Nothing is downloaded. Inputs to the returned module
    are ``[-1, 1]`` images (the reference's convention); the second value says what was used.
    """
    if net not in LPIPS_NETS:
        raise ConfigError(f"config key 'lpips' = {net!r}: choose vgg, alex or off")
    try:
        import lpips
    except ImportError:
        return None, ("LPIPS skipped (reported as null): the 'lpips' package (and torchvision) is not installed; "
                      "run `pip install lpips` and give lpips_weights=PATH to the torchvision backbone weights")
    if weights is None:
        cand = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_BACKBONE_FILES[net]
        if not cand.is_file():
            return None, (f"LPIPS skipped (reported as null): no local {net} backbone weights; set "
                          f"lpips_weights=PATH to torchvision's {TORCHVISION_BACKBONE_FILES[net]} (nothing is downloaded)")
        weights = cand
    weights = Path(weights).expanduser()
    if not weights.is_file():
        return None, f"LPIPS skipped (reported as null): lpips_weights '{weights}' does not exist"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # pnet_rand=True: build the backbone without torchvision fetching ImageNet weights
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    try:
        sd = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        return None, f"LPIPS skipped (reported as null): cannot read '{weights}' ({exc.__class__.__name__})"
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    model.net.load_state_dict(lpips_backbone_state(model.net, sd))
    return model.eval().to(device), f"LPIPS-{net} with backbone {weights}"


@torch.no_grad()
def lpips_distance(metric: torch.nn.Module, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """LPIPS per image ``[B]`` of ``[B, 3, H, W]`` images in ``[0, 1]`` (fed as ``[-1, 1]``)."""
    dev = next(metric.parameters()).device
    p = _batch(pred).float().to(dev) * 2 - 1
    t = _batch(target).float().to(dev) * 2 - 1
    return metric(p, t).flatten().float().cpu()


# --------------------------------------------------------------------------- scoring


def score(pred: torch.Tensor, target: torch.Tensor, ssim_mode: str = "skimage",
          lpips_metric: torch.nn.Module | None = None, lpips_on: bool = True) -> list[dict]:
    """Per-image metrics of ``[B, 3, H, W]`` images in ``[0, 1]``: dicts with ``psnr``,
    ``ssim`` (skimage) and/or ``ssim_gaussian``, and ``lpips`` (``None`` without a metric)."""
    out: list[dict] = [dict() for _ in range(_batch(pred).shape[0])]
    cols = {"psnr": psnr(pred, target)}
    if ssim_mode in ("skimage", "both"):
        cols["ssim"] = ssim(pred, target)
    if ssim_mode in ("gaussian", "both"):
        cols["ssim_gaussian"] = ssim(pred, target, gaussian=True)
    for name, values in cols.items():
        for row, v in zip(out, values.tolist()):
            row[name] = round(float(v), 6)
    if lpips_on:
        values = lpips_distance(lpips_metric, pred, target).tolist() if lpips_metric is not None else [None] * len(out)
        for row, v in zip(out, values):
            row["lpips"] = None if v is None else round(float(v), 6)
    return out


def mean_table(views: list[dict], methods: Sequence[str]) -> dict:
    table = {}
    for m in methods:
        rows = [v["metrics"][m] for v in views if v["metrics"].get(m) is not None]
        entry: dict = {"count": len(rows)}
        keys = sorted({k for r in rows for k in r})
        for k in keys:
            vals = [r[k] for r in rows if r.get(k) is not None]
            entry[k] = round(float(np.mean(vals)), 6) if vals else None
        table[m] = entry
    return table
