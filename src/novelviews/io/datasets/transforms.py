"""transforms.json (NeRF-synthetic, instant-ngp, nerfstudio): reader and writer."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import DatasetError
from .. import images as _img
from ..runs import atomic_save, atomic_write_json
from .common import check_intrinsics, check_poses, find_image, image_size, make_K, read_json, summarise_distortion, warn_missing
from .scene import MultiViewScene


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
    data = read_json(path)
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
        img = find_image(base, rel)
        if img is None:
            missing.append(rel)
            continue
        W, H = image_size(img)
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
        K = make_K(fx, fy, cx, cy)
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
    warn_missing(source, missing, len(data["frames"]))
    c2w = check_poses(mats, labels, source)
    K = check_intrinsics(torch.stack(Ks), labels, source)
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
        distortion=summarise_distortion(data.get("camera_model"), dist),
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
