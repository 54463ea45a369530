"""Tests of novelviews.io.datasets: every reader on hand-made fixtures with known cameras."""

from __future__ import annotations

import json
import math
import struct
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from novelviews.cameras import look_at
from novelviews.errors import DatasetError
from novelviews.io import datasets as ds
from novelviews.io.images import save_image

W, H = 40, 30


def _truth(n: int = 3):
    """n OpenGL cameras looking at the origin from a ring, and distinct intrinsics."""
    eyes = [(2.0 * math.cos(a), 2.0 * math.sin(a), 0.5 + 0.2 * k) for k, a in enumerate(np.linspace(0, 2, n))]
    c2w = torch.stack([look_at(torch.tensor(e, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)) for e in eyes])
    c2w = c2w.reshape(n, 4, 4)
    K = torch.tensor([[[30.0 + k, 0, 20.5 - k], [0, 32.0 + k, 15.0 + 0.25 * k], [0, 0, 1]] for k in range(n)], dtype=torch.float64)
    return c2w, K


def _project_opengl(c2w, K, X):
    """Pixel of world point X through an OpenGL c2w (camera looks along -z) and pixel K."""
    w2c = np.linalg.inv(np.asarray(c2w, dtype=np.float64))
    xc = w2c[:3, :3] @ X + w2c[:3, 3]
    x_cv = np.array([xc[0], -xc[1], -xc[2]])  # OpenCV camera axes
    assert x_cv[2] > 0, "point behind the camera"
    u = np.asarray(K) @ x_cv
    return u[:2] / u[2]


def _images(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [rng.random((H, W, 3)).astype(np.float32) for _ in range(n)]


# --------------------------------------------------------------------------- scene object


def test_scene_methods():
    c2w, K = _truth(3)
    imgs = _images(3)
    scene = ds.MultiViewScene(
        "s", c2w, K, torch.tensor([[W, H]] * 3), image_arrays=imgs, scale=0.7,
        depth_arrays=[np.full((H, W), 2.0, np.float32), None, None],
    )
    assert len(scene) == 3 and scene.has_depth and not scene.has_masks
    assert scene.fov_y(1) == pytest.approx(2 * math.atan(H / 2 / 33.0))
    sub = scene.subset([2, 0])
    assert len(sub) == 2 and sub.scale == 0.7
    torch.testing.assert_close(sub.c2w, c2w[[2, 0]])
    np.testing.assert_array_equal(sub.load_image(0), imgs[2])
    as_uint8 = ds.MultiViewScene("u", c2w[:1], K[:1], [[W, H]], image_arrays=[(imgs[0] * 255).astype(np.uint8)])
    np.testing.assert_allclose(as_uint8.load_image(0), imgs[0], atol=1 / 255)
    assert sub.load_depth(0) is None and sub.load_depth(1)[0, 0] == 2.0
    with pytest.raises(DatasetError, match="out of range"):
        scene.subset([5])
    with pytest.raises(DatasetError, match="K must be"):
        ds.MultiViewScene("s", c2w, K[:2], torch.tensor([[W, H]] * 3), image_arrays=imgs)


# --------------------------------------------------------------------------- transforms.json


def test_transforms_roundtrip_with_depth_and_masks(tmp_path):
    c2w, K = _truth(3)
    imgs = _images(3)
    depth = [np.random.default_rng(i).random((H, W)).astype(np.float32) * 3 for i in range(3)]
    masks = [(np.random.default_rng(9 + i).random((H, W)) > 0.5).astype(np.float32) for i in range(3)]
    scene = ds.MultiViewScene(
        "synthetic", c2w, K, torch.tensor([[W, H]] * 3), image_arrays=imgs, depth_arrays=depth,
        mask_arrays=masks, scale=0.7, meta={"seed": 3},
    )
    path = ds.write_transforms_json(scene, tmp_path / "scene")
    assert path.name == "transforms.json"
    data = json.loads(path.read_text())
    assert data["frames"][0]["file_path"] == "images/frame_00000.png"
    assert data["frames"][2]["depth_file_path"] == "depth/frame_00002.npy"

    back = ds.load_scene(tmp_path / "scene")
    assert back.meta["format"] == "transforms" and len(back) == 3
    torch.testing.assert_close(back.c2w, c2w, atol=1e-6, rtol=0)
    torch.testing.assert_close(back.K, K, atol=1e-6, rtol=0)
    assert back.sizes.tolist() == [[W, H]] * 3
    assert back.scale == 0.7 and back.distortion is None and back.meta["seed"] == 3
    for i in range(3):
        np.testing.assert_allclose(back.load_image(i), imgs[i], atol=0.5 / 255 + 1e-6)
        np.testing.assert_array_equal(back.load_depth(i), depth[i])
        np.testing.assert_array_equal(back.load_mask(i), masks[i])
    # writing a file-backed scene references the files and reads back identically
    again = ds.write_transforms_json(back, tmp_path / "copy" / "transforms.json")
    back2 = ds.load_scene(again)
    torch.testing.assert_close(back2.c2w, c2w, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(back2.load_depth(1), depth[1])


def test_nerf_synthetic_layout_and_missing_frames(tmp_path):
    c2w, _ = _truth(3)
    (tmp_path / "train").mkdir()
    for i in range(2):  # frame 2's image is missing
        save_image(tmp_path / "train" / f"r_{i}.png", _images(1, i)[0])
    angle = 0.69
    frames = [{"file_path": f"./train/r_{i}", "transform_matrix": c2w[i].tolist(), "rotation": 0.01} for i in range(3)]
    (tmp_path / "transforms_train.json").write_text(json.dumps({"camera_angle_x": angle, "frames": frames}))
    with pytest.warns(UserWarning, match=r"skipping 1 of 3 frames.*r_2"):
        scene = ds.load_scene(tmp_path)
    assert len(scene) == 2 and scene.images[1].name == "r_1.png"
    fx = 0.5 * W / math.tan(angle / 2)
    torch.testing.assert_close(scene.K[0], torch.tensor([[fx, 0, W / 2], [0, fx, H / 2], [0, 0, 1]], dtype=torch.float64))
    torch.testing.assert_close(scene.c2w, c2w[:2])


def test_instant_ngp_top_level_intrinsics_distortion_and_rescale(tmp_path):
    c2w, _ = _truth(2)
    for i in range(2):
        save_image(tmp_path / f"{i}.jpg", _images(1, i)[0])
    data = {
        "fl_x": 60.0, "fl_y": 62.0, "cx": 41.0, "cy": 29.0, "w": 80, "h": 60,  # given at 2x resolution
        "k1": 0.01, "p1": -0.002, "camera_model": "OPENCV", "aabb_scale": 16,
        "frames": [{"file_path": f"{i}.jpg", "transform_matrix": c2w[i].tolist()} for i in range(2)],
    }
    (tmp_path / "transforms.json").write_text(json.dumps(data))
    scene = ds.load_scene(tmp_path / "transforms.json", fmt="transforms")
    torch.testing.assert_close(scene.K[1], torch.tensor([[30.0, 0, 20.5], [0, 31.0, 14.5], [0, 0, 1]], dtype=torch.float64))
    assert scene.distortion == {"model": "OPENCV", "k1": 0.01, "k2": 0.0, "k3": 0.0, "k4": 0.0, "p1": -0.002, "p2": 0.0}
    assert scene.load_image(0).shape == (H, W, 3)


def test_transforms_bad_inputs(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        ds.load_scene(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="cannot tell the dataset layout"):
        ds.load_scene(tmp_path / "empty")
    with pytest.raises(DatasetError, match="unknown dataset format"):
        ds.load_scene(tmp_path, fmt="nope")
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "transforms.json").write_text('{"frames": [\n  {"file_path": "a.png",,}\n]}')
    with pytest.raises(DatasetError, match="not valid JSON.*line 2"):
        ds.load_scene(bad)

    c2w, _ = _truth(2)
    save_image(tmp_path / "a.png", _images(1)[0])
    save_image(tmp_path / "b.png", _images(1)[0])
    skewed = c2w[1].clone()
    skewed[:3, :3] *= 1.5  # scaled rotation: not a rigid pose
    frames = [
        {"file_path": "a.png", "transform_matrix": c2w[0].tolist()},
        {"file_path": "b.png", "transform_matrix": skewed.tolist()},
    ]
    (tmp_path / "transforms.json").write_text(json.dumps({"fl_x": 30, "frames": frames}))
    with pytest.raises(DatasetError, match=r"frame 1 \('b.png'\).*not orthonormal"):
        ds.load_scene(tmp_path)
    frames = [{"file_path": "gone.png", "transform_matrix": c2w[0].tolist()}]
    (tmp_path / "transforms.json").write_text(json.dumps({"fl_x": 30, "frames": frames}))
    with pytest.raises(DatasetError, match="none of the 1 images exist"):
        ds.load_scene(tmp_path)


# --------------------------------------------------------------------------- COLMAP


def _colmap_fixture(root):
    """Images + truth; COLMAP ground truth built from world-to-camera OpenCV poses."""
    (root / "images").mkdir(parents=True)
    c2w, K = _truth(3)
    for i, img in enumerate(_images(3)):
        save_image(root / "images" / f"frame_{i:05d}.png", img)
    paths = [root / "images" / f"frame_{i:05d}.png" for i in range(3)]
    return ds.MultiViewScene("c", c2w, K, torch.tensor([[W, H]] * 3), images=paths), c2w, K


def test_colmap_text_and_binary_roundtrip(tmp_path):
    scene, c2w, K = _colmap_fixture(tmp_path / "bin")
    ds.write_colmap_model(scene, tmp_path / "bin" / "sparse" / "0", binary=True)
    scene_t, _, _ = _colmap_fixture(tmp_path / "txt")
    ds.write_colmap_model(scene_t, tmp_path / "txt" / "sparse" / "0", binary=False)
    a = ds.load_scene(tmp_path / "bin")
    b = ds.load_scene(tmp_path / "txt", fmt="colmap")
    assert a.meta["binary"] and not b.meta["binary"]
    for s in (a, b):
        torch.testing.assert_close(s.c2w, c2w, atol=1e-6, rtol=0)
        torch.testing.assert_close(s.K, K, atol=1e-6, rtol=0)
        assert s.sizes.tolist() == [[W, H]] * 3 and s.meta["points3D"] == "present, not read"
    np.testing.assert_allclose(a.load_image(2), b.load_image(2))


def test_colmap_projection_hand_made_models(tmp_path):
    """Hand-written models (OPENCV binary, SIMPLE_RADIAL text): a world point projected with
    COLMAP's own convention x = K (R X + t) lands where our OpenGL c2w + K put it."""
    root = tmp_path / "scene"
    (root / "images").mkdir(parents=True)
    for name in ("a.png", "b.png"):
        save_image(root / "images" / name, _images(1)[0])
    q1 = np.array([0.9, 0.1, -0.3, 0.2])
    q1 /= np.linalg.norm(q1)
    poses = [(1, [1.0, 0, 0, 0], [0.1, -0.2, 3.0], 1, "a.png"), (2, q1.tolist(), [-0.3, 0.1, 2.5], 2, "b.png")]
    cams = {1: ("OPENCV", [30.0, 31.0, 19.0, 16.0, 0.01, -0.02, 0.001, 0.002]), 2: ("SIMPLE_RADIAL", [28.0, 20.0, 15.0, 0.05])}
    ids = {"SIMPLE_RADIAL": 2, "OPENCV": 4}

    sparse = root / "sparse" / "0"
    sparse.mkdir(parents=True)
    cb = struct.pack("<Q", 2)
    for cid, (model, prm) in cams.items():
        cb += struct.pack("<iiQQ", cid, ids[model], W, H) + struct.pack(f"<{len(prm)}d", *prm)
    (sparse / "cameras.bin").write_bytes(cb)
    ib = struct.pack("<Q", 2)
    for iid, q, t, cid, name in poses:
        ib += struct.pack("<I4d3dI", iid, *q, *t, cid) + name.encode() + b"\0"
        ib += struct.pack("<Q", 1) + struct.pack("<ddq", 3.0, 4.0, -1)  # one 2D point
    (sparse / "images.bin").write_bytes(ib)

    text_root = tmp_path / "text"
    (text_root / "sparse").mkdir(parents=True)
    (text_root / "images").symlink_to(root / "images")
    cam_txt = "# comment\n" + "".join(f"{cid} {m} {W} {H} {' '.join(map(repr, p))}\n" for cid, (m, p) in cams.items())
    (text_root / "sparse" / "cameras.txt").write_text(cam_txt)
    img_txt = "# comment\n"
    img_txt += f"1 {' '.join(map(repr, poses[0][1]))} {' '.join(map(repr, poses[0][2]))} 1 a.png\n\n"  # empty 2D line
    img_txt += f"2 {' '.join(map(repr, poses[1][1]))} {' '.join(map(repr, poses[1][2]))} 2 b.png\n3.0 4.0 -1\n"
    (text_root / "sparse" / "images.txt").write_text(img_txt)

    X = np.array([0.2, -0.1, 0.3])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scenes = [ds.load_scene(root), ds.load_scene(text_root)]
    assert any("not applied" in str(w.message) for w in caught)
    for scene in scenes:
        assert [p.name for p in scene.images] == ["a.png", "b.png"]
        assert scene.distortion["per_view"][0] == {"k1": 0.01, "k2": -0.02, "p1": 0.001, "p2": 0.002}
        assert scene.distortion["per_view"][1] == {"k1": 0.05}
        torch.testing.assert_close(scene.K[1], torch.tensor([[28.0, 0, 20], [0, 28, 15], [0, 0, 1]], dtype=torch.float64))
        for i, (_, q, t, cid, _) in enumerate(poses):
            R = ds.qvec_to_rotmat(q)
            xc = R @ X + np.asarray(t)
            fx, fy, cx, cy = (cams[cid][1] * 2)[:4] if cams[cid][0] == "OPENCV" else [28.0, 28.0, 20.0, 15.0]
            expected = np.array([fx * xc[0] / xc[2] + cx, fy * xc[1] / xc[2] + cy])
            np.testing.assert_allclose(_project_opengl(scene.c2w[i], scene.K[i], X), expected, atol=1e-9)
    torch.testing.assert_close(scenes[0].c2w, scenes[1].c2w)


def test_quaternion_roundtrip():
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        q = q if q[0] >= 0 else -q
        R = ds.qvec_to_rotmat(q)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(ds.rotmat_to_qvec(R), q, atol=1e-10)


def test_colmap_errors(tmp_path):
    (tmp_path / "sparse" / "0").mkdir(parents=True)
    (tmp_path / "sparse" / "0" / "cameras.txt").write_text("1 PINHOLE 4 4 1 1 2 2\n")
    with pytest.raises(DatasetError, match="no images.txt"):
        ds.load_scene(tmp_path)
    (tmp_path / "sparse" / "0" / "images.txt").write_text("1 1 0 0 0 0 0 1 1 x.png\n\n")
    with pytest.raises(DatasetError, match="no images/ folder"):
        ds.load_scene(tmp_path)
    (tmp_path / "sparse" / "0" / "cameras.txt").write_text("1 FOV 4 4 1 1 2 2 0.1\n")
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetError, match="FOV is not supported.*image_undistorter"):
        ds.load_scene(tmp_path)
    (tmp_path / "sparse" / "0" / "cameras.bin").write_bytes(struct.pack("<Q", 3))
    (tmp_path / "sparse" / "0" / "images.bin").write_bytes(struct.pack("<Q", 0))
    with pytest.raises(DatasetError, match="truncated"):
        ds.load_scene(tmp_path)


# --------------------------------------------------------------------------- CO3D


def _p3d_project(R, T, f, p, size_hw, fmt, X):
    """PyTorch3D's own convention, written out: row-vector extrinsics, NDC with +X left,
    +Y up, then NDC -> pixels."""
    Xc = X @ np.asarray(R) + np.asarray(T)
    ndc = np.asarray(f) * Xc[:2] / Xc[2] + np.asarray(p)
    h, w = size_hw
    half = np.array([w / 2, h / 2])
    r = half if fmt == "ndc_norm_image_bounds" else np.array([min(half)] * 2)
    return half - ndc * r


@pytest.mark.parametrize("fmt", ["ndc_isotropic", "ndc_norm_image_bounds"])
def test_co3d_conventions(tmp_path, fmt):
    seq = tmp_path / "teddybear" / "101_1"
    (seq / "images").mkdir(parents=True)
    (seq / "depths").mkdir()
    rng = np.random.default_rng(0)
    frames, truth = [], []
    for i in range(3):
        # a proper rotation via QR, and a translation that keeps the origin in front
        Q, Rr = np.linalg.qr(rng.normal(size=(3, 3)))
        R = Q * np.sign(np.diag(Rr))
        if np.linalg.det(R) < 0:
            R[:, 0] *= -1
        T = np.array([0.1, -0.2, 4.0]) + 0.1 * rng.normal(size=3)
        f = [1.8 + 0.1 * i, 1.9]
        p = [0.05, -0.03 * i]
        save_image(seq / "images" / f"frame{i:06d}.jpg", _images(1, i)[0])
        depth = np.full((H, W), 1.5 + i, np.float16)
        Image.fromarray(depth.view(np.uint16)).save(seq / "depths" / f"frame{i:06d}.png")
        frames.append({
            "sequence_name": "101_1", "frame_number": i,
            "image": {"path": f"teddybear/101_1/images/frame{i:06d}.jpg", "size": [H, W]},
            "viewpoint": {"R": R.tolist(), "T": T.tolist(), "focal_length": f, "principal_point": p, "intrinsics_format": fmt},
            "depth": {"path": f"teddybear/101_1/depths/frame{i:06d}.png", "scale_adjustment": 2.0},
        })
        truth.append((R, T, f, p))
    (seq / "frame_annotations.json").write_text(json.dumps(frames))
    scene = ds.load_scene(seq)
    assert scene.meta["format"] == "co3d" and scene.name == "101_1" and len(scene) == 3
    for X in (np.zeros(3), np.array([0.3, -0.2, 0.1])):
        for i, (R, T, f, p) in enumerate(truth):
            expected = _p3d_project(R, T, f, p, (H, W), fmt, X)
            np.testing.assert_allclose(_project_opengl(scene.c2w[i], scene.K[i], X), expected, atol=1e-9)
    # camera centre: X_world with X_cam = 0 -> C = -T R^T
    R, T, _, _ = truth[0]
    np.testing.assert_allclose(scene.c2w[0, :3, 3].numpy(), -T @ R.T, atol=1e-12)
    np.testing.assert_allclose(scene.load_depth(2), 2.0 * 3.5)


def test_co3d_bad_intrinsics_format(tmp_path):
    save_image(tmp_path / "a.png", _images(1)[0])
    fr = [{"image": {"path": "a.png", "size": [H, W]},
           "viewpoint": {"R": np.eye(3).tolist(), "T": [0, 0, 2], "focal_length": [1, 1], "principal_point": [0, 0],
                         "intrinsics_format": "screen"}}]
    (tmp_path / "frame_annotations.json").write_text(json.dumps(fr))
    with pytest.raises(DatasetError, match="intrinsics_format 'screen'"):
        ds.load_scene(tmp_path)


# --------------------------------------------------------------------------- RealEstate10K


def test_re10k_camera_file(tmp_path):
    c2w, K = _truth(3)
    (tmp_path / "frames").mkdir()
    lines = ["https://www.youtube.com/watch?v=abc"]
    for i, ts in enumerate([1000, 34366, 67733]):
        if i < 2:
            save_image(tmp_path / "frames" / f"{ts}.png", _images(1, i)[0])
        cv = c2w[i].numpy().copy()
        cv[:3, 1:3] *= -1  # OpenGL -> OpenCV axes
        w2c = np.linalg.inv(cv)[:3]
        k = K[i].numpy()
        intr = [k[0, 0] / W, k[1, 1] / H, k[0, 2] / W, k[1, 2] / H, 0, 0]
        lines.append(" ".join(str(v) for v in [ts, *intr, *w2c.reshape(-1).tolist()]))
    (tmp_path / "abc.txt").write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="67733"):
        scene = ds.load_scene(tmp_path)
    assert scene.meta["url"].endswith("abc") and scene.meta["timestamps"] == [1000, 34366]
    torch.testing.assert_close(scene.c2w, c2w[:2], atol=1e-6, rtol=0)
    torch.testing.assert_close(scene.K, K[:2], atol=1e-6, rtol=0)
    X = np.array([0.1, 0.2, -0.1])
    np.testing.assert_allclose(_project_opengl(scene.c2w[0], scene.K[0], X), _project_opengl(c2w[0], K[0], X), atol=1e-6)
    (tmp_path / "abc.txt").write_text(lines[0] + "\n1 2 3\n")
    with pytest.raises(DatasetError, match="line 2: expected 19 numbers"):
        ds.load_re10k(tmp_path / "abc.txt")
