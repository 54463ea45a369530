"""Multi-view scenes and readers for common dataset layouts.

Every reader returns a :class:`MultiViewScene` in the conventions of
docs/ARCHITECTURE.md: ``c2w`` float64 ``[N, 4, 4]`` camera-to-world with **OpenGL
camera axes** (x right, y up, looking along -z); ``K`` float64 ``[N, 3, 3]`` in pixels
with pixel ``(i, j)`` centred at ``(i + 0.5, j + 0.5)``; depth is z-depth in scene units.

Layouts read by :func:`load_scene` (``fmt="auto"`` picks by the files present):

``transforms`` -- a ``transforms.json`` (or ``transforms_train.json``), NeRF-synthetic,
    instant-ngp or nerfstudio flavour. Intrinsics come from ``fl_x, fl_y, cx, cy, w, h``
    per frame or at the top level, else from ``camera_angle_x`` (and ``camera_angle_y``);
    ``cx, cy`` default to the image centre; ``w, h`` default to the image's size. A
    ``file_path`` without extension (NeRF-synthetic) is tried with ``.png``, ``.jpg``,
    ``.jpeg``. If an image's real size differs from the ``w, h`` given, ``K`` is scaled
    to the real size. ``transform_matrix`` is OpenGL camera-to-world (used as is).
    ``camera_model`` and distortion keys ``k1 k2 k3 k4 p1 p2`` are read and reported
    in ``scene.distortion`` (not applied). ``depth_file_path`` and ``mask_path`` per
    frame; depth values are multiplied by ``depth_unit_scale_factor`` (default 1e-3
    for integer images such as millimetre PNGs, 1 for ``.npy``). Our own key
    ``scene_scale`` gives :attr:`MultiViewScene.scale`. Other keys (``aabb_scale``,
    ``applied_transform``...) are ignored. Frames whose image is missing are skipped
    with one warning listing them.

``colmap`` -- a COLMAP sparse model (``cameras``, ``images`` and optionally
    ``points3D`` as ``.bin`` or ``.txt``) in ``<root>/sparse/0/``, ``<root>/sparse/``
    or the folder itself; images in ``<root>/images/``. Camera models SIMPLE_PINHOLE,
    PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV, OPENCV_FISHEYE and FULL_OPENCV are read
    (distortion recorded, not applied: undistort with ``colmap image_undistorter`` for
    exact geometry). COLMAP stores world-to-camera ``qvec = (w, x, y, z)``, ``tvec`` in
    OpenCV axes; we invert and flip to OpenGL. COLMAP's pixel grid also puts the centre
    of the top-left pixel at (0.5, 0.5), so ``K`` is used as is. ``points3D`` is not
    read (the 3D points are not needed; ``meta["points3D"]`` says whether it exists).

``co3d`` -- a CO3D-style sequence folder holding ``frame_annotations.json`` (or
    ``.jgz``, gzip JSON): a list of frames, each
    ``{"sequence_name": str (optional), "frame_number": int (optional),
    "image": {"path": str, "size": [h, w]},
    "viewpoint": {"R": 3x3, "T": [3], "focal_length": [fx, fy],
    "principal_point": [px, py], "intrinsics_format": "ndc_isotropic" |
    "ndc_norm_image_bounds" (default)},
    "depth": {"path": str, "scale_adjustment": float} (optional),
    "mask": {"path": str} (optional)}``.
    Paths are relative to the folder or to one of its parents (CO3D paths start at
    the dataset root). A file holding several sequences needs ``sequence=``.
    Conventions (PyTorch3D): row vectors, ``X_cam = X_world @ R + T``, camera axes
    +X left, +Y up, +Z forward (into the scene). NDC intrinsics: with
    ``half = (w/2, h/2)`` and ``r = half`` (``ndc_norm_image_bounds``) or
    ``r = min(half)`` (``ndc_isotropic``): ``f_px = f_ndc * r``,
    ``c_px = half - p_ndc * r`` (per axis). Conversion: the OpenGL camera frame is
    the PyTorch3D frame with x and z negated, so ``w2c_gl = diag(-1, 1, -1) @ [R^T | T]``.
    Depth PNGs hold IEEE half floats in 16-bit PNGs, times ``scale_adjustment``.

``re10k`` -- a RealEstate10K / ACID camera file ``<name>.txt``: line 1 is the video
    URL, then one line per frame: ``timestamp_us fx fy cx cy 0 0`` (intrinsics
    normalised by the image width / height) followed by the 12 numbers of the 3x4
    world-to-camera matrix, row-major, OpenCV axes. Frames are read from
    ``frames/<timestamp>.png`` (or ``.jpg``) next to the txt, or from ``<name>/<timestamp>.png``;
    the image size comes from the first image found.

:func:`write_transforms_json` writes our standard layout (a nerfstudio-compatible
``transforms.json`` with per-frame intrinsics, images in ``images/``, depth as ``.npy``
in ``depth/``, masks in ``masks/``), and :func:`write_colmap_model` a COLMAP model.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import struct
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .. import cameras as C
from ..errors import CameraError, DatasetError, ImageError
from . import images as _img
from .runs import atomic_save, atomic_write_json

FORMATS = ("auto", "transforms", "colmap", "co3d", "re10k")
_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG", ".webp")


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
            img = _img._as_float_image(self.image_arrays[i], what=f"image array {i}")
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


# --------------------------------------------------------------------------- helpers


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file after EXIF orientation, read from its header."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageError(f"cannot read image '{path}' ({exc}): check the file is an image") from None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _find_image(base: Path, rel: str) -> Path | None:
    """Resolve ``rel`` under ``base``; a path without a usable file tries image extensions."""
    p = Path(rel)
    p = p if p.is_absolute() else base / p
    if p.is_file():
        return p
    for ext in _IMAGE_EXTS:
        q = p.with_name(p.name + ext)
        if q.is_file():
            return q
    return None


def _warn_missing(source: str, missing: list[str], total: int) -> None:
    if not missing:
        return
    if len(missing) == total:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DatasetError(f"{source}: none of the {total} images exist (e.g. {shown}): check the image folder")
    shown = ", ".join(missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
    warnings.warn(f"{source}: skipping {len(missing)} of {total} frames whose image is missing: {shown}", stacklevel=3)


def _check_poses(mats: list, labels: list[str], source: str) -> torch.Tensor:
    """Validate camera-to-world matrices one by one; the error names the frame."""
    from ..cameras import validate_poses

    out = []
    for m, label in zip(mats, labels):
        try:
            out.append(validate_poses(m, what="pose")[0])
        except CameraError as exc:
            msg = str(exc)
            msg = msg[len("pose 0: "):] if msg.startswith("pose 0: ") else msg
            raise DatasetError(f"{source}: {label} has a bad camera pose: {msg}") from None
    return torch.stack(out)


def _check_intrinsics(K: torch.Tensor, labels: list[str], source: str) -> torch.Tensor:
    for k, label in zip(K, labels):
        if not torch.isfinite(k).all() or k[0, 0] <= 0 or k[1, 1] <= 0:
            raise DatasetError(
                f"{source}: {label} has bad intrinsics (fx={float(k[0, 0]):.4g}, fy={float(k[1, 1]):.4g}): "
                "focal lengths must be positive and finite"
            )
    return K


def _make_K(fx, fy, cx, cy) -> torch.Tensor:
    return C.intrinsics_from_focal(float(fx), float(fy), float(cx), float(cy))


def _summarise_distortion(model: str | None, per_view: list[dict]) -> dict | None:
    """Shared dict if every view has the same non-zero coefficients, per-view list if not, None if all zero."""
    if not per_view or all(all(abs(v) == 0 for v in d.values()) for d in per_view):
        return None
    first = per_view[0]
    if all(d == first for d in per_view):
        return {"model": model or "unknown", **first}
    return {"model": model or "unknown", "per_view": per_view}


def _read_json(path: Path) -> Any:
    try:
        if path.suffix == ".jgz":
            with gzip.open(path, "rt") as f:
                return json.load(f)
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"'{path}' is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}): fix the file"
        ) from None
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise DatasetError(f"cannot read '{path}' ({exc}): check the file") from None


def _opencv_w2c_to_gl_c2w(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """World-to-camera (OpenCV axes) -> camera-to-world (OpenGL axes), exact inverse."""
    w2c = np.eye(4)
    w2c[:3, :3], w2c[:3, 3] = R, t
    return C.opencv_to_opengl(C.invert_pose(w2c)).numpy()


# --------------------------------------------------------------------------- transforms.json


def load_transforms(path: str | Path) -> MultiViewScene:
    """Read a NeRF-synthetic / instant-ngp / nerfstudio ``transforms.json`` (file or folder)."""
    path = Path(path)
    if path.is_dir():
        for name in ("transforms.json", "transforms_train.json"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise DatasetError(f"'{path}' holds no transforms.json: pass the JSON file or its folder")
    if not path.is_file():
        raise DatasetError(f"'{path}' does not exist: check the path")
    data = _read_json(path)
    source = str(path)
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list) or not data["frames"]:
        raise DatasetError(f"{source}: expected a JSON object with a non-empty 'frames' list")
    base = path.parent

    def get(frame: dict, key: str, default=None):
        return frame.get(key, data.get(key, default))

    mats, labels, img_paths, Ks, sizes, depths, masks, dist, missing = [], [], [], [], [], [], [], [], []
    any_png_depth = False
    for i, frame in enumerate(data["frames"]):
        if not isinstance(frame, dict) or "file_path" not in frame or "transform_matrix" not in frame:
            raise DatasetError(f"{source}: frame {i} needs 'file_path' and 'transform_matrix'")
        rel = str(frame["file_path"])
        img = _find_image(base, rel)
        if img is None:
            missing.append(rel)
            continue
        W, H = _image_size(img)
        try:
            w = float(get(frame, "w", W))
            h = float(get(frame, "h", H))
            if get(frame, "fl_x") is not None:
                fx = float(get(frame, "fl_x"))
                fy = float(get(frame, "fl_y", fx))
            elif get(frame, "camera_angle_x") is not None:
                fx = 0.5 * w / math.tan(0.5 * float(get(frame, "camera_angle_x")))
                ay = get(frame, "camera_angle_y")
                fy = fx if ay is None else 0.5 * h / math.tan(0.5 * float(ay))
            else:
                raise DatasetError(
                    f"{source}: frame {i} ('{rel}') has no intrinsics: add 'fl_x'/'fl_y' or 'camera_angle_x'"
                )
            cx = float(get(frame, "cx", w / 2.0))
            cy = float(get(frame, "cy", h / 2.0))
            coeffs = {k: float(get(frame, k, 0.0)) for k in ("k1", "k2", "k3", "k4", "p1", "p2")}
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"{source}: frame {i} ('{rel}') has a non-numeric intrinsic ({exc})") from None
        K = _make_K(fx, fy, cx, cy)
        if (W, H) != (round(w), round(h)):  # intrinsics given for another resolution
            K = _img.transform_intrinsics(K, W / w, H / h)
        try:
            m = np.asarray(frame["transform_matrix"], dtype=np.float64)
        except (TypeError, ValueError):
            raise DatasetError(f"{source}: frame {i} ('{rel}'): transform_matrix is not a numeric 4x4 matrix") from None
        mats.append(m)
        labels.append(f"frame {i} ('{rel}')")
        img_paths.append(img)
        Ks.append(K)
        sizes.append((W, H))
        dist.append(coeffs)
        d = get(frame, "depth_file_path")
        dpath = None if d is None else (Path(d) if Path(d).is_absolute() else base / d)
        if dpath is not None and dpath.suffix.lower() not in (".npy", ".npz"):
            any_png_depth = True
        depths.append(dpath)
        mk = get(frame, "mask_path")
        masks.append(None if mk is None else (Path(mk) if Path(mk).is_absolute() else base / mk))
    _warn_missing(source, missing, len(data["frames"]))
    c2w = _check_poses(mats, labels, source)
    K = _check_intrinsics(torch.stack(Ks), labels, source)
    depth_scale = data.get("depth_unit_scale_factor", 1e-3 if any_png_depth else 1.0)
    scale = data.get("scene_scale")
    meta = {
        "format": "transforms",
        "source": source,
        "camera_model": data.get("camera_model"),
        "skipped_frames": missing,
    }
    extra = data.get("novelviews")
    if isinstance(extra, dict):
        meta.update(extra.get("meta", {}))
    return MultiViewScene(
        name=base.name if path.name.startswith("transforms") else path.stem,
        c2w=c2w,
        K=K,
        sizes=torch.tensor(sizes, dtype=torch.int64),
        images=img_paths,
        depth_paths=depths if any(d is not None for d in depths) else None,
        depth_scales=[float(depth_scale)] * len(depths) if any(d is not None for d in depths) else None,
        mask_paths=masks if any(m is not None for m in masks) else None,
        scale=None if scale is None else float(scale),
        distortion=_summarise_distortion(data.get("camera_model"), dist),
        meta=meta,
    )


def _jsonable(obj: Any) -> Any:
    try:
        json.dumps(obj)
        return obj
    except (TypeError, ValueError):
        if isinstance(obj, dict):
            return {str(k): _jsonable(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [_jsonable(v) for v in obj]
        if hasattr(obj, "tolist"):
            return obj.tolist()
        return str(obj)


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, arr)


def write_transforms_json(scene: Any, path: str | Path) -> Path:
    """Write ``scene`` in our standard layout and return the JSON path.

    ``scene`` is a :class:`MultiViewScene` or any object with the same attributes
    (at least ``c2w``, ``K``, ``sizes`` and ``images`` or ``image_arrays``; the rest is
    optional). ``path`` is the ``transforms.json`` to write (a folder gets
    ``transforms.json`` inside). Layout, all paths relative to the JSON's folder:

    * ``frames[i]``: ``file_path``, ``transform_matrix`` (OpenGL c2w), ``fl_x``,
      ``fl_y``, ``cx``, ``cy``, ``w``, ``h``; ``depth_file_path`` (``.npy`` float32
      z-depth in scene units) and ``mask_path`` (PNG) when present;
    * top level: ``camera_model`` ``"PINHOLE"``, ``depth_unit_scale_factor`` 1.0,
      ``scene_scale`` when known, ``novelviews: {"name", "meta"}``.

    In-memory images are written to ``images/frame_00000.png`` ...; depth that is in
    memory or needs decoding (scaled or float16 PNG) to ``depth/frame_00000.npy``;
    in-memory masks to ``masks/frame_00000.png``. Image files that already exist are
    referenced, not copied. Every file is written atomically.
    """
    path = Path(path)
    if path.suffix.lower() != ".json":
        path = path / "transforms.json"
    root = path.parent
    root.mkdir(parents=True, exist_ok=True)
    c2w = torch.as_tensor(scene.c2w, dtype=torch.float64).reshape(-1, 4, 4)
    K = torch.as_tensor(scene.K, dtype=torch.float64).reshape(-1, 3, 3)
    sizes = torch.as_tensor(scene.sizes, dtype=torch.int64).reshape(-1, 2)
    n = c2w.shape[0]
    images = getattr(scene, "images", None)
    arrays = getattr(scene, "image_arrays", None)
    if images is None and arrays is None:
        raise DatasetError("write_transforms_json: the scene has neither image files nor image arrays")
    if K.shape[0] != n or sizes.shape[0] != n:
        raise DatasetError(f"write_transforms_json: {n} poses but {K.shape[0]} intrinsics and {sizes.shape[0]} sizes")
    depth_arrays = getattr(scene, "depth_arrays", None)
    depth_paths = getattr(scene, "depth_paths", None)
    depth_scales = getattr(scene, "depth_scales", None)
    encoding = getattr(scene, "depth_encoding", "auto")
    mask_arrays = getattr(scene, "mask_arrays", None)
    mask_paths = getattr(scene, "mask_paths", None)

    def rel(p: Path) -> str:
        return Path(os.path.relpath(Path(p).resolve(), root.resolve())).as_posix()

    frames = []
    has_depth = False
    for i in range(n):
        stem = f"frame_{i:05d}"
        if arrays is not None and arrays[i] is not None:
            file_path = f"images/{stem}.png"
            _img.save_image(root / file_path, arrays[i])
        else:
            file_path = rel(images[i])
        frame = {
            "file_path": file_path,
            "transform_matrix": c2w[i].tolist(),
            "fl_x": float(K[i, 0, 0]),
            "fl_y": float(K[i, 1, 1]),
            "cx": float(K[i, 0, 2]),
            "cy": float(K[i, 1, 2]),
            "w": int(sizes[i, 0]),
            "h": int(sizes[i, 1]),
        }
        depth = None
        if depth_arrays is not None and depth_arrays[i] is not None:
            depth = np.asarray(depth_arrays[i], dtype=np.float32)
        elif depth_paths is not None and depth_paths[i] is not None:
            dp = Path(depth_paths[i])
            s = 1.0 if depth_scales is None else float(depth_scales[i])
            if dp.suffix.lower() == ".npy" and s == 1.0 and encoding == "auto":
                frame["depth_file_path"] = rel(dp)
                has_depth = True
            else:
                depth = _img.load_depth_map(dp, scale=s, encoding=encoding)
        if depth is not None:
            frame["depth_file_path"] = f"depth/{stem}.npy"
            atomic_save(root / frame["depth_file_path"], lambda p, d=depth: _save_npy(p, d))
            has_depth = True
        if mask_arrays is not None and mask_arrays[i] is not None:
            frame["mask_path"] = f"masks/{stem}.png"
            _img.save_image(root / frame["mask_path"], np.asarray(mask_arrays[i], dtype=np.float32))
        elif mask_paths is not None and mask_paths[i] is not None:
            frame["mask_path"] = rel(mask_paths[i])
        frames.append(frame)
    out: dict[str, Any] = {"camera_model": "PINHOLE"}
    if has_depth:
        out["depth_unit_scale_factor"] = 1.0
    if getattr(scene, "scale", None) is not None:
        out["scene_scale"] = float(scene.scale)
    out["novelviews"] = {
        "name": str(getattr(scene, "name", root.name)),
        "conventions": "c2w OpenGL camera axes; K pixels with pixel centres at i + 0.5; depth z-depth",
        "meta": _jsonable(dict(getattr(scene, "meta", {}) or {})),
    }
    out["frames"] = frames
    return atomic_write_json(path, out)


# --------------------------------------------------------------------------- COLMAP

# model id -> (name, number of params)
COLMAP_MODELS: dict[int, tuple[str, int]] = {
    0: ("SIMPLE_PINHOLE", 3),
    1: ("PINHOLE", 4),
    2: ("SIMPLE_RADIAL", 4),
    3: ("RADIAL", 5),
    4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8),
    6: ("FULL_OPENCV", 12),
    7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5),
    10: ("THIN_PRISM_FISHEYE", 12),
}
_COLMAP_IDS = {name: i for i, (name, _) in COLMAP_MODELS.items()}
# name -> (fx, fy, cx, cy param indices; distortion coefficient names in param order after them)
_COLMAP_LAYOUT: dict[str, tuple[tuple[int, int, int, int], tuple[str, ...]]] = {
    "SIMPLE_PINHOLE": ((0, 0, 1, 2), ()),
    "PINHOLE": ((0, 1, 2, 3), ()),
    "SIMPLE_RADIAL": ((0, 0, 1, 2), ("k1",)),
    "RADIAL": ((0, 0, 1, 2), ("k1", "k2")),
    "OPENCV": ((0, 1, 2, 3), ("k1", "k2", "p1", "p2")),
    "OPENCV_FISHEYE": ((0, 1, 2, 3), ("k1", "k2", "k3", "k4")),
    "FULL_OPENCV": ((0, 1, 2, 3), ("k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6")),
}


@dataclass
class ColmapCamera:
    """One COLMAP camera: model name, image size (pixels) and raw parameters."""

    model: str
    width: int
    height: int
    params: list[float]


@dataclass
class ColmapImage:
    """One registered image: world-to-camera ``qvec (w, x, y, z)``, ``tvec`` (OpenCV axes)."""

    qvec: list[float]
    tvec: list[float]
    camera_id: int
    name: str


def qvec_to_rotmat(q: Sequence[float]) -> np.ndarray:
    """Unit quaternion ``(w, x, y, z)`` -> 3x3 rotation matrix (normalised first)."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotmat_to_qvec(R: np.ndarray) -> np.ndarray:
    """3x3 rotation -> unit quaternion ``(w, x, y, z)`` with ``w >= 0`` (Shepperd's method)."""
    R = np.asarray(R, dtype=np.float64)
    tr = np.trace(R)
    if tr > 0:
        s = 2.0 * math.sqrt(1.0 + tr)
        q = [0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * math.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [(R[2, 1] - R[1, 2]) / s, 0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s]
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * math.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    q = q / np.linalg.norm(q)
    return -q if q[0] < 0 else q


def _text_lines(path: Path) -> list[str]:
    try:
        return [ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#")]
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read COLMAP file '{path}' ({exc})") from None


def read_colmap_cameras_text(path: Path) -> dict[int, ColmapCamera]:
    """``cameras.txt``: ``CAMERA_ID MODEL WIDTH HEIGHT PARAMS...`` per line."""
    cams = {}
    for n, line in enumerate(_text_lines(path)):
        tok = line.split()
        if not tok:
            continue
        try:
            cams[int(tok[0])] = ColmapCamera(tok[1], int(tok[2]), int(tok[3]), [float(v) for v in tok[4:]])
        except (ValueError, IndexError):
            raise DatasetError(f"'{path}': malformed camera line '{line.strip()}'") from None
    return cams


def read_colmap_images_text(path: Path) -> dict[int, ColmapImage]:
    """``images.txt``: per image a line ``ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`` then a
    line of 2D points (possibly empty), which we skip."""
    lines = _text_lines(path)
    out, i = {}, 0
    while i < len(lines):
        tok = lines[i].split()
        if not tok:  # blank line where a header is expected
            i += 1
            continue
        if len(tok) < 10:
            raise DatasetError(f"'{path}': malformed image line '{lines[i].strip()}' (expected 10 fields)")
        try:
            out[int(tok[0])] = ColmapImage(
                [float(v) for v in tok[1:5]], [float(v) for v in tok[5:8]], int(tok[8]), " ".join(tok[9:])
            )
        except ValueError:
            raise DatasetError(f"'{path}': malformed image line '{lines[i].strip()}'") from None
        i += 2  # skip the POINTS2D line
    return out


class _Reader:
    """Little-endian struct reader with a clear error on truncated files."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.data = path.read_bytes()
        except OSError as exc:
            raise DatasetError(f"cannot read COLMAP file '{path}' ({exc})") from None
        self.pos = 0

    def read(self, fmt: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise DatasetError(f"COLMAP file '{self.path}' is truncated: re-export the model")
        vals = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return vals

    def read_cstr(self) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise DatasetError(f"COLMAP file '{self.path}' is truncated: re-export the model")
        s = self.data[self.pos : end].decode("utf-8", errors="replace")
        self.pos = end + 1
        return s


def read_colmap_cameras_binary(path: Path) -> dict[int, ColmapCamera]:
    """``cameras.bin``: uint64 count; per camera int32 id, int32 model, uint64 w, h, float64 params."""
    r = _Reader(path)
    (count,) = r.read("Q")
    cams = {}
    for _ in range(count):
        cam_id, model_id, w, h = r.read("iiQQ")
        if model_id not in COLMAP_MODELS:
            raise DatasetError(f"'{path}': unknown COLMAP camera model id {model_id}")
        name, nparams = COLMAP_MODELS[model_id]
        cams[cam_id] = ColmapCamera(name, int(w), int(h), list(r.read("d" * nparams)))
    return cams


def read_colmap_images_binary(path: Path) -> dict[int, ColmapImage]:
    """``images.bin``: uint64 count; per image uint32 id, 4+3 float64, uint32 camera id,
    NUL-terminated name, uint64 n, n x (float64 x, float64 y, int64 point id)."""
    r = _Reader(path)
    (count,) = r.read("Q")
    out = {}
    for _ in range(count):
        (img_id,) = r.read("I")
        q = r.read("dddd")
        t = r.read("ddd")
        (cam_id,) = r.read("I")
        name = r.read_cstr()
        (npts,) = r.read("Q")
        r.pos += 24 * npts
        if r.pos > len(r.data):
            raise DatasetError(f"COLMAP file '{path}' is truncated: re-export the model")
        out[img_id] = ColmapImage(list(q), list(t), int(cam_id), name)
    return out


def _colmap_model_dir(root: Path) -> Path | None:
    for cand in (root / "sparse" / "0", root / "sparse", root):
        if any((cand / f"cameras{ext}").is_file() for ext in (".bin", ".txt")):
            return cand
    return None


def load_colmap(path: str | Path, images_dir: str | Path | None = None) -> MultiViewScene:
    """Read a COLMAP sparse model (text or binary) and its images (see module docstring)."""
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"COLMAP folder '{root}' does not exist: pass the folder holding sparse/ and images/")
    model = _colmap_model_dir(root)
    if model is None:
        raise DatasetError(f"'{root}' holds no COLMAP model: expected sparse/0/cameras.bin (or .txt)")
    binary = (model / "cameras.bin").is_file() and (model / "images.bin").is_file()
    ext = ".bin" if binary else ".txt"
    if not (model / f"images{ext}").is_file():
        raise DatasetError(f"COLMAP model '{model}' has cameras{ext} but no images{ext}: export the full model")
    if binary:
        cams = read_colmap_cameras_binary(model / "cameras.bin")
        imgs = read_colmap_images_binary(model / "images.bin")
    else:
        cams = read_colmap_cameras_text(model / "cameras.txt")
        imgs = read_colmap_images_text(model / "images.txt")
    if images_dir is None:
        cands = [root / "images"] + [p / "images" for p in list(model.parents)[:3]]
        images_dir = next((c for c in cands if c.is_dir()), None)
        if images_dir is None:
            raise DatasetError(
                f"no images/ folder found next to the COLMAP model in '{root}': put the images in {root / 'images'}"
            )
    images_dir = Path(images_dir)
    source = str(model)

    mats, labels, paths, Ks, sizes, dist, missing = [], [], [], [], [], [], []
    models_seen = set()
    for img_id, im in sorted(imgs.items(), key=lambda kv: kv[1].name):
        cam = cams.get(im.camera_id)
        if cam is None:
            raise DatasetError(f"{source}: image '{im.name}' uses camera {im.camera_id}, which cameras{ext} lacks")
        if cam.model not in _COLMAP_LAYOUT:
            raise DatasetError(
                f"{source}: camera model {cam.model} is not supported: undistort the images first "
                "(`colmap image_undistorter`) to get a PINHOLE model"
            )
        p = images_dir / im.name
        if not p.is_file():
            missing.append(im.name)
            continue
        (ifx, ify, icx, icy), names = _COLMAP_LAYOUT[cam.model]
        prm = cam.params
        if len(prm) != 4 - (ifx == ify) + len(names):
            raise DatasetError(f"{source}: camera {im.camera_id} ({cam.model}) has {len(prm)} parameters")
        Ks.append(_make_K(prm[ifx], prm[ify], prm[icx], prm[icy]))
        dist.append(dict(zip(names, prm[4 - (ifx == ify):])))
        models_seen.add(cam.model)
        if np.linalg.norm(im.qvec) < 1e-8:
            raise DatasetError(f"{source}: image '{im.name}' has a zero quaternion: the model is corrupt")
        mats.append(_opencv_w2c_to_gl_c2w(qvec_to_rotmat(im.qvec), np.asarray(im.tvec, dtype=np.float64)))
        labels.append(f"image {img_id} ('{im.name}')")
        paths.append(p)
        sizes.append((cam.width, cam.height))
    if not imgs:
        raise DatasetError(f"{source}: the model has no registered images")
    _warn_missing(source, missing, len(imgs))
    c2w = _check_poses(mats, labels, source)
    K = _check_intrinsics(torch.stack(Ks), labels, source)
    distortion = _summarise_distortion("/".join(sorted(models_seen)), dist)
    if distortion is not None:
        warnings.warn(
            f"{source}: lens distortion ({distortion['model']}) is read but not applied: "
            "undistort the images (`colmap image_undistorter`) for exact geometry",
            stacklevel=2,
        )
    has_points = any((model / f"points3D{e}").is_file() for e in (".bin", ".txt"))
    return MultiViewScene(
        name=images_dir.parent.name,
        c2w=c2w,
        K=K,
        sizes=torch.tensor(sizes, dtype=torch.int64),
        images=paths,
        distortion=distortion,
        meta={
            "format": "colmap",
            "source": source,
            "binary": binary,
            "points3D": "present, not read" if has_points else "absent",
            "skipped_frames": missing,
        },
    )


def write_colmap_model(scene: Any, folder: str | Path, binary: bool = True) -> Path:
    """Write ``scene``'s cameras as a COLMAP model (one PINHOLE camera per view).

    Writes ``cameras``, ``images`` and an empty ``points3D`` in ``.bin`` or ``.txt``.
    Image names are the file names of ``scene.images`` (or ``frame_00000.png`` ...).
    Poses are converted from OpenGL c2w to COLMAP's OpenCV world-to-camera.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    c2w = torch.as_tensor(scene.c2w, dtype=torch.float64).numpy()
    K = torch.as_tensor(scene.K, dtype=torch.float64).numpy()
    sizes = torch.as_tensor(scene.sizes).numpy()
    images = getattr(scene, "images", None)
    names = [Path(p).name for p in images] if images is not None else [f"frame_{i:05d}.png" for i in range(len(c2w))]
    rows = []
    for i in range(len(c2w)):
        w2c = C.invert_pose(C.opengl_to_opencv(c2w[i])).numpy()  # OpenCV world-to-camera
        R, t = w2c[:3, :3], w2c[:3, 3]
        rows.append((i + 1, rotmat_to_qvec(R), t, K[i], sizes[i], names[i]))
    if binary:
        cam = bytearray(struct.pack("<Q", len(rows)))
        img = bytearray(struct.pack("<Q", len(rows)))
        for idx, q, t, k, (w, h), name in rows:
            cam += struct.pack("<iiQQ", idx, _COLMAP_IDS["PINHOLE"], int(w), int(h))
            cam += struct.pack("<4d", k[0, 0], k[1, 1], k[0, 2], k[1, 2])
            img += struct.pack("<I4d3dI", idx, *q, *t, idx) + name.encode() + b"\x00" + struct.pack("<Q", 0)
        atomic_save(folder / "cameras.bin", lambda p: p.write_bytes(bytes(cam)))
        atomic_save(folder / "images.bin", lambda p: p.write_bytes(bytes(img)))
        atomic_save(folder / "points3D.bin", lambda p: p.write_bytes(struct.pack("<Q", 0)))
    else:
        cam_lines = ["# Camera list with one line of data per camera:", "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]"]
        img_lines = [
            "# Image list with two lines of data per image:",
            "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
        ]
        for idx, q, t, k, (w, h), name in rows:
            params = " ".join(repr(float(v)) for v in (k[0, 0], k[1, 1], k[0, 2], k[1, 2]))
            cam_lines.append(f"{idx} PINHOLE {int(w)} {int(h)} {params}")
            pose = " ".join(repr(float(v)) for v in (*q, *t))
            img_lines.append(f"{idx} {pose} {idx} {name}")
            img_lines.append("")
        atomic_save(folder / "cameras.txt", lambda p: p.write_text("\n".join(cam_lines) + "\n"))
        atomic_save(folder / "images.txt", lambda p: p.write_text("\n".join(img_lines) + "\n"))
        atomic_save(folder / "points3D.txt", lambda p: p.write_text("# 3D point list (empty)\n"))
    return folder


# --------------------------------------------------------------------------- CO3D


def co3d_to_opengl(R, T) -> np.ndarray:
    """PyTorch3D extrinsics (``X_cam = X_world @ R + T``; camera +X left, +Y up, +Z forward)
    -> 4x4 OpenGL camera-to-world."""
    R = np.asarray(R, dtype=np.float64).reshape(3, 3)
    T = np.asarray(T, dtype=np.float64).reshape(3)
    flip = np.diag([-1.0, 1.0, -1.0])  # PyTorch3D camera axes -> OpenGL camera axes
    w2c = np.eye(4)
    w2c[:3, :3] = flip @ R.T
    w2c[:3, 3] = flip @ T
    return C.invert_pose(w2c).numpy()


def co3d_intrinsics(focal_length, principal_point, size_hw, fmt: str = "ndc_norm_image_bounds") -> torch.Tensor:
    """PyTorch3D NDC intrinsics of an ``(h, w)`` image -> 3x3 K in pixels (see module docstring)."""
    h, w = float(size_hw[0]), float(size_hw[1])
    half = np.array([w / 2.0, h / 2.0])
    if fmt == "ndc_norm_image_bounds":
        r = half
    elif fmt == "ndc_isotropic":
        r = np.array([half.min(), half.min()])
    else:
        raise DatasetError(
            f"unknown CO3D intrinsics_format '{fmt}': expected 'ndc_isotropic' or 'ndc_norm_image_bounds'"
        )
    f = np.asarray(focal_length, dtype=np.float64).reshape(-1)
    f = np.repeat(f, 2) if f.size == 1 else f
    p = np.asarray(principal_point, dtype=np.float64).reshape(2)
    fpx = f * r
    cpx = half - p * r
    return _make_K(fpx[0], fpx[1], cpx[0], cpx[1])


def _resolve_up(base: Path, rel: str, levels: int = 4) -> Path | None:
    p = Path(rel)
    if p.is_absolute():
        return p if p.exists() else None
    for parent in [base, *list(base.parents)[:levels]]:
        if (parent / p).exists():
            return parent / p
    return None


def load_co3d(path: str | Path, sequence: str | None = None) -> MultiViewScene:
    """Read a CO3D-style sequence folder or annotation file (see module docstring)."""
    path = Path(path)
    if path.is_dir():
        names = ("frame_annotations.json", "frame_annotations.jgz")
        ann = next((path / n for n in names if (path / n).is_file()), None)
        if ann is None:
            raise DatasetError(f"'{path}' holds no frame_annotations.json: not a CO3D-style folder")
    elif path.is_file():
        ann = path
    else:
        raise DatasetError(f"'{path}' does not exist: check the path")
    base = ann.parent
    source = str(ann)
    data = _read_json(ann)
    if not isinstance(data, list) or not data:
        raise DatasetError(f"{source}: expected a non-empty JSON list of frame annotations")
    seqs = sorted({str(f.get("sequence_name")) for f in data if isinstance(f, dict) and "sequence_name" in f})
    if sequence is not None:
        data = [f for f in data if isinstance(f, dict) and str(f.get("sequence_name")) == sequence]
        if not data:
            raise DatasetError(f"{source}: no frames of sequence '{sequence}' (sequences: {', '.join(seqs[:10])})")
    elif len(seqs) > 1:
        raise DatasetError(
            f"{source} holds {len(seqs)} sequences ({', '.join(seqs[:5])}...): pass sequence= to choose one"
        )

    mats, labels, paths, Ks, sizes, depths, dscales, masks, missing = [], [], [], [], [], [], [], [], []
    for i, fr in enumerate(data):
        try:
            rel = str(fr["image"]["path"])
            h, w = (int(v) for v in fr["image"]["size"])
            vp = fr["viewpoint"]
            R, T = vp["R"], vp["T"]
            K = co3d_intrinsics(
                vp["focal_length"], vp["principal_point"], (h, w), vp.get("intrinsics_format", "ndc_norm_image_bounds")
            )
            c2w = co3d_to_opengl(R, T)
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(
                f"{source}: frame {i} is malformed ({type(exc).__name__}: {exc}): "
                "see the CO3D layout in the novelviews.io.datasets docstring"
            ) from None
        img = _resolve_up(base, rel)
        if img is None:
            missing.append(rel)
            continue
        W, H = _image_size(img)
        if (W, H) != (w, h):
            K = _img.transform_intrinsics(K, W / w, H / h)
        mats.append(c2w)
        labels.append(f"frame {i} ('{rel}')")
        paths.append(img)
        Ks.append(K)
        sizes.append((W, H))
        d = fr.get("depth") or {}
        depths.append(_resolve_up(base, d["path"]) if d.get("path") else None)
        dscales.append(float(d.get("scale_adjustment", 1.0)))
        m = fr.get("mask") or {}
        masks.append(_resolve_up(base, m["path"]) if m.get("path") else None)
    _warn_missing(source, missing, len(data))
    c2w = _check_poses(mats, labels, source)
    K = _check_intrinsics(torch.stack(Ks), labels, source)
    return MultiViewScene(
        name=sequence or (seqs[0] if seqs else base.name),
        c2w=c2w,
        K=K,
        sizes=torch.tensor(sizes, dtype=torch.int64),
        images=paths,
        depth_paths=depths if any(d is not None for d in depths) else None,
        depth_scales=dscales if any(d is not None for d in depths) else None,
        depth_encoding="float16_png",
        mask_paths=masks if any(m is not None for m in masks) else None,
        meta={"format": "co3d", "source": source, "skipped_frames": missing},
    )


# --------------------------------------------------------------------------- RealEstate10K / ACID


def load_re10k(path: str | Path) -> MultiViewScene:
    """Read a RealEstate10K / ACID camera txt and its frames (see module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"camera file '{path}' does not exist: check the path")
    try:
        lines = [ln.strip() for ln in path.read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read '{path}' ({exc})") from None
    lines = [ln for ln in lines if ln]
    if len(lines) < 2:
        raise DatasetError(f"'{path}' has no camera lines: expected the video URL then one line per frame")
    url = lines[0]
    source = str(path)
    frame_dirs = [d for d in (path.parent / "frames", path.parent / path.stem) if d.is_dir()]
    if not frame_dirs:
        raise DatasetError(
            f"{source}: no frames/ folder (or '{path.stem}/') next to the camera file: "
            "extract the frames there as <timestamp>.png"
        )
    rows, missing = [], []
    for n, ln in enumerate(lines[1:], start=2):
        tok = ln.split()
        if len(tok) != 19:
            raise DatasetError(
                f"{source} line {n}: expected 19 numbers (timestamp, 6 intrinsics, 12 pose), got {len(tok)}"
            )
        try:
            ts = int(tok[0])
            vals = [float(v) for v in tok[1:]]
        except ValueError:
            raise DatasetError(f"{source} line {n}: non-numeric value") from None
        img = next(
            (d / f"{ts}{e}" for d in frame_dirs for e in (".png", ".jpg", ".jpeg") if (d / f"{ts}{e}").is_file()),
            None,
        )
        if img is None:
            missing.append(str(ts))
            continue
        rows.append((ts, vals, img))
    _warn_missing(source, missing, len(lines) - 1)
    W, H = _image_size(rows[0][2])
    mats, labels, Ks = [], [], []
    for ts, v, img in rows:
        fx, fy, cx, cy = v[0] * W, v[1] * H, v[2] * W, v[3] * H
        P = np.asarray(v[6:], dtype=np.float64).reshape(3, 4)
        mats.append(_opencv_w2c_to_gl_c2w(P[:, :3], P[:, 3]))
        labels.append(f"frame {ts} ('{img.name}')")
        Ks.append(_make_K(fx, fy, cx, cy))
    c2w = _check_poses(mats, labels, source)
    K = _check_intrinsics(torch.stack(Ks), labels, source)
    return MultiViewScene(
        name=path.stem,
        c2w=c2w,
        K=K,
        sizes=torch.tensor([(W, H)] * len(rows), dtype=torch.int64),
        images=[r[2] for r in rows],
        meta={
            "format": "re10k",
            "source": source,
            "url": url,
            "timestamps": [r[0] for r in rows],
            "skipped_frames": missing,
        },
    )


def _looks_like_re10k(path: Path) -> bool:
    try:
        with open(path) as f:
            f.readline()
            second = f.readline().split()
        return len(second) == 19
    except (OSError, UnicodeDecodeError):
        return False


# --------------------------------------------------------------------------- dispatch


def detect_format(path: str | Path) -> str:
    """Guess the layout of ``path``: ``transforms``, ``colmap``, ``co3d`` or ``re10k``."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"dataset path '{path}' does not exist: check the path")
    if path.is_file():
        if path.name.startswith("frame_annotations"):
            return "co3d"
        if path.suffix.lower() == ".json":
            return "transforms"
        if path.suffix.lower() == ".txt" and _looks_like_re10k(path):
            return "re10k"
    else:
        if (path / "transforms.json").is_file() or (path / "transforms_train.json").is_file():
            return "transforms"
        if _colmap_model_dir(path) is not None:
            return "colmap"
        if (path / "frame_annotations.json").is_file() or (path / "frame_annotations.jgz").is_file():
            return "co3d"
        txts = [p for p in sorted(path.glob("*.txt")) if _looks_like_re10k(p)]
        if len(txts) == 1:
            return "re10k"
        if len(txts) > 1:
            raise DatasetError(
                f"'{path}' holds {len(txts)} RealEstate10K camera files: pass one of them, e.g. '{txts[0]}'"
            )
    raise DatasetError(
        f"cannot tell the dataset layout of '{path}': expected transforms.json, a COLMAP sparse/0 model, "
        "a CO3D frame_annotations.json or a RealEstate10K camera .txt (or name the layout: nvs eval's "
        "format=transforms|colmap|co3d|re10k)"
    )


def load_scene(path: str | Path, fmt: str = "auto") -> MultiViewScene:
    """Read a multi-view scene; ``fmt`` is ``auto`` or one of ``transforms``, ``colmap``,
    ``co3d``, ``re10k`` (layouts in the module docstring)."""
    if fmt not in FORMATS:
        raise DatasetError(f"unknown dataset format '{fmt}': use one of {', '.join(FORMATS)}")
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"dataset path '{path}' does not exist: check the path")
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "transforms":
        return load_transforms(path)
    if fmt == "colmap":
        return load_colmap(path)
    if fmt == "co3d":
        return load_co3d(path)
    if path.is_dir():
        txts = [p for p in sorted(path.glob("*.txt")) if _looks_like_re10k(p)]
        if len(txts) != 1:
            raise DatasetError(f"'{path}': pass the RealEstate10K camera .txt file itself")
        path = txts[0]
    return load_re10k(path)
