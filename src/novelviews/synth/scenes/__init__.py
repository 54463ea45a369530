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

Modules, one job each (every name is importable from ``novelviews.synth.scenes``):

* :mod:`.scene` - the scene types and hand-built scenes (:func:`build_scene`);
* :mod:`.random_scenes` - random scenes per seed and their families (:func:`scene_from_seed`);
* :mod:`.camera_sampling` - random cameras of a scene (:func:`sample_cameras`, :class:`CameraRanges`);
* :mod:`.photo_textures` - photographs as triplanar, mip-filtered surface textures (:class:`PhotoTextures`).
"""

from __future__ import annotations

from .camera_sampling import CameraRanges, sample_cameras
from .photo_textures import PhotoTextures, textures_from_images, textures_from_photos
from .random_scenes import Family, resolve_family, scene_from_seed
from .scene import (
    BOX,
    CHECKER,
    CYLINDER,
    KINDS,
    NOISE,
    NUM_WAVES,
    PHOTO,
    SOLID,
    SPHERE,
    STRIPES,
    TEXTURES,
    TORUS,
    Material,
    Primitive,
    Scene,
    bound_radius,
    box,
    build_scene,
    cylinder,
    sphere,
    torus,
)

__all__ = [
    "Scene", "Material", "Primitive", "CameraRanges", "build_scene", "sphere", "box", "cylinder",
    "torus", "bound_radius", "scene_from_seed", "resolve_family", "sample_cameras",
    "SPHERE", "BOX", "CYLINDER", "TORUS", "SOLID", "CHECKER", "STRIPES", "NOISE", "NUM_WAVES",
    "KINDS", "TEXTURES", "Family", "PHOTO", "PhotoTextures", "textures_from_images", "textures_from_photos",
]
