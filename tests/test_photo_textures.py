"""Photographs as textures of procedural scenes (novelviews.synth.scenes.photo_textures)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from novelviews.errors import ConfigError, DatasetError
from novelviews.synth.render import render
from novelviews.synth.scenes import (
    Material,
    build_scene,
    sample_cameras,
    scene_from_seed,
    sphere,
    textures_from_images,
    textures_from_photos,
)
from novelviews.synth.scenes.photo_textures import mean_colors, sample, triplanar


def _images(t: int = 2, s: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(t, s, s, 3, generator=g)


def _photo_folder(tmp_path, n: int = 3):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        arr = (rng.random((48 + 8 * i, 64, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"p{i}.png")
    return folder


def test_mip_levels_are_2x2_box_filters_down_to_4px():
    img = _images(2, 16)
    tex = textures_from_images(img)
    assert [lvl.shape[1] for lvl in tex.levels] == [16, 8, 4]
    assert tex.count == 2 and tex.size == 16
    ref = F.avg_pool2d(img.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
    torch.testing.assert_close(tex.levels[1], ref)
    torch.testing.assert_close(mean_colors(tex), img.mean(dim=(1, 2)), atol=1e-6, rtol=0)


@pytest.mark.parametrize("shape", [(2, 12, 12, 3), (2, 16, 8, 3), (2, 16, 16, 4), (0, 16, 16, 3), (1, 2, 2, 3)])
def test_textures_refuse_bad_shapes(shape):
    with pytest.raises(ConfigError, match="photo texture"):
        textures_from_images(torch.rand(*shape))


def test_textures_refuse_nan():
    img = _images(1, 8)
    img[0, 1, 1, 0] = float("nan")
    with pytest.raises(ConfigError, match="NaN"):
        textures_from_images(img)


def test_sample_reads_texel_centres_exactly_and_repeats_mirrored():
    img = _images(2, 16)
    tex = textures_from_images(img)
    iy, ix = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    uv = torch.stack([(ix.flatten() + 0.5) / 16, (iy.flatten() + 0.5) / 16], -1).double().float()
    fine = torch.full((256,), 1e-4)
    for t in range(2):
        idx = torch.full((256,), t)
        got = sample(tex, idx, uv, fine)
        torch.testing.assert_close(got, img[t].reshape(-1, 3), atol=1e-5, rtol=0)
        # mirrored repeat: u -> 2 - u and u -> u + 2 read the same texels
        torch.testing.assert_close(sample(tex, idx, 2.0 - uv, fine), got, atol=1e-5, rtol=0)
        torch.testing.assert_close(sample(tex, idx, uv + 2.0, fine), got, atol=1e-5, rtol=0)
    # halfway between two texel centres: their mean
    mid = sample(tex, torch.zeros(1, dtype=torch.long), torch.tensor([[4.0 / 16, 2.5 / 16]]), fine[:1])
    torch.testing.assert_close(mid[0], (img[0, 2, 3] + img[0, 2, 4]) / 2, atol=1e-5, rtol=0)


def test_sample_filters_with_the_footprint():
    img = _images(1, 16)
    tex = textures_from_images(img)
    uv = torch.rand(50, 2)
    idx = torch.zeros(50, dtype=torch.long)
    # a footprint far beyond the texture reads the top (4 px) level; the whole texture's mean lies within it
    coarse = sample(tex, idx, uv, torch.full((50,), 10.0))
    assert coarse.std(0).max() < img[0].reshape(-1, 3).std(0).min()
    # halfway in log2 between level 0 and 1 is the mean of the two levels' reads
    lvl0 = sample(tex, idx, uv, torch.full((50,), 1.0 / 16))
    lvl1 = sample(tex, idx, uv, torch.full((50,), 2.0 / 16))
    half = sample(tex, idx, uv, torch.full((50,), math.sqrt(2.0) / 16))
    torch.testing.assert_close(half, (lvl0 + lvl1) / 2, atol=1e-5, rtol=0)


def test_triplanar_on_an_axis_normal_is_the_planar_read():
    tex = textures_from_images(_images(2, 8))
    y = torch.rand(20, 3) * 3
    idx = torch.randint(0, 2, (20,))
    fp = torch.full((20,), 1e-3)
    up = torch.tensor([[0.0, 0.0, 1.0]]).expand(20, 3)
    torch.testing.assert_close(triplanar(tex, idx, y, up, fp), sample(tex, idx, torch.stack([y[:, 0], -y[:, 1]], -1), fp))
    side = torch.tensor([[-1.0, 0.0, 0.0]]).expand(20, 3)
    torch.testing.assert_close(triplanar(tex, idx, y, side, fp), sample(tex, idx, torch.stack([y[:, 1], -y[:, 2]], -1), fp))
    # an oblique normal blends the three reads with weights summing to 1: a constant texture stays constant
    flat = textures_from_images(torch.full((1, 8, 8, 3), 0.3))
    n = F.normalize(torch.randn(20, 3), dim=-1)
    torch.testing.assert_close(triplanar(flat, torch.zeros(20, dtype=torch.long), y, n, fp), torch.full((20, 3), 0.3))


def test_textures_from_photos_are_deterministic_crops():
    photos = [torch.randint(0, 256, (40, 60, 3), dtype=torch.uint8), torch.rand(50, 50, 3)]
    a = textures_from_photos(photos, 3, 16, seed=7)
    b = textures_from_photos(photos, 3, 16, seed=7)
    c = textures_from_photos(photos, 3, 16, seed=8)
    assert a.levels[0].shape == (3, 16, 16, 3)
    assert torch.equal(a.levels[0], b.levels[0]) and not torch.equal(a.levels[0], c.levels[0])
    with pytest.raises(ConfigError, match="at least one photo"):
        textures_from_photos([], 2)


def test_photo_materials_keep_the_seeds_geometry_lights_and_cameras():
    tex = textures_from_images(_images(3, 16))
    for seed in (11, 12):
        plain = scene_from_seed(seed, "mixed")
        photo = scene_from_seed(seed, "mixed", photos=tex, photo_share=1.0)
        for name in ("kind", "center", "rotation", "params", "light_dir", "sky_zenith"):
            assert torch.equal(getattr(plain, name), getattr(photo, name))
        assert (photo.mat_texture == 4).all() and ((photo.mat_photo >= 0) & (photo.mat_photo < 3)).all()
        c1, _ = sample_cameras(plain, 3, 16, 16)
        c2, _ = sample_cameras(photo, 3, 16, 16)
        assert torch.equal(c1, c2)
        none = scene_from_seed(seed, "mixed", photos=tex, photo_share=0.0)
        assert torch.equal(none.mat_texture, plain.mat_texture) and torch.equal(none.mat_color_a, plain.mat_color_a)
    with pytest.raises(ConfigError, match="photo_share"):
        scene_from_seed(1, photos=tex, photo_share=1.5)


def test_render_without_photo_materials_is_unchanged_and_a_constant_photo_equals_a_solid():
    scene = scene_from_seed(3, "orbit")
    c2w, K = sample_cameras(scene, 2, 24, 24)
    ref = render(scene, c2w, K, 24, 24)["rgb"]
    # the renderer before photo materials existed gave these sums for this scene and cameras
    assert float(ref.double().sum()) == pytest.approx(1455.718341955915, rel=1e-6)
    assert float(ref.double().square().sum()) == pytest.approx(670.9339272531586, rel=1e-6)
    tex = textures_from_images(_images(2, 8))
    no_photo = scene_from_seed(3, "orbit", photos=tex, photo_share=0.0)
    assert torch.equal(render(no_photo, c2w, K, 24, 24)["rgb"], ref)

    grey = (0.2, 0.5, 0.7)
    flat = textures_from_images(torch.tensor(grey).expand(1, 8, 8, 3).clone())
    ball = [sphere((0, 0, 0.5), 0.5, Material(color_a=grey))]
    c2w, K = sample_cameras(build_scene(ball), 2, 24, 24)
    solid = render(build_scene(ball, ground_material=Material(color_a=grey)), c2w, K, 24, 24)["rgb"]
    photo_mat = Material(color_a=(1.0, 1.0, 1.0), texture="photo", photo=0, scale=0.7)
    photo = build_scene([sphere((0, 0, 0.5), 0.5, photo_mat)], ground_material=photo_mat, photos=flat)
    torch.testing.assert_close(render(photo, c2w, K, 24, 24)["rgb"], solid, atol=1e-5, rtol=0)


def test_a_photo_texture_shows_in_the_render():
    img = _images(1, 32, seed=3)
    tex = textures_from_images(img)
    mat = Material(color_a=(1.0, 1.0, 1.0), texture="photo", photo=0, scale=0.5)
    scene = build_scene([], ground_material=mat, photos=tex, light_dir=(0.0, 0.0, 1.0), ambient=0.0)
    # a camera straight above the ground: the image is the texture, lit by the light from above
    from novelviews.cameras import intrinsics_from_fov, look_at

    c2w = look_at(torch.tensor([[0.0, 0.0, 4.0]], dtype=torch.float64), torch.tensor([[0.0, 0.0, 0.0]], dtype=torch.float64),
                  up=torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    K = intrinsics_from_fov(torch.tensor(math.radians(40.0)), 32, 32)[None]
    out = render(scene, c2w, K, 32, 32, shadows=False, ao=False)["rgb"][0]
    other = build_scene([], ground_material=mat, photos=textures_from_images(_images(1, 32, seed=4)),
                        light_dir=(0.0, 0.0, 1.0), ambient=0.0)
    out2 = render(other, c2w, K, 32, 32, shadows=False, ao=False)["rgb"][0]
    assert (out - out2).abs().mean() > 0.1  # the picture comes from the texture
    assert out.std() > 0.1


def test_build_scene_refuses_photo_materials_without_textures():
    with pytest.raises(ConfigError, match="photo texture 0 but the scene has 0"):
        build_scene([sphere((0, 0, 0.5), 0.5, Material(texture="photo", photo=0))])
    tex = textures_from_images(_images(1, 8))
    with pytest.raises(ConfigError, match="photo texture 2 but the scene has 1"):
        build_scene([], ground_material=Material(texture="photo", photo=2), photos=tex)


def test_nvs_synth_with_photo_textures_writes_and_rerenders_exactly(tmp_path):
    from novelviews.synth import SynthConfig, generate, rerender_scene

    folder = _photo_folder(tmp_path)
    cfg = SynthConfig(scenes=2, views=2, size=32, spp=1, photo_textures=str(folder), photo_share=1.0,
                      textures_per_scene=2, texture_size=16, sheet=False)
    folders = generate(cfg, tmp_path / "out", progress=False)
    info = json.loads((folders[0] / "transforms.json").read_text())["novelviews"]["photo_textures"]
    assert info["share"] == 1.0 and info["per_scene"] == 2 and info["size"] == 16
    written = np.asarray(Image.open(folders[1] / "images" / "0001.png"))
    again = rerender_scene(folders[1])["rgb"][1].numpy()
    assert np.abs(np.round(again * 255) - written).max() <= 1
    plain = generate(SynthConfig(scenes=2, views=2, size=32, spp=1, sheet=False), tmp_path / "plain", progress=False)
    assert not np.array_equal(np.asarray(Image.open(plain[1] / "images" / "0001.png")), written)
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(folder / "p9.png")
    with pytest.raises(DatasetError, match="now holds other ones"):
        rerender_scene(folders[1])
    import shutil

    shutil.rmtree(folder)
    with pytest.raises(DatasetError, match="photo textures of .* which is gone"):
        rerender_scene(folders[1])


def test_synth_config_checks_texture_settings():
    from novelviews.synth import SynthConfig

    with pytest.raises(ConfigError, match="power of two"):
        SynthConfig(texture_size=96).validate()
    with pytest.raises(ConfigError, match="photo_share"):
        SynthConfig(photo_share=-0.1).validate()


def test_pool_from_synth_with_photos_has_the_same_cameras(tmp_path):
    from novelviews.synth.photos import load_photo_folder
    from novelviews.train.data import pool_from_synth

    photos, _ = load_photo_folder(_photo_folder(tmp_path))
    a = pool_from_synth(2, 2, 16, seed=5, progress=False)
    b = pool_from_synth(2, 2, 16, seed=5, progress=False, photos=photos, photo_share=1.0, texture_size=16)
    assert torch.equal(a.c2w, b.c2w) and not torch.equal(a.images, b.images)


def test_photo_texture_turns_with_its_primitive():
    """Rotating a tilted photo-textured box, the light and the camera together about z leaves the
    image unchanged: the texture is mapped in the box's own frame (local normals included)."""
    from novelviews.cameras import intrinsics_from_fov, look_at
    from novelviews.synth.scenes import box

    tex = textures_from_images(_images(2, 16, seed=9))
    mat = Material(color_a=(1.0, 1.0, 1.0), texture="photo", photo=1, scale=1.3)
    tilt = torch.tensor([[1.0, 0.0, 0.0], [0.0, math.cos(0.5), -math.sin(0.5)], [0.0, math.sin(0.5), math.cos(0.5)]],
                        dtype=torch.float64).numpy()

    def rz(a):
        return np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])

    def image(a):
        R = rz(a)
        scene = build_scene([box(R @ np.array([0.3, 0.1, 0.6]), (0.4, 0.3, 0.25), 0.05, mat, rotation=R @ tilt)],
                            ground=False, light_dir=tuple(R @ np.array([0.4, 0.3, 0.85])), photos=tex)
        eye = torch.tensor(R @ np.array([2.5, -1.5, 1.8]))[None]
        c2w = look_at(eye, torch.tensor(R @ np.array([0.3, 0.1, 0.6]))[None], up=torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
        K = intrinsics_from_fov(torch.tensor(math.radians(40.0)), 32, 32)[None]
        return render(scene, c2w, K, 32, 32, shadows=False)["rgb"][0]

    a, b = image(0.0), image(1.1)
    assert a.std() > 0.05
    torch.testing.assert_close(a, b, atol=2e-3, rtol=0)
    other = build_scene([box((0.3, 0.1, 0.6), (0.4, 0.3, 0.25), 0.05, mat, rotation=rz(0.7) @ tilt)], ground=False,
                        light_dir=(0.4, 0.3, 0.85), photos=tex)
    eye = torch.tensor([[2.5, -1.5, 1.8]], dtype=torch.float64)
    c2w = look_at(eye, torch.tensor([[0.3, 0.1, 0.6]], dtype=torch.float64), up=torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    K = intrinsics_from_fov(torch.tensor(math.radians(40.0)), 32, 32)[None]
    assert (render(other, c2w, K, 32, 32, shadows=False)["rgb"][0] - a).abs().mean() > 0.02  # the box alone turned
