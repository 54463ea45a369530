"""``.ply`` files of splats and point clouds, written and read with numpy alone.

* :func:`write_splat_ply` - the standard 3DGS layout that splat viewers and ``plyfile`` read:
  binary little endian, one ``vertex`` element with float32 properties ``x y z nx ny nz``
  (normals zero), ``f_dc_0..2``, ``f_rest_0..M-1`` with ``M = 3 ((d + 1)^2 - 1)`` in the
  reference's channel-major order (all higher coefficients of red, then green, then blue),
  ``opacity`` (the logit), ``scale_0..2`` (logs) and ``rot_0..3`` (the quaternion w, x, y, z).
* :func:`read_splat_ply` - reads such a file back into a :class:`~.gaussians.GaussianModel`
  (the SH degree from the number of ``f_rest`` properties).
* :func:`write_point_ply` / :func:`read_point_ply` - a coloured point cloud (float32 ``x y z``,
  uchar ``red green blue``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import NovelViewsError
from .gaussians import GaussianModel

_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2", "ushort": "u2",
          "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4", "float": "f4",
          "float32": "f4", "double": "f8", "float64": "f8"}


def splat_properties(sh_degree: int) -> list[str]:
    rest = 3 * ((sh_degree + 1) ** 2 - 1)
    return (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(rest)]
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def _write(path: Path, names: list[str], dtypes: list[str], columns: list[np.ndarray]) -> Path:
    from ..io.runs import atomic_write_bytes

    n = len(columns[0]) if columns else 0
    types = {v: k for k, v in reversed(list(_TYPES.items()))}  # numpy code -> first ply name (float, uchar)
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
    header += [f"property {types[t]} {name}" for name, t in zip(names, dtypes)]
    header.append("end_header")
    table = np.empty(n, dtype=[(name, "<" + t) for name, t in zip(names, dtypes)])
    for name, col in zip(names, columns):
        table[name] = col
    return atomic_write_bytes(Path(path), ("\n".join(header) + "\n").encode("ascii") + table.tobytes())


def read_ply_vertices(path: str | Path) -> dict[str, np.ndarray]:
    """The ``vertex`` properties of a binary little-endian or ASCII ``.ply`` as ``{name: array}``."""
    path = Path(path)
    if not path.is_file():
        raise NovelViewsError(f"'{path}' does not exist: give a .ply file")
    data = path.read_bytes()
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise NovelViewsError(f"'{path}' is not a .ply file (no 'ply' ... 'end_header' header)")
    body = end + len(b"end_header")
    body += 2 if data[body:body + 2] == b"\r\n" else 1
    fmt, elements, current = None, [], None
    for line in data[:end].decode("ascii", "replace").splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "format":
            fmt = parts[1]
        elif parts[0] == "element":
            current = (parts[1], int(parts[2]), [])
            elements.append(current)
        elif parts[0] == "property" and current is not None:
            if parts[1] == "list":
                raise NovelViewsError(f"'{path}': list properties before the vertices are not supported")
            if parts[1] not in _TYPES:
                raise NovelViewsError(f"'{path}': unknown property type '{parts[1]}'")
            current[2].append((parts[2], _TYPES[parts[1]]))
    if not elements or elements[0][0] != "vertex":
        raise NovelViewsError(f"'{path}': the first element must be 'vertex'")
    _, n, props = elements[0]
    if fmt == "binary_little_endian":
        dtype = np.dtype([(name, "<" + t) for name, t in props])
        if len(data) - body < n * dtype.itemsize:
            raise NovelViewsError(f"'{path}' is truncated: {n} vertices need {n * dtype.itemsize} bytes")
        table = np.frombuffer(data, dtype=dtype, count=n, offset=body)
        return {name: table[name].copy() for name, _ in props}
    if fmt == "ascii":
        rows = np.loadtxt(data[body:].decode("ascii").splitlines()[:n], ndmin=2)
        return {name: rows[:, i].astype(t) for i, (name, t) in enumerate(props)}
    raise NovelViewsError(f"'{path}': unsupported ply format '{fmt}' (binary_little_endian or ascii)")


def write_splat_ply(path: str | Path, model: GaussianModel) -> Path:
    """The standard 3DGS ``.ply`` of ``model`` (see the module docstring), written atomically."""
    t = {k: v.detach().float().cpu().numpy() for k, v in model.tensors().items()}
    n = len(model)
    rest = t["sh_rest"].transpose(0, 2, 1).reshape(n, -1)  # [N, 3, K-1] -> channel-major
    cols = ([t["means"][:, i] for i in range(3)] + [np.zeros(n, np.float32)] * 3
            + [t["sh_dc"][:, i] for i in range(3)] + [rest[:, i] for i in range(rest.shape[1])]
            + [t["opacity_logits"]] + [t["log_scales"][:, i] for i in range(3)] + [t["quats"][:, i] for i in range(4)])
    names = splat_properties(model.sh_degree)
    return _write(path, names, ["f4"] * len(names), cols)


def read_splat_ply(path: str | Path) -> GaussianModel:
    """A 3DGS ``.ply`` (ours or another tool's) as a :class:`GaussianModel`."""
    v = read_ply_vertices(path)
    base = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
            "rot_0", "rot_1", "rot_2", "rot_3"]
    missing = [k for k in base if k not in v]
    if missing:
        raise NovelViewsError(f"'{path}' is not a Gaussian-splat .ply: it has no '{missing[0]}' property")
    m = sum(1 for k in v if k.startswith("f_rest_"))
    if m % 3 or round(((m // 3 + 1) ** 0.5)) ** 2 != m // 3 + 1:
        raise NovelViewsError(f"'{path}': {m} f_rest properties do not make an SH degree (3 ((d + 1)^2 - 1))")
    n = len(v["x"])

    def stack(keys):
        return torch.from_numpy(np.stack([v[k].astype(np.float32) for k in keys], 1))

    rest = stack([f"f_rest_{i}" for i in range(m)]) if m else torch.zeros(n, 0)
    rest = rest.reshape(n, 3, m // 3).transpose(1, 2)
    return GaussianModel(stack(["x", "y", "z"]), stack(["scale_0", "scale_1", "scale_2"]),
                         stack(["rot_0", "rot_1", "rot_2", "rot_3"]), torch.from_numpy(v["opacity"].astype(np.float32)),
                         stack(["f_dc_0", "f_dc_1", "f_dc_2"]), rest.contiguous())


def write_point_ply(path: str | Path, points, colours) -> Path:
    """A coloured point cloud: ``points [N, 3]`` (float32 x y z) and ``colours [N, 3]`` in [0, 1] (uchar)."""
    p = np.asarray(torch.as_tensor(points).detach().cpu(), dtype=np.float32).reshape(-1, 3)
    c = np.asarray(torch.as_tensor(colours).detach().cpu(), dtype=np.float64).reshape(-1, 3)
    if len(p) != len(c):
        raise NovelViewsError(f"{len(p)} points but {len(c)} colours")
    rgb = np.clip(np.round(c * 255.0), 0, 255).astype(np.uint8)
    return _write(path, ["x", "y", "z", "red", "green", "blue"], ["f4"] * 3 + ["u1"] * 3,
                  [p[:, 0], p[:, 1], p[:, 2], rgb[:, 0], rgb[:, 1], rgb[:, 2]])


def read_point_ply(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(points [N, 3] float32, colours [N, 3] uint8)`` of a coloured point cloud."""
    v = read_ply_vertices(path)
    for k in ("x", "y", "z", "red", "green", "blue"):
        if k not in v:
            raise NovelViewsError(f"'{path}' is not a coloured point cloud: it has no '{k}' property")
    return (np.stack([v["x"], v["y"], v["z"]], 1).astype(np.float32),
            np.stack([v["red"], v["green"], v["blue"]], 1).astype(np.uint8))


def splat_point_colours(model: GaussianModel) -> torch.Tensor:
    """The view-independent colour ``[N, 3]`` of each Gaussian (its DC term), for a point cloud."""
    from .sh import sh_to_rgb

    return sh_to_rgb(model.sh_dc.detach()).clamp(0, 1)
