"""Random scenes per seed: materials, primitives and their placement for the ``orbit`` and ``walk`` families.

:func:`scene_from_seed` is fully deterministic per seed (numpy ``Generator`` seeded from the
seed alone; no global RNG); :func:`resolve_family` picks the family of a ``mixed`` seed.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import replace
from typing import Literal

import numpy as np

from ...errors import ConfigError
from .photo_textures import PhotoTextures
from .scene import NUM_WAVES, Material, Primitive, Scene, bound_radius, build_scene, unit_vector

Family = Literal["orbit", "walk"]


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
        offset=tuple(rng.uniform(0, 1, size=3)), axis=tuple(unit_vector(axis)), waves=waves,
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
    photos: PhotoTextures | None = None,
    photo_share: float = 0.5,
) -> Scene:
    """A random scene, deterministic in ``(seed, family, objects, walk_objects, photos, photo_share)``.

    ``orbit``: 2-6 (``objects``) primitives within radius ~1 of the origin. ``walk``:
    ``walk_objects`` primitives (some tall) beside a random smooth trajectory over an
    area of roughly 10 x 10 units; the trajectory is stored in ``Scene.path``.
    Objects rest on the ground (some float slightly above it); ``mixed`` resolves to
    one of the two by :func:`resolve_family`.

    ``photos``: with photo textures given, each material (objects and ground) is a
    ``photo`` material with probability ``photo_share`` (texture, tile size and a light
    tint drawn from a second stream of the seed), so geometry, lighting and cameras are
    those of the same seed without photos.
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
    if photos is not None:
        if not 0.0 <= photo_share <= 1.0:
            raise ConfigError(f"photo_share is a probability in [0, 1], got {photo_share}")
        prng = np.random.default_rng([int(seed), 5])
        sizes = [bound_radius(p.kind, p.params) for p in prims]
        prims = [replace(p, material=_photo_material(prng, p.material, size, photos.count, photo_share))
                 for p, size in zip(prims, sizes)]
        ground_mat = _photo_material(prng, ground_mat, 2.0 if family == "orbit" else 3.0, photos.count,
                                     photo_share, ground=True)
    return build_scene(
        prims, ground=True, ground_material=ground_mat, sky_zenith=zenith, sky_horizon=horizon,
        light_dir=light_dir, light_color=light_color, ambient=rng.uniform(0.25, 0.45),
        shadow_k=rng.uniform(6.0, 24.0),
        fog_density=rng.uniform(0.0, 0.01) if family == "orbit" else rng.uniform(0.01, 0.035),
        far=40.0 if family == "orbit" else 60.0, family=family, seed=int(seed), path=path, photos=photos,
    )


def _photo_material(rng: np.random.Generator, mat: Material, size: float, count: int, share: float,
                    ground: bool = False) -> Material:
    """``mat`` turned into a ``photo`` material with probability ``share`` (else unchanged): one of
    ``count`` textures, one tile per 1.5-4 ``size`` (objects) or 0.75-2.5 ``size`` (ground), tinted
    lightly. Always consumes the same draws, so later materials do not depend on this one's outcome."""
    u = rng.random(5)
    if u[0] >= share:
        return mat
    tile = size * ((0.75 + 1.75 * u[2]) if ground else (1.5 + 2.5 * u[2]))
    tint = _hsv(u[3], 0.15 * u[4], 0.85 + 0.15 * u[4])
    return replace(mat, texture="photo", photo=int(u[1] * count) % count, scale=1.0 / tile, color_a=tint)
