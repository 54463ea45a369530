"""RealEstate10K / ACID camera files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...errors import DatasetError
from .common import check_intrinsics, check_poses, image_size, make_K, opencv_w2c_to_gl_c2w, warn_missing
from .scene import MultiViewScene


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
    warn_missing(source, missing, len(lines) - 1)
    W, H = image_size(rows[0][2])
    mats, labels, Ks = [], [], []
    for ts, v, img in rows:
        fx, fy, cx, cy = v[0] * W, v[1] * H, v[2] * W, v[3] * H
        P = np.asarray(v[6:], dtype=np.float64).reshape(3, 4)
        mats.append(opencv_w2c_to_gl_c2w(P[:, :3], P[:, 3]))
        labels.append(f"frame {ts} ('{img.name}')")
        Ks.append(make_K(fx, fy, cx, cy))
    c2w = check_poses(mats, labels, source)
    K = check_intrinsics(torch.stack(Ks), labels, source)
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


def looks_like_re10k(path: Path) -> bool:
    try:
        with open(path) as f:
            f.readline()
            second = f.readline().split()
        return len(second) == 19
    except (OSError, UnicodeDecodeError):
        return False
