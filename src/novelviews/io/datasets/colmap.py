"""COLMAP sparse models (text and binary): reader and writer."""

from __future__ import annotations

import math
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ... import cameras as C
from ...errors import DatasetError
from ..runs import atomic_save
from .common import check_intrinsics, check_poses, make_K, opencv_w2c_to_gl_c2w, summarise_distortion, warn_missing
from .scene import MultiViewScene


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


def colmap_model_dir(root: Path) -> Path | None:
    for cand in (root / "sparse" / "0", root / "sparse", root):
        if any((cand / f"cameras{ext}").is_file() for ext in (".bin", ".txt")):
            return cand
    return None


def load_colmap(path: str | Path, images_dir: str | Path | None = None) -> MultiViewScene:
    """Read a COLMAP sparse model (text or binary) and its images (see module docstring)."""
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"COLMAP folder '{root}' does not exist: pass the folder holding sparse/ and images/")
    model = colmap_model_dir(root)
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
        Ks.append(make_K(prm[ifx], prm[ify], prm[icx], prm[icy]))
        dist.append(dict(zip(names, prm[4 - (ifx == ify):])))
        models_seen.add(cam.model)
        if np.linalg.norm(im.qvec) < 1e-8:
            raise DatasetError(f"{source}: image '{im.name}' has a zero quaternion: the model is corrupt")
        mats.append(opencv_w2c_to_gl_c2w(qvec_to_rotmat(im.qvec), np.asarray(im.tvec, dtype=np.float64)))
        labels.append(f"image {img_id} ('{im.name}')")
        paths.append(p)
        sizes.append((cam.width, cam.height))
    if not imgs:
        raise DatasetError(f"{source}: the model has no registered images")
    warn_missing(source, missing, len(imgs))
    c2w = check_poses(mats, labels, source)
    K = check_intrinsics(torch.stack(Ks), labels, source)
    distortion = summarise_distortion("/".join(sorted(models_seen)), dist)
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
