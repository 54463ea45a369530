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

Plane geometry. A plane has a centre ``c``, a unit ``normal`` ``n`` (its front side,
the side it faces) and a unit in-plane ``up`` ``v`` (made orthogonal to ``n``); its
``right`` axis is ``r = v x n``, so a plane facing a camera (``n`` towards it, ``v`` its
up) has ``r`` along the camera's right. The rectangle is
``{c + a r + b v : |a| <= width / 2, |b| <= height / 2}``. Its texture ``[h, w, 3]`` is
laid over it with row 0 at the top edge (``b = height / 2``) and column 0 at the left
edge (``a = -width / 2``): the point ``(a, b)`` sits at the continuous texel coordinate
``x = (a / width + 1/2) w``, ``y = (1/2 - b / height) h`` (texel ``(i, j)`` centred at
``(j + 0.5, i + 0.5)``, the image grid of ``K``). With a ``tile`` of world size
``(tw, th)`` one copy of the texture covers only ``|a| <= tw / 2, |b| <= th / 2`` and
repeats mirrored beyond (reflection about its edges), so a large background plane keeps
the photo's resolution where the input camera sees it. Planes are two-sided (a card
seen from behind shows its texture mirrored, like a thin print).

Rendering. For pixel ``(u, v)`` of a view, the camera-space direction
``q = ((u + 0.5 - cx) / fx, -(v + 0.5 - cy) / fy, -1)`` (the rays of
:func:`novelviews.cameras.ray_directions` before normalisation) is rotated to the world,
``d = R q``; the point ``o + s d`` then has z-depth exactly ``s``. The ray meets a plane
at ``s = ((c - o) . n) / (d . n)``; the hit counts if ``|d . n| > 1e-12``,
``s > near``, the point lies inside the rectangle and the bilinearly interpolated mask
there is at least 1/2 (no mask: opaque). The nearest hit (smallest ``s``) wins; ties
go to the plane listed first. Colour is the bilinear texture lookup
(``torch.nn.functional.grid_sample``, ``align_corners=False``: the texel-centre
convention above, clamped to the border texel; mirrored for tiled planes). Geometry is computed in ``dtype``
(float64 by default), textures are sampled in float32. Supersampling (``spp``)
averages colours over an ``spp x spp`` sub-pixel grid (plus the centre for even
``spp``); depth and masks always come from the pixel-centre ray, as in
:func:`novelviews.synth.render.render`. Every ray is independent: a view's result does
not depend on the views batched with it (bitwise on this CPU, up to the last bit of
vectorised math in general), and repeated calls are bitwise equal.

:func:`random_card_scene` builds a scene in front of an input camera placed like the
rest of the synth code (``camera_on_sphere(elevation, azimuth, distance)`` looking at
the origin, z-up), so the existing camera embeddings apply: a few cards facing that
camera at several depths around the origin, and a large background plane behind them,
textured with another photo, that every ray of the input view hits.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace
from typing import Sequence

import torch
import torch.nn.functional as F

from ..cameras import camera_on_sphere, intrinsics_from_fov, validate_intrinsics, validate_poses
from ..errors import CameraError, ConfigError, ImageError

SHAPES = ("rect", "ellipse", "rounded")
"""Card outlines that :func:`random_card_scene` can draw (``rect``: no mask)."""


def _vec3(x, what: str) -> torch.Tensor:
    try:
        v = torch.as_tensor(x, dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise ConfigError(f"{what} must be 3 numbers, got {x!r}") from None
    if v.numel() != 3 or not torch.isfinite(v).all():
        raise ConfigError(f"{what} must be 3 finite numbers, got {v.tolist()}")
    return v


def _texture(x, what: str) -> torch.Tensor:
    """An RGB texture ``[h, w, 3]`` (uint8, or float in [0, 1]) as float32 (``ImageError`` if not)."""
    from .photos import as_float_photo

    return as_float_photo(x, what)


@dataclass
class PhotoPlane:
    """One textured rectangle (see the module docstring for the frame and texel mapping).

    ``centre [3]``, ``normal [3]`` (front side; normalised), ``up [3]`` (texture up;
    made orthogonal to ``normal`` and normalised), ``width`` / ``height`` (scene units,
    along ``right`` / ``up``), ``texture [h, w, 3]`` (uint8, or float in [0, 1]; stored
    float32), ``mask [hm, wm]`` (optional; bool or float in [0, 1]; opaque where its
    bilinear value is >= 1/2; it spans the whole rectangle at any resolution),
    ``tile`` (optional ``(width, height)``, scene units: the size of one texture copy,
    centred on ``centre``, mirrored beyond; ``None``: one copy spans the rectangle).
    Raises :class:`ConfigError` on malformed values (:class:`ImageError` for a malformed texture).
    """

    centre: torch.Tensor
    normal: torch.Tensor
    up: torch.Tensor
    width: float
    height: float
    texture: torch.Tensor
    mask: torch.Tensor | None = None
    tile: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        self.centre = _vec3(self.centre, "plane centre")
        n = _vec3(self.normal, "plane normal")
        if n.norm() < 1e-12:
            raise ConfigError("plane normal must not be the zero vector")
        n = n / n.norm()
        u = _vec3(self.up, "plane up")
        u = u - (u @ n) * n
        if u.norm() < 1e-9:
            raise ConfigError("plane up vector must not be parallel to its normal (or zero)")
        self.normal, self.up = n, u / u.norm()
        for name in ("width", "height"):
            v = float(getattr(self, name))
            if not (v > 0 and math.isfinite(v)):
                raise ConfigError(f"plane {name} must be a positive number, got {getattr(self, name)}")
            setattr(self, name, v)
        self.texture = _texture(self.texture, "plane texture")
        if self.mask is not None:
            m = self.mask if isinstance(self.mask, torch.Tensor) else torch.as_tensor(self.mask)
            if m.ndim != 2 or m.shape[0] < 1 or m.shape[1] < 1:
                raise ConfigError(f"plane mask must be a 2-D array [h, w], got shape {list(m.shape)}")
            m = m.to(torch.float32)
            if not torch.isfinite(m).all():
                raise ConfigError("plane mask contains NaN or inf")
            self.mask = m
        if self.tile is not None:
            try:
                tw, th = (float(v) for v in self.tile)
            except (TypeError, ValueError):
                raise ConfigError(f"plane tile must be a (width, height) pair, got {self.tile!r}") from None
            if not (tw > 0 and th > 0 and math.isfinite(tw) and math.isfinite(th)):
                raise ConfigError(f"plane tile sizes must be positive numbers, got {self.tile!r}")
            self.tile = (tw, th)

    @property
    def right(self) -> torch.Tensor:
        """In-plane right axis ``up x normal`` (unit)."""
        return torch.linalg.cross(self.up, self.normal)

    def to(self, device) -> "PhotoPlane":
        """A copy with the texture and mask on ``device`` (geometry stays float64 on the CPU).

        The copy is not validated or normalised again, so its geometry is bit-identical.
        """
        out = copy.copy(self)
        out.texture = self.texture.to(device)
        out.mask = None if self.mask is None else self.mask.to(device)
        return out


@dataclass
class PhotoPlaneScene:
    """Planes plus how the scene was made.

    ``planes``: the :class:`PhotoPlane` list (order breaks exact depth ties);
    ``background``: index of the background plane or ``None``; ``input_c2w [4, 4]`` and
    ``fov`` (vertical, radians): the input camera the scene was built for (``None`` for
    hand-built scenes); ``photo_index``: per plane, the index of its photo in the
    collection given to :func:`random_card_scene` (``-1`` if unknown).
    """

    planes: list[PhotoPlane]
    background: int | None = None
    input_c2w: torch.Tensor | None = None
    fov: float | None = None
    photo_index: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.planes:
            raise ConfigError("a photo-plane scene needs at least one plane")
        for i, p in enumerate(self.planes):
            if not isinstance(p, PhotoPlane):
                raise ConfigError(f"plane {i} is a {type(p).__name__}, not a PhotoPlane")
        if self.background is not None and not 0 <= self.background < len(self.planes):
            raise ConfigError(f"background index {self.background} is not one of the {len(self.planes)} planes")
        if not self.photo_index:
            self.photo_index = [-1] * len(self.planes)
        if len(self.photo_index) != len(self.planes):
            raise ConfigError(f"photo_index has {len(self.photo_index)} entries for {len(self.planes)} planes")

    def to(self, device) -> "PhotoPlaneScene":
        """A copy with every texture and mask on ``device``."""
        return replace(self, planes=[p.to(device) for p in self.planes])

    def input_intrinsics(self, height: int, width: int) -> torch.Tensor:
        """``K [3, 3]`` of the input camera for a ``height x width`` image (square pixels)."""
        if self.fov is None:
            raise ConfigError("this scene has no input camera (fov is None)")
        return intrinsics_from_fov(torch.tensor(self.fov, dtype=torch.float64), width, height)


# --------------------------------------------------------------------------- rendering


def _samples(spp: int) -> list[tuple[float, float]]:
    g = [(i + 0.5) / spp for i in range(spp)]
    grid = [(x, y) for y in g for x in g]
    return grid if (0.5, 0.5) in grid else grid + [(0.5, 0.5)]


def _check_size(v, what: str) -> int:
    """``v`` as an int >= 1, else :class:`ConfigError`."""
    try:
        ok = not isinstance(v, bool) and int(v) == v and int(v) >= 1
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ConfigError(f"{what} must be a positive integer, got {v!r}")
    return int(v)


def _trace(scene: PhotoPlaneScene, o: torch.Tensor, d: torch.Tensor, near: float,
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest plane hit of rays ``o [M, 3]``, ``d [M, 3]`` (unnormalised, z-depth scaled).

    Returns ``s [M]`` (inf on a miss), ``winner [M]`` int64 (-1 on a miss) and the
    per-plane texture coordinates for ``grid_sample`` ``[P, M, 2]`` (rectangle
    coordinates ``2 a / width, -2 b / height`` in [-1, 1], rescaled to the tile if any).
    """
    P, M = len(scene.planes), o.shape[0]
    s_all = torch.full((P, M), math.inf, dtype=o.dtype, device=o.device)
    grids = torch.empty((P, M, 2), dtype=o.dtype, device=o.device)
    for k, pl in enumerate(scene.planes):
        n = pl.normal.to(o)
        c = pl.centre.to(o)
        denom = d @ n
        ok = denom.abs() > 1e-12
        s = ((c - o) @ n) / torch.where(ok, denom, torch.ones_like(denom))
        x = o + s[:, None] * d - c
        gx = (x @ pl.right.to(o)) * (2.0 / pl.width)
        gy = (x @ pl.up.to(o)) * (-2.0 / pl.height)
        hit = ok & (s > near) & (gx.abs() <= 1.0) & (gy.abs() <= 1.0)
        grids[k, :, 0], grids[k, :, 1] = gx, gy
        if pl.mask is not None and bool(hit.any()):
            idx = hit.nonzero().squeeze(1)
            g = grids[k, idx].to(torch.float32).reshape(1, 1, -1, 2)
            alpha = F.grid_sample(pl.mask.to(o.device)[None, None], g, mode="bilinear",
                                  padding_mode="border", align_corners=False).reshape(-1)
            hit[idx] = alpha >= 0.5
        if pl.tile is not None:
            grids[k, :, 0] *= pl.width / pl.tile[0]
            grids[k, :, 1] *= pl.height / pl.tile[1]
        s_all[k] = torch.where(hit, s, math.inf)
    s_min, winner = s_all.min(dim=0)
    winner = torch.where(torch.isfinite(s_min), winner, -1)
    return s_min, winner, grids


def _shade(scene: PhotoPlaneScene, winner: torch.Tensor, grids: torch.Tensor) -> torch.Tensor:
    """Bilinear texture colour ``[M, 3]`` float32 of each ray's winning plane (0 on a miss)."""
    rgb = torch.zeros(winner.shape[0], 3, dtype=torch.float32, device=winner.device)
    for k, pl in enumerate(scene.planes):
        idx = (winner == k).nonzero().squeeze(1)
        if idx.numel() == 0:
            continue
        g = grids[k, idx].to(torch.float32).reshape(1, 1, -1, 2)
        tex = pl.texture.to(winner.device).permute(2, 0, 1)[None]
        pad = "border" if pl.tile is None else "reflection"
        col = F.grid_sample(tex, g, mode="bilinear", padding_mode=pad, align_corners=False)
        rgb[idx] = col.reshape(3, -1).T
    return rgb


def render_photo_planes(scene: PhotoPlaneScene, c2w, K, height: int, width: int, *, spp: int = 1,
                        device=None, chunk: int | None = None, near: float = 1e-6,
                        dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    """Render views of a photo-plane scene (algorithm and conventions: module docstring).

    Args:
        scene: the scene.
        c2w: ``[N, 4, 4]`` (or ``[4, 4]``) OpenGL camera-to-world; checked by
            :func:`novelviews.cameras.validate_poses`.
        K: ``[N, 3, 3]`` or one ``[3, 3]`` for every view, pixels, pixel centres at +0.5.
        height, width: image size in pixels.
        spp: supersampling grid per axis for ``rgb`` (depth and masks: pixel centres).
        device: where to compute (default: the device of the first plane's texture).
        chunk: rays per batch (whole views are batched; default 2**19 on CPU, 2**22 on GPU).
        near: smallest accepted z-depth of a hit.
        dtype: float type of the ray geometry (float64 default; float32 is faster on GPUs).

    Returns (on ``device``): ``rgb [N, H, W, 3]`` float32 in [0, 1] (0 where nothing is
    hit); ``depth [N, H, W]`` float32 z-depth (0 where nothing is hit); ``mask [N, H, W]``
    bool (any plane hit); ``card_mask [N, H, W]`` bool (a plane other than the
    background hit); ``plane [N, H, W]`` int64 index of the visible plane (-1 for none).
    Raises :class:`CameraError` for malformed cameras and :class:`ConfigError` for bad
    sizes or settings.
    """
    if not isinstance(scene, PhotoPlaneScene):
        raise ConfigError(f"render_photo_planes needs a PhotoPlaneScene, got {type(scene).__name__}")
    H, W = _check_size(height, "height"), _check_size(width, "width")
    spp = _check_size(spp, "spp")
    if dtype not in (torch.float32, torch.float64):
        raise ConfigError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if not (near >= 0 and math.isfinite(near)):
        raise ConfigError(f"near must be a finite number >= 0, got {near}")
    poses = validate_poses(c2w, "camera")
    N = poses.shape[0]
    Ks = validate_intrinsics(K, "camera")
    if Ks.shape[0] not in (1, N):
        raise CameraError(f"got {Ks.shape[0]} intrinsics for {N} cameras: give one K or one per camera")
    Ks = Ks.expand(N, 3, 3)
    device = torch.device(device) if device is not None else scene.planes[0].texture.device
    scene = scene.to(device)
    if chunk is None:
        chunk = 2**22 if device.type == "cuda" else 2**19
    if chunk < 1:
        raise ConfigError(f"chunk must be >= 1 rays, got {chunk}")
    views_per_chunk = max(1, chunk // (H * W))

    R = poses[:, :3, :3].to(device, dtype)
    t = poses[:, :3, 3].to(device, dtype)
    Kd = Ks.to(device, dtype)
    rows = torch.arange(H, dtype=dtype, device=device)
    cols = torch.arange(W, dtype=dtype, device=device)
    samples = _samples(spp)
    rgb = torch.zeros(N, H, W, 3, dtype=torch.float32, device=device)
    depth = torch.zeros(N, H, W, dtype=torch.float32, device=device)
    plane = torch.full((N, H, W), -1, dtype=torch.int64, device=device)
    for v0 in range(0, N, views_per_chunk):
        v1 = min(N, v0 + views_per_chunk)
        k = Kd[v0:v1]
        o = t[v0:v1, None, None, :].expand(v1 - v0, H, W, 3).reshape(-1, 3)
        for ox, oy in samples:
            x = (cols[None, None, :] + ox - k[:, 0, 2, None, None]) / k[:, 0, 0, None, None]
            y = -(rows[None, :, None] + oy - k[:, 1, 2, None, None]) / k[:, 1, 1, None, None]
            x, y = torch.broadcast_tensors(x, y)
            q = torch.stack([x, y, -torch.ones_like(x)], dim=-1)  # [n, H, W, 3]
            d = torch.einsum("nij,nhwj->nhwi", R[v0:v1], q).reshape(-1, 3)
            s, winner, grids = _trace(scene, o, d, near)
            rgb[v0:v1] += _shade(scene, winner, grids).reshape(v1 - v0, H, W, 3)
            if (ox, oy) == (0.5, 0.5):
                hit = winner >= 0
                depth[v0:v1] = torch.where(hit, s, 0.0).to(torch.float32).reshape(v1 - v0, H, W)
                plane[v0:v1] = winner.reshape(v1 - v0, H, W)
    if len(samples) > 1:
        rgb /= len(samples)
    mask = plane >= 0
    card = mask if scene.background is None else mask & (plane != scene.background)
    return {"rgb": rgb, "depth": depth, "mask": mask, "card_mask": card, "plane": plane}


# --------------------------------------------------------------------------- random scenes


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
        tex = _sub_image(_texture(photos[pick[i]], f"photo {pick[i]}"), asp, g)
        shape = shapes[int(torch.randint(len(shapes), (), generator=g))]
        mask = shape_mask(shape, tex.shape[0], tex.shape[1], _u(g, *ro))
        planes.append(PhotoPlane(centre, normal, pup, hgt * asp, hgt, tex, mask))
        index.append(pick[i])
    side = 2 * background_margin * z_bg * T * max(1.0, image_aspect)
    tex = _sub_image(_texture(photos[pick[n]], f"photo {pick[n]}"), image_aspect, g)
    tile = (2 * z_bg * T * image_aspect, 2 * z_bg * T)
    planes.append(PhotoPlane(o + z_bg * fwd, back.clone(), up.clone(), side, side, tex, None, tile))
    index.append(pick[n])
    return PhotoPlaneScene(planes, background=n, input_c2w=c2w, fov=fov, photo_index=index)


__all__ = ["SHAPES", "PhotoPlane", "PhotoPlaneScene", "render_photo_planes", "random_card_scene", "shape_mask"]
