"""`nvs reconstruct DATASET`: the run's frame from the cameras, generated cameras around the photos, the fit
with held-out photos scored, resume, the CLI and bad datasets (tiny model, CPU)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from novelviews import cameras as C
from novelviews.splats.posed_inputs import (PosedInputsConfig, SceneFrame, cameras_around_inputs, covered_arc,
                                            scene_frame, select_views)

CENTRE = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
RADIUS, ELEVATION = 2.5, math.radians(20.0)
UP = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)  # a y-up world, as many captures have


def capture_cameras(azimuths_deg, elevation=ELEVATION) -> torch.Tensor:
    """Cameras of a y-up world on a ring about CENTRE, looking at it."""
    a = torch.tensor([math.radians(v) for v in azimuths_deg], dtype=torch.float64)
    eye = torch.stack([torch.cos(a) * math.cos(elevation), torch.full_like(a, math.sin(elevation)),
                       torch.sin(a) * math.cos(elevation)], -1) * RADIUS + CENTRE
    return C.look_at(eye, CENTRE.expand_as(eye), UP.expand_as(eye))


def write_capture(folder: Path, n: int = 6, w: int = 48, h: int = 40) -> Path:
    """A half-orbit capture (azimuths 0..150 degrees) of a coloured pattern, as transforms.json."""
    from novelviews.io.datasets import MultiViewScene, write_transforms_json

    yy, xx = np.mgrid[0:h, 0:w]
    imgs = []
    for i in range(n):
        img = np.stack([xx / (w - 1), yy / (h - 1), np.full_like(xx, i / n, dtype=float)], -1).astype(np.float32)
        img[h // 3:2 * h // 3, (4 * i) % (w // 2):(4 * i) % (w // 2) + w // 3] = (0.9, 0.1, 0.1)
        imgs.append(img)
    c2w = capture_cameras([150.0 * i / (n - 1) for i in range(n)])
    K = C.intrinsics_from_fov(torch.full((n,), math.radians(45.0)), w, h)
    scene = MultiViewScene("capture", c2w, K, torch.tensor([[w, h]] * n), image_arrays=imgs)
    return write_transforms_json(scene, folder).parent


TINY = ["views.num=4", "views.holdout_every=0", "inputs.holdout=every:3", "sampling.steps=2", "fit.steps=20",
        "fit.sh_degree=1", "fit.sh_increase_every=10", "fit.densify_every=10", "fit.densify_start=0.0",
        "fit.densify_stop=0.6", "init.points=150", "output.video_frames=2", "output.checkpoint_every=10",
        "output.log_every=5", "splats.tile_size=32", "device=cpu"]


# --------------------------------------------------------------------------- geometry


def test_the_run_frame_puts_the_focus_at_the_origin_the_capture_up_on_z_and_unit_distance():
    c2w = capture_cameras([0.0, 40.0, 80.0, 120.0, 150.0])
    frame = scene_frame(c2w)
    assert torch.allclose(frame.centre, CENTRE, atol=1e-9)
    assert torch.allclose(frame.rotation @ UP, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), atol=1e-9)
    assert frame.scale == pytest.approx(1 / RADIUS)
    run = frame.to_run(c2w)
    assert torch.allclose(run[:, :3, 3].norm(dim=1), torch.ones(5, dtype=torch.float64))
    el, az, _ = C.cartesian_to_spherical(run[:, :3, 3])
    assert torch.allclose(el, torch.full((5,), ELEVATION, dtype=torch.float64), atol=1e-9)
    assert az[0].abs() < 1e-9  # the first photo at azimuth 0
    assert torch.allclose(frame.to_dataset(run), c2w, atol=1e-9)
    C.validate_poses(run)  # still proper rotations


@pytest.mark.parametrize("placement", ["arc", "orbit"])
def test_generated_cameras_circle_the_focus_at_the_photos_distance_and_elevations(placement):
    frame = scene_frame(capture_cameras([0.0, 50.0, 100.0, 150.0]))
    run = frame.to_run(capture_cameras([0.0, 50.0, 100.0, 150.0]))
    start, span = covered_arc(C.cartesian_to_spherical(run[:, :3, 3])[1])
    assert span == pytest.approx(math.radians(150.0))
    targets = cameras_around_inputs(run, 6, (0.0, 15.0), placement)
    el, az, r = C.cartesian_to_spherical(targets[:, :3, 3])
    assert torch.allclose(r, torch.ones(6, dtype=torch.float64))
    expected_el = [ELEVATION + math.radians(15.0 * (i % 2)) for i in range(6)]
    assert torch.allclose(el, torch.tensor(expected_el, dtype=torch.float64), atol=1e-9)
    fwd = -targets[:, :3, 2]  # every camera looks at the focus (the origin)
    assert torch.allclose(fwd, -targets[:, :3, 3], atol=1e-9)
    first = float(C.cartesian_to_spherical(run[0, :3, 3])[1])
    az = torch.remainder(az - (start if placement == "arc" else first), 2 * math.pi)
    total = span if placement == "arc" else 2 * math.pi  # the arc starts after the largest gap; the orbit at photo 0
    assert torch.allclose(az, total * (torch.arange(6, dtype=torch.float64) + 0.5) / 6, atol=1e-9)
    # back in the dataset's frame: on the sphere of the capture's radius about its centre
    back = frame.to_dataset(targets)
    assert torch.allclose((back[:, :3, 3] - CENTRE).norm(dim=1), torch.full((6,), RADIUS, dtype=torch.float64))


def test_photo_selection_keeps_evenly_spaced_views_and_holds_out_as_nvs_eval():
    fit, held = select_views(10, PosedInputsConfig(holdout="every:4"))
    assert held == [0, 4, 8] and fit == [1, 2, 3, 5, 6, 7, 9]
    fit, held = select_views(81, PosedInputsConfig(max_views=5, holdout="list:1"))
    assert held == [20] and fit == [0, 40, 60, 80]
    assert select_views(3, PosedInputsConfig(holdout="none")) == ([0, 1, 2], [])


# --------------------------------------------------------------------------- runs


def test_reconstruct_a_posed_dataset_scores_held_out_photos_and_resumes(tmp_path, tiny_model_dir, one_thread, capsys):
    """`nvs reconstruct DATASET` on a 6-photo transforms.json: photos 0 and 3 held out, 4 views generated on
    the arc the photos cover (each from its nearest photo), the splats fitted and scored at the held-out
    photos' cameras; stopped after 10 of 20 steps and resumed from the CLI it ends with the same Gaussians."""
    from novelviews.cli import main
    from novelviews.config import load
    from novelviews.splats.ply import read_splat_ply
    from novelviews.splats.reconstruct import run_reconstruct
    from novelviews.splats.reconstruct_config import ReconstructConfig, read_run_config

    data = write_capture(tmp_path / "capture")
    run = tmp_path / "run"
    assert main(["reconstruct", str(data), "--out", str(run), "--model", str(tiny_model_dir), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "held-out photos" in printed and "(4 photos + generated)" in printed
    info = json.loads((run / "info.json").read_text())
    assert info["inputs"] == 4 and info["held_out_photos"] == 2 and info["views"] == 4 + 4
    assert info["holdout_photos"] == ["frame_00000.png", "frame_00003.png"]
    assert math.isfinite(info["holdout_psnr"]) and len(info["holdout_psnr_per_view"]) == 2
    assert info["frame"]["scale"] == pytest.approx(1 / RADIUS)
    for name in ("inputs/cameras.json", "inputs/005.png", "views/003.png", "views/anchors.json",
                 "holdout/photo_000.png", "holdout/photo_003.png", "splats.ply", "video.mp4"):
        assert (run / name).is_file(), name
    assert read_run_config(run / "config.yaml").inputs.dataset == str(data)
    # the generated cameras: on the unit sphere about the focus, inside the photos' arc, from the nearest fitted photo
    frames = json.loads((run / "views" / "cameras.json").read_text())["frames"]
    gen = torch.tensor([f["c2w"] for f in frames], dtype=torch.float64)
    _, _, r = C.cartesian_to_spherical(gen[:, :3, 3])
    assert torch.allclose(r, torch.ones(4, dtype=torch.float64), atol=1e-6)
    d = SceneFrame.from_dict(info["frame"]).to_dataset(gen)[:, :3, 3] - CENTRE  # in the capture's y-up frame
    deg = torch.rad2deg(torch.atan2(d[:, 2], d[:, 0]))
    assert torch.allclose(deg, torch.tensor([135.0, 105.0, 75.0, 45.0], dtype=torch.float64), atol=1e-6)  # in 30..150
    elev = torch.rad2deg(torch.asin(d[:, 1] / d.norm(dim=1)))
    assert torch.allclose(elev, torch.tensor([20.0, 35.0, 10.0, 20.0], dtype=torch.float64), atol=1e-6)
    photos = json.loads((run / "inputs" / "cameras.json").read_text())["frames"]
    fitted = [p for p in photos if not p["held_out"]]
    anchors = json.loads((run / "views" / "anchors.json").read_text())["anchors"]
    for g, (name,) in zip(gen, anchors):
        dist = C.pose_distance(g[None], torch.tensor([p["c2w"] for p in fitted]), scale=1.0)[0]
        nearest = {fitted[j]["name"] for j in range(len(fitted)) if dist[j] < dist.min() + 1e-6}  # ties: either
        assert name in nearest and len(nearest) <= 2

    cfg = load(ReconstructConfig, overrides=TINY + [f"model={tiny_model_dir}"])
    part = run_reconstruct(data, tmp_path / "part", cfg, stop_after=10)
    assert part["step"] == 10 and not (tmp_path / "part" / "splats.ply").exists()
    assert main(["reconstruct", "--resume", "--out", str(tmp_path / "part"), "device=cpu"]) == 0
    done = read_splat_ply(tmp_path / "part" / "splats.ply")
    for key, value in read_splat_ply(run / "splats.ply").tensors().items():
        assert torch.equal(done.tensors()[key], value), key
    assert json.loads((tmp_path / "part" / "info.json").read_text())["holdout_psnr"] == info["holdout_psnr"]


def test_initial_gaussians_lie_in_the_photos_common_view_volume(tmp_path):
    from novelviews.splats.init import random_init
    from novelviews.splats.reconstruct_config import InitConfig

    c2w = scene_frame(capture_cameras([0.0, 75.0, 150.0])).to_run(capture_cameras([0.0, 75.0, 150.0]))
    S = 16
    K = C.intrinsics_from_fov(math.radians(30.0), S, S).expand(3, 3, 3)
    photos = torch.rand(3, S, S, 3, generator=torch.Generator().manual_seed(0))
    g = random_init(photos, c2w, K, InitConfig(points=200), 0.6, 0, torch.Generator().manual_seed(1), min_visible=1.0)
    assert len(g) == 200
    for m in range(3):  # every point projects inside every photo
        q = (g.means.double() - c2w[m, :3, 3]) @ c2w[m, :3, :3]
        uv = (K[m] @ torch.stack([q[:, 0], -q[:, 1], -q[:, 2]], 0)).T
        u, v = uv[:, 0] / uv[:, 2], uv[:, 1] / uv[:, 2]
        assert (q[:, 2] < 0).all() and (u >= 0).all() and (u < S).all() and (v >= 0).all() and (v < S).all()
    loose = random_init(photos, c2w, K, InitConfig(points=200), 0.6, 0, torch.Generator().manual_seed(1))
    q = (loose.means.double() - c2w[0, :3, 3]) @ c2w[0, :3, :3]
    assert ((q[:, 0] / -q[:, 2]).abs() > math.tan(math.radians(15.0))).any()  # unfiltered: some outside


def test_bad_datasets_fail_in_one_line_and_write_nothing(tmp_path, tiny_model_dir, capsys):
    from novelviews.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "transforms.json").write_text(json.dumps({"frames": []}))
    assert main(["reconstruct", str(empty), "--out", str(tmp_path / "r1"), "--model", "nowhere", "device=cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "frames" in err and "\n" not in err
    data = write_capture(tmp_path / "broken", n=3)
    for p in (data / "images").iterdir():
        p.write_bytes(b"not a png")
    assert main(["reconstruct", str(data), "--out", str(tmp_path / "r2"), "--model", str(tiny_model_dir), "device=cpu",
                 "inputs.holdout=none"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "frame_00000.png" in err and "check the file" in err and "\n" not in err
    assert not (tmp_path / "r2").exists() or not os.listdir(tmp_path / "r2")
    assert main(["reconstruct", str(write_capture(tmp_path / "one", n=3)), "--out", str(tmp_path / "r3"),
                 "inputs.holdout=loo", "device=cpu"]) == 2
    assert "inputs.holdout=loo" in capsys.readouterr().err
