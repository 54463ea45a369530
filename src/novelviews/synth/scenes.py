"""Procedural scenes: textured primitives on a textured ground plane under a sky.

Conventions (docs/ARCHITECTURE.md):

* world is right-handed and **z-up**; the ground is the plane ``z = 0``; units are
  metres-like scene units;
* cameras are OpenGL camera-to-world ``[N, 4, 4]`` float64 (x right, y up, looking along
  -z) and pinhole ``K [N, 3, 3]`` in pixels (principal point at the image centre, pixel
  centres at ``+0.5``), built with :func:`novelviews.cameras.look_at` and
  :func:`novelviews.cameras.intrinsics_from_fov` (fov vertical);
* colours are linear-ish display RGB in ``[0, 1]``.

A :class:`Scene` is a small dataclass of tensors (primitives sorted by type, one
material row per primitive plus one for the ground, sky, light) that
:func:`Scene.to` moves to any device and that :func:`novelviews.synth.render.render`
evaluates batched. Scenes are built by hand with :func:`build_scene` (see
:func:`sphere`, :func:`box`, :func:`cylinder`, :func:`torus`, :class:`Material`) or at
random with :func:`scene_from_seed`, which is fully deterministic per seed (numpy
``Generator`` seeded from the seed alone; no global RNG). :func:`sample_cameras`
draws the cameras of a scene from its own seeded stream, so the scene of a given seed
never depends on how many views are taken.

Two camera families:

* ``orbit`` (object-centric, like CO3D): objects near the origin within radius ~1,
  cameras on a sphere around the origin (elevation, distance, fov ranges), looking
  at the origin with a small jitter of the look-at point; views either random or an
  ordered orbit.
* ``walk`` (like RealEstate10K): objects scattered over a ~10 x 10 area beside a
  smooth random trajectory (stored in the scene as ``path``) that the camera follows
  forward at eye height 1..2, looking roughly horizontally / slightly down.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field, fields, replace
from typing import Literal, Sequence

import numpy as np
import torch

from ..errors import ConfigError

# primitive kinds (value of Scene.kind); primitives are stored sorted by kind
SPHERE, BOX, CYLINDER, TORUS = 0, 1, 2, 3
KINDS = {"sphere": SPHERE, "box": BOX, "cylinder": CYLINDER, "torus": TORUS}
# procedural textures (value of Scene.mat_texture)
SOLID, CHECKER, STRIPES, NOISE = 0, 1, 2, 3
TEXTURES = {"solid": SOLID, "checker": CHECKER, "stripes": STRIPES, "noise": NOISE}
NUM_WAVES = 4
"""Number of sinusoids summed by the ``noise`` texture."""

Family = Literal["orbit", "walk"]


# --------------------------------------------------------------------------- hand-built scenes


@dataclass
class Material:
    """A procedural surface texture.

    ``color_a``/``color_b`` RGB in [0, 1]; ``texture`` one of solid / checker / stripes /
    noise; ``scale`` texture cycles per scene unit, evaluated in the primitive's local
    frame (world xy for the ground); ``offset`` shifts the texture (in cycles);
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
            if isinstance(v, torch.Tensor):
                v = v.to(device)
            kw[f.name] = v
        return replace(self, **kw)


def _f32(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=torch.float32)


def _normalize(v) -> np.ndarray:
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
) -> Scene:
    """Assemble a :class:`Scene` from primitives (any order; they are sorted by kind)."""
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
        mat_axis=_f32([_normalize(m.axis) for m in mats]),
        mat_waves=_f32(np.stack(waves)),
        mat_specular=_f32([m.specular for m in mats]),
        mat_shininess=_f32([m.shininess for m in mats]),
        sky_zenith=_f32(sky_zenith),
        sky_horizon=_f32(sky_horizon),
        light_dir=_f32(_normalize(light_dir)),
        light_color=_f32(light_color),
        ambient=float(ambient),
        shadow_k=float(shadow_k),
        fog_density=float(fog_density),
        far=float(far),
        ground=bool(ground),
        family=family,
        seed=seed,
        path=None if path is None else torch.as_tensor(np.asarray(path), dtype=torch.float64),
    )


# --------------------------------------------------------------------------- random scenes


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    return colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1)))


def _random_material(rng: np.random.Generator, size: float, ground: bool = False) -> Material:
    """A random pleasant material; ``size`` (units) sets the texture's cell size."""
    h = rng.random()
    if ground:
        a = _hsv(h, rng.uniform(0.08, 0.45), rng.uniform(0.45, 0.85))
        b = _hsv(h + rng.uniform(-0.08, 0.08), rng.uniform(0.05, 0.4), rng.uniform(0.3, 0.75))
        tex = rng.choice(["solid", "checker", "stripes", "noise"], p=[0.2, 0.35, 0.1, 0.35])
        scale = rng.uniform(0.4, 2.0) / size
    else:
        a = _hsv(h, rng.uniform(0.35, 0.85), rng.uniform(0.5, 0.95))
        shift = rng.uniform(0.06, 0.5) * rng.choice([-1.0, 1.0])
        b = _hsv(h + shift, rng.uniform(0.2, 0.85), rng.uniform(0.35, 0.95))
        tex = rng.choice(["solid", "checker", "stripes", "noise"], p=[0.25, 0.25, 0.2, 0.3])
        scale = rng.uniform(0.6, 2.5) / size
    dirs = rng.normal(size=(NUM_WAVES, 3))
    if ground:
        dirs[:, 2] = 0.0
    dirs /= np.maximum(np.linalg.norm(dirs, axis=1, keepdims=True), 1e-9)
    freqs = 2 * math.pi * rng.uniform(0.3, 1.5, size=(NUM_WAVES, 1))
    waves = np.concatenate([dirs * freqs, rng.uniform(0, 2 * math.pi, size=(NUM_WAVES, 1))], 1)
    axis = rng.normal(size=3)
    if ground:
        axis[2] = 0.0
    spec = rng.uniform(0.1, 0.35) if (rng.random() < 0.5 and not ground) else 0.0
    return Material(
        color_a=a, color_b=b, texture=str(tex), scale=float(scale),
        offset=tuple(rng.uniform(0, 1, size=3)), axis=tuple(_normalize(axis)), waves=waves,
        specular=float(spec), shininess=float(rng.uniform(16, 96)),
    )


def _random_primitive(rng: np.random.Generator, size: float, tall: bool = False
                      ) -> tuple[str, tuple[float, ...], np.ndarray, float]:
    """A random primitive of rough radius ``size``: (kind, params, rotation, z of its centre
    when resting on the ground)."""
    kind = str(rng.choice(["sphere", "box", "cylinder", "torus"], p=[0.28, 0.32, 0.24, 0.16]))
    yaw = _rot_z(rng.uniform(0, 2 * math.pi))
    if tall and kind in ("sphere", "torus"):
        kind = "box"
    if kind == "sphere":
        return kind, (size,), _random_rotation(rng), size
    if kind == "box":
        h = size * rng.uniform(0.45, 1.0, size=3)
        if tall:
            h[2] = size * rng.uniform(1.2, 2.5)
        rounding = float(rng.uniform(0.05, 0.35) * h.min()) if rng.random() < 0.5 else 0.0
        return kind, (float(h[0]), float(h[1]), float(h[2]), rounding), yaw, float(h[2])
    if kind == "cylinder":
        r = size * rng.uniform(0.4, 0.9)
        hh = size * (rng.uniform(1.2, 2.5) if tall else rng.uniform(0.4, 1.2))
        if not tall and rng.random() < 0.3:  # lying on its side
            return kind, (r, hh), yaw @ _rot_x(math.pi / 2), r
        return kind, (r, hh), yaw, hh
    major = size * rng.uniform(0.6, 0.8)
    minor = major * rng.uniform(0.2, 0.45)
    if rng.random() < 0.4:  # standing up
        return kind, (major, minor), yaw @ _rot_x(math.pi / 2), major + minor
    return kind, (major, minor), yaw, minor


def _walk_path(rng: np.random.Generator, samples: int = 256) -> np.ndarray:
    """A smooth forward trajectory ``[S, 5]`` = (x, y, z, yaw, pitch), arc-length sampled."""
    length = rng.uniform(3.0, 7.0)
    s = np.linspace(0.0, 1.0, samples)
    yaw = np.full(samples, rng.uniform(0, 2 * math.pi))
    for _ in range(2):  # gentle turns: at most ~+-25 degrees over the path
        yaw += rng.uniform(-0.22, 0.22) * np.sin(2 * math.pi * rng.uniform(0.2, 0.8) * s
                                                 + rng.uniform(0, 2 * math.pi))
    ds = length / (samples - 1)
    x = np.concatenate([[0.0], np.cumsum(np.cos(yaw[:-1]) * ds)])
    y = np.concatenate([[0.0], np.cumsum(np.sin(yaw[:-1]) * ds)])
    x -= x.mean()
    y -= y.mean()
    z = rng.uniform(1.0, 2.0) + 0.05 * np.sin(2 * math.pi * rng.uniform(0.5, 1.5) * s)
    pitch = -np.deg2rad(rng.uniform(2.0, 15.0)) + np.deg2rad(2.0) * np.sin(
        2 * math.pi * rng.uniform(0.3, 1.0) * s + rng.uniform(0, 6.3))
    return np.stack([x, y, z, yaw, pitch], 1)


def resolve_family(family: str, seed: int) -> Family:
    """``orbit`` / ``walk`` as given; ``mixed`` picks one deterministically from ``seed``."""
    if family in ("orbit", "walk"):
        return family  # type: ignore[return-value]
    if family == "mixed":
        return "orbit" if np.random.default_rng([int(seed), 7]).random() < 0.5 else "walk"
    raise ConfigError(f"unknown scene family '{family}': use orbit, walk or mixed")


def scene_from_seed(
    seed: int,
    family: str = "orbit",
    *,
    objects: tuple[int, int] = (2, 6),
    walk_objects: tuple[int, int] = (6, 14),
) -> Scene:
    """A random scene, deterministic in ``(seed, family, objects, walk_objects)``.

    ``orbit``: 2-6 (``objects``) primitives within radius ~1 of the origin. ``walk``:
    ``walk_objects`` primitives (some tall) beside a random smooth trajectory over an
    area of roughly 10 x 10 units; the trajectory is stored in ``Scene.path``.
    Objects rest on the ground (some float slightly above it); ``mixed`` resolves to
    one of the two by :func:`resolve_family`.
    """
    family = resolve_family(family, seed)
    rng = np.random.default_rng([int(seed), 0])
    prims: list[Primitive] = []
    placed: list[tuple[float, float, float]] = []  # (x, y, radius)
    path = None

    def free(x: float, y: float, r: float, gap: float) -> bool:
        return all(math.hypot(x - px, y - py) >= r + pr + gap for px, py, pr in placed)

    if family == "orbit":
        n = int(rng.integers(objects[0], objects[1] + 1))
        for i in range(n):
            size = rng.uniform(0.18, 0.42)
            kind, params, rot, z = _random_primitive(rng, size)
            r_xy = bound_radius(kind, params) * 0.8
            for _ in range(40):
                rad = 0.0 if i == 0 else rng.uniform(0.2, 0.85)
                ang = rng.uniform(0, 2 * math.pi)
                x, y = rad * math.cos(ang), rad * math.sin(ang)
                if free(x, y, r_xy, 0.02):
                    break
            else:
                continue
            placed.append((x, y, r_xy))
            zc = z + (rng.uniform(0.05, 0.25) if rng.random() < 0.15 else 0.0)
            prims.append(Primitive(kind, (x, y, zc), params, rot, _random_material(rng, size)))
    else:
        path = _walk_path(rng)
        n = int(rng.integers(walk_objects[0], walk_objects[1] + 1))
        for _ in range(n):
            tall = rng.random() < 0.25
            size = rng.uniform(0.25, 0.8)
            kind, params, rot, z = _random_primitive(rng, size, tall=tall)
            r_xy = bound_radius(kind, params) if not tall else math.hypot(params[0], params[1])
            for _ in range(40):
                k = int(rng.integers(0, len(path)))
                px, py, _, yaw, _ = path[k]
                fwd, side = rng.uniform(1.0, 6.0), rng.uniform(-4.0, 4.0)
                x = px + fwd * math.cos(yaw) - side * math.sin(yaw)
                y = py + fwd * math.sin(yaw) + side * math.cos(yaw)
                clear = np.hypot(path[:, 0] - x, path[:, 1] - y).min() >= r_xy + 0.6
                if clear and free(x, y, r_xy, 0.1):
                    break
            else:
                continue
            placed.append((x, y, r_xy))
            zc = z + (rng.uniform(0.05, 0.3) if rng.random() < 0.1 else 0.0)
            prims.append(Primitive(kind, (x, y, zc), params, rot, _random_material(rng, size)))

    ground_mat = _random_material(rng, 1.0 if family == "orbit" else 2.0, ground=True)
    hz = rng.random()
    zenith = _hsv(hz, rng.uniform(0.2, 0.6), rng.uniform(0.6, 0.95))
    horizon = tuple(np.asarray(zenith) + (1.0 - np.asarray(zenith)) * rng.uniform(0.35, 0.75))
    el, az = np.deg2rad(rng.uniform(25, 75)), rng.uniform(0, 2 * math.pi)
    light_dir = (math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el))
    warm = rng.uniform(-0.08, 0.08)
    intensity = rng.uniform(0.75, 1.0)
    light_color = tuple(intensity * np.array([1.0 + warm, 1.0, 1.0 - warm]))
    return build_scene(
        prims, ground=True, ground_material=ground_mat, sky_zenith=zenith, sky_horizon=horizon,
        light_dir=light_dir, light_color=light_color, ambient=rng.uniform(0.25, 0.45),
        shadow_k=rng.uniform(6.0, 24.0),
        fog_density=rng.uniform(0.0, 0.01) if family == "orbit" else rng.uniform(0.01, 0.035),
        far=40.0 if family == "orbit" else 60.0, family=family, seed=int(seed), path=path,
    )


# --------------------------------------------------------------------------- cameras


@dataclass
class CameraRanges:
    """Ranges of the random cameras (degrees / scene units)."""

    fov_deg: tuple[float, float] = (40.0, 60.0)
    elevation_deg: tuple[float, float] = (5.0, 60.0)
    distance: tuple[float, float] = (2.5, 4.0)
    look_jitter: float = 0.1
    orbit_path: str = "mixed"  # random | ordered | arc | mixed (per scene)
    arc_deg: tuple[float, float] = (30.0, 150.0)  # arc: range of the azimuth span of the scene's views
    arc_fraction: float = 0.0  # mixed: share of scenes on an arc (the rest ordered / random, half each)


def sample_cameras(
    scene: Scene,
    views: int,
    width: int,
    height: int,
    ranges: CameraRanges | None = None,
    seed: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cameras of a scene: ``(c2w [N, 4, 4] OpenGL float64, K [N, 3, 3] float64 pixels)``.

    One fov per scene (shared intrinsics). Deterministic in ``(seed or scene.seed,
    views, width, height, ranges)``; uses its own random stream, independent of the
    scene's. ``orbit``: cameras on a sphere around the origin looking at a jittered
    origin - ``random`` (azimuth, elevation and distance per view), ``ordered`` (evenly round
    the full circle, one distance), ``arc`` (evenly along an arc of ``arc_deg`` azimuth, one
    distance and look-at point, elevation +-10 deg about the scene's: many small offsets, as
    when walking round an object), ``mixed`` (per scene: ``arc`` with probability
    ``arc_fraction``, else ordered or random); ``walk``: views spaced evenly along
    ``scene.path`` with small jitter.
    """
    from ..cameras import intrinsics_from_fov, look_at

    r = ranges or CameraRanges()
    if views < 1:
        raise ConfigError("sample_cameras: views must be >= 1")
    seed = scene.seed if seed is None else seed
    rng = np.random.default_rng([0 if seed is None else int(seed), 1])
    fov = math.radians(rng.uniform(*r.fov_deg))
    K = intrinsics_from_fov(torch.full((views,), fov, dtype=torch.float64), width, height)
    if scene.family == "walk":
        if scene.path is None:
            raise ConfigError("sample_cameras: a walk scene needs a path (use scene_from_seed)")
        path = scene.path.detach().cpu().double().numpy()
        s = np.linspace(0, len(path) - 1, views) if views > 1 else np.array([0.0])
        idx = np.arange(len(path))
        cols = [np.interp(s, idx, path[:, c]) for c in range(5)]
        x, y, z, yaw, pitch = cols
        yaw = yaw + np.deg2rad(rng.uniform(-2, 2, views))
        pitch = pitch + np.deg2rad(rng.uniform(-1.5, 1.5, views))
        eye = np.stack([x, y, z + rng.uniform(-0.03, 0.03, views)], 1)
        fwd = np.stack([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)], 1)
        return look_at(eye, eye + fwd), K
    mode = r.orbit_path
    if not 0.0 <= r.arc_fraction <= 1.0:
        raise ConfigError(f"arc_fraction must be in [0, 1], got {r.arc_fraction}")
    if mode == "mixed":  # one draw; arc_fraction = 0 keeps the cameras of earlier versions
        u = rng.random()
        f = r.arc_fraction
        mode = "arc" if u < f else "ordered" if u < f + 0.5 * (1 - f) else "random"
    if mode == "arc":
        lo, hi = r.arc_deg
        if not 0.0 <= lo <= hi <= 360.0:
            raise ConfigError(f"arc_deg must be 0 <= low <= high <= 360, got {r.arc_deg}")
        span = math.radians(rng.uniform(lo, hi))
        az = rng.uniform(0, 2 * math.pi) + span * (np.arange(views) / max(views - 1, 1))
        e_lo, e_hi = r.elevation_deg
        e0 = rng.uniform(e_lo, e_hi)
        el = np.deg2rad(np.clip(e0 + rng.uniform(-10, 10, views), e_lo, e_hi))
        dist = np.full(views, rng.uniform(*r.distance))
        eye = np.stack([dist * np.cos(el) * np.cos(az), dist * np.cos(el) * np.sin(az), dist * np.sin(el)], 1)
        target = rng.uniform(-r.look_jitter, r.look_jitter, size=3)
        target[2] = abs(target[2]) + 0.15
        return look_at(eye, np.broadcast_to(target, eye.shape).copy()), K
    if mode == "ordered":
        az0 = rng.uniform(0, 2 * math.pi)
        az = az0 + 2 * math.pi * np.arange(views) / views
        e0, e1 = rng.uniform(*r.elevation_deg, size=2)
        el = np.deg2rad(e0 + (e1 - e0) * 0.5 * (1 - np.cos(2 * math.pi * np.arange(views) / views)))
        dist = np.full(views, rng.uniform(*r.distance))
    elif mode == "random":
        az = rng.uniform(0, 2 * math.pi, views)
        el = np.deg2rad(rng.uniform(*r.elevation_deg, size=views))
        dist = rng.uniform(*r.distance, size=views)
    else:
        raise ConfigError(f"unknown orbit_path '{r.orbit_path}': use random, ordered, arc or mixed")
    eye = np.stack([dist * np.cos(el) * np.cos(az), dist * np.cos(el) * np.sin(az), dist * np.sin(el)], 1)
    target = rng.uniform(-r.look_jitter, r.look_jitter, size=(views, 3))
    target[:, 2] = np.abs(target[:, 2]) + 0.15  # look slightly above the ground's origin
    return look_at(eye, target), K


__all__ = [
    "Scene", "Material", "Primitive", "CameraRanges", "build_scene", "sphere", "box", "cylinder",
    "torus", "bound_radius", "scene_from_seed", "resolve_family", "sample_cameras",
    "SPHERE", "BOX", "CYLINDER", "TORUS", "SOLID", "CHECKER", "STRIPES", "NOISE", "NUM_WAVES",
]
