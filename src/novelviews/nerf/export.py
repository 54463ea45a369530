"""Mesh export of a NeRF field: marching cubes on a density grid, vertex colours from albedo.

Headless and device-agnostic: the density grid is evaluated in chunks on whatever device
the field lives on (CPU or GPU), marching cubes runs on the CPU (PyMCubes), files are
written by trimesh (OBJ / PLY / GLB, with per-vertex RGBA colours). No OpenGL, EGL or
display is involved.

Coordinates: vertices are in world units, the same frame as the field; the grid spans
``[-bound, bound]^3`` with ``resolution`` samples per axis (``bound`` defaults to the
field's). The iso-level is a density (1 / scene units); when not given it is chosen
automatically as Otsu's threshold of ``log(1 + sigma)`` over the grid (the level that
best splits the grid into "empty" and "occupied" cells), and reported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import NovelViewsError

MESH_FORMATS = (".obj", ".ply", ".glb")


def _device(field) -> torch.device:
    return next(field.parameters()).device


@torch.no_grad()
def density_grid(field, resolution: int = 256, bound: float | None = None, chunk: int = 262144) -> np.ndarray:
    """Density ``[res, res, res]`` (float32 numpy) at ``linspace(-bound, bound, res)`` per axis,
    indexed ``[i, j, k]`` = (x, y, z)."""
    bound = float(field.cfg.bound if bound is None else bound)
    dev = _device(field)
    axis = torch.linspace(-bound, bound, resolution, device=dev)
    out = torch.empty(resolution**3, dtype=torch.float32)
    # iterate over x-slabs so memory stays bounded by `chunk`
    per = max(1, chunk // (resolution * resolution))
    yy, zz = torch.meshgrid(axis, axis, indexing="ij")
    yz = torch.stack([yy.reshape(-1), zz.reshape(-1)], -1)
    for a in range(0, resolution, per):
        xs = axis[a:a + per]
        pts = torch.cat([xs[:, None, None].expand(-1, yz.shape[0], 1), yz[None].expand(xs.shape[0], -1, -1)], -1)
        sigma = field.density(pts.reshape(-1, 3))
        out[a * resolution * resolution:(a + xs.shape[0]) * resolution * resolution] = sigma.float().cpu()
    return out.reshape(resolution, resolution, resolution).numpy()


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the value maximising the between-class variance of a histogram
    (the middle of the best range when several thresholds tie, e.g. across an empty gap)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = float(v.min()), float(v.max())
    if not hi > lo:
        return lo
    hist, edges = np.histogram(v, bins=bins, range=(lo, hi))
    centers = 0.5 * (edges[1:] + edges[:-1])
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers)
    mean0 = m0 / np.maximum(w0, 1)
    mean1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mean0 - mean1) ** 2
    between = between[:-1]
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))
    # a gap between the classes gives a plateau of equal scores: take its middle
    return float(0.5 * (edges[best[0] + 1] + edges[best[-1] + 1]))


def auto_threshold(density: np.ndarray) -> float:
    """Automatic iso-level: ``exp(otsu(log(1 + sigma))) - 1``."""
    return float(np.expm1(otsu_threshold(np.log1p(np.maximum(density, 0.0)))))


@torch.no_grad()
def extract_mesh(field, resolution: int = 256, threshold: float | None = None, bound: float | None = None,
                 chunk: int = 262144) -> dict:
    """Marching cubes on the field's density. Returns ``vertices [V, 3]`` (world, float32),
    ``faces [F, 3]`` (int64, counter-clockwise seen from outside), ``colors [V, 4]`` (uint8
    RGBA from the albedo) and ``level`` (the density iso-level used)."""
    import mcubes

    if resolution < 8:
        raise NovelViewsError(f"mesh resolution {resolution} is too small: use at least 8 (e.g. 256)")
    bound = float(field.cfg.bound if bound is None else bound)
    grid = density_grid(field, resolution, bound, chunk)
    level = auto_threshold(grid) if threshold is None else float(threshold)
    if not (grid.min() < level < grid.max()):
        raise NovelViewsError(
            f"density threshold {level:.4g} is outside the field's density range "
            f"[{grid.min():.4g}, {grid.max():.4g}]: no surface to extract; choose a threshold inside that range "
            "(or leave it unset for the automatic one)"
        )
    verts, faces = mcubes.marching_cubes(grid, level)
    if len(faces) == 0:
        raise NovelViewsError(f"marching cubes found no surface at density {level:.4g}: lower the threshold")
    verts = (verts * (2.0 * bound / (resolution - 1)) - bound).astype(np.float32)
    # PyMCubes winds triangles counter-clockwise seen from outside the
    # high-density region for our [i, j, k] = (x, y, z) grid, i.e. outward normals (the ball test
    # checks this through a positive signed volume).
    faces = faces.astype(np.int64)
    dev = _device(field)
    cols = []
    vt = torch.from_numpy(verts)
    for a in range(0, len(vt), chunk):
        cols.append(field.albedo(vt[a:a + chunk].to(dev)).float().cpu())
    rgb = torch.cat(cols).clamp(0, 1).numpy()
    colors = np.concatenate([np.round(rgb * 255), np.full((len(rgb), 1), 255.0)], 1).astype(np.uint8)
    return {"vertices": verts, "faces": faces, "colors": colors, "level": level}


def export_mesh(field, path: str | Path, resolution: int = 256, threshold: float | None = None,
                bound: float | None = None, chunk: int = 262144) -> dict:
    """Extract a mesh (see :func:`extract_mesh`) and write it to ``path`` (.obj, .ply or .glb),
    atomically. Returns ``{"vertices": V, "faces": F, "level": iso-level, "path": str}``."""
    import trimesh

    from ..io.runs import atomic_save

    path = Path(path)
    fmt = path.suffix.lower()
    if fmt not in MESH_FORMATS:
        raise NovelViewsError(f"mesh file '{path}' has an unsupported extension: use one of {', '.join(MESH_FORMATS)}")
    m = extract_mesh(field, resolution, threshold, bound, chunk)
    mesh = trimesh.Trimesh(m["vertices"], m["faces"], vertex_colors=m["colors"], process=False)
    atomic_save(path, lambda p: mesh.export(p, file_type=fmt[1:]))
    return {"vertices": int(len(m["vertices"])), "faces": int(len(m["faces"])), "level": float(m["level"]),
            "path": str(path)}


__all__ = ["MESH_FORMATS", "density_grid", "otsu_threshold", "auto_threshold", "extract_mesh", "export_mesh"]
