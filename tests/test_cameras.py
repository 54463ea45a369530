import json
import math

import numpy as np
import pytest
import torch

from novelviews import cameras as C
from novelviews.errors import CameraError


def random_pose(gen: torch.Generator) -> torch.Tensor:
    q = torch.randn(4, generator=gen, dtype=torch.float64)
    q = q / q.norm()
    w, x, y, z = q
    R = torch.tensor(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ],
        dtype=torch.float64,
    )
    m = torch.eye(4, dtype=torch.float64)
    m[:3, :3] = R
    m[:3, 3] = torch.randn(3, generator=gen, dtype=torch.float64)
    return m


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def test_convention_round_trip_and_axes(gen):
    m = random_pose(gen)
    cv = C.opengl_to_opencv(m)
    assert torch.allclose(C.opencv_to_opengl(cv), m)
    # same centre, y and z axes flipped, x kept
    assert torch.allclose(cv[:3, 3], m[:3, 3])
    assert torch.allclose(cv[:3, 0], m[:3, 0])
    assert torch.allclose(cv[:3, 1], -m[:3, 1])
    assert torch.allclose(cv[:3, 2], -m[:3, 2])
    # a point in front of the camera: OpenCV z > 0, OpenGL z < 0
    p_world = m[:3, 3] - 2.0 * m[:3, 2]  # 2 units along the OpenGL viewing direction (-z)
    p_gl = C.invert_pose(m) @ torch.cat([p_world, torch.ones(1, dtype=torch.float64)])
    p_cv = C.invert_pose(cv) @ torch.cat([p_world, torch.ones(1, dtype=torch.float64)])
    assert p_gl[2] == pytest.approx(-2.0) and p_cv[2] == pytest.approx(2.0)


def test_invert_pose_exact(gen):
    m = torch.stack([random_pose(gen) for _ in range(5)])
    assert torch.allclose(C.invert_pose(m) @ m, torch.eye(4, dtype=torch.float64).expand(5, 4, 4), atol=1e-12)


def test_intrinsics_fov_round_trip():
    K = C.intrinsics_from_fov(math.radians(50), 640, 480)
    assert K[0, 2] == 320 and K[1, 2] == 240
    assert K[0, 0] == pytest.approx(240 / math.tan(math.radians(25)))
    assert float(C.fov_from_intrinsics(K, 480)) == pytest.approx(math.radians(50))
    K2 = C.intrinsics_from_focal(100.0, 110.0, 30.0, 40.0)
    assert K2.tolist() == [[100, 0, 30], [0, 110, 40], [0, 0, 1]]


def test_look_at_puts_target_on_optical_axis(gen):
    for _ in range(10):
        eye = torch.randn(3, generator=gen, dtype=torch.float64) * 3
        target = torch.randn(3, generator=gen, dtype=torch.float64)
        c2w = C.look_at(eye, target)
        C.validate_poses(c2w)  # a proper rotation
        K = C.intrinsics_from_fov(0.8, 64, 48)
        p = C.invert_pose(c2w) @ torch.cat([target, torch.ones(1, dtype=torch.float64)])
        cv = torch.stack([p[0], -p[1], -p[2]])  # OpenGL camera -> OpenCV camera
        uv = (K @ cv)[:2] / cv[2]
        assert cv[2] > 0
        assert torch.allclose(uv, torch.tensor([32.0, 24.0], dtype=torch.float64), atol=1e-9)
        # camera x axis is horizontal (z-up world)
        assert abs(float(c2w[2, 0])) < 1e-12
    with pytest.raises(CameraError, match="parallel"):
        C.look_at([0, 0, 2.0], [0, 0, 0.0])


def test_spherical_round_trip():
    e, a, r = torch.tensor([0.3, -0.5]), torch.tensor([1.0, -2.5]), torch.tensor([2.0, 0.7])
    xyz = C.spherical_to_cartesian(e, a, r)
    assert torch.allclose(xyz[0], torch.tensor([2 * math.cos(0.3) * math.cos(1.0), 2 * math.cos(0.3) * math.sin(1.0), 2 * math.sin(0.3)], dtype=torch.float64))
    e2, a2, r2 = C.cartesian_to_spherical(xyz)
    assert torch.allclose(e2, e.double()) and torch.allclose(a2, a.double()) and torch.allclose(r2, r.double())
    c2w = C.camera_on_sphere(math.radians(31), 0.0, 1.0)
    assert torch.allclose(c2w[:3, 3], torch.tensor([math.cos(math.radians(31)), 0, math.sin(math.radians(31))], dtype=torch.float64))
    assert torch.allclose(-c2w[:3, 2], -c2w[:3, 3] / c2w[:3, 3].norm())  # looks at the origin


@pytest.mark.parametrize("kind", C.PATH_KINDS)
def test_path_view0_is_input(gen, kind):
    c2w = random_pose(gen)
    poses, fovs = C.make_path(kind, c2w, 0.9, 12, focus_distance=2.0)
    assert poses.shape == (12, 4, 4) and fovs.shape == (12,)
    assert torch.allclose(poses[0], c2w, atol=1e-12)
    assert fovs[0] == pytest.approx(0.9)
    C.validate_poses(poses)
    moved = (poses[1:, :3, 3] - c2w[:3, 3]).norm(dim=-1).max() + (fovs - 0.9).abs().max() + C.rotation_angle(poses[1:, :3, :3], c2w[:3, :3]).max()
    assert moved > 1e-3  # the path actually goes somewhere


def test_orbit_keeps_focus_and_distance(gen):
    c2w = C.camera_on_sphere(0.4, 0.2, 2.0)
    poses, _ = C.make_path("orbit", c2w, 0.8, 8, focus_distance=2.0, up=(0, 0, 1))
    centres = poses[:, :3, 3]
    assert torch.allclose(centres.norm(dim=-1), torch.full((8,), 2.0, dtype=torch.float64))
    assert torch.allclose(centres[:, 2], centres[0, 2].expand(8))  # same height
    # every view looks at the origin
    fwd = -poses[:, :3, 2]
    assert torch.allclose(fwd, -centres / 2.0, atol=1e-9)
    _, az, _ = C.cartesian_to_spherical(centres)
    assert float(torch.remainder(az[2] - az[0], 2 * math.pi)) == pytest.approx(math.pi / 2)


def test_embed_3dof_hand_computed():
    cond = C.camera_on_sphere(math.radians(30), 0.0, 1.5)
    tgt = C.camera_on_sphere(math.radians(10), math.radians(90), 2.0)
    e = C.embed_3dof(cond, tgt)
    # polar = 90 - elevation
    assert e.tolist() == pytest.approx([math.radians(20), 1.0, 0.0, 0.5], abs=1e-9)
    assert C.embed_3dof(cond, cond).tolist() == pytest.approx([0, 0, 1, 0], abs=1e-12)
    # negative azimuth wraps into [0, 2pi)
    tgt2 = C.camera_on_sphere(math.radians(30), math.radians(-90), 1.5)
    assert C.embed_3dof(cond, tgt2).tolist() == pytest.approx([0, -1.0, 0.0, 0], abs=1e-9)


def test_embed_6dof_identity_and_translation(gen):
    c = random_pose(gen)
    fov = 0.7
    e = C.embed_6dof(c, c, 1.0, fov)
    expected = torch.eye(4, dtype=torch.float64).flatten().tolist() + [fov, math.sin(fov), math.cos(fov)]
    assert e.shape == (19,)
    assert e.tolist() == pytest.approx(expected, abs=1e-12)
    # pure translation of 2 units along the camera's own x axis, scale 0.5 -> t = 4 -> 5 tanh(0.4)
    t = c.clone()
    t[:3, 3] += 2.0 * c[:3, 0]
    e = C.embed_6dof(c, t, 0.5, fov)
    assert e[3].item() == pytest.approx(5 * math.tanh(0.4))
    assert e[7].item() == pytest.approx(0.0, abs=1e-12) and e[11].item() == pytest.approx(0.0, abs=1e-12)
    assert e[:3].tolist() == pytest.approx([1, 0, 0], abs=1e-12)
    # scale is clipped at 0.01
    e_small = C.embed_6dof(c, t, 0.0, fov)
    assert e_small[3].item() == pytest.approx(5 * math.tanh(200 / 10))
    # NaN translation -> 0 and inf -> 10 before the squashing
    bad = t.clone()
    bad[:3, 3] = float("nan")
    assert torch.isfinite(C.embed_6dof(c, bad, 1.0, fov)).all()


def test_embed_6dof_scale_invariance_with_depth_quantile(gen):
    c, t = random_pose(gen), random_pose(gen)
    depth = torch.rand(64, 48, generator=gen, dtype=torch.float64) * 5 + 1
    s = C.depth_quantile_scale(depth)
    lam = 3.7
    cs, ts = c.clone(), t.clone()
    cs[:3, 3] *= lam
    ts[:3, 3] *= lam
    s2 = C.depth_quantile_scale(depth * lam)
    assert float(s2) == pytest.approx(lam * float(s))
    assert torch.allclose(C.embed_6dof(c, t, s, 0.8), C.embed_6dof(cs, ts, s2, 0.8), atol=1e-12)
    # without rescaling the scale, the embedding changes
    assert not torch.allclose(C.embed_6dof(c, t, s, 0.8), C.embed_6dof(cs, ts, s, 0.8))


def test_depth_quantile_scale_subsamples_and_ignores_empty():
    depth = torch.zeros(16, 16, dtype=torch.float64)
    depth[::4, ::4] = torch.arange(1, 17, dtype=torch.float64).reshape(4, 4)
    depth[1, 1] = 1000.0  # not on the stride grid: ignored
    assert float(C.depth_quantile_scale(depth)) == pytest.approx(float(torch.quantile(torch.arange(1, 17.0, dtype=torch.float64), 0.2)))
    depth[::4, ::4][0, :2] = 0.0  # sky pixels ignored
    assert float(C.depth_quantile_scale(depth)) == pytest.approx(float(torch.quantile(torch.arange(3, 17.0, dtype=torch.float64), 0.2)))
    assert float(C.depth_quantile_scale(torch.full((8, 8), 0.001))) == pytest.approx(0.01)
    with pytest.raises(CameraError, match="no valid"):
        C.depth_quantile_scale(torch.zeros(8, 8))


def test_camera_embedding_dispatch():
    c = C.camera_on_sphere(0.3, 0.0, 1.0)
    t = C.camera_on_sphere(0.3, 0.5, 1.0)
    assert C.camera_embedding("3dof", c, t).shape == (4,)
    assert C.camera_embedding("6dof+1", c, t, 0.7, 0.9).shape == (19,)
    batch = C.camera_embedding("6dof+1", c.expand(5, 4, 4), C.make_path("orbit", t, 0.9, 5)[0], torch.full((5,), 0.7), torch.full((5,), 0.9))
    assert batch.shape == (5, 19)
    with pytest.raises(CameraError, match="unknown camera mode"):
        C.embedding_dim("7dof")


def test_nearest_cameras_matches_brute_force(gen):
    pool = torch.stack([random_pose(gen) for _ in range(20)])
    query = torch.stack([random_pose(gen) for _ in range(7)])
    idx, dist = C.nearest_cameras(query, pool, k=3, rotation_weight=0.5, translation_weight=2.0, scale=1.5)
    for i in range(7):
        ds = []
        for j in range(20):
            R = query[i, :3, :3].T @ pool[j, :3, :3]
            ang = math.acos(max(-1.0, min(1.0, (float(torch.trace(R)) - 1) / 2)))
            ds.append(0.5 * ang + 2.0 * float((query[i, :3, 3] - pool[j, :3, 3]).norm()) / 1.5)
        order = np.argsort(ds)[:3]
        assert idx[i].tolist() == order.tolist()
        assert dist[i].tolist() == pytest.approx([ds[j] for j in order])
    # a pool camera is its own nearest neighbour at distance 0
    idx, dist = C.nearest_cameras(pool[4:5], pool, k=1)
    assert idx.item() == 4 and dist.item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    "bad,match",
    [
        (torch.eye(3), "shape"),
        (torch.full((4, 4), float("nan")), "NaN"),
        (torch.diag(torch.tensor([2.0, 1, 1, 1])), "orthonormal"),
        (torch.diag(torch.tensor([1.0, 1, -1, 1])), "det"),
        (torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 1, 0, 1]]), "bottom row"),
    ],
)
def test_validate_poses_errors(bad, match):
    poses = torch.eye(4).expand(3, 4, 4).clone()
    if bad.shape == (4, 4):
        poses[2] = bad
        with pytest.raises(CameraError, match=f"camera 2.*{match}|{match}"):
            C.validate_poses(poses)
    else:
        with pytest.raises(CameraError, match=match):
            C.validate_poses(bad)


def test_path_json_formats(tmp_path, gen):
    poses = torch.stack([random_pose(gen) for _ in range(3)])
    ours = C.cameras_to_json(poses, torch.tensor([0.5, 0.6, 0.7]))
    (tmp_path / "a.json").write_text(json.dumps(ours))
    c2w, fov = C.load_path_json(tmp_path / "a.json")
    assert torch.allclose(c2w, poses) and torch.allclose(fov, torch.tensor([0.5, 0.6, 0.7], dtype=torch.float64))
    ns = {"camera_path": [{"camera_to_world": p.flatten().tolist(), "fov": 50.0} for p in poses]}
    (tmp_path / "ns.json").write_text(json.dumps(ns))
    c2w, fov = C.load_path_json(tmp_path / "ns.json")
    assert torch.allclose(c2w, poses) and torch.allclose(fov, torch.full((3,), math.radians(50), dtype=torch.float64))
    cv = {"convention": "opencv", "cameras": [{"c2w": C.opengl_to_opencv(p).tolist(), "fov_deg": 40} for p in poses]}
    (tmp_path / "cv.json").write_text(json.dumps(cv))
    assert torch.allclose(C.load_path_json(tmp_path / "cv.json")[0], poses)
    (tmp_path / "plain.json").write_text(json.dumps([p.tolist() for p in poses]))
    with pytest.raises(CameraError, match="no fov"):
        C.load_path_json(tmp_path / "plain.json")
    assert C.load_path_json(tmp_path / "plain.json", default_fov=0.9)[1].tolist() == [0.9] * 3
    bad = [p.tolist() for p in poses]
    bad[1][0][0] = 5.0
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(CameraError, match="1: rotation is not orthonormal"):
        C.load_path_json(tmp_path / "bad.json", default_fov=0.9)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(CameraError, match="not valid JSON"):
        C.load_path_json(tmp_path / "broken.json")
    with pytest.raises(CameraError, match="does not exist"):
        C.load_path_json(tmp_path / "missing.json")


def test_scene_scale_from_cameras():
    poses = C.camera_on_sphere(torch.full((8,), 0.3), torch.linspace(0, 6, 8), torch.full((8,), 2.5))
    assert C.scene_scale_from_cameras(poses) == pytest.approx(2.5, rel=1e-6)


def test_nearest_point_to_axes_finds_the_look_at_point_and_refuses_parallel_axes():
    from novelviews import cameras as C

    target = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    eyes = [(2.0, 0.5, 1.0), (-1.5, 1.0, 2.0), (0.2, -2.0, -1.0)]
    c2w = torch.stack([C.look_at(torch.tensor(e, dtype=torch.float64) + target, target) for e in eyes])
    torch.testing.assert_close(C.nearest_point_to_axes(c2w), target)
    assert C.nearest_point_to_axes(c2w[:1]) is None  # one camera: a line, no point
    parallel = c2w[:1].repeat(2, 1, 1).clone()
    parallel[1, 0, 3] += 1.0  # the same direction, shifted sideways
    assert C.nearest_point_to_axes(parallel) is None
    d = C.scene_scale_from_cameras(c2w, quantile=1.0)
    assert d == pytest.approx(max(torch.tensor(e).norm().item() for e in eyes))
