"""The photo-plane scene types: :class:`PhotoPlane` (one textured rectangle) and :class:`PhotoPlaneScene`.

A plane has a centre ``c``, a unit ``normal`` ``n`` (its front side,
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
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace

import torch

from ...cameras import intrinsics_from_fov
from ...errors import ConfigError
from ..photos import as_float_photo


def _vec3(x, what: str) -> torch.Tensor:
    try:
        v = torch.as_tensor(x, dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise ConfigError(f"{what} must be 3 numbers, got {x!r}") from None
    if v.numel() != 3 or not torch.isfinite(v).all():
        raise ConfigError(f"{what} must be 3 finite numbers, got {v.tolist()}")
    return v


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
        self.texture = as_float_photo(self.texture, "plane texture")
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
