"""Random card scenes: photos on cards in front of an input camera (:func:`random_card_scene`, :func:`shape_mask`).

:func:`random_card_scene` builds a scene in front of an input camera placed like the
rest of the synth code (``camera_on_sphere(elevation, azimuth, distance)`` looking at
the origin, z-up), so the existing camera embeddings apply: a few cards facing that
camera at several depths around the origin, and a large background plane behind them,
textured with another photo, that every ray of the input view hits.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ...cameras import camera_on_sphere
from ...errors import ConfigError, ImageError
from ..photos import as_float_photo
from .planes import PhotoPlane, PhotoPlaneScene

SHAPES = ("rect", "ellipse", "rounded")
"""Card outlines that :func:`random_card_scene` can draw (``rect``: no mask)."""


def _u(g: torch.Generator, lo: float, hi: float) -> float:
    """One uniform number in [lo, hi) from ``g`` (float64)."""
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))


def _range(v, what: str, lo_ok: float = -math.inf) -> tuple[float, float]:
    try:
        a, b = (float(v[0]), float(v[1]))
    except (TypeError, ValueError, IndexError):
        raise ConfigError(f"{what} must be a (low, high) pair, got {v!r}") from None
    if not (math.isfinite(a) and math.isfinite(b) and lo_ok <= a <= b):
        raise ConfigError(f"{what} must satisfy {lo_ok:g} <= low <= high (finite), got ({a:g}, {b:g})")
    return a, b


def shape_mask(shape: str, height: int, width: int, roundness: float = 0.3) -> torch.Tensor | None:
    """Alpha mask ``[height, width]`` float32 of a card outline filling the texture.

    ``rect``: ``None`` (opaque). ``ellipse``: the inscribed ellipse. ``rounded``: the
    rectangle with corners rounded by ``roundness`` x half the shorter side. Values are
    ``clamp(1/2 - sd, 0, 1)`` with ``sd`` the (approximate, for the ellipse) signed
    distance to the outline in texels, negative inside, so the 1/2 level of the
    bilinear lookup traces the outline with sub-texel accuracy.
    """
    if shape not in SHAPES:
        raise ConfigError(f"unknown card shape '{shape}': use one of {', '.join(SHAPES)}")
    if shape == "rect":
        return None
    yy = torch.arange(height, dtype=torch.float64)[:, None] + 0.5 - height / 2
    xx = torch.arange(width, dtype=torch.float64)[None, :] + 0.5 - width / 2
    a, b = width / 2, height / 2
    if shape == "ellipse":
        rad = torch.sqrt((xx / a) ** 2 + (yy / b) ** 2)
        sd = (rad - 1.0) * min(a, b)
    else:
        r = float(roundness) * min(a, b)
        qx, qy = xx.abs() - (a - r), yy.abs() - (b - r)
        outside = torch.sqrt(qx.clamp_min(0) ** 2 + qy.clamp_min(0) ** 2)
        sd = outside + torch.maximum(qx, qy).clamp_max(0) - r
    return (0.5 - sd).clamp(0.0, 1.0).to(torch.float32)


def _photo_list(photos) -> list[torch.Tensor]:
    photos = getattr(photos, "crops", photos)  # a PhotoPool
    if isinstance(photos, torch.Tensor):
        if photos.ndim != 4 or photos.shape[-1] != 3:
            raise ConfigError(f"photos must be a tensor [N, h, w, 3] or a list of [h, w, 3], got {list(photos.shape)}")
        photos = list(photos)
    photos = list(photos)
    if not photos:
        raise ConfigError("random_card_scene needs at least one photo")
    for i, p in enumerate(photos):
        if not isinstance(p, torch.Tensor) or p.ndim != 3 or p.shape[-1] != 3:
            raise ImageError(f"photo {i} must be a tensor [h, w, 3], got {getattr(p, 'shape', type(p).__name__)}")
    return photos


def _sub_image(img: torch.Tensor, aspect: float, g: torch.Generator) -> torch.Tensor:
    """The largest sub-rectangle of ``img`` with width / height = ``aspect``, at a random place."""
    h, w = img.shape[0], img.shape[1]
    if w / h > aspect:
        ch, cw = h, max(1, min(w, round(h * aspect)))
    else:
        cw, ch = w, max(1, min(h, round(w / aspect)))
    y0 = min(int(_u(g, 0, 1) * (h - ch + 1)), h - ch)
    x0 = min(int(_u(g, 0, 1) * (w - cw + 1)), w - cw)
    return img[y0:y0 + ch, x0:x0 + cw]


def _rotate(v: torch.Tensor, axis: torch.Tensor, angle: float) -> torch.Tensor:
    """Rodrigues rotation of ``v`` about the unit ``axis`` by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return v * c + torch.linalg.cross(axis, v) * s + axis * (axis @ v) * (1 - c)


def random_card_scene(
    photos,
    generator: torch.Generator,
    n_cards: int | tuple[int, int] = (1, 4),
    *,
    elevation_deg: tuple[float, float] = (0.0, 30.0),
    azimuth_deg: float = 0.0,
    distance: tuple[float, float] = (2.5, 4.0),
    fov_deg: tuple[float, float] = (40.0, 60.0),
    depth_offset: tuple[float, float] = (-1.0, 1.0),
    card_height: tuple[float, float] = (0.3, 0.75),
    aspect: tuple[float, float] = (0.65, 1.5),
    spread: float = 0.6,
    shapes: Sequence[str] = SHAPES,
    roundness: tuple[float, float] = (0.15, 0.6),
    tilt_deg: float = 0.0,
    background_offset: tuple[float, float] = (2.0, 4.0),
    background_margin: float = 2.5,
    image_aspect: float = 1.0,
) -> PhotoPlaneScene:
    """A random card scene in front of an input camera, deterministic in ``generator``'s state.

    Input camera: elevation ``e`` drawn from ``elevation_deg``, distance ``D`` from
    ``distance``, vertical fov from ``fov_deg``;
    ``input_c2w = camera_on_sphere(e, azimuth_deg, D)`` (z-up, looking at the origin).
    Let ``f`` be its forward axis and ``T = tan(fov / 2)``.

    Cards (``n_cards``: a count or an inclusive ``(low, high)`` range), each:

    * z-depth ``z = D + depth_offset`` draw (clamped to at least ``0.25 D`` and kept in front
      of the background), height ``card_height`` draw x ``2 z T`` (a fraction of the view's
      height at that depth), width = height x an ``aspect`` draw (log-uniform);
    * centre ``o + z f + (x z T image_aspect) right + (y z T) up`` with ``x, y`` uniform in
      ``+-spread`` (the centre projects within that fraction of the half-image);
    * facing the camera (normal = the camera's back axis, up = its up), optionally tilted
      about its up and right axes by angles uniform in ``+-tilt_deg``;
    * texture: the largest sub-image of its photo with the card's aspect, at a random
      place; outline drawn from ``shapes`` (:func:`shape_mask`; ``rounded`` corners
      ``roundness`` x half the shorter side).

    Background: a square plane facing the camera at z-depth ``z = D +`` a
    ``background_offset`` draw, ``2 background_margin z T max(1, image_aspect)`` wide,
    so every ray of the input view (and of views turned or moved within the margin) hits
    it; textured with its own photo (a sub-image of aspect ``image_aspect``) tiled so that
    one copy fills the input view exactly (``tile = (2 z T image_aspect, 2 z T)``) and
    repeats mirrored beyond. Photos are drawn without
    replacement while there are enough (``n + 1``), else with replacement. ``photos``: a
    list of ``[h, w, 3]`` tensors (uint8 or float in [0, 1]), a tensor ``[N, h, w, 3]``
    or a :class:`~novelviews.synth.photos.PhotoPool`. The background comes last in
    ``planes`` (``scene.background``).
    """
    photos = _photo_list(photos)
    if isinstance(n_cards, int):
        n_lo = n_hi = n_cards
    else:
        n_lo, n_hi = (int(v) for v in _range(n_cards, "n_cards", 0))
    if n_lo < 0 or n_hi < n_lo:
        raise ConfigError(f"n_cards must be >= 0 (or a range low <= high), got {n_cards}")
    el_lo, el_hi = _range(elevation_deg, "elevation_deg", -89.0)
    if el_hi >= 90:
        raise ConfigError(f"elevation_deg must stay below 90 degrees (z-up look-at), got {elevation_deg}")
    d_lo, d_hi = _range(distance, "distance", 1e-6)
    f_lo, f_hi = _range(fov_deg, "fov_deg", 1e-3)
    if f_hi >= 180:
        raise ConfigError(f"fov_deg must be below 180 degrees, got {fov_deg}")
    dz = _range(depth_offset, "depth_offset")
    ch = _range(card_height, "card_height", 1e-6)
    a_lo, a_hi = _range(aspect, "aspect", 1e-6)
    ro = _range(roundness, "roundness", 0.0)
    if ro[1] > 1:
        raise ConfigError(f"roundness must be within [0, 1], got {roundness}")
    bo = _range(background_offset, "background_offset", 1e-6)
    shapes = list(shapes)
    if not shapes:
        raise ConfigError("shapes must name at least one card outline")
    for s in shapes:
        if s not in SHAPES:
            raise ConfigError(f"unknown card shape '{s}': use one of {', '.join(SHAPES)}")
    if not (spread >= 0 and background_margin >= 1 and image_aspect > 0 and tilt_deg >= 0):
        raise ConfigError("need spread >= 0, background_margin >= 1, image_aspect > 0 and tilt_deg >= 0")
    g = generator

    elev = math.radians(_u(g, el_lo, el_hi))
    D = _u(g, d_lo, d_hi)
    fov = math.radians(_u(g, f_lo, f_hi))
    c2w = camera_on_sphere(torch.tensor(elev), torch.tensor(math.radians(azimuth_deg)), torch.tensor(D))
    right, up, back = c2w[:3, 0], c2w[:3, 1], c2w[:3, 2]
    fwd, o = -back, c2w[:3, 3]
    T = math.tan(fov / 2)
    n = n_lo + int(torch.randint(n_hi - n_lo + 1, (), generator=g)) if n_hi > n_lo else n_lo
    if len(photos) >= n + 1:
        pick = torch.randperm(len(photos), generator=g)[: n + 1].tolist()
    else:
        pick = torch.randint(len(photos), (n + 1,), generator=g).tolist()

    z_bg = D + _u(g, *bo)
    planes, index = [], []
    for i in range(n):
        z = min(max(D + _u(g, *dz), 0.25 * D), z_bg - 1e-3 * z_bg)
        hgt = _u(g, *ch) * 2 * z * T
        asp = math.exp(_u(g, math.log(a_lo), math.log(a_hi)))
        x, y = _u(g, -spread, spread), _u(g, -spread, spread)
        centre = o + z * fwd + (x * z * T * image_aspect) * right + (y * z * T) * up
        normal, pup = back.clone(), up.clone()
        if tilt_deg > 0:
            a1, a2 = math.radians(_u(g, -tilt_deg, tilt_deg)), math.radians(_u(g, -tilt_deg, tilt_deg))
            normal, pup = _rotate(normal, up, a1), _rotate(pup, up, a1)
            r_axis = torch.linalg.cross(pup, normal)
            normal, pup = _rotate(normal, r_axis, a2), _rotate(pup, r_axis, a2)
        tex = _sub_image(as_float_photo(photos[pick[i]], f"photo {pick[i]}"), asp, g)
        shape = shapes[int(torch.randint(len(shapes), (), generator=g))]
        mask = shape_mask(shape, tex.shape[0], tex.shape[1], _u(g, *ro))
        planes.append(PhotoPlane(centre, normal, pup, hgt * asp, hgt, tex, mask))
        index.append(pick[i])
    side = 2 * background_margin * z_bg * T * max(1.0, image_aspect)
    tex = _sub_image(as_float_photo(photos[pick[n]], f"photo {pick[n]}"), image_aspect, g)
    tile = (2 * z_bg * T * image_aspect, 2 * z_bg * T)
    planes.append(PhotoPlane(o + z_bg * fwd, back.clone(), up.clone(), side, side, tex, None, tile))
    index.append(pick[n])
    return PhotoPlaneScene(planes, background=n, input_c2w=c2w, fov=fov, photo_index=index)
