"""What the dataset readers share: image lookup and size, pose / intrinsics checks, JSON reading."""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ... import cameras as C
from ...errors import CameraError, DatasetError, ImageError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG", ".webp")


# --------------------------------------------------------------------------- helpers


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file after EXIF orientation, read from its header."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageError(f"cannot read image '{path}' ({exc}): check the file is an image") from None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def find_image(base: Path, rel: str) -> Path | None:
    """Resolve ``rel`` under ``base``; a path without a usable file tries image extensions."""
    p = Path(rel)
    p = p if p.is_absolute() else base / p
    if p.is_file():
        return p
    for ext in IMAGE_EXTS:
        q = p.with_name(p.name + ext)
        if q.is_file():
            return q
    return None


def warn_missing(source: str, missing: list[str], total: int) -> None:
    if not missing:
        return
    if len(missing) == total:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DatasetError(f"{source}: none of the {total} images exist (e.g. {shown}): check the image folder")
    shown = ", ".join(missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
    warnings.warn(f"{source}: skipping {len(missing)} of {total} frames whose image is missing: {shown}", stacklevel=3)


def check_poses(mats: list, labels: list[str], source: str) -> torch.Tensor:
    """Validate camera-to-world matrices one by one; the error names the frame."""
    from ...cameras import validate_poses

    out = []
    for m, label in zip(mats, labels):
        try:
            out.append(validate_poses(m, what="pose")[0])
        except CameraError as exc:
            msg = str(exc)
            msg = msg[len("pose 0: "):] if msg.startswith("pose 0: ") else msg
            raise DatasetError(f"{source}: {label} has a bad camera pose: {msg}") from None
    return torch.stack(out)


def check_intrinsics(K: torch.Tensor, labels: list[str], source: str) -> torch.Tensor:
    for k, label in zip(K, labels):
        if not torch.isfinite(k).all() or k[0, 0] <= 0 or k[1, 1] <= 0:
            raise DatasetError(
                f"{source}: {label} has bad intrinsics (fx={float(k[0, 0]):.4g}, fy={float(k[1, 1]):.4g}): "
                "focal lengths must be positive and finite"
            )
    return K


def make_K(fx, fy, cx, cy) -> torch.Tensor:
    return C.intrinsics_from_focal(float(fx), float(fy), float(cx), float(cy))


def summarise_distortion(model: str | None, per_view: list[dict]) -> dict | None:
    """Shared dict if every view has the same non-zero coefficients, per-view list if not, None if all zero."""
    if not per_view or all(all(abs(v) == 0 for v in d.values()) for d in per_view):
        return None
    first = per_view[0]
    if all(d == first for d in per_view):
        return {"model": model or "unknown", **first}
    return {"model": model or "unknown", "per_view": per_view}


def read_json(path: Path) -> Any:
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


def opencv_w2c_to_gl_c2w(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """World-to-camera (OpenCV axes) -> camera-to-world (OpenGL axes), exact inverse."""
    w2c = np.eye(4)
    w2c[:3, :3], w2c[:3, 3] = R, t
    return C.opencv_to_opengl(C.invert_pose(w2c)).numpy()
