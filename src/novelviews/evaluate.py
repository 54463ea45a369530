"""Image metrics (PSNR, SSIM, LPIPS) computed the way the ZeroNVS evaluation did.

* PSNR with data range 1: ``-10 log10(MSE)`` over all pixels and channels.
* SSIM as scikit-image's defaults (what the reference used): 7x7 *uniform* window,
  ``K1 = 0.01``, ``K2 = 0.03``, data range 1, sample covariance (N / (N - 1)), computed
  per channel on the valid region (no padding) and averaged. ``gaussian=True`` gives the
  Wang et al. variant (11x11 Gaussian, sigma 1.5, population covariance).
* LPIPS (VGG as the reference, or AlexNet) needs the ``lpips`` package and its weights
  on disk; nothing is downloaded.

Images are float tensors ``[B, 3, H, W]`` (or ``[3, H, W]``) in ``[0, 1]``.

``nvs eval`` (:func:`run_eval`): hold out frames of a posed multi-view scene
(:func:`parse_holdout`: ``every:K``, ``list:i,j,...``, ``loo``), generate each held-out
frame from the *remaining* frames only, and score it against the ground truth at the
model's resolution after the same centre crop as the inputs. Methods, all in one table:

* ``nearest``: the nearest input (by :func:`cameras.pose_distance`) copied as is;
* ``reproject``: the nearest input forward-splatted into the target camera with its
  depth map and a z-buffer (:func:`reproject`; needs depth);
* ``model``: the diffusion model conditioned on the nearest input (single anchor);
* ``model_k``: the model with the ``anchor.k`` nearest inputs blended per step.

Outputs: ``metrics.json``, ``report.html`` (self-contained), ``sheet.png``, the images
in ``views/`` and ``config.yaml``.
"""

from __future__ import annotations

import base64
import html
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import cameras as C
from .config import check_range, save_config, to_dict
from .errors import ConfigError, DatasetError, NovelViewsError
from .multiview import SCALE_MODES, AnchorConfig
from .sampling import SamplingConfig


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


# --------------------------------------------------------------------------- holdout


@dataclass
class HoldoutGroup:
    """Targets generated from the same input set; indices are positions in the scene."""

    targets: list[int]
    inputs: list[int]


def holdout_spec(spec: str) -> tuple[str, object]:
    """Check the syntax of a holdout spec: ``("every", K)``, ``("list", [i, ...])`` or ``("loo", None)``."""
    spec = spec.strip()
    if spec == "loo":
        return "loo", None
    kind, _, arg = spec.partition(":")
    if kind == "every":
        try:
            K = int(arg)
        except ValueError:
            K = 0
        if K < 2:
            raise ConfigError(f"holdout '{spec}': every:K needs an integer K >= 2 (e.g. every:8)")
        return "every", K
    if kind == "list":
        try:
            raw = [int(x) for x in arg.replace(" ", "").split(",") if x != ""]
        except ValueError:
            raw = []
        if not raw:
            raise ConfigError(f"holdout '{spec}': list needs comma-separated view indices, e.g. list:0,5,9")
        return "list", raw
    raise ConfigError(f"holdout '{spec}' is not understood: use every:K, list:i,j,... or loo")


def parse_holdout(spec: str, n: int) -> list[HoldoutGroup]:
    """Split ``n`` views into held-out targets and the inputs they are generated from.

    ``every:K``: views ``0, K, 2K, ...`` are held out, all others are inputs;
    ``list:0,5,9``: those views are held out (negative indices count from the end);
    ``loo``: every view in turn, from all the others (one group per view). A target is
    never among its own inputs.
    """
    kind, arg = holdout_spec(spec)
    if n < 2:
        raise DatasetError(f"evaluation needs at least 2 readable views (one to hold out, one input), got {n}")
    if kind == "loo":
        return [HoldoutGroup([i], [j for j in range(n) if j != i]) for i in range(n)]
    if kind == "every":
        targets = list(range(0, n, arg))
    else:
        bad = [i for i in arg if not -n <= i < n]
        if bad:
            raise ConfigError(f"holdout '{spec}': indices {bad} are out of range for {n} views (0..{n - 1})")
        targets = sorted({i % n for i in arg})
    inputs = [i for i in range(n) if i not in set(targets)]
    if not inputs:
        raise ConfigError(f"holdout '{spec}' holds out all {n} views: keep at least one input")
    return [HoldoutGroup(targets, inputs)]


# --------------------------------------------------------------------------- reprojection baseline


def _opencv_rt(c2w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    m = C.opengl_to_opencv(torch.as_tensor(c2w, dtype=torch.float64))
    return m[:3, :3], m[:3, 3]


def reproject(image: np.ndarray, depth: np.ndarray, src_K, src_c2w, tgt_K, tgt_c2w, size: int,
              supersample: int = 2, sky: bool = True, fill: Sequence[float] | None = None,
              dilate: int = 2, depth_tolerance: float = 0.02) -> tuple[np.ndarray, float]:
    """Forward-splat a source view into a target camera with a z-buffer.

    ``image``: float32 ``H x W x 3`` in ``[0, 1]``; ``depth``: ``H x W`` z-depth (scene
    units; ``<= 0`` or non-finite = no surface); ``src_K`` / ``tgt_K``: 3x3 pixels
    (pixel centres at ``i + 0.5``); ``*_c2w``: OpenGL camera-to-world; the target image is
    ``size x size``. Every source pixel is splatted from ``supersample^2`` sub-pixel
    positions (its colour and depth); a target pixel keeps the samples within
    ``depth_tolerance`` (relative) of its nearest depth, averaged. With ``sky`` pixels
    without depth are points at infinity (moved by the rotation only, behind all
    surfaces); otherwise they are dropped. Holes are filled from valid 3x3 neighbours
    (``dilate`` passes), then with ``fill`` (default: the source's mean colour).
    Returns ``(image float32 size x size x 3, fraction of pixels covered by a splat)``.
    """
    img = torch.as_tensor(np.asarray(image, dtype=np.float32)).double()
    dep = torch.as_tensor(np.asarray(depth, dtype=np.float32)).double()
    H, W = dep.shape
    if img.shape[:2] != (H, W):
        raise ValueError(f"image {tuple(img.shape)} and depth {tuple(dep.shape)} differ in size")
    ss = max(1, int(supersample))
    off = (torch.arange(ss, dtype=torch.float64) + 0.5) / ss
    v = (torch.arange(H, dtype=torch.float64)[:, None] + off[None, :]).reshape(-1)  # H*ss rows
    u = (torch.arange(W, dtype=torch.float64)[:, None] + off[None, :]).reshape(-1)
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    rows = torch.arange(H).repeat_interleave(ss)
    cols = torch.arange(W).repeat_interleave(ss)
    ri, ci = torch.meshgrid(rows, cols, indexing="ij")
    d = dep[ri, ci].reshape(-1)
    col = img[ri, ci].reshape(-1, 3)
    pix = torch.stack([uu.reshape(-1), vv.reshape(-1), torch.ones_like(d)], 1)
    Ks = torch.as_tensor(src_K, dtype=torch.float64)
    Kt = torch.as_tensor(tgt_K, dtype=torch.float64)
    Rs, ts = _opencv_rt(src_c2w)
    Rt, tt = _opencv_rt(tgt_c2w)
    rays = pix @ torch.linalg.inv(Ks).T  # OpenCV camera coordinates at z = 1
    has = torch.isfinite(d) & (d > 0)
    Xw = (rays * torch.where(has, d, 0.0)[:, None]) @ Rs.T + ts
    Xc = (Xw - tt) @ Rt  # = Rt^T (Xw - tt), row vectors
    Dc = (rays @ Rs.T) @ Rt  # directions (points at infinity)
    P = torch.where(has[:, None], Xc, Dc)
    z = P[:, 2]
    keep = (z > 1e-9) & (has | sky)
    q = P[keep] @ Kt.T
    uv = q[:, :2] / q[:, 2:3]
    zk = torch.where(has[keep], z[keep], torch.full_like(z[keep], math.inf))
    ck = col[keep]
    j = torch.floor(uv[:, 0]).long()
    i = torch.floor(uv[:, 1]).long()
    inb = (i >= 0) & (i < size) & (j >= 0) & (j < size)
    idx, zk, ck = i[inb] * size + j[inb], zk[inb], ck[inb]
    zbuf = torch.full((size * size,), math.inf, dtype=torch.float64)
    zbuf.scatter_reduce_(0, idx, zk, reduce="amin", include_self=True)
    win = (zk <= zbuf[idx] * (1.0 + depth_tolerance)).double()
    acc = torch.zeros(size * size, 3, dtype=torch.float64).index_add_(0, idx, ck * win[:, None])
    cnt = torch.zeros(size * size, dtype=torch.float64).index_add_(0, idx, win)
    valid = cnt > 0
    out = torch.where(valid[:, None], acc / cnt.clamp_min(1)[:, None], 0.0).reshape(size, size, 3)
    coverage = float(valid.double().mean())
    valid = valid.reshape(size, size)
    kernel = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    for _ in range(max(0, int(dilate))):
        if bool(valid.all()):
            break
        m = valid.double()[None, None]
        s = F.conv2d((out.permute(2, 0, 1) * m[0])[:, None], kernel, padding=1)[:, 0].permute(1, 2, 0)
        c = F.conv2d(m, kernel, padding=1)[0, 0]
        grow = (~valid) & (c > 0)
        out[grow] = s[grow] / c[grow][:, None]
        valid = valid | grow
    fill_c = img.reshape(-1, 3).mean(0) if fill is None else torch.as_tensor(fill, dtype=torch.float64)
    out[~valid] = fill_c
    return out.clamp(0, 1).float().numpy(), coverage


# --------------------------------------------------------------------------- config


METHODS = ("nearest", "reproject", "model", "model_k")
METHOD_LABELS = {"nearest": "nearest input (copy)", "reproject": "depth reprojection",
                 "model": "model, 1 anchor", "model_k": "model, k anchors"}
MODEL_METHODS = ("model", "model_k")


def method_label(method: str, k: int) -> str:
    """Human-readable name of a method (``model_k`` names its k)."""
    return f"model, {k} anchors" if method == "model_k" else METHOD_LABELS.get(method, method)


@dataclass
class EvalImageConfig:
    """How views are brought to the evaluation resolution (the same for inputs and ground truth)."""

    mode: Literal["crop", "pad"] = "crop"  # centre crop (default, as the reference) or letterbox
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)  # transparent pixels and padding

    def validate(self) -> None:
        for i, v in enumerate(self.background):
            check_range(f"image.background[{i}]", v, 0.0, 1.0)


@dataclass
class EvalAnchorConfig(AnchorConfig):
    """Anchor selection of ``nvs eval``; ``k`` is the number of anchors of the ``model_k`` method."""

    k: int = 2


@dataclass
class EvalConfig:
    """``nvs eval``: hold out views of a posed scene, regenerate them, score against baselines."""

    model: str = "demo"  # "demo" (bundled) or a checkpoint path; unused if no model method is run
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    use_ema: bool = True  # official checkpoints: EMA weights (as the reference) or raw
    format: str = "auto"  # dataset layout: auto | transforms | colmap | co3d | re10k
    holdout: str = "every:8"  # every:K (views 0, K, 2K...) | list:0,5,9 | loo (each view from all others)
    max_views: Optional[int] = None  # score at most this many held-out views (the first ones)
    methods: tuple[str, ...] = METHODS  # any of nearest, reproject, model, model_k
    anchor: EvalAnchorConfig = field(default_factory=EvalAnchorConfig)  # k = anchors of model_k
    sampling: SamplingConfig = field(default_factory=SamplingConfig)  # view i uses seed + scene index
    scale_mode: str = "auto"  # 6DoF+1 scale per input: auto (depth > dataset > camera layout > scale) | ...
    scale: float = 0.7  # 6DoF+1 scale when nothing better is known (reference precomputed_scale)
    image: EvalImageConfig = field(default_factory=EvalImageConfig)
    size: Optional[int] = None  # evaluation resolution: the model's (None); needed only without a model
    ssim: Literal["skimage", "gaussian", "both"] = "skimage"  # 7x7 uniform (reference) / 11x11 Gaussian
    lpips: Literal["vgg", "alex", "off"] = "vgg"  # LPIPS network (vgg = the reference's)
    lpips_weights: Optional[str] = None  # torchvision backbone state dict (local file; never downloaded)
    reproject_supersample: int = 2  # sub-pixel splats per source pixel side
    reproject_sky: bool = True  # pixels without depth are at infinity (synth sky) rather than holes
    save_images: bool = True  # write views/*.png besides the report

    def validate(self) -> None:
        if not self.methods:
            raise ConfigError("config key 'methods' is empty: list some of " + ", ".join(METHODS))
        for m in self.methods:
            if m not in METHODS:
                raise ConfigError(f"config key 'methods': '{m}' is not one of {', '.join(METHODS)}")
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError("config key 'methods' lists a method twice")
        if "model_k" in self.methods and self.anchor.k < 2:
            raise ConfigError("method 'model_k' needs anchor.k >= 2 (anchor.k=1 is the 'model' method)")
        holdout_spec(self.holdout)
        if self.scale_mode not in SCALE_MODES:
            raise ConfigError(f"config key 'scale_mode' = {self.scale_mode!r}: choose one of {', '.join(SCALE_MODES)}")
        check_range("scale", self.scale, 0.0, None, lo_open=True)
        if self.size is not None:
            check_range("size", self.size, 8, 4096)
        if self.max_views is not None:
            check_range("max_views", self.max_views, 1)
        check_range("reproject_supersample", self.reproject_supersample, 1, 8)


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


def _mean_table(views: list[dict], methods: Sequence[str]) -> dict:
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


# --------------------------------------------------------------------------- report


def _png_b64(img: np.ndarray) -> str:
    from PIL import Image

    from .io.images import to_uint8

    buf = io.BytesIO()
    Image.fromarray(to_uint8(img)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img_tag(img: np.ndarray | None) -> str:
    return "" if img is None else f'<img src="data:image/png;base64,{_png_b64(img)}">'


METRIC_INFO = {"psnr": ("PSNR (dB)", True), "ssim": ("SSIM", True), "ssim_gaussian": ("SSIM (Gaussian)", True),
               "lpips": ("LPIPS", False)}


def bar_chart_svg(means: dict, methods: Sequence[str], metric: str, labels: dict | None = None) -> str:
    """A small inline SVG bar chart of one metric's mean per method (missing values skipped)."""
    labels = labels or METHOD_LABELS
    label, higher = METRIC_INFO.get(metric, (metric, True))
    vals = [(m, means[m].get(metric)) for m in methods if means.get(m, {}).get(metric) is not None]
    width, bar_h, gap, left = 420, 22, 6, 150
    height = 30 + len(vals) * (bar_h + gap)
    top = max([abs(v) for _, v in vals] + [1e-9])
    colours = ["#8c8c8c", "#4c78a8", "#f58518", "#54a24b", "#b279a2"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<text x="4" y="16" font-size="13" font-weight="bold">{html.escape(label)} '
             f'({"higher" if higher else "lower"} is better)</text>']
    for r, (m, v) in enumerate(vals):
        y = 26 + r * (bar_h + gap)
        w = max(1.0, (width - left - 60) * abs(v) / top)
        parts.append(f'<text x="4" y="{y + 15}" font-size="12">{html.escape(labels.get(m, m))}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colours[r % len(colours)]}"/>')
        parts.append(f'<text x="{left + w + 4:.1f}" y="{y + 15}" font-size="12">{v:.4g}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _fmt(metrics: dict | None) -> str:
    if metrics is None:
        return "n/a"
    bits = []
    for k in ("psnr", "ssim", "ssim_gaussian", "lpips"):
        if k in metrics:
            v = metrics[k]
            name = {"psnr": "PSNR", "ssim": "SSIM", "ssim_gaussian": "SSIM-G", "lpips": "LPIPS"}[k]
            bits.append(f"{name} {'–' if v is None else f'{v:.3f}' if k != 'psnr' else f'{v:.2f}'}")
    return " · ".join(bits)


def write_report(path: str | Path, result: dict, images: dict[int, dict[str, np.ndarray]]) -> Path:
    """Write a self-contained ``report.html`` (PNG images embedded as base64, inline SVG charts).

    ``result``: the metrics.json content; ``images``: per held-out scene index, a dict
    ``{"gt": ..., "nearest_input": ..., <method>: ...}`` of float ``H x W x 3`` in [0, 1].
    """
    from .io.runs import atomic_write_text

    methods = result["methods"]
    means = result["mean"]
    labels = result.get("method_labels") or METHOD_LABELS
    metric_keys = [k for k in ("psnr", "ssim", "ssim_gaussian", "lpips")
                   if any(means[m].get(k) is not None for m in methods)]
    e = html.escape
    h = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
         f"<title>nvs eval: {e(result['scene'])}</title><style>",
         "body{font-family:sans-serif;margin:20px;color:#222}table{border-collapse:collapse}",
         "td,th{border:1px solid #ccc;padding:4px 8px;text-align:center;vertical-align:top;font-size:13px}",
         "img{image-rendering:pixelated;width:160px;height:160px}.best{font-weight:bold;background:#e8f4e8}",
         ".note{color:#666;font-size:13px}</style></head><body>",
         f"<h1>nvs eval: {e(result['scene'])}</h1>",
         f"<p class='note'>dataset {e(str(result['dataset']))} · model {e(str(result['model'].get('spec')))} · "
         f"holdout {e(result['holdout']['spec'])} · {len(result['views'])} held-out views at "
         f"{result['size']} px · seed {result['seed']} · k = {result['k']} · "
         f"{e(result['lpips']['message'])}</p>",
         "<h2>Summary (mean over held-out views)</h2><table><tr><th>method</th><th>views</th>"]
    h += [f"<th>{e(METRIC_INFO[k][0])} {'↑' if METRIC_INFO[k][1] else '↓'}</th>" for k in metric_keys]
    h.append("</tr>")
    best = {}
    for k in metric_keys:
        vals = [(means[m][k], m) for m in methods if means[m].get(k) is not None]
        if vals:
            best[k] = (max if METRIC_INFO[k][1] else min)(vals)[1]
    for m in methods:
        h.append(f"<tr><td>{e(labels.get(m, m))}</td><td>{means[m]['count']}</td>")
        for k in metric_keys:
            v = means[m].get(k)
            cls = " class='best'" if best.get(k) == m else ""
            h.append(f"<td{cls}>{'n/a' if v is None else f'{v:.4f}'}</td>")
        h.append("</tr>")
    h.append("</table><h2>Chart</h2><div>")
    h += [bar_chart_svg(means, methods, k, labels) for k in metric_keys]
    h.append("</div><h2>Held-out views</h2><table><tr><th>view</th><th>ground truth</th><th>nearest input</th>")
    shown = [m for m in methods if m != "nearest"]
    h += [f"<th>{e(labels.get(m, m))}</th>" for m in shown]
    h.append("</tr>")
    for v in result["views"]:
        ims = images.get(v["index"], {})
        h.append(f"<tr><td>{v['index']}<br>{e(v['name'])}<br><span class='note'>{v['num_inputs']} inputs</span></td>")
        gt = ims.get("gt")
        h.append(f"<td>{_img_tag(gt)}</td>")
        ni = ims.get("nearest_input")
        nm = v["metrics"].get("nearest") if "nearest" in methods else None
        h.append(f"<td>{_img_tag(ni)}"
                 f"<br>view {v['nearest']}<br>{e(_fmt(nm)) if nm else ''}</td>")
        for m in shown:
            im = ims.get(m)
            body = "n/a" if im is None else _img_tag(im)
            h.append(f"<td>{body}<br>{e(_fmt(v['metrics'].get(m)))}</td>")
        h.append("</tr>")
    h.append("</table>")
    if result.get("skipped"):
        h.append("<h2>Skipped views</h2><ul>")
        h += [f"<li>{e(str(s['index']))}: {e(s['reason'])}</li>" for s in result["skipped"]]
        h.append("</ul>")
    h.append(f"<p class='note'>scene scale sources: {e(', '.join(result['scene_scale']['sources']))}. "
             "PSNR/SSIM with data range 1 (SSIM: scikit-image defaults, 7x7 uniform window); "
             "LPIPS on [-1, 1] inputs.</p></body></html>")
    return atomic_write_text(Path(path), "".join(h))


# --------------------------------------------------------------------------- run


SHORT_LABELS = {"nearest": "copy", "reproject": "reproj", "model": "model"}


def _sheet_tiles(records: list[dict], images: dict, methods: Sequence[str], size: int, k: int):
    """Tiles (upscaled to >= 128 px so labels fit) and labels of the contact sheet, one row per view:
    ground truth, nearest input (with the copy baseline's PSNR), then each other method."""
    rep = max(1, math.ceil(128 / size))
    blank = np.ones((size, size, 3), np.float32)
    tiles, labels = [], []
    for r in records:
        ims = images[r["index"]]
        for c in ["gt", "nearest_input"] + [m for m in methods if m != "nearest"]:
            im = ims.get(c, blank)
            tiles.append(np.repeat(np.repeat(im, rep, 0), rep, 1))
            mkey = "nearest" if c == "nearest_input" else c
            met = r["metrics"].get(mkey)
            psnr_s = f" {met['psnr']:.1f}dB" if met else (" n/a" if mkey in r["metrics"] else "")
            name = {"gt": f"#{r['index']} truth", "nearest_input": f"input #{r['nearest']}",
                    "model_k": f"k={k}"}.get(c, SHORT_LABELS.get(c, c))
            labels.append(name + psnr_s)
    return tiles, labels


def _model_id(spec: str, model) -> dict:
    info: dict = {"spec": spec, "name": getattr(model.config, "name", None),
                  "camera_mode": model.config.camera_mode, "image_size": model.config.image_size,
                  "parameters": int(sum(p.numel() for p in model.parameters()))}
    p = Path(spec)
    if spec not in ("demo", "in-memory") and p.exists():
        st = p.stat()
        info.update(path=str(p.resolve()), mtime=int(st.st_mtime))
    return info


def run_eval(dataset: str | Path, out: str | Path, cfg: EvalConfig, overwrite: bool = False,
             progress: bool = True, model=None) -> dict:
    """``nvs eval``: hold out views, regenerate them from the others, score, write a report.

    ``dataset``: a scene folder or file any reader of :func:`io.datasets.load_scene`
    understands (``cfg.format``). ``model``: an already loaded ViewConditionedLDM (else
    ``cfg.model`` is loaded when a model method is asked for). Writes into ``out`` (a
    new folder; ``overwrite`` replaces a previous run): ``metrics.json``, ``report.html``,
    ``sheet.png`` (rows: ground truth, nearest input, each method), ``views/*.png`` and
    ``config.yaml``. Returns a summary dict (``out``, ``views``, ``mean``, ``seconds``,
    ``lpips``...).
    """
    from .io.datasets import load_scene
    from .io.images import save_image, tensor_to_image
    from .io.runs import atomic_write_json, run_folder
    from .io.video import save_contact_sheet
    from .multiview import generate_nearest, layout_scale, prepare_views, select_anchors, view_scales
    from .sampling import DTYPES
    from .views import load_any_model, resolve_device

    t0 = time.time()
    cfg.validate()
    scene = load_scene(dataset, fmt=cfg.format)
    need_model = any(m in MODEL_METHODS for m in cfg.methods)
    spec = cfg.model
    if need_model:
        if model is None:
            device = resolve_device(cfg.device)
            dt = DTYPES[cfg.sampling.dtype] if device.type == "cuda" else torch.float32
            model = load_any_model(cfg.model, device, dt, cfg.use_ema)
        else:
            spec = cfg.model if cfg.model != "demo" else "in-memory"
        size = model.config.image_size
        if cfg.size is not None and cfg.size != size:
            raise ConfigError(f"config key 'size' = {cfg.size} differs from the model's resolution {size}: "
                              "leave size unset (metrics are computed at the model's resolution)")
    else:  # baselines only: the scene's smallest side, at most 256 px
        size = cfg.size or int(min(256, int(scene.sizes.min())))
    views_all = prepare_views(scene, size, cfg.image.mode, cfg.image.background, progress=progress)
    n = len(views_all)
    groups = parse_holdout(cfg.holdout, n)  # positions in views_all
    if cfg.max_views is not None:
        left, kept = cfg.max_views, []
        for g in groups:
            if left <= 0:
                break
            kept.append(HoldoutGroup(g.targets[:left], g.inputs))
            left -= len(kept[-1].targets)
        groups = kept
    for g in groups:  # the invariant the whole evaluation rests on
        assert not set(g.targets) & set(g.inputs), "a held-out view is among its own inputs"

    lpips_metric, lpips_msg = None, "LPIPS off"
    if cfg.lpips != "off":
        lpips_metric, lpips_msg = load_lpips(cfg.lpips, cfg.lpips_weights, "cpu")

    with run_folder(out, overwrite=overwrite) as out:
        save_config(cfg, out / "config.yaml")
        method_seconds = {m: 0.0 for m in cfg.methods}
        records: list[dict] = []
        images: dict[int, dict[str, np.ndarray]] = {}
        scale_sources: set[str] = set()
        k = cfg.anchor.k
        ac = cfg.anchor
        bar = None
        if progress and len(groups) > 1:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(groups), desc="held-out groups", unit="group")
        for g in groups:
            inputs = views_all.subset(g.inputs)  # the only views the methods below ever see
            tgt_rows = torch.as_tensor(g.targets, dtype=torch.long)
            tgt_c2w = views_all.c2w[tgt_rows]
            tgt_K = views_all.K[tgt_rows]
            tgt_fov = views_all.fov[tgt_rows]
            gt = (views_all.images[tgt_rows] + 1) / 2
            scales, sources = view_scales(inputs, cfg.scale_mode, cfg.scale)
            scale_sources.update(sources)
            lay = layout_scale(inputs.c2w)
            norm = lay if lay is not None else float(scales.mean())
            near, near_d, _ = select_anchors(tgt_c2w, inputs.c2w, 1, ac.rotation_weight, ac.translation_weight,
                                             ac.power, ac.eps, scale=norm)
            near = near[:, 0]
            seeds = [cfg.sampling.seed + views_all.indices[r] for r in g.targets]
            preds: dict[str, list[Optional[np.ndarray]]] = {}
            extra: dict[str, dict] = {}
            for m in cfg.methods:
                tm = time.time()
                if m == "nearest":
                    preds[m] = [tensor_to_image(inputs.images[j]) for j in near.tolist()]
                elif m == "reproject":
                    row = []
                    for t, j in enumerate(near.tolist()):
                        dep = inputs.depth[j]
                        if dep is None:
                            row.append(None)
                            continue
                        img, cov = reproject(tensor_to_image(inputs.images[j]), dep, inputs.K[j], inputs.c2w[j],
                                             tgt_K[t], tgt_c2w[t], size, cfg.reproject_supersample, cfg.reproject_sky)
                        extra.setdefault(m, {})[t] = {"coverage": round(cov, 4)}
                        row.append(img)
                    preds[m] = row
                else:
                    kk = 1 if m == "model" else min(k, len(inputs))
                    res = generate_nearest(model, inputs, tgt_c2w, tgt_fov, k=kk, rotation_weight=ac.rotation_weight,
                                           translation_weight=ac.translation_weight, power=ac.power, eps=ac.eps,
                                           cfg=cfg.sampling, scale_mode=cfg.scale_mode, default_scale=cfg.scale,
                                           seeds=seeds, progress=progress)
                    preds[m] = [tensor_to_image(res.images[t]) for t in range(len(g.targets))]
                    s = res.summary()
                    for t in range(len(g.targets)):
                        extra.setdefault(m, {})[t] = {"anchors": s["anchors"][t], "weights": s["weights"][t]}
                method_seconds[m] += time.time() - tm
            for t, row in enumerate(g.targets):
                idx = views_all.indices[row]
                rec = {"index": idx, "name": views_all.names[row], "num_inputs": len(g.inputs),
                       "nearest": inputs.indices[int(near[t])], "nearest_distance": round(float(near_d[t, 0]), 6),
                       "fov_deg": round(math.degrees(float(tgt_fov[t])), 4), "seed": seeds[t],
                       "metrics": {}, "details": {}, "images": {}}
                ims = {"gt": tensor_to_image(gt[t] * 2 - 1), "nearest_input": tensor_to_image(inputs.images[int(near[t])])}
                for m in cfg.methods:
                    p = preds[m][t]
                    if p is None:
                        rec["metrics"][m] = None
                        rec["details"][m] = "no depth for the nearest input"
                        continue
                    pt = torch.from_numpy(p).permute(2, 0, 1)[None]
                    rec["metrics"][m] = score(pt, gt[t:t + 1], cfg.ssim, lpips_metric, cfg.lpips != "off")[0]
                    if m in extra and t in extra[m]:
                        rec["details"][m] = extra[m][t]
                    ims[m] = p
                if cfg.save_images:
                    for name, im in ims.items():
                        if name == "nearest":  # the same pixels as nearest_input
                            continue
                        rel = f"views/{idx:04d}_{name}.png"
                        save_image(out / rel, im)
                        rec["images"][name] = rel
                    if "nearest" in ims:
                        rec["images"]["nearest"] = rec["images"]["nearest_input"]
                images[idx] = ims
                records.append(rec)
            if bar:
                bar.update(1)
        if bar:
            bar.close()
        records.sort(key=lambda r: r["index"])
        mean = _mean_table(records, cfg.methods)
        result = {
            "dataset": str(dataset),
            "scene": scene.name,
            "size": size,
            "seed": cfg.sampling.seed,
            "k": k,
            "model": _model_id(spec, model) if need_model else None,
            "methods": list(cfg.methods),
            "method_labels": {m: method_label(m, k) for m in cfg.methods},
            "holdout": {"spec": cfg.holdout, "groups": len(groups),
                        "targets": [views_all.indices[r] for g in groups for r in g.targets]},
            "scene_scale": {"mode": cfg.scale_mode, "sources": sorted(scale_sources)},
            "lpips": {"network": cfg.lpips, "available": lpips_metric is not None, "message": lpips_msg},
            "skipped": [{"index": i, "reason": r} for i, r in views_all.skipped],
            "distortion": scene.distortion,
            "mean": mean,
            "views": records,
            "seconds": {"total": None, **{m: round(s, 3) for m, s in method_seconds.items()}},
            "config": to_dict(cfg),
        }
        if records:
            tiles, labels = _sheet_tiles(records, images, cfg.methods, size, k)
            save_contact_sheet(out / "sheet.png", tiles, labels=labels,
                               cols=2 + len([m for m in cfg.methods if m != "nearest"]))
        result["seconds"]["total"] = round(time.time() - t0, 3)
        write_report(out / "report.html", {**result, "model": result["model"] or {"spec": None}}, images)
        atomic_write_json(out / "metrics.json", result)
        return {"out": str(out), "views": len(records), "mean": mean, "seconds": result["seconds"]["total"],
                "lpips": lpips_msg, "lpips_available": lpips_metric is not None, "scale_sources": sorted(scale_sources), "skipped": len(views_all.skipped),
                "size": size}
