"""CO3D frame annotations (PyTorch3D NDC cameras)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ... import cameras as C
from ...errors import DatasetError
from .. import images as _img
from .common import check_intrinsics, check_poses, image_size, make_K, read_json, warn_missing
from .scene import MultiViewScene


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
    return make_K(fpx[0], fpx[1], cpx[0], cpx[1])


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
    data = read_json(ann)
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
        W, H = image_size(img)
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
    warn_missing(source, missing, len(data))
    c2w = check_poses(mats, labels, source)
    K = check_intrinsics(torch.stack(Ks), labels, source)
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
