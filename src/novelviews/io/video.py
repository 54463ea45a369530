"""Videos (MP4 via ffmpeg, GIF fallback) and contact sheets.

Frames are ``H x W x 3`` numpy images, ``float`` in ``[0, 1]`` or ``uint8`` (the
``io`` image convention). Videos are H.264 in an MP4 container with the ``yuv420p``
pixel format (plays everywhere); because 4:2:0 chroma needs even sizes, odd widths /
heights are padded by repeating the last column / row. ffmpeg comes from the
``imageio-ffmpeg`` package (a static binary, no system install needed); when it is
unavailable :func:`write_video` writes a GIF instead and logs a note.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ImageError
from .images import as_float_image, save_image, to_uint8
from .runs import atomic_save

log = logging.getLogger(__name__)  # notes for the user; the CLI prints them


def _frames_uint8(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Validate frames (same size, H x W [x 1/3/4]) and convert them to uint8 H x W x 3."""
    if frames is None or len(frames) == 0:
        raise ImageError("no frames to write: pass a non-empty list of H x W x 3 images")
    out = []
    for i, f in enumerate(frames):
        a = to_uint8(as_float_image(f, what=f"frame {i}") if np.asarray(f).dtype != np.uint8 else f)
        if a.ndim == 2:
            a = a[..., None]
        if a.ndim != 3 or a.shape[-1] not in (1, 3, 4) or a.shape[0] == 0 or a.shape[1] == 0:
            raise ImageError(f"frame {i} has shape {a.shape}: expected H x W x 3")
        if a.shape[-1] == 1:
            a = np.repeat(a, 3, axis=-1)
        a = a[..., :3]
        if out and a.shape != out[0].shape:
            raise ImageError(
                f"frame {i} is {a.shape[1]}x{a.shape[0]} but frame 0 is {out[0].shape[1]}x{out[0].shape[0]}: "
                "resize all frames to one size"
            )
        out.append(np.ascontiguousarray(a))
    return out


def _pad_even(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[:2]
    if h % 2 or w % 2:
        a = np.pad(a, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return a


def _ffmpeg_exe() -> str | None:
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError, OSError):
        return None


def write_gif(path: str | Path, frames: Sequence[np.ndarray], fps: float = 24) -> Path:
    """Write frames as a looping GIF (atomic) with PIL."""
    from PIL import Image

    data = _frames_uint8(frames)
    ims = [Image.fromarray(a) for a in data]
    duration = max(1, int(round(1000.0 / fps)))
    return atomic_save(
        Path(path),
        lambda p: ims[0].save(p, format="GIF", save_all=True, append_images=ims[1:], duration=duration, loop=0),
    )


def write_video(path: str | Path, frames: Sequence[np.ndarray], fps: float = 24, quality: int = 18) -> Path:
    """Write frames to an MP4 (H.264, yuv420p, even size) atomically; returns the path written.

    ``frames``: list of ``H x W x 3`` float ``[0, 1]`` or uint8 images of one size.
    ``quality`` is the x264 CRF (0 lossless ... 51 worst; 18 is visually lossless).
    Without ffmpeg the frames go to ``path`` with a ``.gif`` suffix (a note is logged).
    """
    path = Path(path)
    if not fps or fps <= 0 or not math.isfinite(fps):
        raise ImageError(f"fps {fps!r} must be a positive number")
    data = [_pad_even(a) for a in _frames_uint8(frames)]
    if path.suffix.lower() == ".gif":
        return write_gif(path, data, fps)
    exe = _ffmpeg_exe()
    if exe is None:
        gif = path.with_suffix(".gif")
        log.info(f"note: ffmpeg is not available (pip install imageio-ffmpeg); writing {gif} instead of {path}")
        return write_gif(gif, data, fps)
    import imageio_ffmpeg

    h, w = data[0].shape[:2]

    def write(tmp: Path) -> None:
        gen = imageio_ffmpeg.write_frames(
            str(tmp),
            (w, h),
            fps=float(fps),
            codec="libx264",
            pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p",
            quality=None,
            macro_block_size=1,
            output_params=["-crf", str(int(quality)), "-f", "mp4", "-movflags", "+faststart"],
            ffmpeg_log_level="error",
        )
        gen.send(None)
        try:
            for a in data:
                gen.send(a.tobytes())
        finally:
            gen.close()

    return atomic_save(path, write)


def read_video_frames(path: str | Path) -> list[np.ndarray]:
    """Read every frame of a video (MP4 via ffmpeg, GIF via PIL) as ``float32 H x W x 3`` in [0, 1]."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"video '{path}' does not exist: check the path")
    if path.suffix.lower() == ".gif":
        from PIL import Image, ImageSequence

        with Image.open(path) as im:
            return [np.asarray(f.convert("RGB"), dtype=np.float32) / 255.0 for f in ImageSequence.Iterator(im)]
    if _ffmpeg_exe() is None:
        raise ImageError("reading MP4 needs ffmpeg: pip install imageio-ffmpeg")
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    meta = next(gen)
    w, h = meta["size"]
    frames = [np.frombuffer(b, dtype=np.uint8).reshape(h, w, 3).astype(np.float32) / 255.0 for b in gen]
    return frames


def contact_sheet(
    images: Sequence[np.ndarray],
    cols: int | None = None,
    labels: Sequence[str] | None = None,
    pad: int = 2,
    background: float = 1.0,
) -> np.ndarray:
    """Tile images into one ``float32 H x W x 3`` image in [0, 1].

    Layout: ``cols`` columns (default ``ceil(sqrt(n))``), ``ceil(n / cols)`` rows; each
    cell is as large as the largest image (smaller images are centred in it), cells are
    separated and surrounded by ``pad`` pixels of ``background``. With ``labels``
    (one string per image) a strip under every cell holds the label in PIL's default
    font, black. Sheet size without labels:
    ``(rows * cell_h + (rows + 1) * pad, cols * cell_w + (cols + 1) * pad)``.
    """
    if images is None or len(images) == 0:
        raise ImageError("contact_sheet needs at least one image")
    n = len(images)
    if cols is None:
        cols = math.ceil(math.sqrt(n))
    if cols < 1:
        raise ImageError(f"cols must be >= 1, got {cols}")
    if pad < 0:
        raise ImageError(f"pad must be >= 0, got {pad}")
    if labels is not None and len(labels) != n:
        raise ImageError(f"{len(labels)} labels for {n} images: give one label per image")
    arrs = []
    for i, im in enumerate(images):
        a = as_float_image(im, what=f"image {i}")
        if a.ndim == 2:
            a = a[..., None]
        if a.shape[-1] == 1:
            a = np.repeat(a, 3, axis=-1)
        arrs.append(np.clip(a[..., :3], 0.0, 1.0))
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    cell_h = max(a.shape[0] for a in arrs)
    cell_w = max(a.shape[1] for a in arrs)
    font = None
    label_h = 0
    if labels is not None:
        from PIL import ImageFont

        font = ImageFont.load_default()
        bbox = font.getbbox("Ag|")
        label_h = int(bbox[3] - bbox[1]) + 4
    H = rows * (cell_h + label_h) + (rows + 1) * pad
    W = cols * cell_w + (cols + 1) * pad
    sheet = np.full((H, W, 3), float(background), dtype=np.float32)
    origins = []
    for i, a in enumerate(arrs):
        r, c = divmod(i, cols)
        y = pad + r * (cell_h + label_h + pad)
        x = pad + c * (cell_w + pad)
        oy, ox = (cell_h - a.shape[0]) // 2, (cell_w - a.shape[1]) // 2
        sheet[y + oy : y + oy + a.shape[0], x + ox : x + ox + a.shape[1]] = a
        origins.append((x, y + cell_h))
    if labels is not None:
        from PIL import Image, ImageDraw

        pil = Image.fromarray(to_uint8(sheet))
        draw = ImageDraw.Draw(pil)
        for (x, y), text in zip(origins, labels):
            draw.text((x + 2, y + 1), str(text), fill=(0, 0, 0), font=font)
        sheet = np.asarray(pil, dtype=np.float32) / 255.0
    return sheet


def save_contact_sheet(path: str | Path, images: Sequence[np.ndarray], **kwargs) -> Path:
    """:func:`contact_sheet` written atomically to ``path`` (PNG or JPEG)."""
    return save_image(path, contact_sheet(images, **kwargs))
