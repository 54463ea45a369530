"""Photo-plane ("card") scenes: real photographs on planes, rendered with exact ground truth.

A :class:`PhotoPlaneScene` is a few textured rectangles in space. Each
:class:`PhotoPlane` carries a photograph as its texture and optionally an alpha mask
(ellipse, rounded rectangle...), so a nearer card hides a farther one only where its
mask is set. Rendering intersects every camera ray with every plane analytically, so
colours, z-depth and which plane is seen are exact for any camera: multi-view pairs
with real-photo statistics and known geometry, which the procedural scenes of
:mod:`novelviews.synth.scenes` cannot give.

Conventions (docs/ARCHITECTURE.md): world right-handed and z-up; cameras OpenGL
camera-to-world ``c2w [N, 4, 4]`` (x right, y up, looking along -z) and pinhole
``K [N, 3, 3]`` (or one ``[3, 3]`` for all views) in pixels, pixel ``(row v, col u)``
centred at ``(u + 0.5, v + 0.5)``; depth is **z-depth** (distance along the optical
axis), ``0`` where no plane is hit; colours are floats in ``[0, 1]``.

Modules, one job each (every name is importable from ``novelviews.synth.photo_planes``):

* :mod:`.planes` - the scene types and plane geometry (frame, texel mapping, tiles);
* :mod:`.rendering` - :func:`render_photo_planes` (the ray-plane algorithm);
* :mod:`.cards` - random card scenes in front of an input camera (:func:`random_card_scene`).
"""

from __future__ import annotations

from .cards import SHAPES, random_card_scene, shape_mask
from .planes import PhotoPlane, PhotoPlaneScene
from .rendering import render_photo_planes

__all__ = ["SHAPES", "PhotoPlane", "PhotoPlaneScene", "render_photo_planes", "random_card_scene", "shape_mask"]
