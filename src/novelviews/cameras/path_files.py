"""Camera path files: reading ``cameras.json`` / plain lists / nerfstudio paths, writing ``cameras.json``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import torch

from ..errors import CameraError
from .poses import opencv_to_opengl, to_tensor, validate_poses


def load_path_json(path: str | Path, default_fov: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a custom camera path: ``(c2w [N, 4, 4] OpenGL, fov [N] radians)``.

    Accepted layouts:

    * our ``cameras.json``: ``{"convention": "opengl" | "opencv", "cameras": [{"c2w": 4x4,
      "fov_deg": 50}, ...]}``;
    * a plain list of ``{"c2w" | "transform_matrix": 4x4, "fov_deg"?: ...}`` or of 4x4 lists;
    * a nerfstudio camera path: ``{"camera_path": [{"camera_to_world": 16 numbers (row-major,
      OpenGL), "fov": degrees (vertical)}, ...]}``.
    Missing fovs fall back to ``default_fov`` (radians).
    """
    p = Path(path)
    if not p.is_file():
        raise CameraError(f"camera path file '{p}' does not exist")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CameraError(f"camera path file '{p}' is not valid JSON: {exc}") from None
    convention = "opengl"
    if isinstance(data, dict) and "camera_path" in data:
        items = data["camera_path"]
        nerfstudio = True
    elif isinstance(data, dict) and "cameras" in data:
        items = data["cameras"]
        convention = str(data.get("convention", "opengl")).lower()
        nerfstudio = False
    elif isinstance(data, list):
        items = data
        nerfstudio = False
    else:
        raise CameraError(
            f"camera path file '{p}': expected a list of cameras, {{'cameras': [...]}} or a nerfstudio "
            "{'camera_path': [...]}"
        )
    if convention not in ("opengl", "opencv"):
        raise CameraError(f"camera path file '{p}': unknown convention '{convention}' (opengl or opencv)")
    if not isinstance(items, list) or not items:
        raise CameraError(f"camera path file '{p}' holds no cameras: give a non-empty list of cameras")
    mats, fovs = [], []
    for i, item in enumerate(items):
        where = f"camera path file '{p}': camera {i}"
        if isinstance(item, dict):
            m = item.get("c2w", item.get("transform_matrix", item.get("camera_to_world")))
            if m is None:
                raise CameraError(f"{where} has no 'c2w' / 'transform_matrix'")
            try:
                if "fov_deg" in item:
                    f = math.radians(float(item["fov_deg"]))
                elif "fov" in item:
                    f = math.radians(float(item["fov"])) if nerfstudio else float(item["fov"])
                else:
                    f = default_fov
            except (TypeError, ValueError):
                raise CameraError(f"{where}: its fov must be a number") from None
        else:
            m, f = item, default_fov
        try:
            mt = to_tensor(m)
        except (TypeError, ValueError, RuntimeError, OverflowError):
            raise CameraError(f"{where}: the matrix must be a 4x4 (or 3x4) list of numbers") from None
        if mt.numel() == 16:
            mt = mt.reshape(4, 4)
        elif mt.numel() == 12:
            mt = mt.reshape(3, 4)
        else:
            raise CameraError(f"{where}: the matrix must be a 4x4 (or 3x4) list of numbers, got {mt.numel()} numbers")
        mats.append(mt)
        if f is None:
            raise CameraError(f"camera path file '{p}': camera {i} has no fov and no default was given")
        fovs.append(f)
    try:
        c2w = torch.stack([torch.cat([m, torch.tensor([[0, 0, 0, 1.0]], dtype=torch.float64)]) if m.shape[0] == 3 else m for m in mats])
    except RuntimeError:
        raise CameraError(f"camera path file '{p}': every camera must be a 4x4 (or 3x4) matrix") from None
    c2w = validate_poses(c2w, f"camera in '{p.name}'")
    if convention == "opencv":
        c2w = opencv_to_opengl(c2w)
    fov_t = torch.tensor(fovs, dtype=torch.float64)
    if not ((fov_t > 0) & (fov_t < math.pi)).all():
        raise CameraError(f"camera path file '{p}': fov must be in (0, 180) degrees")
    return c2w, fov_t


def cameras_to_json(c2w, fov, width: int | None = None, height: int | None = None, extra: Sequence[dict] | None = None) -> dict:
    """Our ``cameras.json`` layout (OpenGL c2w, vertical fov in degrees); readable by load_path_json."""
    c2w = validate_poses(c2w)
    fov = to_tensor(fov).expand(c2w.shape[0])
    cams = []
    for i in range(c2w.shape[0]):
        cam = {"c2w": c2w[i].tolist(), "fov_deg": math.degrees(float(fov[i]))}
        if extra is not None:
            cam.update(extra[i])
        cams.append(cam)
    out: dict = {"convention": "opengl", "fov": "vertical", "cameras": cams}
    if width is not None and height is not None:
        out["width"], out["height"] = int(width), int(height)
    return out
