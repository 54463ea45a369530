"""Real photographs as training material: loading, random augmented crops, crop pools.

The procedural scenes of :mod:`novelviews.synth.scenes` have clean, band-limited
textures; real photographs have the statistics the model meets at test time (fine
detail, noise, depth of field, natural colour). This module turns a handful of
photographs into many square training crops and stores them with their provenance.

Conventions:

* a **photo** is a ``torch.uint8`` tensor ``[H, W, 3]`` (RGB, rows top to bottom),
  as decoded by PIL after applying the EXIF orientation; :func:`load_photo` bounds
  its longer side by ``max_side`` (area-preserving downscale, never an upscale);
* a **crop** is square, ``[S, S, 3]``; floats are in ``[0, 1]``; pools hold ``uint8``;
* randomness comes only from an explicit ``torch.Generator`` (no global RNG).
  :func:`random_crop` draws exactly :data:`DRAWS_PER_CROP` uniform float64 numbers per
  crop, so the k-th crop of a generator does not depend on the photo's size or on
  the augmentation settings. :func:`build_pool` seeds one generator per photo from
  ``(seed, photo key)`` (:func:`photo_seed`), so adding or removing a photo never
  changes the crops of the others. Decoding (libjpeg / zlib) is deterministic for
  fixed library versions, which makes pools bit-reproducible on a given install.

One crop, from the ``DRAWS_PER_CROP`` uniform numbers ``r[0..7]``:

1. scale: side ``s = round(lerp(scale_lo, scale_hi, r0) * min(H, W))``, clamped to
   ``[1, min(H, W)]`` (the crop covers that fraction of the photo's shorter side);
2. position: top-left ``(x0, y0) = (floor(r1 * (W - s + 1)), floor(r2 * (H - s + 1)))``
   (uniform over every integer placement);
3. resample to ``S x S``: bilinear with PyTorch's antialiasing (its filter widens with
   the downscale factor, so shrinking averages instead of skipping pixels);
4. horizontal flip if ``r3 < hflip``;
5. colour jitter, in this fixed order, each factor drawn uniformly within ``1 +- amount``:
   brightness ``x <- b x``; contrast ``x <- m + c (x - m)`` with ``m`` the crop's mean
   luma; saturation ``x <- Y + s (x - Y)`` with ``Y`` the per-pixel luma
   (Rec. 601 weights ``0.299, 0.587, 0.114``); hue: a rotation of the chroma plane of
   YIQ by ``(2 r7 - 1) * hue * 2 pi`` radians (luma unchanged); finally clipped to
   ``[0, 1]`` (and rounded to uint8 by the pool).

A :class:`PhotoPool` is saved as ``.npz`` (``crops`` uint8, ``sources`` and ``info``
as JSON strings; no pickles) or ``.pt`` (a plain dict loadable with
``torch.load(weights_only=True)``). ``sources[i]`` describes crop ``i``: the photo's
provenance as given to :func:`build_pool` (for Debian packages: package, version,
file, license and copyright line) plus the crop's own parameters.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, DatasetError, ImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
"""File suffixes (lower case) that :func:`list_photos` treats as photographs."""

DRAWS_PER_CROP = 8
"""Uniform numbers drawn from the generator for every crop (see the module docstring)."""

POOL_FORMAT = 1
"""Version of the pool file layout written by :func:`save_pool`."""

_LUMA = (0.299, 0.587, 0.114)
# YIQ <-> RGB (NTSC); rows of _RGB2YIQ give Y, I, Q
_RGB2YIQ = torch.tensor([[0.299, 0.587, 0.114],
                         [0.595716, -0.274453, -0.321263],
                         [0.211456, -0.522591, 0.311135]], dtype=torch.float64)
_YIQ2RGB = torch.linalg.inv(_RGB2YIQ)


# --------------------------------------------------------------------------- loading


def list_photos(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (suffix in :data:`IMAGE_SUFFIXES`), sorted by path.

    Raises :class:`DatasetError` if the folder does not exist or holds no image.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"photo folder '{root}' does not exist or is not a folder")
    it = root.rglob("*") if recursive else root.glob("*")
    files = sorted(p for p in it if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"photo folder '{root}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def load_photo(path: str | Path, max_side: int | None = 1024) -> torch.Tensor:
    """Decode one photograph to ``uint8 [H, W, 3]`` RGB, longer side at most ``max_side``.

    EXIF orientation is applied; alpha and palette images are converted to RGB (alpha
    dropped). If the longer side exceeds ``max_side`` the image is shrunk with PIL's
    area-averaging ``BOX`` filter to exactly ``max_side`` on that side (aspect kept,
    the other side rounded); JPEGs are first decoded at the smallest DCT scale that is
    still at least that large (``Image.draft``), which is faster and as sharp.
    ``max_side=None`` keeps the full resolution. Raises :class:`ImageError` if the file
    is missing or unreadable.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise ImageError(f"photo '{p}' does not exist")
    if max_side is not None and max_side < 1:
        raise ConfigError(f"max_side must be a positive number of pixels or None, got {max_side}")
    try:
        with Image.open(p) as im:
            if max_side is not None and im.format == "JPEG":
                w, h = im.size
                f = max_side / max(w, h)
                if f < 1:
                    im.draft("RGB", (math.ceil(w * f), math.ceil(h * f)))
            im = ImageOps.exif_transpose(im)
            im = im.convert("RGB")
            w, h = im.size
            if max_side is not None and max(w, h) > max_side:
                f = max_side / max(w, h)
                size = (max_side, max(1, round(h * f))) if w >= h else (max(1, round(w * f)), max_side)
                im = im.resize(size, Image.Resampling.BOX)
            arr = np.asarray(im, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageError(f"photo '{p}' could not be decoded: {exc}") from None
    return torch.from_numpy(arr)


def load_photo_folder(folder: str | Path, max_side: int | None = 1024, min_side: int = 32,
                      recursive: bool = True) -> tuple[list[torch.Tensor], list[Path]]:
    """Every photo under ``folder`` (:func:`list_photos` order) and its path.

    Photos whose shorter side (after the ``max_side`` bound) is below ``min_side``
    pixels are skipped, since they cannot give a sharp crop; raises
    :class:`DatasetError` if none is left.
    """
    images, paths = [], []
    for p in list_photos(folder, recursive):
        img = load_photo(p, max_side)
        if min(img.shape[0], img.shape[1]) >= min_side:
            images.append(img)
            paths.append(p)
    if not images:
        raise DatasetError(f"photo folder '{folder}': no photo has a shorter side of at least {min_side} px")
    return images, paths


# --------------------------------------------------------------------------- crops


@dataclass(frozen=True)
class CropConfig:
    """Augmentation of one crop (see the module docstring for the exact equations).

    ``size``: output side ``S`` in pixels. ``scale``: range of the crop side as a
    fraction of the photo's shorter side (``(0.25, 1.0)``: from a quarter of the photo
    to its whole height). ``hflip``: probability of a horizontal flip (vertical flips
    are off: photographs have gravity). ``brightness`` / ``contrast`` / ``saturation``:
    each factor is drawn within ``1 +- amount``; ``hue``: the hue rotation is drawn
    within ``+- hue`` turns.
    """

    size: int = 128
    scale: tuple[float, float] = (0.25, 1.0)
    hflip: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.25
    hue: float = 0.03

    def validate(self) -> "CropConfig":
        """Raise :class:`ConfigError` on out-of-range settings; returns ``self``."""
        if int(self.size) != self.size or self.size < 1:
            raise ConfigError(f"crop size must be a positive integer, got {self.size}")
        lo, hi = self.scale
        if not 0 < lo <= hi <= 1:
            raise ConfigError(f"crop scale must satisfy 0 < low <= high <= 1, got {tuple(self.scale)}")
        if not 0 <= self.hflip <= 1:
            raise ConfigError(f"hflip is a probability in [0, 1], got {self.hflip}")
        for name in ("brightness", "contrast", "saturation"):
            v = getattr(self, name)
            if not 0 <= v < 1:
                raise ConfigError(f"{name} jitter must be in [0, 1), got {v}")
        if not 0 <= self.hue <= 0.5:
            raise ConfigError(f"hue jitter must be in [0, 0.5] turns, got {self.hue}")
        return self


def as_float_photo(img: torch.Tensor, what: str = "photo") -> torch.Tensor:
    """``[H, W, 3]`` uint8 or float -> float32 in [0, 1] (floats are checked, not rescaled)."""
    if not isinstance(img, torch.Tensor):
        img = torch.as_tensor(np.asarray(img))
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ImageError(f"{what} must have shape [H, W, 3] (RGB), got {list(img.shape)}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ImageError(f"{what} is empty ({list(img.shape)})")
    if img.dtype == torch.uint8:
        return img.to(torch.float32) / 255.0
    if not img.is_floating_point():
        raise ImageError(f"{what} must be uint8 or float, got {img.dtype}")
    img = img.to(torch.float32)
    if not torch.isfinite(img).all():
        raise ImageError(f"{what} contains NaN or inf")
    return img


def jitter_colors(img: torch.Tensor, brightness: float, contrast: float, saturation: float,
                  hue_turns: float) -> torch.Tensor:
    """Apply the given jitter factors (not random) to a float ``[..., H, W, 3]`` image.

    ``brightness``, ``contrast``, ``saturation`` are multiplicative factors (1 = no
    change), ``hue_turns`` a chroma rotation in turns (0 = none); order and equations
    as in the module docstring. The result is clipped to ``[0, 1]``.
    """
    luma_w = torch.tensor(_LUMA, dtype=img.dtype, device=img.device)
    x = img * brightness
    m = (x @ luma_w).mean(dim=(-1, -2), keepdim=True)[..., None]
    x = m + contrast * (x - m)
    y = (x @ luma_w)[..., None]
    x = y + saturation * (x - y)
    if hue_turns != 0.0:
        a = 2.0 * math.pi * hue_turns
        c, s = math.cos(a), math.sin(a)
        rot = torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]], dtype=torch.float64)
        M = (_YIQ2RGB @ rot @ _RGB2YIQ).to(img.dtype).to(img.device)
        x = x @ M.T
    return x.clamp(0.0, 1.0)


def crop_params(height: int, width: int, draws: torch.Tensor, cfg: CropConfig) -> dict[str, Any]:
    """The crop of a ``height x width`` photo for :data:`DRAWS_PER_CROP` uniform ``draws``.

    Returns a JSON-able dict: ``x, y, side`` (pixels of the photo), ``hflip`` (bool),
    ``brightness, contrast, saturation`` (factors), ``hue`` (turns).
    """
    r = [float(v) for v in draws]
    short = min(height, width)
    lo, hi = cfg.scale
    side = int(min(max(round((lo + (hi - lo) * r[0]) * short), 1), short))
    x = min(int(math.floor(r[1] * (width - side + 1))), width - side)
    y = min(int(math.floor(r[2] * (height - side + 1))), height - side)
    return {
        "x": x, "y": y, "side": side, "hflip": bool(r[3] < cfg.hflip),
        "brightness": 1.0 + cfg.brightness * (2.0 * r[4] - 1.0),
        "contrast": 1.0 + cfg.contrast * (2.0 * r[5] - 1.0),
        "saturation": 1.0 + cfg.saturation * (2.0 * r[6] - 1.0),
        "hue": cfg.hue * (2.0 * r[7] - 1.0),
    }


def apply_crop(img: torch.Tensor, params: dict[str, Any], size: int) -> torch.Tensor:
    """Cut, resample (antialiased bilinear), flip and colour-jitter one crop: float ``[S, S, 3]``."""
    x = as_float_photo(img)
    p = params
    patch = x[p["y"]:p["y"] + p["side"], p["x"]:p["x"] + p["side"]]
    if patch.shape[0] != size:
        t = patch.permute(2, 0, 1)[None]
        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False,
                          antialias=patch.shape[0] > size)
        patch = t[0].permute(1, 2, 0)
    if p["hflip"]:
        patch = patch.flip(1)
    return jitter_colors(patch, p["brightness"], p["contrast"], p["saturation"], p["hue"])


def random_crop(img: torch.Tensor, generator: torch.Generator, cfg: CropConfig | None = None
                ) -> tuple[torch.Tensor, dict[str, Any]]:
    """One random augmented crop of a photo: ``(float32 [S, S, 3] in [0, 1], params)``.

    ``img``: ``[H, W, 3]`` uint8 or float in [0, 1]. Consumes exactly
    :data:`DRAWS_PER_CROP` float64 uniforms from ``generator``; ``params`` (from
    :func:`crop_params`) reproduce the crop with :func:`apply_crop`.
    """
    cfg = (cfg or CropConfig()).validate()
    x = as_float_photo(img)
    draws = torch.rand(DRAWS_PER_CROP, generator=generator, dtype=torch.float64)
    params = crop_params(x.shape[0], x.shape[1], draws, cfg)
    return apply_crop(x, params, cfg.size), params


def random_crops(img: torch.Tensor, n: int, generator: torch.Generator, cfg: CropConfig | None = None
                 ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """``n`` crops of one photo as ``uint8 [n, S, S, 3]`` (rounded) and their parameters."""
    cfg = (cfg or CropConfig()).validate()
    if n < 0:
        raise ConfigError(f"number of crops must be >= 0, got {n}")
    x = as_float_photo(img)
    out = torch.empty(n, cfg.size, cfg.size, 3, dtype=torch.uint8)
    params = []
    for i in range(n):
        c, p = random_crop(x, generator, cfg)
        out[i] = to_uint8(c)
        params.append(p)
    return out, params


def to_uint8(img: torch.Tensor) -> torch.Tensor:
    """Float image in [0, 1] -> uint8, rounding to nearest (values outside are clipped)."""
    return (img.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


# --------------------------------------------------------------------------- pools


def photo_seed(seed: int, key: str) -> int:
    """A 63-bit generator seed from the pool seed and a photo's key (e.g. its file path).

    SHA-256 of ``"{seed}:{key}"``; stable across runs, machines and Python versions
    (unlike ``hash``), and independent of the other photos of the pool.
    """
    digest = hashlib.sha256(f"{int(seed)}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@dataclass
class PhotoPool:
    """Square photo crops and where each came from.

    ``crops``: ``uint8 [N, S, S, 3]``. ``sources``: ``N`` JSON-able dicts, one per crop:
    the photo's provenance (whatever :func:`build_pool` was given, e.g. ``package``,
    ``version``, ``file``, ``license``, ``copyright``) plus ``photo`` (index of the photo
    in the pool's photo list), ``crop`` (index of the crop within its photo) and
    ``params`` (:func:`crop_params`). ``info``: JSON-able settings of the pool (seed,
    crop config, format version, photo count).
    """

    crops: torch.Tensor
    sources: list[dict[str, Any]]
    info: dict[str, Any]

    def __post_init__(self) -> None:
        c = self.crops
        if c.dtype != torch.uint8 or c.ndim != 4 or c.shape[-1] != 3 or c.shape[1] != c.shape[2]:
            raise DatasetError(f"photo pool crops must be uint8 [N, S, S, 3], got {c.dtype} {list(c.shape)}")
        if len(self.sources) != c.shape[0]:
            raise DatasetError(f"photo pool has {c.shape[0]} crops but {len(self.sources)} source entries")

    def __len__(self) -> int:
        return int(self.crops.shape[0])

    @property
    def size(self) -> int:
        """Crop side ``S`` in pixels."""
        return int(self.crops.shape[1])

    def as_float(self) -> torch.Tensor:
        """The crops as float32 ``[N, S, S, 3]`` in [0, 1]."""
        return self.crops.to(torch.float32) / 255.0

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per ``package`` (``"-"`` when absent): number of photos, crops and the licenses seen."""
        out: dict[str, dict[str, Any]] = {}
        seen: set[int] = set()
        for s in self.sources:
            pkg = str(s.get("package", "-"))
            row = out.setdefault(pkg, {"photos": 0, "crops": 0, "licenses": []})
            row["crops"] += 1
            if s["photo"] not in seen:
                seen.add(s["photo"])
                row["photos"] += 1
            lic = s.get("license")
            if lic is not None and lic not in row["licenses"]:
                row["licenses"].append(lic)
        return out


def build_pool(photos: Sequence[torch.Tensor], sources: Sequence[dict[str, Any]], crops_per_photo: int,
               cfg: CropConfig | None = None, seed: int = 0, key: str = "file") -> PhotoPool:
    """Crop every photo ``crops_per_photo`` times into a :class:`PhotoPool`.

    ``photos[i]``: ``[H, W, 3]`` uint8 / float; ``sources[i]``: its JSON-able provenance,
    which must hold ``key`` (default ``"file"``): the string that seeds the photo's own
    generator (:func:`photo_seed`), so crops are reproducible per photo. Crops are laid
    out photo by photo in the given order.
    """
    cfg = (cfg or CropConfig()).validate()
    if len(photos) != len(sources):
        raise ConfigError(f"build_pool: {len(photos)} photos but {len(sources)} source entries")
    if not photos:
        raise DatasetError("build_pool: no photos given")
    if crops_per_photo < 1:
        raise ConfigError(f"crops per photo must be >= 1, got {crops_per_photo}")
    keys = []
    for i, s in enumerate(sources):
        if key not in s:
            raise ConfigError(f"build_pool: source {i} has no '{key}' entry to seed its crops")
        keys.append(str(s[key]))
    if len(set(keys)) != len(keys):
        raise ConfigError(f"build_pool: the '{key}' entries of the sources must be unique")
    all_crops, all_sources = [], []
    for i, (img, src, k) in enumerate(zip(photos, sources, keys)):
        g = torch.Generator().manual_seed(photo_seed(seed, k))
        crops, params = random_crops(img, crops_per_photo, g, cfg)
        all_crops.append(crops)
        for j, p in enumerate(params):
            all_sources.append({**dict(src), "photo": i, "crop": j, "params": p})
    info = {"format": POOL_FORMAT, "seed": int(seed), "crops_per_photo": int(crops_per_photo),
            "photos": len(photos), "crop_config": asdict(cfg), "seed_key": key}
    return PhotoPool(torch.cat(all_crops), all_sources, json.loads(json.dumps(info)))


def save_pool(path: str | Path, pool: PhotoPool) -> Path:
    """Write a pool atomically as ``.npz`` (no pickles) or ``.pt``; returns the path."""
    from ..io.runs import atomic_save

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".npz", ".pt"):
        raise ConfigError(f"photo pool file '{p}' must end in .npz or .pt")
    p.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npz":
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, crops=pool.crops.numpy(),
                                    sources=np.array(json.dumps(pool.sources)),
                                    info=np.array(json.dumps(pool.info)))
    else:
        def write(tmp: Path) -> None:
            torch.save({"crops": pool.crops, "sources": json.dumps(pool.sources),
                        "info": json.dumps(pool.info)}, tmp)
    return atomic_save(p, write)


def load_pool(path: str | Path) -> PhotoPool:
    """Read a pool written by :func:`save_pool`; raises :class:`DatasetError` if it is not one."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"photo pool '{p}' does not exist (build one with scripts/build_photo_pool.py)")
    try:
        if p.suffix.lower() == ".npz":
            with np.load(p, allow_pickle=False) as z:
                crops = torch.from_numpy(z["crops"].copy())
                sources, info = json.loads(z["sources"].item()), json.loads(z["info"].item())
        elif p.suffix.lower() == ".pt":
            d = torch.load(p, map_location="cpu", weights_only=True)
            crops, sources, info = d["crops"], json.loads(d["sources"]), json.loads(d["info"])
        else:
            raise DatasetError(f"photo pool '{p}' must end in .npz or .pt")
    except (KeyError, ValueError, OSError, RuntimeError) as exc:
        raise DatasetError(f"'{p}' is not a photo pool: {exc}") from None
    return PhotoPool(crops, sources, info)


__all__ = [
    "IMAGE_SUFFIXES", "DRAWS_PER_CROP", "POOL_FORMAT", "list_photos", "load_photo", "load_photo_folder",
    "CropConfig", "jitter_colors", "crop_params", "apply_crop", "random_crop", "random_crops", "to_uint8",
    "photo_seed", "PhotoPool", "build_pool", "save_pool", "load_pool", "as_float_photo",
]
