"""Photo loading, random crops, crop pools (novelviews.synth.photos) and the pool script's
license lookup. Synthetic images in tmp_path only: no apt, no network, no real photos."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from novelviews.errors import ConfigError, DatasetError, ImageError
from novelviews.synth.photos import (
    DRAWS_PER_CROP,
    CropConfig,
    PhotoPool,
    apply_crop,
    build_pool,
    crop_params,
    jitter_colors,
    list_photos,
    load_photo,
    load_photo_folder,
    load_pool,
    photo_seed,
    random_crop,
    random_crops,
    save_pool,
)

NO_JITTER = dict(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0)


def _smooth(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random uint8 RGB image (sum of a few sinusoids per channel)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.zeros((h, w, 3))
    for c in range(3):
        for _ in range(3):
            fx, fy, ph = rng.uniform(1, 6), rng.uniform(1, 6), rng.uniform(0, 6.3)
            img[..., c] += np.sin(2 * math.pi * (fx * x + fy * y) + ph)
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 255).round().astype(np.uint8)


@pytest.fixture()
def photo_dir(tmp_path: Path) -> Path:
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    Image.fromarray(_smooth(120, 200, 1)).save(d / "b.png")
    Image.fromarray(_smooth(90, 60, 2)).save(d / "a.jpg", quality=95)
    Image.fromarray(_smooth(70, 70, 3)).save(d / "sub" / "c.png")
    Image.fromarray(_smooth(20, 30, 4)).save(d / "sub" / "tiny.png")
    (d / "notes.txt").write_text("not an image")
    return d


# --------------------------------------------------------------------------- loading


def test_list_and_load_folder(photo_dir: Path):
    files = list_photos(photo_dir)
    assert [f.relative_to(photo_dir).as_posix() for f in files] == ["a.jpg", "b.png", "sub/c.png", "sub/tiny.png"]
    assert [f.name for f in list_photos(photo_dir, recursive=False)] == ["a.jpg", "b.png"]
    images, paths = load_photo_folder(photo_dir, max_side=None, min_side=32)
    assert [p.name for p in paths] == ["a.jpg", "b.png", "c.png"]  # tiny.png is below min_side
    assert [tuple(i.shape) for i in images] == [(90, 60, 3), (120, 200, 3), (70, 70, 3)]
    assert all(i.dtype == torch.uint8 for i in images)
    png = load_photo(photo_dir / "b.png", max_side=None)
    assert torch.equal(png, torch.from_numpy(_smooth(120, 200, 1)))  # lossless round trip


def test_load_photo_max_side_and_exif(tmp_path: Path):
    Image.fromarray(_smooth(120, 200)).save(tmp_path / "wide.png")
    assert tuple(load_photo(tmp_path / "wide.png", max_side=100).shape) == (60, 100, 3)
    assert tuple(load_photo(tmp_path / "wide.png", max_side=500).shape) == (120, 200, 3)  # never upscaled
    im = Image.fromarray(_smooth(40, 80))
    exif = im.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    im.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    assert tuple(load_photo(tmp_path / "rot.jpg", max_side=None).shape) == (80, 40, 3)
    Image.fromarray(_smooth(400, 640)).save(tmp_path / "big.jpg", quality=90)  # JPEG draft path
    big = load_photo(tmp_path / "big.jpg", max_side=160)
    assert tuple(big.shape) == (100, 160, 3)
    ref = np.asarray(Image.fromarray(_smooth(400, 640)).resize((160, 100), Image.Resampling.BOX), dtype=np.float64)
    assert np.abs(big.numpy().astype(np.float64) - ref).mean() < 3.0


def test_load_errors(tmp_path: Path):
    with pytest.raises(ImageError, match="does not exist"):
        load_photo(tmp_path / "missing.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(ImageError, match="could not be decoded"):
        load_photo(tmp_path / "bad.jpg")
    with pytest.raises(DatasetError, match="does not exist"):
        list_photos(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no images"):
        list_photos(tmp_path / "empty")
    with pytest.raises(ConfigError, match="max_side"):
        load_photo(tmp_path / "bad.jpg", max_side=0)


# --------------------------------------------------------------------------- crops


def test_random_crop_is_seeded_and_consumes_fixed_draws():
    img = torch.from_numpy(_smooth(80, 120))
    cfg = CropConfig(size=32)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a, pa = random_crop(img, g1, cfg)
    b, pb = random_crop(img, g2, cfg)
    assert torch.equal(a, b) and pa == pb
    assert a.shape == (32, 32, 3) and a.dtype == torch.float32 and 0 <= a.min() and a.max() <= 1
    ref = torch.Generator().manual_seed(5)
    torch.rand(DRAWS_PER_CROP, generator=ref, dtype=torch.float64)
    assert torch.equal(g1.get_state(), ref.get_state())  # exactly DRAWS_PER_CROP numbers used
    c, _ = random_crop(img, torch.Generator().manual_seed(6), cfg)
    assert not torch.equal(a, c)
    json.dumps(pa)  # parameters are JSON-able
    assert 0.25 * 80 - 1 <= pa["side"] <= 80 and 0 <= pa["x"] <= 120 - pa["side"] and 0 <= pa["y"] <= 80 - pa["side"]


def test_crop_params_and_apply_crop_exact():
    img = torch.from_numpy(_smooth(64, 64))
    cfg = CropConfig(size=64, scale=(1.0, 1.0), hflip=1.0, **NO_JITTER)
    p = crop_params(64, 64, torch.zeros(DRAWS_PER_CROP, dtype=torch.float64), cfg)
    assert p == {"x": 0, "y": 0, "side": 64, "hflip": True, "brightness": 1.0, "contrast": 1.0,
                 "saturation": 1.0, "hue": 0.0}
    out = apply_crop(img, p, 64)
    assert torch.allclose(out, img.flip(1).float() / 255, atol=1e-6)  # whole image, mirrored, unchanged colours
    # a half-size crop at the right edge, then a 2x antialiased downscale (PIL's widened bilinear tent)
    cfg2 = CropConfig(size=16, scale=(0.5, 0.5), hflip=0.0, **NO_JITTER)
    p2 = crop_params(64, 64, torch.tensor([0.0, 0.999, 0.0, 0.9, 0.5, 0.5, 0.5, 0.5], dtype=torch.float64), cfg2)
    assert (p2["x"], p2["y"], p2["side"], p2["hflip"]) == (32, 0, 32, False)
    out2 = apply_crop(img, p2, 16)
    patch = img[0:32, 32:64].numpy().astype(np.float32) / 255
    chans = [Image.fromarray(np.ascontiguousarray(patch[..., c])) for c in range(3)]
    ref = np.stack([np.asarray(ch.resize((16, 16), Image.Resampling.BILINEAR)) for ch in chans], -1)
    assert np.abs(out2.numpy() - ref).max() < 1e-4


def test_downscale_is_antialiased():
    checker = ((torch.arange(256)[:, None] + torch.arange(256)[None, :]) % 2 * 255).to(torch.uint8)
    img = checker[..., None].expand(256, 256, 3).contiguous()
    cfg = CropConfig(size=16, scale=(1.0, 1.0), hflip=0.0, **NO_JITTER)
    out, _ = random_crop(img, torch.Generator().manual_seed(0), cfg)
    assert torch.allclose(out, torch.full_like(out, 0.5), atol=0.02)  # no aliasing into stripes


def test_jitter_colors_equations():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 8, 3, generator=g) * 0.6 + 0.2
    assert torch.allclose(jitter_colors(x, 1.0, 1.0, 1.0, 0.0), x, atol=1e-6)
    assert torch.allclose(jitter_colors(x, 1.1, 1.0, 1.0, 0.0), x * 1.1, atol=1e-6)
    luma = torch.tensor([0.299, 0.587, 0.114])
    grey = jitter_colors(x, 1.0, 1.0, 0.0, 0.0)
    assert torch.allclose(grey[..., 0], grey[..., 1], atol=1e-6) and torch.allclose(grey[..., 0], x @ luma, atol=1e-6)
    flat = jitter_colors(x, 1.0, 0.0, 1.0, 0.0)  # contrast 0: every pixel at the mean luma
    assert torch.allclose(flat, torch.full_like(x, float((x @ luma).mean())), atol=1e-6)
    rot = jitter_colors(x * 0.5 + 0.25, 1.0, 1.0, 1.0, 0.1)  # hue rotation keeps luma (no clipping here)
    assert torch.allclose(rot @ luma, (x * 0.5 + 0.25) @ luma, atol=1e-5)
    assert not torch.allclose(rot, x * 0.5 + 0.25, atol=1e-3)
    assert torch.allclose(jitter_colors(x, 1.0, 1.0, 1.0, 1.0), x, atol=1e-5)  # a full turn


def test_random_crops_uint8_and_config_errors():
    img = torch.from_numpy(_smooth(50, 70))
    crops, params = random_crops(img, 5, torch.Generator().manual_seed(1), CropConfig(size=24))
    assert crops.shape == (5, 24, 24, 3) and crops.dtype == torch.uint8 and len(params) == 5
    assert len({json.dumps(p) for p in params}) == 5
    for bad, what in [(dict(size=0), "size"), (dict(scale=(0.0, 1.0)), "scale"), (dict(scale=(0.8, 0.5)), "scale"),
                      (dict(hflip=1.5), "hflip"), (dict(brightness=1.0), "brightness"), (dict(hue=0.7), "hue")]:
        with pytest.raises(ConfigError, match=what):
            CropConfig(**bad).validate()
    with pytest.raises(ImageError, match=r"\[H, W, 3\]"):
        random_crop(torch.zeros(10, 10, dtype=torch.uint8), torch.Generator(), CropConfig(size=4))


# --------------------------------------------------------------------------- pools


def _sources(names):
    return [{"package": "pkg-a" if i % 2 == 0 else "pkg-b", "version": "1.0", "file": f"/x/{n}",
             "license": "CC0-1.0" if i % 2 == 0 else "GPL-2+"} for i, n in enumerate(names)]


def test_build_pool_reproducible_and_per_photo_independent():
    photos = [torch.from_numpy(_smooth(60, 90, s)) for s in range(3)]
    names = ["p0.jpg", "p1.jpg", "p2.jpg"]
    cfg = CropConfig(size=16)
    a = build_pool(photos, _sources(names), 4, cfg, seed=3)
    b = build_pool(photos, _sources(names), 4, cfg, seed=3)
    assert len(a) == 12 and a.size == 16 and torch.equal(a.crops, b.crops) and a.sources == b.sources
    assert [s["photo"] for s in a.sources] == [0] * 4 + [1] * 4 + [2] * 4
    assert a.sources[5]["file"] == "/x/p1.jpg" and a.sources[5]["crop"] == 1 and "params" in a.sources[5]
    json.dumps(a.sources), json.dumps(a.info)
    only_last = build_pool(photos[2:], _sources(names)[2:], 4, cfg, seed=3)
    assert torch.equal(only_last.crops, a.crops[8:])  # a photo's crops do not depend on the others
    assert not torch.equal(build_pool(photos, _sources(names), 4, cfg, seed=4).crops, a.crops)
    assert photo_seed(3, "/x/p0.jpg") == photo_seed(3, "/x/p0.jpg") != photo_seed(3, "/x/p1.jpg")
    s = a.summary()
    assert s["pkg-a"] == {"photos": 2, "crops": 8, "licenses": ["CC0-1.0"]}
    assert s["pkg-b"] == {"photos": 1, "crops": 4, "licenses": ["GPL-2+"]}
    assert a.as_float().dtype == torch.float32 and float(a.as_float().max()) <= 1.0
    with pytest.raises(ConfigError, match="unique"):
        build_pool(photos[:2], _sources(["same", "same"]), 2, cfg)
    with pytest.raises(ConfigError, match="crops per photo"):
        build_pool(photos, _sources(names), 0, cfg)
    with pytest.raises(ConfigError, match="3 photos but 2"):
        build_pool(photos, _sources(names[:2]), 2, cfg)


@pytest.mark.parametrize("suffix", [".npz", ".pt"])
def test_pool_save_load_round_trip(tmp_path: Path, suffix: str):
    photos = [torch.from_numpy(_smooth(40, 40, s)) for s in range(2)]
    pool = build_pool(photos, _sources(["a", "b"]), 3, CropConfig(size=8), seed=0)
    path = save_pool(tmp_path / "runs" / f"pool{suffix}", pool)
    back = load_pool(path)
    assert torch.equal(back.crops, pool.crops) and back.sources == pool.sources and back.info == pool.info
    assert not list(path.parent.glob(".*tmp"))  # atomic write left no temp file
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:  # readable without pickles
            assert z["crops"].shape == (6, 8, 8, 3)


def test_pool_errors(tmp_path: Path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_pool(tmp_path / "none.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(DatasetError, match="not a photo pool"):
        load_pool(tmp_path / "other.npz")
    pool = PhotoPool(torch.zeros(1, 4, 4, 3, dtype=torch.uint8), [{"photo": 0}], {})
    with pytest.raises(ConfigError, match=r"\.npz or \.pt"):
        save_pool(tmp_path / "pool.pickle", pool)
    with pytest.raises(DatasetError, match="uint8"):
        PhotoPool(torch.zeros(1, 4, 4, 3), [{"photo": 0}], {})
    with pytest.raises(DatasetError, match="source entries"):
        PhotoPool(torch.zeros(2, 4, 4, 3, dtype=torch.uint8), [{"photo": 0}], {})


# --------------------------------------------------------------------------- the pool script (no apt)


def _script():
    path = Path(__file__).resolve().parents[1] / "scripts" / "build_photo_pool.py"
    spec = importlib.util.spec_from_file_location("build_photo_pool", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: demo

Files: *
Copyright: 2014 Somebody
License: GPL-2+

Files: nature/Aqua.jpg
       nature/Leaf.jpg
Copyright: 2008, A. Person
           2009, B. Person
License: CC-BY-4.0
 Some license text.

Files: 16.04/bridge_by_x.jpg
Copyright: X, 2018
License: CC0-1.0

Files: debian/*
Copyright: packagers
License: Expat
"""


def test_script_license_lookup(tmp_path: Path):
    mod = _script()
    f = tmp_path / "copyright"
    f.write_text(COPYRIGHT)
    stanzas = mod.parse_copyright(f)
    assert [s["license"] for s in stanzas] == ["GPL-2+", "CC-BY-4.0", "CC0-1.0", "Expat"]
    assert mod.license_for("/usr/share/backgrounds/demo/nature/Leaf.jpg", stanzas) == {
        "license": "CC-BY-4.0", "copyright": "2008, A. Person; 2009, B. Person"}
    assert mod.license_for("/usr/share/backgrounds/bridge_by_x.jpg", stanzas)["license"] == "CC0-1.0"  # by name
    assert mod.license_for("/usr/share/backgrounds/other.jpg", stanzas)["license"] == "GPL-2+"  # Files: *, not debian/*
    assert sum(len(v) for v in mod.PHOTOS.values()) > 0
    assert all(not p.startswith(str(Path(__file__).resolve().parents[2] / "shared"))
               for v in mod.PHOTOS.values() for p in v)


def test_script_refuses_test_data(tmp_path: Path):
    mod = _script()
    roots = [tmp_path / "shared"]
    (tmp_path / "shared" / "x").mkdir(parents=True)
    with pytest.raises(SystemExit, match="refusing"):
        mod.check_allowed(tmp_path / "shared" / "x" / "img.png", roots)
    mod.check_allowed(tmp_path / "elsewhere.png", roots)  # fine
    assert any(r.name == "shared" for r in mod.forbidden_roots())
