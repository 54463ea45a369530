"""The multi-view scene every dataset reader returns (cameras, images, depth, masks)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ...errors import DatasetError
from .. import images as _img


# --------------------------------------------------------------------------- scene


@dataclass
class MultiViewScene:
    """N posed views of one scene.

    Attributes:
        name: a label (folder or file stem).
        c2w: float64 ``[N, 4, 4]`` camera-to-world, OpenGL camera axes.
        K: float64 ``[N, 3, 3]`` intrinsics in pixels (pixel centres at ``i + 0.5``).
        sizes: int64 ``[N, 2]``, per view ``(width, height)`` in pixels.
        images: image files, or ``None`` when ``image_arrays`` hold the pixels.
        image_arrays: in-memory ``float32 H x W x 3`` images in ``[0, 1]`` (optional).
        depth_paths / depth_arrays: z-depth per view (files, or ``float32 H x W``
            arrays); entries may be ``None``.
        depth_scales: per-view multiplier applied to depth read from files.
        depth_encoding: ``"auto"`` or ``"float16_png"`` (see ``images.load_depth_map``).
        mask_paths / mask_arrays: foreground masks per view (``float32 H x W`` in [0, 1]).
        scale: scene scale (scene units) if known, e.g. ZeroNVS' content scale.
        distortion: lens distortion read from the source, reported but never applied:
            ``{"model": str, <coefficient>: float, ...}`` when shared by all views, or
            ``{"model": str, "per_view": [dict, ...]}``; ``None`` if there is none.
        meta: anything else worth keeping (source format, frame ids, URL...).
    """

    name: str
    c2w: torch.Tensor
    K: torch.Tensor
    sizes: torch.Tensor
    images: list[Path] | None = None
    image_arrays: list[np.ndarray] | None = None
    depth_paths: list[Path | None] | None = None
    depth_arrays: list[np.ndarray | None] | None = None
    depth_scales: list[float] | None = None
    depth_encoding: str = "auto"
    mask_paths: list[Path | None] | None = None
    mask_arrays: list[np.ndarray | None] | None = None
    scale: float | None = None
    distortion: dict | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.c2w = torch.as_tensor(self.c2w, dtype=torch.float64)
        self.K = torch.as_tensor(self.K, dtype=torch.float64)
        self.sizes = torch.as_tensor(self.sizes, dtype=torch.int64)
        n = self.c2w.shape[0] if self.c2w.ndim == 3 else -1
        if self.c2w.shape != (n, 4, 4) or n < 1:
            raise DatasetError(f"scene '{self.name}': c2w must be [N, 4, 4] with N >= 1, got {list(self.c2w.shape)}")
        if self.K.shape != (n, 3, 3):
            raise DatasetError(f"scene '{self.name}': K must be [{n}, 3, 3], got {list(self.K.shape)}")
        if self.sizes.shape != (n, 2):
            raise DatasetError(
                f"scene '{self.name}': sizes must be [{n}, 2] (width, height), got {list(self.sizes.shape)}"
            )
        if self.images is None and self.image_arrays is None:
            raise DatasetError(f"scene '{self.name}': give image files or image arrays")
        if self.images is not None:
            self.images = [Path(p) for p in self.images]
        per_view = ("images", "image_arrays", "depth_paths", "depth_arrays", "depth_scales", "mask_paths", "mask_arrays")
        for key in per_view:
            value = getattr(self, key)
            if value is not None and len(value) != n:
                raise DatasetError(f"scene '{self.name}': {key} has {len(value)} entries for {n} cameras")

    def __len__(self) -> int:
        return int(self.c2w.shape[0])

    @property
    def widths(self) -> torch.Tensor:
        return self.sizes[:, 0]

    @property
    def heights(self) -> torch.Tensor:
        return self.sizes[:, 1]

    @property
    def has_depth(self) -> bool:
        lists = [x for x in (self.depth_paths, self.depth_arrays) if x is not None]
        return any(any(v is not None for v in lst) for lst in lists)

    @property
    def has_masks(self) -> bool:
        lists = [x for x in (self.mask_paths, self.mask_arrays) if x is not None]
        return any(any(v is not None for v in lst) for lst in lists)

    def fov_y(self, i: int) -> float:
        """Vertical field of view of view ``i`` in radians."""
        return 2.0 * math.atan(0.5 * float(self.sizes[i, 1]) / float(self.K[i, 1, 1]))

    def load_image(self, i: int, background: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
        """Image ``i`` as ``float32 H x W x 3`` in ``[0, 1]`` (alpha composited on ``background``)."""
        if self.image_arrays is not None and self.image_arrays[i] is not None:
            img = _img.as_float_image(self.image_arrays[i], what=f"image array {i}")
            where = f"image array {i}"
        else:
            img = _img.load_image(self.images[i], background=background)
            where = f"image '{self.images[i]}'"
        w, h = int(self.sizes[i, 0]), int(self.sizes[i, 1])
        if img.shape[:2] != (h, w):
            raise DatasetError(
                f"scene '{self.name}': {where} is {img.shape[1]}x{img.shape[0]} but its camera is for "
                f"{w}x{h}: use images at the calibrated resolution or fix the intrinsics"
            )
        return img

    def load_depth(self, i: int) -> np.ndarray | None:
        """z-depth of view ``i`` (``float32 H x W``, scene units, 0 = none) or ``None``."""
        if self.depth_arrays is not None and self.depth_arrays[i] is not None:
            return np.asarray(self.depth_arrays[i], dtype=np.float32)
        if self.depth_paths is None or self.depth_paths[i] is None:
            return None
        scale = 1.0 if self.depth_scales is None else float(self.depth_scales[i])
        return _img.load_depth_map(self.depth_paths[i], scale=scale, encoding=self.depth_encoding)

    def load_mask(self, i: int) -> np.ndarray | None:
        """Foreground mask of view ``i`` (``float32 H x W`` in [0, 1]) or ``None``."""
        if self.mask_arrays is not None and self.mask_arrays[i] is not None:
            return np.asarray(self.mask_arrays[i], dtype=np.float32)
        if self.mask_paths is None or self.mask_paths[i] is None:
            return None
        return _img.load_mask(self.mask_paths[i])

    def subset(self, indices: Sequence[int]) -> "MultiViewScene":
        """A scene with the views ``indices`` (in that order)."""
        idx = [int(i) for i in (indices.tolist() if hasattr(indices, "tolist") else indices)]
        n = len(self)
        bad = [i for i in idx if not -n <= i < n]
        if bad or not idx:
            raise DatasetError(f"scene '{self.name}' has {n} views: indices {bad or idx} are out of range")

        def pick(lst):
            return None if lst is None else [lst[i] for i in idx]

        distortion = self.distortion
        if distortion is not None and "per_view" in distortion:
            distortion = {**distortion, "per_view": pick(distortion["per_view"])}
        t = torch.as_tensor(idx)
        return replace(
            self,
            c2w=self.c2w[t].clone(),
            K=self.K[t].clone(),
            sizes=self.sizes[t].clone(),
            images=pick(self.images),
            image_arrays=pick(self.image_arrays),
            depth_paths=pick(self.depth_paths),
            depth_arrays=pick(self.depth_arrays),
            depth_scales=pick(self.depth_scales),
            mask_paths=pick(self.mask_paths),
            mask_arrays=pick(self.mask_arrays),
            distortion=distortion,
            meta={**self.meta, "subset": idx},
        )
