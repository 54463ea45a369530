"""Loading, validating, cropping and resizing images, with intrinsics kept consistent.

Conventions (see docs/ARCHITECTURE.md):

* images are ``numpy.float32`` arrays ``H x W x 3`` with values in ``[0, 1]``; alpha
  and masks are ``float32 H x W`` in ``[0, 1]``; depth maps are ``float32 H x W``
  z-depth in scene units with ``0`` where there is no surface.
* intrinsics ``K`` are 3x3 matrices in pixels on the OpenCV-style pixel grid of this
  project: ``u`` right, ``v`` down, pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)`` and
  has its centre at ``(i + 0.5, j + 0.5)``. With this grid, resizing an image by a
  factor ``s`` maps every continuous coordinate ``u -> s * u``, so ``fx, cx`` scale by
  exactly ``s`` (no half-pixel shifts), and cropping at column ``x0`` maps
  ``cx -> cx - x0``.
* models take ``torch`` tensors ``B x 3 x H x W`` in ``[-1, 1]``
  (:func:`image_to_tensor` / :func:`tensor_to_image` convert).

Resampling: colour images are resized per channel in 32-bit float with PIL's
``BICUBIC`` filter by default. PIL widens the filter support by the downscale factor,
so downscaling is antialiased (no aliasing from skipped pixels); ``resample="area"``
(PIL ``BOX``, i.e. pixel-area averaging) is also available. Bicubic overshoot is
clipped back to ``[0, 1]``. Depth maps and masks are resized with nearest-neighbour
sampling of the pixel whose area contains the output pixel centre
(:func:`resize_depth`), so values are never interpolated across depth edges.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from ..errors import ImageError
from .runs import atomic_save

MAX_SIDE = 10_000
"""Largest image side accepted by the loaders (pixels); larger images must be downscaled."""

_RESAMPLE = ("bicubic", "area", "bilinear", "nearest")


# --------------------------------------------------------------------------- loading


def _open(path: str | Path):
    """Open ``path`` with PIL and check it is a single, reasonably sized image."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise ImageError(f"image '{path}' does not exist: check the path")
    if path.is_dir():
        raise ImageError(f"'{path}' is a folder, not an image: pass an image file inside it")
    try:
        im = Image.open(path)
    except UnidentifiedImageError:
        raise ImageError(
            f"'{path}' is not an image PIL can read: pass a PNG, JPEG, WebP, TIFF or BMP file"
        ) from None
    except Image.DecompressionBombError:
        raise ImageError(
            f"image '{path}' is far too large: downscale it to at most {MAX_SIDE} px per side"
        ) from None
    except OSError as exc:
        raise ImageError(f"cannot read image '{path}' ({exc}): check the file is not corrupt") from None
    n_frames = getattr(im, "n_frames", 1)
    if n_frames > 1:
        im.close()
        raise ImageError(
            f"'{path}' is an animated image with {n_frames} frames: extract one frame "
            "(e.g. `ffmpeg -i in.gif -frames:v 1 frame.png`) and pass that"
        )
    w, h = im.size
    if w == 0 or h == 0:
        im.close()
        raise ImageError(f"image '{path}' has zero size ({w}x{h}): pass a non-empty image")
    if max(w, h) > MAX_SIDE:
        im.close()
        raise ImageError(
            f"image '{path}' is {w}x{h} px, larger than {MAX_SIDE} px per side: downscale it first"
        )
    return im


def _decode(im, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Turn an opened PIL image into (float32 HxWx3 straight RGB, float32 HxW alpha or None)."""
    from PIL import ImageOps

    try:
        im = ImageOps.exif_transpose(im)
        im.load()
    except OSError as exc:
        raise ImageError(f"cannot decode image '{path}' ({exc}): the file is truncated or corrupt") from None
    mode = im.mode
    alpha = None
    if mode == "P" or mode == "PA":
        im = im.convert("RGBA" if (mode == "PA" or "transparency" in im.info) else "RGB")
        mode = im.mode
    elif mode == "1":
        im = im.convert("L")
        mode = "L"
    elif mode == "La":
        im = im.convert("LA")
        mode = "LA"
    elif mode == "RGBa":
        im = im.convert("RGBA")
        mode = "RGBA"
    elif mode == "L" and "transparency" in im.info:
        im = im.convert("LA")
        mode = "LA"
    elif mode == "RGB" and "transparency" in im.info:
        im = im.convert("RGBA")
        mode = "RGBA"
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        im = im.convert("RGB")
        mode = "RGB"

    if mode in ("RGB", "RGBA", "L", "LA"):
        arr = np.asarray(im, dtype=np.uint8).astype(np.float32) / 255.0
    elif mode.startswith("I;16"):
        arr = np.asarray(im).astype(np.float32) / 65535.0
    elif mode == "I":
        # 32-bit integer images are what PIL reports for 16-bit PNG / TIFF data.
        arr = np.clip(np.asarray(im).astype(np.float64) / 65535.0, 0.0, 1.0).astype(np.float32)
    elif mode == "F":
        arr = np.asarray(im, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise ImageError(
                f"float image '{path}' contains NaN or infinite values: fix or re-export the image"
            )
        arr = np.clip(arr, 0.0, 1.0)
    else:  # pragma: no cover - exotic PIL modes
        try:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8).astype(np.float32) / 255.0
            mode = "RGB"
        except (OSError, ValueError) as exc:
            raise ImageError(f"image '{path}' has unsupported mode {im.mode}: convert it to RGB PNG") from exc

    if arr.ndim == 2:
        arr = arr[..., None]
    if mode in ("RGBA", "LA"):
        alpha = np.ascontiguousarray(arr[..., -1])
        arr = arr[..., :-1]
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return np.ascontiguousarray(arr, dtype=np.float32), alpha


def _check_background(background: Sequence[float]) -> np.ndarray:
    bg = np.asarray(background, dtype=np.float32).reshape(-1)
    if bg.size == 1:
        bg = np.repeat(bg, 3)
    if bg.size != 3 or not np.isfinite(bg).all() or bg.min() < 0 or bg.max() > 1:
        raise ImageError(
            f"background {tuple(np.asarray(background).reshape(-1).tolist())} must be 3 values in [0, 1] "
            "(e.g. (1, 1, 1) for white)"
        )
    return bg


def load_image_with_alpha(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Load an image file as straight (not premultiplied) RGB plus its alpha channel.

    Returns ``(rgb, alpha)``: ``rgb`` is ``float32 H x W x 3`` in ``[0, 1]``; ``alpha`` is
    ``float32 H x W`` in ``[0, 1]`` or ``None`` when the file has no transparency.
    EXIF orientation is applied; grayscale is repeated to 3 channels; 16-bit images
    are scaled by 1/65535 (PIL reads 16-bit *RGB* PNGs at 8-bit precision); float
    images must be finite and are clipped to ``[0, 1]``.
    Raises :class:`~novelviews.errors.ImageError` for a missing file, a folder, a
    non-image, an animated image, a zero-size or over-large (> 10000 px side) image.
    """
    path = Path(path)
    im = _open(path)
    try:
        return _decode(im, path)
    finally:
        im.close()


def load_image(path: str | Path, background: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Load an image file as ``float32 H x W x 3`` in ``[0, 1]``.

    Transparent images (RGBA, LA, palette with transparency) are composited over
    ``background`` (3 values in ``[0, 1]``, white by default):
    ``rgb * alpha + background * (1 - alpha)``. Everything else as in
    :func:`load_image_with_alpha`.
    """
    bg = _check_background(background)
    rgb, alpha = load_image_with_alpha(path)
    if alpha is not None:
        a = alpha[..., None]
        rgb = rgb * a + bg * (1.0 - a)
    return np.ascontiguousarray(rgb, dtype=np.float32)


def load_mask(path: str | Path) -> np.ndarray:
    """Load a mask image as ``float32 H x W`` in ``[0, 1]`` (1 = foreground).

    The alpha channel is used when the file has one, else the luminance (mean of the
    channels). 8-bit and 16-bit masks are both scaled to ``[0, 1]``.
    """
    rgb, alpha = load_image_with_alpha(path)
    if alpha is not None:
        return alpha
    return rgb.mean(axis=-1).astype(np.float32)


def load_depth_map(path: str | Path, scale: float = 1.0, encoding: str = "auto") -> np.ndarray:
    """Load a z-depth map as ``float32 H x W`` in scene units (0 = no surface).

    ``encoding``:

    * ``"auto"``: ``.npy`` (float array, optionally ``H x W x 1``), ``.npz`` (first array),
      a float TIFF (PIL mode ``F``) taken as is, or an integer image (e.g. 16-bit PNG in
      millimetres) whose raw integer values are used. The result is multiplied by
      ``scale`` (e.g. ``0.001`` for millimetre PNGs).
    * ``"float16_png"``: a 16-bit PNG whose bits are IEEE half floats (the CO3D layout),
      multiplied by ``scale``.

    Non-finite values become 0 (no surface).
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"depth map '{path}' does not exist: check the path")
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        try:
            data = np.load(path, allow_pickle=False)
            if suffix == ".npz":
                data = data[data.files[0]]
        except (OSError, ValueError, IndexError) as exc:
            raise ImageError(f"cannot read depth map '{path}' ({exc}): write it with numpy.save") from None
        depth = np.asarray(data, dtype=np.float32)
    else:
        im = _open(path)
        try:
            im.load()
            raw = np.asarray(im)
        finally:
            im.close()
        if encoding == "float16_png":
            depth = raw.astype(np.uint16).view(np.float16).astype(np.float32)
        elif encoding == "auto":
            depth = raw.astype(np.float32)
        else:
            raise ImageError(f"unknown depth encoding '{encoding}': use 'auto' or 'float16_png'")
    if depth.ndim == 3 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    if depth.ndim != 2:
        raise ImageError(f"depth map '{path}' has shape {depth.shape}: expected a single-channel H x W map")
    depth = depth * np.float32(scale)
    depth[~np.isfinite(depth)] = 0.0
    return np.ascontiguousarray(depth, dtype=np.float32)


# --------------------------------------------------------------------------- conversion


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float ``[0, 1]`` (any shape) -> ``uint8`` with rounding and clipping; uint8 passes through."""
    img = np.asarray(img)
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.bool_:
        return img.astype(np.uint8) * 255
    f = np.nan_to_num(img.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return np.round(np.clip(f, 0.0, 1.0) * 255.0).astype(np.uint8)


def as_float_image(img: np.ndarray, what: str = "image") -> np.ndarray:
    """An image array as float32 (uint8 / uint16 rescaled to [0, 1], floats and booleans cast as they are;
    other dtypes: ImageError), shared by the image, video and dataset readers."""
    img = np.asarray(img)
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 65535.0
    if not np.issubdtype(img.dtype, np.floating) and img.dtype != np.bool_:
        raise ImageError(f"{what} has dtype {img.dtype}: pass float32 in [0, 1] or uint8")
    return img.astype(np.float32)


def save_image(path: str | Path, img: np.ndarray, quality: int = 95) -> Path:
    """Write ``img`` (float ``[0, 1]`` or uint8; ``H x W``, ``H x W x 1/3/4``) atomically.

    The format follows the suffix: ``.png`` (lossless, alpha kept), ``.jpg``/``.jpeg``
    (``quality``; alpha dropped), ``.webp``, ``.bmp``. Returns the path.
    """
    from PIL import Image

    path = Path(path)
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}.get(
        path.suffix.lower()
    )
    if fmt is None:
        raise ImageError(f"cannot save '{path}': use a .png, .jpg, .webp or .bmp file name")
    arr = to_uint8(img)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)) or arr.size == 0:
        raise ImageError(f"cannot save an array of shape {arr.shape} as an image: expected H x W x 3")
    if fmt in ("JPEG", "BMP") and arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    pil = Image.fromarray(np.ascontiguousarray(arr))
    kwargs = {"quality": int(quality)} if fmt in ("JPEG", "WEBP") else {}
    return atomic_save(path, lambda p: pil.save(p, format=fmt, **kwargs))


def image_to_tensor(img: np.ndarray, device=None, dtype=None):
    """``H x W x 3`` image in ``[0, 1]`` (float or uint8) -> torch ``1 x 3 x H x W`` in ``[-1, 1]``."""
    import torch

    arr = as_float_image(img)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ImageError(f"expected an H x W x 3 image, got shape {arr.shape}")
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None] * 2.0 - 1.0
    return t.to(device=device, dtype=dtype or torch.float32)


def tensor_to_image(t) -> np.ndarray:
    """Torch ``[1,] 3 x H x W`` in ``[-1, 1]`` -> numpy ``float32 H x W x 3`` in ``[0, 1]`` (clamped)."""
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ImageError(f"tensor_to_image takes one image, got a batch of {t.shape[0]}: index it first")
        t = t[0]
    if t.ndim != 3 or t.shape[0] != 3:
        raise ImageError(f"expected a 3 x H x W tensor, got shape {tuple(t.shape)}")
    x = ((t.detach().float().cpu() + 1.0) * 0.5).clamp(0.0, 1.0)
    return np.ascontiguousarray(x.permute(1, 2, 0).numpy(), dtype=np.float32)


# --------------------------------------------------------------------------- geometry


def transform_intrinsics(K, sx: float, sy: float, dx: float = 0.0, dy: float = 0.0):
    """Intrinsics after shifting the pixel grid by ``(dx, dy)`` then scaling by ``(sx, sy)``.

    A pixel coordinate ``u`` becomes ``sx * (u + dx)`` (``v`` alike): cropping at
    column ``x0`` is ``dx = -x0``, padding ``p`` columns on the left is ``dx = +p``.
    Works on numpy or torch ``[..., 3, 3]`` and returns the same type (a copy);
    ``K=None`` gives ``None``.
    """
    if K is None:
        return None
    if hasattr(K, "clone"):  # torch
        out = K.clone() if K.is_floating_point() else K.double()
    else:
        out = np.array(K, dtype=np.float64, copy=True)
    row2 = out[..., 2, :]
    out[..., 0, :] = sx * (out[..., 0, :] + dx * row2)
    out[..., 1, :] = sy * (out[..., 1, :] + dy * row2)
    return out


def _check_size(size, what: str = "size") -> tuple[int, int]:
    try:
        h, w = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
    except (TypeError, ValueError, IndexError):
        raise ImageError(f"{what} {size!r} must be an int or a (height, width) pair") from None
    if h <= 0 or w <= 0 or max(h, w) > MAX_SIDE:
        raise ImageError(f"{what} {size!r} must be positive and at most {MAX_SIDE} px")
    return h, w


def _resize_float(img: np.ndarray, h: int, w: int, resample: str) -> np.ndarray:
    """Resize a float ``H x W [x C]`` array channel by channel in 32-bit float with PIL."""
    from PIL import Image

    if resample not in _RESAMPLE:
        raise ImageError(f"unknown resample '{resample}': use one of {', '.join(_RESAMPLE)}")
    if img.shape[:2] == (h, w):
        return img.astype(np.float32, copy=True)
    filt = {
        "bicubic": Image.Resampling.BICUBIC,
        "area": Image.Resampling.BOX,
        "bilinear": Image.Resampling.BILINEAR,
        "nearest": Image.Resampling.NEAREST,
    }[resample]
    chans = img[..., None] if img.ndim == 2 else img
    out = np.empty((h, w, chans.shape[-1]), dtype=np.float32)
    for c in range(chans.shape[-1]):
        pil = Image.fromarray(np.ascontiguousarray(chans[..., c], dtype=np.float32))
        out[..., c] = np.asarray(pil.resize((w, h), resample=filt), dtype=np.float32)
    return out[..., 0] if img.ndim == 2 else out


def _resize_nearest(arr: np.ndarray, h: int, w: int) -> np.ndarray:
    """Nearest sampling: output pixel centre ``(i + 0.5) * W / w`` -> input pixel index."""
    H, W = arr.shape[:2]
    rows = np.minimum(((np.arange(h) + 0.5) * (H / h)).astype(np.int64), H - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * (W / w)).astype(np.int64), W - 1)
    return arr[rows][:, cols].copy()


def resize(img: np.ndarray, K, size, resample: str = "bicubic"):
    """Resize an image to ``size = (h, w)`` and update ``K`` to match.

    ``img``: ``H x W x C`` (or ``H x W``) float in ``[0, 1]`` or uint8 (returned as
    float32). ``K``: 3x3 pixels (numpy or torch) or ``None``. ``fx, cx`` scale by
    ``w / W`` and ``fy, cy`` by ``h / H`` (pixel-centre grid, see module docstring).
    Returns ``(img_out, K_out)``.
    """
    h, w = _check_size(size)
    arr = as_float_image(img)
    H, W = arr.shape[:2]
    out = _resize_float(arr, h, w, resample)
    if resample in ("bicubic", "bilinear"):
        lo, hi = float(arr.min(initial=0.0)), float(arr.max(initial=1.0))
        out = np.clip(out, min(lo, 0.0), max(hi, 1.0))
    return out, transform_intrinsics(K, w / W, h / H)


def resize_depth(depth: np.ndarray, K, size):
    """Resize a depth map or mask (``H x W [x C]``, any dtype) with nearest sampling.

    Each output pixel takes the value of the input pixel containing its centre, so
    depth values are never blended across edges and masks stay binary. ``K`` is
    updated as in :func:`resize`. Returns ``(depth_out, K_out)``.
    """
    h, w = _check_size(size)
    arr = np.asarray(depth)
    H, W = arr.shape[:2]
    return _resize_nearest(arr, h, w), transform_intrinsics(K, w / W, h / H)


def center_crop_resize(
    img: np.ndarray,
    K,
    size: int,
    mode: Literal["crop", "pad"] = "crop",
    pad_value: float | Sequence[float] = 1.0,
    resample: str = "bicubic",
    nearest: bool = False,
):
    """Make a ``size x size`` image by centre crop or letterbox padding, then resize.

    * ``mode="crop"`` keeps the central ``min(H, W)`` square (integer offset
      ``((W - s) // 2, (H - s) // 2)``) so no content is stretched.
    * ``mode="pad"`` places the image in the centre of a ``max(H, W)`` square filled
      with ``pad_value`` (a float or one value per channel; use ``0`` for depth).

    ``K`` (3x3 pixels, numpy or torch, or ``None``) is updated exactly: the principal
    point shifts by the crop/pad offset, then ``fx, fy, cx, cy`` scale by
    ``size / side``. ``nearest=True`` resamples with nearest neighbour (depth maps,
    masks) instead of ``resample``. Returns ``(img_out, K_out)``.
    """
    if mode not in ("crop", "pad"):
        raise ImageError(f"unknown mode '{mode}': use 'crop' or 'pad'")
    size_h, size_w = _check_size(size)
    if size_h != size_w:
        raise ImageError(f"center_crop_resize makes square images: pass one int size, not {size!r}")
    arr = np.asarray(img) if nearest else as_float_image(img)
    if arr.ndim not in (2, 3) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(f"expected an H x W [x C] image, got shape {arr.shape}")
    H, W = arr.shape[:2]
    if mode == "crop":
        s = min(H, W)
        x0, y0 = (W - s) // 2, (H - s) // 2
        square = arr[y0 : y0 + s, x0 : x0 + s]
        dx, dy = -x0, -y0
    else:
        s = max(H, W)
        x0, y0 = (s - W) // 2, (s - H) // 2
        square = np.empty((s, s) + arr.shape[2:], dtype=arr.dtype)
        square[...] = np.asarray(pad_value, dtype=arr.dtype)
        square[y0 : y0 + H, x0 : x0 + W] = arr
        dx, dy = x0, y0
    if nearest:
        out = _resize_nearest(square, size_h, size_w)
    else:
        out, _ = resize(square, None, (size_h, size_w), resample=resample)
    scale = size_h / s
    return out, transform_intrinsics(K, scale, scale, dx, dy)
