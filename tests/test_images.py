"""Tests of novelviews.io.images: loading, alpha, 16-bit, EXIF, errors, crop/resize with K."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from novelviews.errors import ImageError
from novelviews.io import images as im


def _ramp(h: int, w: int) -> np.ndarray:
    """Channel 0 = u / w, channel 1 = v / h at pixel centres (continuous coords / size)."""
    u = (np.arange(w) + 0.5) / w
    v = (np.arange(h) + 0.5) / h
    img = np.zeros((h, w, 3), np.float32)
    img[..., 0] = u[None, :]
    img[..., 1] = v[:, None]
    img[..., 2] = 0.5
    return img


# --------------------------------------------------------------------------- loading


def test_rgb_png_roundtrip_exact(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    p = im.save_image(tmp_path / "a.png", data)
    out = im.load_image(p)
    assert out.dtype == np.float32 and out.shape == (7, 9, 3)
    np.testing.assert_array_equal(im.to_uint8(out), data)
    # no temp files left behind by the atomic write
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.png"]


def test_rgba_composited_on_background(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 255  # red
    rgba[0, 0, 3] = 255  # opaque
    rgba[0, 1, 3] = 0  # transparent
    rgba[1, :, 3] = 102  # alpha 0.4
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    white = im.load_image(tmp_path / "a.png")
    np.testing.assert_allclose(white[0, 0], [1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(white[0, 1], [1, 1, 1], atol=1e-6)
    np.testing.assert_allclose(white[1, 0], [1, 0.6, 0.6], atol=1e-6)
    grey = im.load_image(tmp_path / "a.png", background=(0.5, 0.5, 0.5))
    np.testing.assert_allclose(grey[1, 1], [0.4 + 0.6 * 0.5, 0.3, 0.3], atol=1e-6)
    rgb, alpha = im.load_image_with_alpha(tmp_path / "a.png")
    np.testing.assert_allclose(alpha, [[1, 0], [0.4, 0.4]], atol=1e-6)
    np.testing.assert_allclose(rgb[..., 0], 1.0)
    with pytest.raises(ImageError, match="background"):
        im.load_image(tmp_path / "a.png", background=(2, 0, 0))


def test_la_and_palette_transparency(tmp_path):
    la = np.array([[[200, 255], [10, 0]]], np.uint8)  # 1x2, second pixel transparent
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    out = im.load_image(tmp_path / "la.png", background=(0, 0, 0))
    np.testing.assert_allclose(out[0, 0], [200 / 255] * 3, atol=1e-6)
    np.testing.assert_allclose(out[0, 1], [0, 0, 0], atol=1e-6)

    p = Image.new("P", (2, 1))
    p.putpalette([0, 0, 255] + [255, 0, 0] + [0] * 762)
    p.putpixel((0, 0), 0)
    p.putpixel((1, 0), 1)
    p.info["transparency"] = 0  # palette index 0 is transparent
    p.save(tmp_path / "p.png", transparency=0)
    out = im.load_image(tmp_path / "p.png", background=(0, 1, 0))
    np.testing.assert_allclose(out[0, 0], [0, 1, 0], atol=1e-6)  # background shows through
    np.testing.assert_allclose(out[0, 1], [1, 0, 0], atol=1e-6)
    _, alpha = im.load_image_with_alpha(tmp_path / "p.png")
    np.testing.assert_allclose(alpha, [[0, 1]])


def test_grayscale_and_16bit(tmp_path):
    g = np.array([[0, 128, 255]], np.uint8)
    Image.fromarray(g, "L").save(tmp_path / "g.png")
    out = im.load_image(tmp_path / "g.png")
    assert out.shape == (1, 3, 3)
    np.testing.assert_allclose(out[0, :, 0], g[0] / 255.0, atol=1e-6)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])

    v16 = np.array([[0, 1000, 40000, 65535]], np.uint16)
    Image.fromarray(v16).save(tmp_path / "d16.png")
    assert Image.open(tmp_path / "d16.png").mode in ("I;16", "I")
    out16 = im.load_image(tmp_path / "d16.png")
    np.testing.assert_allclose(out16[0, :, 1], v16[0] / 65535.0, atol=1e-6)


def test_exif_orientation_applied(tmp_path):
    data = np.zeros((2, 3, 3), np.uint8)
    data[0, 0] = [255, 0, 0]  # stored top-left is red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(data).save(tmp_path / "o.png", exif=exif)
    out = im.load_image(tmp_path / "o.png")
    assert out.shape == (3, 2, 3)
    np.testing.assert_allclose(out[0, 1], [1, 0, 0])  # top-left went to top-right
    assert out[..., 0].sum() == pytest.approx(1.0)


def test_float_tiff_and_nan(tmp_path):
    f = np.array([[0.25, 0.5], [0.75, 1.5]], np.float32)
    Image.fromarray(f).save(tmp_path / "f.tiff")
    out = im.load_image(tmp_path / "f.tiff")
    np.testing.assert_allclose(out[..., 0], np.clip(f, 0, 1), atol=1e-7)
    f[0, 0] = np.nan
    Image.fromarray(f).save(tmp_path / "nan.tiff")
    with pytest.raises(ImageError, match="NaN"):
        im.load_image(tmp_path / "nan.tiff")


def test_load_errors(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        im.load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="folder"):
        im.load_image(tmp_path)
    (tmp_path / "t.png").write_text("hello, not an image")
    with pytest.raises(ImageError, match="not an image"):
        im.load_image(tmp_path / "t.png")
    frames = [Image.new("RGB", (4, 4), c) for c in ("red", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageError, match="animated.*extract"):
        im.load_image(tmp_path / "anim.gif")
    frames[0].save(tmp_path / "anim.png", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageError, match="animated"):
        im.load_image(tmp_path / "anim.png")
    Image.new("L", (10_001, 1)).save(tmp_path / "wide.png")
    with pytest.raises(ImageError, match="downscale"):
        im.load_image(tmp_path / "wide.png")


def test_depth_and_mask_loading(tmp_path):
    d = np.array([[0.0, 1.5], [2.25, 3.0]], np.float32)
    np.save(tmp_path / "d.npy", d)
    np.testing.assert_array_equal(im.load_depth_map(tmp_path / "d.npy"), d)
    mm = np.array([[0, 1500], [2250, 3000]], np.uint16)
    Image.fromarray(mm).save(tmp_path / "d.png")
    np.testing.assert_allclose(im.load_depth_map(tmp_path / "d.png", scale=1e-3), d, atol=1e-6)
    half = d.astype(np.float16).view(np.uint16)
    Image.fromarray(half).save(tmp_path / "h.png")
    np.testing.assert_allclose(im.load_depth_map(tmp_path / "h.png", scale=2.0, encoding="float16_png"), 2 * d)
    m = np.array([[0, 255]], np.uint8)
    Image.fromarray(m).save(tmp_path / "m.png")
    np.testing.assert_array_equal(im.load_mask(tmp_path / "m.png"), [[0.0, 1.0]])


# --------------------------------------------------------------------------- conversion


def test_uint8_and_tensor_conversions():
    x = np.array([[-0.1, 0.0, 0.5, 1.0, 1.2, np.nan]], np.float32)
    np.testing.assert_array_equal(im.to_uint8(x), [[0, 0, 128, 255, 255, 0]])
    torch.manual_seed(0)
    img = np.random.default_rng(1).random((5, 6, 3)).astype(np.float32)
    t = im.image_to_tensor(img)
    assert t.shape == (1, 3, 5, 6) and t.dtype == torch.float32
    assert t.min() >= -1 and t.max() <= 1
    assert float(t[0, 1, 2, 3]) == pytest.approx(img[2, 3, 1] * 2 - 1, abs=1e-6)
    np.testing.assert_allclose(im.tensor_to_image(t), img, atol=1e-6)
    np.testing.assert_allclose(im.tensor_to_image(torch.full((3, 2, 2), 3.0)), 1.0)  # clamped
    np.testing.assert_allclose(im.image_to_tensor(im.to_uint8(img)), t, atol=1 / 255)


def test_save_jpg_drops_alpha_and_bad_suffix(tmp_path):
    rgba = np.ones((4, 4, 4), np.float32) * 0.5
    p = im.save_image(tmp_path / "x.jpg", rgba)
    out = im.load_image(p)
    np.testing.assert_allclose(out, 0.5, atol=3 / 255)
    with pytest.raises(ImageError, match=r"\.png"):
        im.save_image(tmp_path / "x.xyz", rgba)


# --------------------------------------------------------------------------- geometry


def _check_ramp_consistent(out: np.ndarray, K_in, K_out, H: int, W: int, border: int = 3, valid=None):
    """Each output pixel centre, pulled back through K_out -> ray -> K_in, must land where the
    ramp image has the value found there: the image and K were transformed the same way."""
    h, w = out.shape[:2]
    j, i = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    pix = np.stack([i, j, np.ones_like(i)], -1).reshape(-1, 3)
    ray = np.linalg.solve(np.asarray(K_out), pix.T)
    src = (np.asarray(K_in) @ ray).T
    exp_u = (src[:, 0] / W).reshape(h, w)
    exp_v = (src[:, 1] / H).reshape(h, w)
    sl = (slice(border, h - border), slice(border, w - border))
    mask = np.ones((h, w), bool) if valid is None else valid
    m = mask[sl]
    np.testing.assert_allclose(out[sl][..., 0][m], exp_u[sl][m], atol=2e-3)
    np.testing.assert_allclose(out[sl][..., 1][m], exp_v[sl][m], atol=2e-3)


def test_center_crop_resize_keeps_intrinsics_consistent():
    H, W = 40, 64
    img = _ramp(H, W)
    K = np.array([[50.0, 0, 31.0], [0, 52.0, 21.0], [0, 0, 1]])
    out, K2 = im.center_crop_resize(img, K, 32, mode="crop")
    assert out.shape == (32, 32, 3)
    s = 32 / 40
    expect = np.array([[50 * s, 0, (31 - 12) * s], [0, 52 * s, 21 * s], [0, 0, 1]])
    np.testing.assert_allclose(K2, expect, atol=1e-12)
    _check_ramp_consistent(out, K, K2, H, W)
    # a 3D point projects to corresponding places before / after
    X = np.array([0.1, -0.05, 1.0])
    u1 = K @ X
    u2 = K2 @ X
    np.testing.assert_allclose(u2[:2] / u2[2], s * (u1[:2] / u1[2] - [12, 0]), atol=1e-12)
    # torch K gives a torch K back
    _, Kt = im.center_crop_resize(img, torch.as_tensor(K), 32)
    assert isinstance(Kt, torch.Tensor)
    np.testing.assert_allclose(Kt.numpy(), expect, atol=1e-12)


def test_center_crop_resize_pad_letterboxes():
    H, W = 20, 40
    img = _ramp(H, W)
    K = np.array([[30.0, 0, 20.0], [0, 30.0, 10.0], [0, 0, 1]])
    out, K2 = im.center_crop_resize(img, K, 20, mode="pad", pad_value=0.0)
    assert out.shape == (20, 20, 3)
    s = 0.5
    np.testing.assert_allclose(K2, [[15, 0, 10], [0, 15, (10 + 10) * s], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(out[:4], 0.0, atol=1e-6)  # top band is padding
    np.testing.assert_allclose(out[-4:], 0.0, atol=1e-6)
    valid = np.zeros((20, 20), bool)
    valid[7:13] = True  # bicubic support (2 output px) away from the padding edge
    _check_ramp_consistent(out, K, K2, H, W, border=2, valid=valid)


def test_resize_area_and_bicubic():
    img = np.random.default_rng(0).random((8, 12, 3)).astype(np.float32)
    K = np.array([[10.0, 0, 6.0], [0, 11.0, 4.0], [0, 0, 1]])
    out, K2 = im.resize(img, K, (4, 6), resample="area")
    block = img.reshape(4, 2, 6, 2, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(out, block, atol=1e-5)
    np.testing.assert_allclose(K2, [[5, 0, 3], [0, 5.5, 2], [0, 0, 1]])
    # bicubic downscale is antialiased: a 1-px checkerboard averages to grey
    checker = (np.indices((32, 32)).sum(0) % 2).astype(np.float32)[..., None].repeat(3, -1)
    small, _ = im.resize(checker, None, (8, 8))
    np.testing.assert_allclose(small[2:-2, 2:-2], 0.5, atol=0.02)
    ramp = _ramp(16, 16)
    up, K3 = im.resize(ramp, K, (32, 48))
    assert up.min() >= 0 and up.max() <= 1
    _check_ramp_consistent(up, K, K3, 16, 16, border=6)


def test_resize_depth_nearest_never_blends():
    depth = np.ones((10, 10), np.float32)
    depth[:, 5:] = 5.0  # a depth edge
    K = np.eye(3)
    for size in [(7, 7), (20, 13), (3, 4)]:
        out, K2 = im.resize_depth(depth, K, size)
        assert out.shape == size
        assert set(np.unique(out)) <= {1.0, 5.0}
        np.testing.assert_allclose(K2[0, 0], size[1] / 10)
    out, _ = im.resize_depth(depth, None, (10, 20))
    np.testing.assert_array_equal(out[:, :10], 1.0)
    np.testing.assert_array_equal(out[:, 10:], 5.0)
    d2, K2 = im.center_crop_resize(np.ones((6, 10), np.float32) * 2, np.eye(3), 9, mode="pad", pad_value=0, nearest=True)
    assert set(np.unique(d2)) == {0.0, 2.0}
    with pytest.raises(ImageError):
        im.center_crop_resize(depth, K, 8, mode="stretch")


def test_written_files_get_the_umasks_permissions(tmp_path):
    """Atomic writes go through a private temporary file; the result has the usual permissions."""
    import os
    import stat

    from novelviews.io.runs import atomic_write_json

    old = os.umask(0o027)
    try:
        p = atomic_write_json(tmp_path / "a.json", {"x": 1})
        img = im.save_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.float32))
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o640
    assert stat.S_IMODE(os.stat(img).st_mode) == 0o640
    assert os.umask(old) == old  # the umask is left as it was
