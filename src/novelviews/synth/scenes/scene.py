"""The scene types: :class:`Scene` (tensors), :class:`Material`, :class:`Primitive`, hand-built scenes.

World z-up, the ground the plane ``z = 0``; colours display RGB in ``[0, 1]``
(see :mod:`novelviews.synth.scenes`). :func:`build_scene` turns primitives (:func:`sphere`,
:func:`box`, :func:`cylinder`, :func:`torus`) into the tensors the renderer evaluates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Sequence

import numpy as np
import torch

from ...errors import ConfigError
from .photo_textures import PhotoTextures

# primitive kinds (value of Scene.kind); primitives are stored sorted by kind
SPHERE, BOX, CYLINDER, TORUS = 0, 1, 2, 3
KINDS = {"sphere": SPHERE, "box": BOX, "cylinder": CYLINDER, "torus": TORUS}
# procedural textures (value of Scene.mat_texture)
SOLID, CHECKER, STRIPES, NOISE, PHOTO = 0, 1, 2, 3, 4
TEXTURES = {"solid": SOLID, "checker": CHECKER, "stripes": STRIPES, "noise": NOISE, "photo": PHOTO}
NUM_WAVES = 4
"""Number of sinusoids summed by the ``noise`` texture."""


# --------------------------------------------------------------------------- hand-built scenes


@dataclass
class Material:
    """A procedural surface texture.

    ``color_a``/``color_b`` RGB in [0, 1]; ``texture`` one of solid / checker / stripes /
    noise / photo; ``scale`` texture cycles per scene unit, evaluated in the primitive's local
    frame (world xy for the ground); ``photo``: for the ``photo`` texture, the index of the
    scene's photo texture (:class:`~.photo_textures.PhotoTextures`, triplanar-mapped, one
    tile per cycle, tinted by ``color_a``); ``offset`` shifts the texture (in cycles);
    ``axis`` is the stripes direction; ``waves`` ``[NUM_WAVES, 4]`` the noise sinusoids
    (direction * frequency in cycles-scaled radians, phase); ``specular`` the
    Blinn-Phong strength and ``shininess`` its exponent.
    """

    color_a: Sequence[float] = (0.8, 0.8, 0.8)
    color_b: Sequence[float] | None = None
    texture: str = "solid"
    scale: float = 4.0
    offset: Sequence[float] = (0.0, 0.0, 0.0)
    axis: Sequence[float] = (1.0, 0.0, 0.0)
    waves: np.ndarray | None = None
    specular: float = 0.0
    shininess: float = 32.0
    photo: int = -1


@dataclass
class Primitive:
    """One SDF primitive in its local frame, placed by ``rotation`` (local->world) and ``center``.

    ``params`` (scene units): sphere ``(radius,)``; box ``(hx, hy, hz, rounding)``
    (outer half extents, edge rounding radius); cylinder ``(radius, half_height)``
    (axis = local z, capped); torus ``(major, minor)`` (in the local xy plane).
    """

    kind: str
    center: Sequence[float]
    params: Sequence[float]
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    material: Material = field(default_factory=Material)


def sphere(center, radius: float, material: Material | None = None, rotation=None) -> Primitive:
    """A sphere of ``radius`` at ``center`` (world)."""
    return Primitive("sphere", center, (radius,), np.eye(3) if rotation is None else rotation,
                     material or Material())


def box(center, half_extents, rounding: float = 0.0, material: Material | None = None,
        rotation=None) -> Primitive:
    """A box with outer ``half_extents`` and rounded edges of radius ``rounding``."""
    return Primitive("box", center, (*half_extents, rounding),
                     np.eye(3) if rotation is None else rotation, material or Material())


def cylinder(center, radius: float, half_height: float, material: Material | None = None,
             rotation=None) -> Primitive:
    """A capped cylinder, axis along the local z axis."""
    return Primitive("cylinder", center, (radius, half_height),
                     np.eye(3) if rotation is None else rotation, material or Material())


def torus(center, major: float, minor: float, material: Material | None = None,
          rotation=None) -> Primitive:
    """A torus in the local xy plane (major radius to the tube centre, minor tube radius)."""
    return Primitive("torus", center, (major, minor), np.eye(3) if rotation is None else rotation,
                     material or Material())


def bound_radius(kind: str, params: Sequence[float]) -> float:
    """Radius of a sphere around the primitive's centre that encloses it."""
    p = list(params)
    if kind == "sphere":
        return float(p[0])
    if kind == "box":
        return float(math.sqrt(p[0] ** 2 + p[1] ** 2 + p[2] ** 2))
    if kind == "cylinder":
        return float(math.hypot(p[0], p[1]))
    if kind == "torus":
        return float(p[0] + p[1])
    raise ConfigError(f"unknown primitive kind '{kind}': use one of {', '.join(KINDS)}")


@dataclass
class Scene:
    """A procedural scene as tensors (``P`` primitives sorted by kind, ``P + 1`` materials).

    Material row ``i < P`` belongs to primitive ``i``; row ``P`` is the ground's. The
    ground is the plane ``z = 0`` (if ``ground``), visible up to ray length ``far``,
    beyond which it fades into the sky's horizon colour by fog.
    """

    kind: torch.Tensor  # [P] int64, SPHERE/BOX/CYLINDER/TORUS, sorted
    center: torch.Tensor  # [P, 3] world
    rotation: torch.Tensor  # [P, 3, 3] local -> world
    params: torch.Tensor  # [P, 4] see Primitive
    bound: torch.Tensor  # [P] enclosing-sphere radius
    mat_color_a: torch.Tensor  # [P+1, 3]
    mat_color_b: torch.Tensor  # [P+1, 3]
    mat_texture: torch.Tensor  # [P+1] int64
    mat_scale: torch.Tensor  # [P+1] cycles per unit
    mat_offset: torch.Tensor  # [P+1, 3]
    mat_axis: torch.Tensor  # [P+1, 3] unit
    mat_waves: torch.Tensor  # [P+1, NUM_WAVES, 4]
    mat_specular: torch.Tensor  # [P+1]
    mat_shininess: torch.Tensor  # [P+1]
    sky_zenith: torch.Tensor  # [3]
    sky_horizon: torch.Tensor  # [3]
    light_dir: torch.Tensor  # [3] unit, towards the light, z > 0
    light_color: torch.Tensor  # [3]
    ambient: float = 0.35
    shadow_k: float = 12.0  # soft-shadow sharpness (larger = harder)
    fog_density: float = 0.0  # per unit of ray length
    far: float = 40.0  # ground visible up to this ray length
    ground: bool = True
    family: str = "orbit"
    seed: int | None = None
    path: torch.Tensor | None = None  # walk family: [S, 5] (x, y, z, yaw, pitch) float64
    mat_photo: torch.Tensor | None = None  # [P+1] int64, photo texture index (-1: none)
    photos: PhotoTextures | None = None  # the textures of ``photo`` materials

    @property
    def num_primitives(self) -> int:
        return int(self.kind.shape[0])

    @property
    def device(self) -> torch.device:
        return self.center.device

    def groups(self) -> list[tuple[int, int, int]]:
        """``(kind, start, end)`` slices of the (sorted) primitives of each kind present."""
        kinds = self.kind.tolist()
        out, start = [], 0
        for i in range(1, len(kinds) + 1):
            if i == len(kinds) or kinds[i] != kinds[start]:
                out.append((kinds[start], start, i))
                start = i
        return out

    def to(self, device: torch.device | str | None) -> "Scene":
        """A copy with every tensor on ``device`` (float tensors float32, ``path`` kept float64)."""
        if device is None:
            return self
        kw = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (torch.Tensor, PhotoTextures)):
                v = v.to(device)
            kw[f.name] = v
        return replace(self, **kw)


def _f32(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=torch.float32)


def unit_vector(v) -> np.ndarray:
    """``v`` scaled to length 1 (float64 numpy; a zero vector stays zero)."""
    v = np.asarray(v, dtype=np.float64)
    return v / max(float(np.linalg.norm(v)), 1e-12)


def build_scene(
    primitives: Sequence[Primitive],
    *,
    ground: bool = True,
    ground_material: Material | None = None,
    sky_zenith=(0.35, 0.55, 0.85),
    sky_horizon=(0.8, 0.85, 0.9),
    light_dir=(0.4, 0.3, 0.85),
    light_color=(1.0, 1.0, 1.0),
    ambient: float = 0.35,
    shadow_k: float = 12.0,
    fog_density: float = 0.0,
    far: float = 40.0,
    family: str = "orbit",
    seed: int | None = None,
    path: np.ndarray | None = None,
    photos: PhotoTextures | None = None,
) -> Scene:
    """Assemble a :class:`Scene` from primitives (any order; they are sorted by kind);
    ``photos``: the textures that ``photo`` materials index."""
    if light_dir[2] <= 0:
        raise ConfigError("build_scene: light_dir must point above the horizon (z > 0)")
    prims = sorted(primitives, key=lambda p: KINDS[p.kind] if p.kind in KINDS else -1)
    for p in prims:
        if p.kind not in KINDS:
            raise ConfigError(f"unknown primitive kind '{p.kind}': use one of {', '.join(KINDS)}")
    mats = [p.material for p in prims] + [ground_material or Material((0.6, 0.6, 0.6))]
    for m in mats:
        if m.texture not in TEXTURES:
            raise ConfigError(f"unknown texture '{m.texture}': use one of {', '.join(TEXTURES)}")
        if m.texture == "photo":
            count = 0 if photos is None else photos.count
            if not 0 <= int(m.photo) < count:
                raise ConfigError(f"a 'photo' material indexes photo texture {m.photo} but the scene has "
                                  f"{count}: pass photos= with enough textures or another texture")

    def params4(p: Primitive) -> list[float]:
        v = [float(x) for x in p.params]
        return (v + [0.0] * 4)[:4]

    P = len(prims)
    waves = [np.zeros((NUM_WAVES, 4)) if m.waves is None else np.asarray(m.waves, dtype=np.float64)
             for m in mats]
    return Scene(
        kind=torch.tensor([KINDS[p.kind] for p in prims], dtype=torch.int64),
        center=_f32([list(p.center) for p in prims]).reshape(P, 3),
        rotation=_f32([np.asarray(p.rotation) for p in prims]).reshape(P, 3, 3),
        params=_f32([params4(p) for p in prims]).reshape(P, 4),
        bound=_f32([bound_radius(p.kind, p.params) for p in prims]).reshape(P),
        mat_color_a=_f32([list(m.color_a) for m in mats]),
        mat_color_b=_f32([list(m.color_a if m.color_b is None else m.color_b) for m in mats]),
        mat_texture=torch.tensor([TEXTURES[m.texture] for m in mats], dtype=torch.int64),
        mat_scale=_f32([m.scale for m in mats]),
        mat_offset=_f32([list(m.offset) for m in mats]),
        mat_axis=_f32([unit_vector(m.axis) for m in mats]),
        mat_waves=_f32(np.stack(waves)),
        mat_specular=_f32([m.specular for m in mats]),
        mat_shininess=_f32([m.shininess for m in mats]),
        sky_zenith=_f32(sky_zenith),
        sky_horizon=_f32(sky_horizon),
        light_dir=_f32(unit_vector(light_dir)),
        light_color=_f32(light_color),
        ambient=float(ambient),
        shadow_k=float(shadow_k),
        fog_density=float(fog_density),
        far=float(far),
        ground=bool(ground),
        family=family,
        seed=seed,
        path=None if path is None else torch.as_tensor(np.asarray(path), dtype=torch.float64),
        mat_photo=torch.tensor([int(m.photo) if m.texture == "photo" else -1 for m in mats], dtype=torch.int64),
        photos=photos,
    )
