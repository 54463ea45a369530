"""Nearest-anchor multi-view generation: several posed inputs -> views at new cameras.

For every target camera the k nearest input cameras are found with
:func:`cameras.pose_distance` (``w_r * angle + w_t * |dt| / s``: rotation angle in radians,
translation normalised by the scene's layout scale ``s`` so the weights are unit-free).

* ``k = 1``: the target is generated from its nearest input alone, through
  :func:`novelviews.generation.generate` with ``anchors`` (exactly that code path).
* ``k > 1``: at every denoising step the classifier-free-guided noise predictions of
  the k conditionings are averaged with weights ``w_j ~ 1 / (d_j + eps) ** power``
  (normalised to sum to 1). Because the unconditional branch (zero context token, zero
  conditioning latent) is the same for every anchor and the weights sum to one,
  ``sum_j w_j (u + g (c_j - u)) = u + g (sum_j w_j c_j - u)``: one batched UNet call holds
  ``B * k`` conditional rows and ``B`` unconditional rows (see :func:`multi_anchor_denoiser`).

Conventions: ``c2w`` OpenGL camera-to-world (x right, y up, looking along -z), ``K`` in
pixels for the *prepared* (centre-cropped, resized) square images, fov vertical in
radians, images ``[-1, 1]`` tensors ``[B, 3, S, S]``.

Scene scale for the 6DoF+1 embedding, per input view (``scale_mode="auto"``): the
0.2-quantile of that view's depth map when the dataset has depth for it; else the
dataset's own ``scene_scale``; else :func:`cameras.scene_scale_from_cameras` of the input
layout (needs >= 2 cameras); else the configured default. The source of every view's
scale is recorded in the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, Sequence

import numpy as np
import torch

from . import cameras as C
from .config import check_range
from .errors import ConfigError, DatasetError, ImageError, NovelViewsError
from .generation import Progress, generate, multi_anchor_denoiser  # noqa: F401 - multi_anchor_denoiser re-exported
from .sampling import SamplingConfig

ScaleMode = Literal["auto", "depth", "dataset", "cameras", "config"]
SCALE_MODES = ("auto", "depth", "dataset", "cameras", "config")


# --------------------------------------------------------------------------- config


@dataclass
class AnchorConfig:
    """How targets pick and weight their nearest input cameras."""

    k: int = 1  # anchors per target (1 = single nearest anchor)
    rotation_weight: float = 1.0  # weight of the rotation angle (radians) in the pose distance
    translation_weight: float = 1.0  # weight of |t_a - t_b| / scene layout scale
    power: float = 1.0  # multi-anchor weights ~ 1 / (distance + eps) ** power
    eps: float = 1e-3  # keeps the weight of a coinciding camera finite

    def validate(self) -> None:
        check_range("anchor.k", self.k, 1, 64)
        check_range("anchor.rotation_weight", self.rotation_weight, 0.0, None)
        check_range("anchor.translation_weight", self.translation_weight, 0.0, None)
        check_range("anchor.power", self.power, 0.0, 16.0)
        check_range("anchor.eps", self.eps, 0.0, None, lo_open=True)
        if self.rotation_weight == 0 and self.translation_weight == 0:
            raise ConfigError("config keys 'anchor.rotation_weight' and 'anchor.translation_weight' are both 0: "
                              "set at least one to a positive value")


# --------------------------------------------------------------------------- prepared inputs


@dataclass
class PreparedViews:
    """Views of a scene at the model's resolution (centre crop or pad, then resize).

    ``images``: ``[M, 3, S, S]`` in ``[-1, 1]``; ``c2w``: float64 ``[M, 4, 4]`` OpenGL;
    ``K``: float64 ``[M, 3, 3]`` pixels of the prepared ``S x S`` images; ``fov``: float64
    ``[M]`` vertical fov (radians) of the prepared images; ``depth``: per view ``float32
    S x S`` z-depth (scene units, 0 = none) or ``None``; ``indices``: index of each view in
    the source scene; ``names``: file names (or labels); ``skipped``: ``(index, reason)``
    for views that could not be read.
    """

    images: torch.Tensor
    c2w: torch.Tensor
    K: torch.Tensor
    fov: torch.Tensor
    depth: list[Optional[np.ndarray]]
    indices: list[int]
    names: list[str]
    size: int
    dataset_scale: Optional[float] = None
    skipped: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.c2w.shape[0])

    @property
    def has_depth(self) -> bool:
        return any(d is not None for d in self.depth)

    def subset(self, rows: Sequence[int]) -> "PreparedViews":
        """The views at positions ``rows`` (positions in this object, not scene indices)."""
        rows = [int(r) for r in rows]
        if not rows:
            raise DatasetError("an empty set of views was selected: keep at least one input view")
        t = torch.as_tensor(rows, dtype=torch.long)
        return PreparedViews(self.images[t], self.c2w[t], self.K[t], self.fov[t], [self.depth[r] for r in rows],
                             [self.indices[r] for r in rows], [self.names[r] for r in rows], self.size,
                             self.dataset_scale, list(self.skipped))


def prepare_views(scene, size: int, mode: Literal["crop", "pad"] = "crop",
                  background: Sequence[float] = (1.0, 1.0, 1.0), indices: Sequence[int] | None = None,
                  load_depth: bool = True, progress: bool = False) -> PreparedViews:
    """Load views of a :class:`~novelviews.io.datasets.MultiViewScene` at ``size x size``.

    Images are centre-cropped (or letterboxed with ``background``) and resized with
    :func:`io.images.center_crop_resize`, which updates ``K`` exactly; depth maps get
    the same crop with nearest sampling. Views whose image or depth cannot be read are
    skipped and listed in ``skipped`` (a :class:`DatasetError` if none is left).
    """
    from .io.images import center_crop_resize, image_to_tensor

    idx = list(range(len(scene))) if indices is None else [int(i) for i in indices]
    imgs, Ks, c2ws, depths, kept, names, skipped = [], [], [], [], [], [], []
    it = idx
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(idx, desc="loading views", unit="view", leave=False)
    for i in it:
        name = scene.images[i].name if scene.images is not None else f"view {i}"
        try:
            img = scene.load_image(i, background=background)
            out, K = center_crop_resize(img, scene.K[i], size, mode=mode, pad_value=list(background))
            depth = None
            if load_depth:
                d = scene.load_depth(i)
                if d is not None:
                    if d.shape[:2] != img.shape[:2]:
                        raise DatasetError(f"depth of '{name}' is {d.shape[1]}x{d.shape[0]} but the image is "
                                           f"{img.shape[1]}x{img.shape[0]}")
                    depth, _ = center_crop_resize(d.astype(np.float32), None, size, mode=mode, pad_value=0.0,
                                                  nearest=True)
        except (ImageError, DatasetError, OSError) as exc:
            skipped.append((i, str(exc)))
            continue
        imgs.append(image_to_tensor(out)[0])
        Ks.append(torch.as_tensor(K, dtype=torch.float64))
        c2ws.append(scene.c2w[i])
        depths.append(depth)
        kept.append(i)
        names.append(name)
    if not kept:
        reasons = "; ".join(r for _, r in skipped[:3])
        raise DatasetError(f"scene '{scene.name}': no view could be read ({reasons})")
    K = torch.stack(Ks)
    return PreparedViews(torch.stack(imgs), torch.stack(c2ws).double(), K, C.fov_from_intrinsics(K, size), depths,
                         kept, names, size, getattr(scene, "scale", None), skipped)


# --------------------------------------------------------------------------- scene scale


def layout_scale(c2w: torch.Tensor) -> Optional[float]:
    """:func:`cameras.scene_scale_from_cameras` when >= 2 distinct camera centres, else ``None``."""
    c2w = torch.as_tensor(c2w, dtype=torch.float64)
    if c2w.shape[0] < 2:
        return None
    centres = c2w[:, :3, 3]
    if float((centres - centres.mean(0)).norm(dim=-1).max()) < 1e-9:
        return None
    return C.scene_scale_from_cameras(c2w)


def view_scales(views: PreparedViews, mode: str = "auto", default: float = 0.7) -> tuple[torch.Tensor, list[str]]:
    """6DoF+1 scene scale per input view ``[M]`` (float64) and the source of each.

    ``auto``: depth 0.2-quantile > dataset ``scene_scale`` > camera layout > ``default``.
    ``depth`` / ``dataset`` / ``cameras`` insist on that source (:class:`ConfigError` if
    it is missing); ``config`` always uses ``default``.
    """
    if mode not in SCALE_MODES:
        raise ConfigError(f"config key 'scale_mode' = {mode!r}: choose one of {', '.join(SCALE_MODES)}")
    M = len(views)
    lay = layout_scale(views.c2w) if mode in ("auto", "cameras") else None
    scales, sources = [], []
    for i in range(M):
        d = views.depth[i]
        if mode in ("auto", "depth") and d is not None and np.any(np.isfinite(d) & (d > 0)):
            scales.append(float(C.depth_quantile_scale(torch.as_tensor(d))))
            sources.append("depth (0.2-quantile)")
        elif mode == "depth":
            raise ConfigError(f"scale_mode 'depth': view '{views.names[i]}' has no depth map; use scale_mode=auto")
        elif mode in ("auto", "dataset") and views.dataset_scale is not None:
            scales.append(float(views.dataset_scale))
            sources.append("dataset (scene_scale)")
        elif mode == "dataset":
            raise ConfigError("scale_mode 'dataset': the dataset gives no scene_scale; use scale_mode=auto")
        elif mode in ("auto", "cameras") and lay is not None:
            scales.append(lay)
            sources.append("camera layout (median distance to the focus point)")
        elif mode == "cameras":
            raise ConfigError("scale_mode 'cameras' needs at least 2 input cameras at different places; "
                              "use scale_mode=auto or config")
        else:
            scales.append(float(default))
            sources.append("config (scale)")
    return torch.tensor(scales, dtype=torch.float64), sources


# --------------------------------------------------------------------------- anchors


def select_anchors(target_c2w, input_c2w, k: int = 1, rotation_weight: float = 1.0,
                   translation_weight: float = 1.0, power: float = 1.0, eps: float = 1e-3,
                   scale: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The k nearest inputs of every target and their blend weights.

    Returns ``(anchors [N, k] long, distances [N, k] float64, weights [N, k] float64)``,
    nearest first; ``weights = (d + eps) ** -power`` normalised per row. ``scale``
    normalises translations (default: the input layout scale, else 1).
    """
    inputs = C.validate_poses(input_c2w, "input camera")
    targets = C.validate_poses(target_c2w, "target camera")
    if k < 1 or k > inputs.shape[0]:
        raise ConfigError(f"k={k} anchors asked for but there are {inputs.shape[0]} input views: "
                          f"use k between 1 and {inputs.shape[0]}")
    if scale is None:
        scale = layout_scale(inputs) or 1.0
    idx, dist = C.nearest_cameras(targets, inputs, k=k, rotation_weight=rotation_weight,
                                  translation_weight=translation_weight, scale=scale)
    w = (dist + eps) ** (-power)
    w = w / w.sum(dim=1, keepdim=True)
    return idx, dist, w


# --------------------------------------------------------------------------- multi-anchor denoiser


def generate_multi_anchor(model, cond_images: torch.Tensor, cond_c2w, target_c2w, target_fov, anchors,
                          weights, scale=1.0, cfg: SamplingConfig | None = None, seeds: Sequence[int] | None = None,
                          progress: Progress = True) -> torch.Tensor:
    """Generate one image per target from k weighted anchors: :func:`novelviews.generation.generate`
    with ``anchors`` ``[N, k]`` indices into the conditioning views and ``weights`` ``[N, k]``
    (normalised), ``cfg.samples`` samples averaged per view. With ``k = 1`` the result equals
    the single-anchor path of :func:`novelviews.generation.generate` bit for bit."""
    return generate(model, cond_images, cond_c2w, target_c2w, target_fov, anchors=anchors, scale=scale, cfg=cfg,
                    seeds=seeds, progress=progress, weights=weights)


# --------------------------------------------------------------------------- nearest-anchor generation


@dataclass
class NearestResult:
    """Output of :func:`generate_nearest`.

    ``images``: ``[N, 3, S, S]`` in ``[-1, 1]``; ``anchors`` / ``distances`` / ``weights``:
    ``[N, k]`` (anchors index the *input* views, nearest first; ``input_indices`` maps
    them to scene indices); ``scales`` / ``scale_sources``: per input view; ``layout_scale``:
    the translation normaliser of the pose distance.
    """

    images: torch.Tensor
    anchors: torch.Tensor
    distances: torch.Tensor
    weights: torch.Tensor
    scales: torch.Tensor
    scale_sources: list[str]
    layout_scale: float
    input_indices: list[int]
    k: int

    def summary(self) -> dict:
        """JSON-able description (no images)."""
        srcs = sorted(set(self.scale_sources))
        return {
            "k": self.k,
            "anchors": [[self.input_indices[j] for j in row] for row in self.anchors.tolist()],
            "distances": [[round(v, 6) for v in row] for row in self.distances.tolist()],
            "weights": [[round(v, 6) for v in row] for row in self.weights.tolist()],
            "scene_scale": {"per_input": dict(zip(self.input_indices, [round(s, 6) for s in self.scales.tolist()])),
                            "sources": srcs},
            "layout_scale": self.layout_scale,
        }


def generate_nearest(model, scene, target_c2w, target_fov, k: int = 1, rotation_weight: float = 1.0,
                     translation_weight: float = 1.0, power: float = 1.0, eps: float = 1e-3,
                     cfg: SamplingConfig | None = None, scale_mode: str = "auto", default_scale: float = 0.7,
                     seeds: Sequence[int] | None = None, image_mode: Literal["crop", "pad"] = "crop",
                     background: Sequence[float] = (1.0, 1.0, 1.0), progress: bool = True) -> NearestResult:
    """Generate every target camera from its k nearest input cameras.

    ``scene``: the *input* views only, a :class:`~novelviews.io.datasets.MultiViewScene`
    (prepared here at ``model.config.image_size``) or :class:`PreparedViews`.
    ``target_c2w``: ``[N, 4, 4]`` OpenGL; ``target_fov``: scalar or ``[N]`` vertical fov
    in radians of the square target image. The images come from
    :func:`novelviews.generation.generate` with the k nearest anchors and their weights
    (``cfg.samples`` samples averaged per view). ``seeds``: one per target (default ``cfg.seed + i``).
    """
    cfg = cfg or SamplingConfig()
    size = model.config.image_size
    views = scene if isinstance(scene, PreparedViews) else prepare_views(scene, size, image_mode, background)
    if views.size != size:
        raise NovelViewsError(f"input views were prepared at {views.size} px but the model works at {size} px")
    target_c2w = C.validate_poses(target_c2w, "target camera")
    N = target_c2w.shape[0]
    fov = torch.as_tensor(target_fov, dtype=torch.float64).expand(N).clone()
    scales, sources = view_scales(views, scale_mode, default_scale)
    lay = layout_scale(views.c2w)
    norm = lay if lay is not None else float(scales.mean())
    k = min(int(k), len(views))
    anchors, dist, w = select_anchors(target_c2w, views.c2w, k, rotation_weight, translation_weight, power, eps,
                                      scale=norm)
    images = generate(model, views.images, views.c2w, target_c2w, fov, anchors=anchors, scale=scales, cfg=cfg,
                      seeds=seeds, progress=progress, weights=w)
    return NearestResult(images, anchors, dist, w, scales, sources, float(norm), list(views.indices), k)


__all__ = [
    "AnchorConfig", "PreparedViews", "prepare_views", "layout_scale", "view_scales", "select_anchors",
    "multi_anchor_denoiser", "generate_multi_anchor", "NearestResult", "generate_nearest", "SCALE_MODES",
]
