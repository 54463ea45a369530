"""Photo-plane (card) scenes: exact rendering by ray-plane intersection (novelviews.synth.photo_planes)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from novelviews.cameras import camera_on_sphere, intrinsics_from_fov, ray_directions
from novelviews.errors import CameraError, ConfigError, ImageError
from novelviews.synth.photo_planes import (
    PhotoPlane,
    PhotoPlaneScene,
    random_card_scene,
    render_photo_planes,
    shape_mask,
)

H = W = 32
FOV = math.radians(50.0)
DIST = 3.0


def _texture(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A smooth random float texture [h, w, 3] in [0, 1] (bilinear upsampled noise)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(1, 3, max(2, h // 4), max(2, w // 4), generator=g)
    return F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).contiguous()


def _solid(rgb, h: int = 8, w: int = 8) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.float32).expand(h, w, 3).clone()


def _camera(elev_deg: float = 20.0):
    c2w = camera_on_sphere(math.radians(elev_deg), 0.0, DIST)
    return c2w, intrinsics_from_fov(torch.tensor(FOV), W, H)


def _facing_plane(c2w, depth: float, texture, scale: float = 1.0, mask=None, offset=(0.0, 0.0), tile=None):
    """A plane facing the camera at z-depth ``depth``; scale 1 exactly fills the view."""
    right, up, back, o = c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3]
    h = 2 * depth * math.tan(FOV / 2) * scale
    centre = o - depth * back + offset[0] * right + offset[1] * up
    return PhotoPlane(centre, back, up, h * W / H, h, texture, mask, tile)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((a - b) ** 2).mean()))


def test_input_view_reproduces_texture_and_exact_depth():
    c2w, K = _camera()
    tex = _texture(2 * H, 2 * W)
    out = render_photo_planes(PhotoPlaneScene([_facing_plane(c2w, DIST, tex)]), c2w, K, H, W)
    assert out["rgb"].shape == (1, H, W, 3) and out["rgb"].dtype == torch.float32
    # each pixel centre falls between two texel centres in x and in y: bilinear = 2x2 mean
    ref = F.avg_pool2d(tex.permute(2, 0, 1)[None], 2)[0].permute(1, 2, 0)
    assert _psnr(out["rgb"][0], ref) > 60
    same = _texture(H, W, 1)  # a texture at the render's resolution comes back texel for texel
    out1 = render_photo_planes(PhotoPlaneScene([_facing_plane(c2w, DIST, same)]), c2w, K, H, W)
    assert _psnr(out1["rgb"][0], same) > 80
    # z-depth (not ray length) is the plane distance at every pixel, corners included
    assert out["mask"].all() and (out["plane"] == 0).all()
    assert (out["depth"] - DIST).abs().max() < 1e-6
    assert out["depth"].dtype == torch.float32


def test_depth_is_z_depth_on_a_slanted_plane():
    c2w, K = _camera(35.0)  # looking down at the ground plane z = 0
    ground = PhotoPlane((0, 0, 0), (0, 0, 1), (1, 0, 0), 40.0, 40.0, _texture(16, 16))
    out = render_photo_planes(PhotoPlaneScene([ground]), c2w, K, H, W)
    assert out["mask"].all()
    o, d = ray_directions(K[None], c2w[None], H, W)  # unit rays, the project's one ray generator
    fwd = -c2w[:3, 2]
    ray_len = out["depth"][0].double() / (d[0] @ fwd)
    X = o[0] + ray_len[..., None] * d[0]  # the hit point rebuilt from z-depth
    assert X[..., 2].abs().max() < 1e-5
    assert out["depth"].std() > 0.1  # varies over the image, unlike a fronto-parallel plane


def test_translation_parallel_to_plane_shifts_image():
    c2w, K = _camera()
    fx = float(K[0, 0])
    plane = _facing_plane(c2w, DIST, _texture(96, 96, 2), scale=3.0)
    scene = PhotoPlaneScene([plane])
    s = 5  # pixels
    dx = s * DIST / fx
    moved = torch.stack([c2w.clone(), c2w.clone()])
    moved[0, :3, 3] += dx * c2w[:3, 0]  # right: the content moves left by fx dx / D
    moved[1, :3, 3] += dx * c2w[:3, 1]  # up: the content moves down
    base = render_photo_planes(scene, c2w, K, H, W)["rgb"][0]
    out = render_photo_planes(scene, moved, K, H, W)
    assert (out["depth"] - DIST).abs().max() < 1e-6  # still fronto-parallel at D
    assert torch.allclose(out["rgb"][0][:, : W - s], base[:, s:], atol=1e-4)
    assert torch.allclose(out["rgb"][1][s:, :], base[: H - s, :], atol=1e-4)
    assert not torch.allclose(out["rgb"][0], base, atol=1e-2)


def test_nearer_card_occludes_where_its_mask_is_set():
    c2w, K = _camera()
    near, far = DIST - 1.0, DIST
    hm = 64
    mask = shape_mask("ellipse", hm, hm)
    card = _facing_plane(c2w, near, _solid((1.0, 0.0, 0.0)), scale=0.5, mask=mask)
    wall = _facing_plane(c2w, far, _solid((0.0, 0.0, 1.0)), scale=1.0)
    scene = PhotoPlaneScene([wall, card], background=0)  # order must not matter: nearest wins
    out = render_photo_planes(scene, c2w, K, H, W)
    rgb, depth, plane = out["rgb"][0], out["depth"][0], out["plane"][0]
    red = plane == 1
    assert torch.equal(red, out["card_mask"][0]) and out["mask"].all()
    assert torch.allclose(rgb[red], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(rgb[~red], torch.tensor([0.0, 0.0, 1.0]))
    assert (depth[red] - near).abs().max() < 1e-6 and (depth[~red] - far).abs().max() < 1e-6
    assert bool(red[H // 2, W // 2])  # centre: the card
    # the card spans the central half of the view (16 x 16 px); its ellipse covers pi/4 of it,
    # so the bounding box's corners show the wall behind
    c0 = W // 2 - 8
    assert not red[c0, c0] and not red[c0 + 15, c0 + 15] and not red[c0, c0 + 15]
    assert abs(int(red.sum()) - math.pi / 4 * 16 * 16) < 12
    none = render_photo_planes(PhotoPlaneScene([card]), c2w, K, H, W)  # without the wall: misses are 0
    assert (none["depth"][0][~red] == 0).all() and (none["rgb"][0][~red] == 0).all()
    assert (none["plane"][0][~red] == -1).all() and torch.equal(none["mask"][0], red)


def test_shape_masks():
    assert shape_mask("rect", 10, 20) is None
    e = shape_mask("ellipse", 40, 80)
    assert e.shape == (40, 80) and e[20, 40] == 1 and e[0, 0] == 0 and e[20, 0] > 0
    r = shape_mask("rounded", 40, 40, roundness=0.5)
    assert r[0, 0] == 0 and r[20, 0] > 0.5 and r[0, 20] > 0.5 and r[20, 20] == 1
    with pytest.raises(ConfigError, match="unknown card shape"):
        shape_mask("star", 4, 4)


def test_two_sided_tiles_spp_and_chunking():
    c2w, K = _camera()
    tex = _texture(16, 16, 3)
    plane = _facing_plane(c2w, DIST, tex)
    back = PhotoPlane(plane.centre, -plane.normal, plane.up, plane.width, plane.height, tex)
    a = render_photo_planes(PhotoPlaneScene([plane]), c2w, K, H, W)
    b = render_photo_planes(PhotoPlaneScene([back]), c2w, K, H, W)  # seen from behind: mirrored
    assert torch.allclose(b["rgb"][0], a["rgb"][0].flip(1), atol=1e-5) and torch.equal(a["depth"], b["depth"])
    # a tile of half the plane's size: the texture repeats mirrored about the tile's edges
    tiled = _facing_plane(c2w, DIST, tex, tile=(plane.width / 2, plane.height / 2))
    t = render_photo_planes(PhotoPlaneScene([tiled]), c2w, K, H, W)["rgb"][0]
    q = W // 4  # one copy covers the central half of the view, texel for texel
    assert _psnr(t[q:3 * q, q:3 * q], tex) > 80
    assert torch.allclose(t[:, :q], t[:, q:2 * q].flip(1), atol=1e-5)
    assert torch.allclose(t[:, 3 * q:], t[:, 2 * q:3 * q].flip(1), atol=1e-5)
    assert torch.allclose(t[:q], t[q:2 * q].flip(0), atol=1e-5)
    # supersampling averages colours only; depth comes from pixel centres
    solid = PhotoPlaneScene([_facing_plane(c2w, DIST, _solid((0.2, 0.4, 0.6)), scale=2.0)])
    s2 = render_photo_planes(solid, c2w, K, H, W, spp=2)
    assert torch.allclose(s2["rgb"], torch.tensor([0.2, 0.4, 0.6]).expand(1, H, W, 3), atol=1e-6)
    assert (s2["depth"] - DIST).abs().max() < 1e-6
    cams = torch.stack([c2w, camera_on_sphere(math.radians(20.0), math.radians(5.0), DIST)])
    scene = PhotoPlaneScene([_facing_plane(c2w, DIST, tex, scale=2.0)])
    whole = render_photo_planes(scene, cams, K, H, W)
    one_by_one = render_photo_planes(scene, cams, K.expand(2, 3, 3), H, W, chunk=1)
    for k in whole:
        assert torch.equal(whole[k], one_by_one[k]), k


def test_random_card_scene_deterministic_and_covered():
    photos = [(_texture(24 + 4 * i, 32, i) * 255).round().to(torch.uint8) for i in range(6)]
    s1 = random_card_scene(photos, torch.Generator().manual_seed(7), n_cards=3, tilt_deg=10.0)
    s2 = random_card_scene(photos, torch.Generator().manual_seed(7), n_cards=3, tilt_deg=10.0)
    assert len(s1.planes) == 4 and s1.background == 3 and s1.photo_index == s2.photo_index
    assert len(set(s1.photo_index)) == 4  # distinct photos while there are enough
    for p, q in zip(s1.planes, s2.planes):
        for name in ("centre", "normal", "up", "texture"):
            assert torch.equal(getattr(p, name), getattr(q, name))
        assert (p.width, p.height, p.tile) == (q.width, q.height, q.tile)
        assert (p.mask is None) == (q.mask is None) and (p.mask is None or torch.equal(p.mask, q.mask))
    # the input camera sits on the sphere like the rest of the synth code, looking at the origin
    c2w = s1.input_c2w
    pos = c2w[:3, 3]
    assert torch.allclose(c2w[:3, 2], pos / pos.norm(), atol=1e-9)
    assert abs(float(torch.atan2(pos[1], pos[0]))) < 1e-9  # azimuth 0
    K = s1.input_intrinsics(H, W)
    r1 = render_photo_planes(s1, c2w, K, H, W)
    r2 = render_photo_planes(s2, c2w, K, H, W)
    r3 = render_photo_planes(s1, c2w, K, H, W)
    for k in r1:
        assert torch.equal(r1[k], r2[k]) and torch.equal(r1[k], r3[k]), k
    assert r1["mask"].all()  # the background catches every ray of the input view
    bg = r1["plane"][0] == s1.background
    assert r1["card_mask"][0].any() and torch.equal(r1["card_mask"][0], ~bg)
    assert r1["depth"][0][~bg].max() < r1["depth"][0][bg].min()  # cards in front of the background
    other = random_card_scene(photos, torch.Generator().manual_seed(8), n_cards=(1, 4))
    assert not torch.equal(render_photo_planes(other, other.input_c2w, K, H, W)["rgb"], r1["rgb"])
    pool_like = torch.stack([(_texture(16, 16, i) * 255).round().to(torch.uint8) for i in range(2)])
    few = random_card_scene(pool_like, torch.Generator().manual_seed(0), n_cards=4)  # reuses photos
    assert len(few.planes) == 5 and set(few.photo_index) <= {0, 1}


def test_bad_inputs_raise_clear_errors():
    c2w, K = _camera()
    scene = PhotoPlaneScene([_facing_plane(c2w, DIST, _texture(8, 8))])
    scaled = c2w.clone()
    scaled[:3, :3] *= 2
    with pytest.raises(CameraError, match="not orthonormal"):
        render_photo_planes(scene, scaled, K, H, W)
    with pytest.raises(CameraError, match="shape"):
        render_photo_planes(scene, c2w[:2], K, H, W)
    with pytest.raises(CameraError, match=r"intrinsics must have shape"):
        render_photo_planes(scene, c2w, K[:2, :2], H, W)
    with pytest.raises(CameraError, match="2 intrinsics for 3 cameras"):
        render_photo_planes(scene, c2w.expand(3, 4, 4), K.expand(2, 3, 3), H, W)
    with pytest.raises(ConfigError, match="height must be a positive integer"):
        render_photo_planes(scene, c2w, K, 0, W)
    with pytest.raises(ConfigError, match="spp"):
        render_photo_planes(scene, c2w, K, H, W, spp=0)
    with pytest.raises(ConfigError, match="PhotoPlaneScene"):
        render_photo_planes([scene.planes[0]], c2w, K, H, W)
    with pytest.raises(ConfigError, match="at least one plane"):
        PhotoPlaneScene([])
    with pytest.raises(ConfigError, match="background index"):
        PhotoPlaneScene(scene.planes, background=1)
    tex = _texture(4, 4)
    with pytest.raises(ImageError, match=r"plane texture must have shape \[H, W, 3\]"):
        PhotoPlane((0, 0, 0), (0, 0, 1), (0, 1, 0), 1, 1, tex[..., 0])
    with pytest.raises(ConfigError, match="zero vector"):
        PhotoPlane((0, 0, 0), (0, 0, 0), (0, 1, 0), 1, 1, tex)
    with pytest.raises(ConfigError, match="parallel to its normal"):
        PhotoPlane((0, 0, 0), (0, 0, 1), (0, 0, 2), 1, 1, tex)
    with pytest.raises(ConfigError, match="width must be a positive number"):
        PhotoPlane((0, 0, 0), (0, 0, 1), (0, 1, 0), -1, 1, tex)
    with pytest.raises(ConfigError, match="centre must be 3"):
        PhotoPlane((0, 0), (0, 0, 1), (0, 1, 0), 1, 1, tex)
    with pytest.raises(ImageError, match="plane texture contains NaN"):
        PhotoPlane((0, 0, 0), (0, 0, 1), (0, 1, 0), 1, 1, torch.full((2, 2, 3), float("nan")))
    with pytest.raises(ConfigError, match="mask must be a 2-D"):
        PhotoPlane((0, 0, 0), (0, 0, 1), (0, 1, 0), 1, 1, tex, torch.ones(2, 2, 1))
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ConfigError, match="at least one photo"):
        random_card_scene([], g)
    with pytest.raises(ImageError, match=r"photo 0 must be a tensor \[h, w, 3\]"):
        random_card_scene([torch.zeros(4, 4)], g)
    with pytest.raises(ConfigError, match="n_cards"):
        random_card_scene([tex], g, n_cards=-1)
    with pytest.raises(ConfigError, match="unknown card shape 'star'"):
        random_card_scene([tex], g, shapes=("star",))
    with pytest.raises(ConfigError, match="fov_deg"):
        random_card_scene([tex], g, fov_deg=(10.0, 190.0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    photos = [(_texture(32, 32, i) * 255).round().to(torch.uint8) for i in range(4)]
    scene = random_card_scene(photos, torch.Generator().manual_seed(1), n_cards=3)
    K = scene.input_intrinsics(H, W)
    cpu = render_photo_planes(scene, scene.input_c2w, K, H, W, spp=2)
    gpu = render_photo_planes(scene, scene.input_c2w, K, H, W, spp=2, device="cuda")
    assert torch.allclose(gpu["rgb"].cpu(), cpu["rgb"], atol=1e-5)
    assert torch.allclose(gpu["depth"].cpu(), cpu["depth"], atol=1e-6)
    assert (gpu["plane"].cpu() != cpu["plane"]).float().mean() < 1e-3
