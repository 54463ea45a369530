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

from pathlib import Path

from ...errors import DatasetError
from .co3d import co3d_intrinsics, co3d_to_opengl, load_co3d
from .colmap import (COLMAP_MODELS, ColmapCamera, ColmapImage, colmap_model_dir, load_colmap, qvec_to_rotmat,
                     read_colmap_cameras_binary, read_colmap_cameras_text, read_colmap_images_binary,
                     read_colmap_images_text, rotmat_to_qvec, write_colmap_model)
from .re10k import load_re10k, looks_like_re10k
from .scene import MultiViewScene
from .transforms import load_transforms, write_transforms_json

FORMATS = ("auto", "transforms", "colmap", "co3d", "re10k")


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
        if path.suffix.lower() == ".txt" and looks_like_re10k(path):
            return "re10k"
    else:
        if (path / "transforms.json").is_file() or (path / "transforms_train.json").is_file():
            return "transforms"
        if colmap_model_dir(path) is not None:
            return "colmap"
        if (path / "frame_annotations.json").is_file() or (path / "frame_annotations.jgz").is_file():
            return "co3d"
        txts = [p for p in sorted(path.glob("*.txt")) if looks_like_re10k(p)]
        if len(txts) == 1:
            return "re10k"
        if len(txts) > 1:
            raise DatasetError(
                f"'{path}' holds {len(txts)} RealEstate10K camera files: pass one of them, e.g. '{txts[0]}'"
            )
    raise DatasetError(
        f"cannot tell the dataset layout of '{path}': expected transforms.json, a COLMAP sparse/0 model, "
        "a CO3D frame_annotations.json or a RealEstate10K camera .txt (or name the layout: "
        "format=transforms|colmap|co3d|re10k for nvs eval, inputs.format=... for nvs reconstruct)"
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
        txts = [p for p in sorted(path.glob("*.txt")) if looks_like_re10k(p)]
        if len(txts) != 1:
            raise DatasetError(f"'{path}': pass the RealEstate10K camera .txt file itself")
        path = txts[0]
    return load_re10k(path)


__all__ = ["FORMATS", "MultiViewScene", "load_scene", "detect_format", "load_transforms", "write_transforms_json",
           "load_colmap", "write_colmap_model", "read_colmap_cameras_text", "read_colmap_images_text",
           "read_colmap_cameras_binary", "read_colmap_images_binary", "qvec_to_rotmat", "rotmat_to_qvec",
           "ColmapCamera", "ColmapImage", "COLMAP_MODELS", "load_co3d", "co3d_to_opengl", "co3d_intrinsics",
           "load_re10k"]
