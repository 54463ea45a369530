"""Procedural multi-view scenes and a batched PyTorch sphere tracer (``nvs synth``).

* :mod:`.scenes` - :class:`Scene` (tensors), hand-built primitives, random scenes per seed
  (:func:`scene_from_seed`), cameras (:func:`sample_cameras`; ``orbit`` and ``walk`` families).
* :mod:`.render` - :func:`render` (rgb, z-depth, masks) and :func:`ray_directions`.
* :mod:`.generate` - :class:`SynthConfig`, :func:`generate` (transforms.json datasets),
  :func:`command_synth` (the CLI command).

World z-up, OpenGL camera-to-world, K in pixels, z-depth (docs/ARCHITECTURE.md).
"""

from .generate import SynthConfig, command_synth, generate, rerender_scene, scene_and_cameras
from .render import ray_directions, render
from .scenes import (
    CameraRanges,
    Material,
    Primitive,
    Scene,
    box,
    build_scene,
    cylinder,
    resolve_family,
    sample_cameras,
    scene_from_seed,
    sphere,
    torus,
)

__all__ = [
    "SynthConfig", "command_synth", "generate", "rerender_scene", "scene_and_cameras",
    "ray_directions", "render", "CameraRanges", "Material", "Primitive", "Scene", "box",
    "build_scene", "cylinder", "resolve_family", "sample_cameras", "scene_from_seed", "sphere", "torus",
]
