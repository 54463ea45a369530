"""Procedural scenes, the sphere tracer and dataset writing (novelviews.synth)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from novelviews.cameras import intrinsics_from_fov, look_at
from novelviews.config import from_dict
from novelviews.errors import ConfigError, NovelViewsError
from novelviews.synth import (
    Material,
    SynthConfig,
    build_scene,
    command_synth,
    generate,
    ray_directions,
    render,
    rerender_scene,
    sample_cameras,
    scene_from_seed,
    sphere,
)
from novelviews.synth.scenes import CameraRanges
from novelviews.synth.render import _chunk_rays, _bounds, march, march_reference, soft_shadow


def _project(X: np.ndarray, c2w: np.ndarray, K: np.ndarray):
    """World points [M, 3] -> (u, v) continuous pixel coords and z-depth (OpenGL c2w)."""
    R, t = c2w[:3, :3], c2w[:3, 3]
    pc = (X - t) @ R  # camera coords (OpenGL axes)
    z = -pc[:, 2]
    u = K[0, 0] * pc[:, 0] / z + K[0, 2]
    v = -K[1, 1] * pc[:, 1] / z + K[1, 2]
    return u, v, z


def _unproject(depth: np.ndarray, c2w: np.ndarray, K: np.ndarray) -> np.ndarray:
    """z-depth image [H, W] -> world points [H, W, 3] through pixel centres."""
    H, W = depth.shape
    v, u = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
    x = (u - K[0, 2]) / K[0, 0] * depth
    y = -(v - K[1, 2]) / K[1, 1] * depth
    pc = np.stack([x, y, -depth], -1)
    return pc @ c2w[:3, :3].T + c2w[:3, 3]


def _bilinear(img: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Sample img [H, W, C] at continuous pixel coords (pixel centres at +0.5)."""
    H, W = img.shape[:2]
    x = np.clip(u - 0.5, 0, W - 1.0001)
    y = np.clip(v - 0.5, 0, H - 1.0001)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    return ((1 - fx) * (1 - fy) * img[y0, x0] + fx * (1 - fy) * img[y0, x0 + 1]
            + (1 - fx) * fy * img[y0 + 1, x0] + fx * fy * img[y0 + 1, x0 + 1])


# --------------------------------------------------------------------------- scenes


def test_scene_determinism_and_variety():
    a, b = scene_from_seed(3, "orbit"), scene_from_seed(3, "orbit")
    for name in ("center", "params", "rotation", "mat_color_a", "mat_waves", "light_dir"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    c = scene_from_seed(4, "orbit")
    assert not torch.equal(a.mat_color_a[:1], c.mat_color_a[:1]) or a.num_primitives != c.num_primitives
    # orbit: 2-6 objects near the origin, resting on (or floating just above) the ground
    for seed in range(8):
        s = scene_from_seed(seed, "orbit")
        assert 1 <= s.num_primitives <= 6
        assert torch.linalg.norm(s.center[:, :2], dim=1).max() < 1.0
        assert (s.center[:, 2] > 0).all() and s.light_dir[2] > 0
        assert torch.equal(s.kind, s.kind.sort().values)  # sorted by kind
    w = scene_from_seed(2, "walk")
    assert w.family == "walk" and w.path is not None and w.num_primitives >= 3
    path = w.path.numpy()
    d = np.hypot(path[None, :, 0] - w.center[:, None, 0].numpy(), path[None, :, 1] - w.center[:, None, 1].numpy())
    assert d.min() > 0.5  # the camera path never runs through an object


def test_cameras_orbit_and_walk():
    s = scene_from_seed(1, "orbit")
    c2w, K = sample_cameras(s, 12, 64, 48)
    c2w2, _ = sample_cameras(s, 12, 64, 48)
    assert torch.equal(c2w, c2w2)
    eye = c2w[:, :3, 3]
    dist = eye.norm(dim=1)
    assert ((dist > 2.5 - 0.2) & (dist < 4.0 + 0.2)).all()
    elev = torch.rad2deg(torch.asin(eye[:, 2] / dist))
    assert ((elev > 3) & (elev < 62)).all()
    # cameras look at (near) the origin: the origin projects near the image centre
    for i in range(12):
        u, v, z = _project(np.zeros((1, 3)), c2w[i].numpy(), K[i].numpy())
        assert z[0] > 0 and abs(u[0] - 32) < 12 and abs(v[0] - 24) < 12
    fov = 2 * math.degrees(math.atan(24 / K[0, 1, 1].item()))
    assert 40 <= fov <= 60 and torch.allclose(K, K[:1].expand_as(K))

    w = scene_from_seed(2, "walk")
    c2w, K = sample_cameras(w, 8, 64, 64)
    eye = c2w[:, :3, 3]
    assert ((eye[:, 2] > 0.95) & (eye[:, 2] < 2.1)).all()
    fwd = -c2w[:, :3, 2]
    step = eye[1:] - eye[:-1]
    assert ((step * fwd[:-1]).sum(1) > 0).all()  # moves forward
    pitch = torch.rad2deg(torch.asin(fwd[:, 2]))
    assert ((pitch < 2) & (pitch > -20)).all()  # roughly horizontal / slightly down


def test_arc_cameras_and_arc_fraction():
    s = scene_from_seed(3, "orbit")
    r = CameraRanges(orbit_path="arc", arc_deg=(40.0, 40.0))
    c2w, K = sample_cameras(s, 5, 32, 32, r)
    eye = c2w[:, :3, 3]
    assert torch.allclose(eye.norm(dim=1), eye[:1].norm(dim=1).expand(5))  # one distance
    az = torch.rad2deg(torch.atan2(eye[:, 1], eye[:, 0]))
    step = torch.remainder(az[1:] - az[:-1], 360)
    assert torch.allclose(step, torch.full((4,), 10.0, dtype=step.dtype), atol=1e-6)  # 40 deg in 4 steps
    elev = torch.rad2deg(torch.asin(eye[:, 2] / eye.norm(dim=1)))
    assert elev.max() - elev.min() <= 20 + 1e-6 and ((elev >= 5 - 1e-9) & (elev <= 60 + 1e-9)).all()
    # one look-at point: every optical axis passes through it
    fwd = -c2w[:, :3, 2]
    for i in range(1, 5):  # the axes of views 0 and i intersect (their distance is 0)
        n = torch.linalg.cross(fwd[0], fwd[i])
        assert abs(float((eye[0] - eye[i]) @ n)) / float(n.norm()) < 1e-9
    # arc_fraction = 0 leaves the mixed cameras of earlier versions (ordered / random per scene)
    for seed in range(6):
        sc = scene_from_seed(seed, "orbit")
        assert torch.equal(sample_cameras(sc, 4, 32, 32)[0], sample_cameras(sc, 4, 32, 32, CameraRanges(arc_fraction=0.0))[0])
    # arc_fraction = 1: every mixed scene is an arc (one distance, span <= 150 deg)
    for seed in range(6):
        c = sample_cameras(scene_from_seed(seed, "orbit"), 6, 32, 32, CameraRanges(arc_fraction=1.0))[0]
        d = c[:, :3, 3].norm(dim=1)
        a = torch.rad2deg(torch.atan2(c[:, 1, 3], c[:, 0, 3]))
        span = float(torch.remainder(a[-1] - a[0], 360))
        assert torch.allclose(d, d[:1].expand(6)) and 30 - 1e-6 <= span <= 150 + 1e-6
    with pytest.raises(ConfigError, match="arc_fraction"):
        sample_cameras(s, 2, 32, 32, CameraRanges(arc_fraction=1.5))
    with pytest.raises(ConfigError, match="arc_fraction"):
        SynthConfig(arc_fraction=-0.1).validate()


# --------------------------------------------------------------------------- renderer


def test_chunk_rays_match_reference():
    s = scene_from_seed(0, "orbit")
    c2w, K = sample_cameras(s, 3, 20, 16)
    o_ref, d_ref = ray_directions(K, c2w, 16, 20, offset=(0.25, 0.75))
    cams = torch.cat([K[:, 0, 0:1], K[:, 1, 1:2], K[:, 0, 2:3], K[:, 1, 2:3],
                      c2w[:, :3, :3].reshape(3, 9), c2w[:, :3, 3]], 1).float()
    o, d, fwd, _ = _chunk_rays(torch.arange(3 * 16 * 20), cams, 16, 20, (0.25, 0.75))
    assert torch.allclose(d, d_ref.reshape(-1, 3).float(), atol=1e-6)
    assert torch.allclose(o, o_ref.reshape(-1, 3).float(), atol=1e-6)
    # the pixel-centre ray through (W/2, H/2) is the optical axis
    o_c, d_c = ray_directions(K, c2w, 16, 20, offset=(0.0, 0.0))
    assert torch.allclose(d_c[:, 8, 10], -c2w[:, :3, 2], atol=1e-12)


def test_march_fast_matches_reference():
    torch.manual_seed(0)
    s = scene_from_seed(6, "orbit")
    c2w, K = sample_cameras(s, 2, 24, 24)
    o, d = ray_directions(K, c2w, 24, 24)
    o, d = o.reshape(-1, 3).float(), d.reshape(-1, 3).float()
    t0, t1 = _bounds(s, o, d)
    t1 = torch.minimum(t1, torch.full_like(t1, 40.0))
    fast = march(s, o, d, t0, t1)
    ref = march_reference(s, o, d, t0, t1)
    assert torch.equal(torch.isfinite(fast), torch.isfinite(ref))
    assert torch.isfinite(fast).sum() > 50
    fin = torch.isfinite(fast)
    assert torch.allclose(fast[fin], ref[fin], atol=1e-5)
    # the GPU schedule (compaction every 4 steps, finished rays frozen) gives the same result
    assert torch.equal(march(s, o, d, t0, t1, compact_every=4), fast)
    p = o + d * torch.where(fin, fast, 3.0)[:, None] + torch.tensor([0, 0, 0.01])
    assert torch.allclose(soft_shadow(s, p, compact_every=4), soft_shadow(s, p, compact_every=1))


def test_single_sphere_geometry():
    r, centre = 0.5, np.array([0.2, -0.1, 0.5])
    scene = build_scene([sphere(centre, r, Material((0.9, 0.2, 0.2)))], ground=True)
    D, H = 3.0, 41
    eye = centre + D * np.array([np.cos(0.5) * np.cos(1.0), np.cos(0.5) * np.sin(1.0), np.sin(0.5)])
    c2w = look_at(eye[None], centre[None])
    K = intrinsics_from_fov(torch.tensor([math.radians(30.0)]), H, H)
    out = render(scene, c2w, K, H, H)
    depth, om = out["depth"][0].numpy(), out["object_mask"][0].numpy()
    c = H // 2
    # the look-at target lands on the image centre; the centre pixel's z-depth is D - r
    u, v, _ = _project(centre[None], c2w[0].numpy(), K[0].numpy())
    assert abs(u[0] - H / 2) < 1e-9 and abs(v[0] - H / 2) < 1e-9
    assert om[c, c] and abs(depth[c, c] - (D - r)) < 1e-4
    # exact z-depth everywhere on the sphere (analytic ray-sphere intersection)
    o, d = ray_directions(K, c2w, H, H)
    o, d = o[0].numpy(), d[0].numpy()
    oc = o - centre
    b = (oc * d).sum(-1)
    disc = b * b - ((oc * oc).sum(-1) - r * r)
    t = -b - np.sqrt(np.maximum(disc, 0))
    fwd = -c2w[0, :3, 2].numpy()
    z_true = t * (d @ fwd)
    analytic = disc > 0
    both = analytic & om
    assert both.sum() > 0.6 * analytic.sum()
    assert np.abs(depth[both] - z_true[both]).max() < 5e-5
    # mask = analytic disc; mismatches only within one pixel of the silhouette
    ang = np.arccos(np.clip((d * (centre - o)).sum(-1) / np.linalg.norm(centre - o, axis=-1), -1, 1))
    alpha = math.asin(r / D)
    pix = 1.0 / K[0, 1, 1].item()
    bad = analytic != om
    assert bad.sum() <= 4 and (np.abs(ang[bad] - alpha) < pix).all()
    # surface mask = sphere or ground (analytic ray-plane intersection within the far limit)
    mask = out["mask"][0].numpy()
    t_ground = np.where(d[..., 2] < 0, -o[..., 2] / np.minimum(d[..., 2], -1e-12), np.inf)
    assert np.array_equal(mask[~bad], (analytic | (t_ground < scene.far))[~bad])
    ground_only = mask & ~om
    assert ground_only.sum() > 100
    assert np.allclose(depth[ground_only], (t_ground * (d @ fwd))[ground_only], rtol=1e-5)
    assert (depth[~mask] == 0).all() and (depth[mask] > 0).all()
    rgb = out["rgb"][0].numpy()
    assert rgb.min() >= 0 and rgb.max() <= 1 and rgb[c, c, 0] > rgb[c, c, 1]


def test_soft_shadow_umbra_penumbra_lit():
    scene = build_scene([sphere((0, 0, 1.0), 0.5)], light_dir=(0.0, 0.0, 1.0), shadow_k=8.0)
    pts = torch.tensor([[0.0, 0.0, 0.001], [0.55, 0.0, 0.001], [3.0, 0.0, 0.001]])
    vis = soft_shadow(scene.to("cpu"), pts)
    assert vis[0] < 0.01 and 0.05 < vis[1] < 0.95 and vis[2] > 0.999


def test_render_determinism_and_chunk_invariance():
    s = scene_from_seed(11, "walk")
    c2w, K = sample_cameras(s, 2, 24, 24)
    a = render(s, c2w, K, 24, 24)
    b = render(scene_from_seed(11, "walk"), c2w, K, 24, 24, chunk=1000)
    again = render(s, c2w, K, 24, 24)
    for k in a:
        assert torch.equal(a[k], again[k])  # bitwise deterministic
    # other chunking / one view alone: same geometry, colours equal up to float rounding
    one = render(s, c2w[1:], K[1:], 24, 24)
    for other, sl in ((b, slice(None)), (one, slice(1, None))):
        for k in ("depth", "mask", "object_mask"):
            assert torch.equal(other[k], a[k][sl])
        assert (other["rgb"] - a["rgb"][sl]).abs().max() < 1e-6
    other = scene_from_seed(12, "walk")
    c = render(other, *sample_cameras(other, 2, 24, 24), 24, 24)
    assert (c["rgb"] - a["rgb"]).abs().mean() > 0.02
    # supersampling keeps depth/masks of the pixel-centre ray and averages colours
    ss = render(s, c2w, K, 24, 24, spp=2)
    assert torch.equal(ss["depth"], a["depth"]) and torch.equal(ss["mask"], a["mask"])
    assert (ss["rgb"] - a["rgb"]).abs().mean() < 0.05


@pytest.mark.parametrize("family,seed", [("orbit", 5), ("walk", 3)])
def test_reprojection(family, seed):
    s = scene_from_seed(seed, family)
    c2w, K = sample_cameras(s, 6, 48, 48)
    ia, ib = (0, 1)
    out = render(s, c2w[[ia, ib]], K[[ia, ib]], 48, 48)
    rgb, depth, mask = out["rgb"].numpy(), out["depth"].numpy(), out["mask"].numpy()
    ca, cb = c2w[ia].numpy(), c2w[ib].numpy()
    Ka, Kb = K[ia].numpy(), K[ib].numpy()
    X = _unproject(depth[0], ca, Ka)[mask[0]]
    u, v, z = _project(X, cb, Kb)
    inside = (z > 0) & (u >= 0.5) & (u < 47.5) & (v >= 0.5) & (v < 47.5)
    # B's depth at (u, v): inverse z-depth is affine in pixel coordinates on planes, so
    # bilinear interpolation of 1/z is exact for the ground and near-exact on objects
    inv = np.where(mask[1], 1.0 / np.maximum(depth[1], 1e-6), 0.0)[..., None]
    all_four = _bilinear(mask[1][..., None].astype(np.float64), u, v)[:, 0] > 0.999
    db = 1.0 / np.maximum(_bilinear(inv, u, v)[:, 0], 1e-6)
    visible = inside & all_four & (np.abs(db - z) < 0.01 * z)  # else occluded in B
    assert visible.sum() > 0.25 * mask[0].sum()
    # depth agrees where visible: the geometry of both views is the same
    assert np.median(np.abs(db[visible] - z[visible]) / z[visible]) < 1e-5
    sampled = _bilinear(rgb[1], u[visible], v[visible])
    err = np.abs(sampled - rgb[0][mask[0]][visible]).mean()
    unaligned = np.abs(rgb[1] - rgb[0]).mean()
    assert err < 0.05 and err < 0.5 * unaligned


# --------------------------------------------------------------------------- files


def test_generate_files_roundtrip(tmp_path):
    from PIL import Image

    cfg = from_dict(SynthConfig, {"scenes": 1, "views": 3, "size": 32, "seed": 7, "spp": 1,
                                  "family": "orbit"})
    folders = generate(cfg, tmp_path, progress=False)
    assert folders == [tmp_path / "scene_0000"]
    data = json.loads((folders[0] / "transforms.json").read_text())
    assert data["w"] == data["h"] == 32 and len(data["frames"]) == 3
    assert data["depth_unit_scale_factor"] == 0.001
    assert data["novelviews"]["seed"] == 7 and data["novelviews"]["family"] == "orbit"
    assert abs(data["camera_angle_x"] - 2 * math.atan(16 / data["fl_x"])) < 1e-12
    assert (tmp_path / "sheet.png").exists() and (folders[0] / "sheet.png").exists()
    # same seed -> the written cameras; re-rendering gives the written pixels and depth
    from novelviews.synth import scene_and_cameras

    _, c2w, K = scene_and_cameras(cfg, 0)
    M = np.array([f["transform_matrix"] for f in data["frames"]])
    assert np.allclose(M, c2w.numpy(), atol=1e-12)
    assert np.allclose([data["fl_x"], data["cx"]], [K[0, 0, 0].item(), K[0, 0, 2].item()])
    again = rerender_scene(folders[0])
    for i, f in enumerate(data["frames"]):
        img = np.array(Image.open(folders[0] / f["file_path"]))
        dep = np.array(Image.open(folders[0] / f["depth_file_path"]))
        msk = np.array(Image.open(folders[0] / f["mask_path"]))
        assert img.shape == (32, 32, 3) and img.dtype == np.uint8
        assert dep.shape == (32, 32) and dep.dtype in (np.uint16, np.int32)
        assert msk.shape == (32, 32) and msk.dtype == np.uint8
        true_depth = again["depth"][i].numpy()
        assert np.abs(dep * data["depth_unit_scale_factor"] - true_depth).max() <= 0.0005 + 1e-6
        assert np.array_equal(img, np.clip(np.round(again["rgb"][i].numpy() * 255), 0, 255).astype(np.uint8))
        assert np.array_equal(msk > 0, again["object_mask"][i].numpy())


def test_config_validation_and_command(tmp_path, capsys, caplog):
    with pytest.raises(ConfigError):
        from_dict(SynthConfig, {"size": 2})
    with pytest.raises(ConfigError):
        from_dict(SynthConfig, {"family": "indoor"})
    with pytest.raises(ConfigError):
        from_dict(SynthConfig, {"fov_deg": [60, 40]})
    cfg = from_dict(SynthConfig, {"scenes": 2, "views": 2, "size": 16, "spp": 1, "family": "mixed",
                                  "sheet": False})
    out = tmp_path / "run"
    with caplog.at_level("INFO", logger="novelviews"):
        folders = command_synth(cfg, out, device="cpu")
    assert len(folders) == 2 and (out / "config.yaml").exists()
    assert "2 scenes x 2 views" in caplog.text  # a note through logging: the library prints nothing
    assert "2 scenes" not in capsys.readouterr().out
    with pytest.raises(NovelViewsError):
        command_synth(cfg, out, device="cpu")
    command_synth(cfg, out, overwrite=True, device="cpu")
