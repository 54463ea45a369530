"""SDS distillation: guidance maths, timestep / camera schedules, anchoring, runs, resume, export."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from novelviews import cameras as C
from novelviews.config import from_dict, load
from novelviews.errors import ConfigError, NovelViewsError
from novelviews.nerf import anchors as A
from novelviews.nerf import distill as D
from novelviews.nerf.guidance import (
    GuidanceConfig,
    encode_renders,
    sds_gradient,
    sds_loss_from_grad,
    sds_weight,
    timestep_range,
)
from novelviews.sampling import make_alphas_cumprod


@pytest.fixture(scope="module")
def tiny_model():
    from novelviews.model import ViewConditionedLDM
    from novelviews.model.configuration import model_config

    torch.manual_seed(0)
    return ViewConditionedLDM(model_config("tiny")).eval()


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    from novelviews.io.images import save_image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:48] / 40.0
    img = np.stack([xx, yy, 0.5 + 0.3 * np.sin(6 * xx)], -1) * 0.8 + 0.2 * rng.random((40, 48, 3))
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    save_image(path, np.clip(img, 0, 1).astype(np.float32))
    return path


def tiny_cfg(**over) -> D.DistillConfig:
    data = {
        "device": "cpu",
        "phases": {"steps": 4, "batch_sizes": [2, 1], "render_scales": [0.5, 1.0], "milestones": [0.5]},
        "anchors": {"num": 2, "steps": 2},
        "field": {"grid": {"n_levels": 4, "log2_hashmap_size": 10, "base_resolution": 4, "per_level_scale": 1.5},
                  "mlp_width": 16},
        "sampler": {"kind": "uniform", "num_samples": 12},
        "occupancy": {"resolution": 16},
        "output": {"checkpoint_every": 2, "preview_every": 2, "log_every": 1, "video_frames": 2},
    }
    return load(D.DistillConfig, base=data, overrides=[f"{k}={v}" for k, v in over.items()])


# --------------------------------------------------------------------------- SDS


def test_sds_gradient_is_weighted_noise_residual_exactly():
    torch.manual_seed(0)
    alphas = make_alphas_cumprod()
    lat = torch.randn(1, 4, 6, 6, requires_grad=True)
    noise = torch.randn(1, 4, 6, 6)
    t = torch.tensor([500])

    def eps_fn(x, tt):  # a toy denoiser: affine in x_t
        return 0.3 * x + 0.1

    grad, eps_hat = sds_gradient(lat, t, noise, eps_fn, alphas)
    a = float(alphas[500])
    x_t = math.sqrt(a) * lat.detach() + math.sqrt(1 - a) * noise
    torch.testing.assert_close(eps_hat, 0.3 * x_t + 0.1)
    expected = (1 - a) * (0.3 * x_t + 0.1 - noise)
    torch.testing.assert_close(grad, expected, atol=1e-7, rtol=1e-6)
    sds_loss_from_grad(lat, grad).backward()
    torch.testing.assert_close(lat.grad, expected, atol=1e-6, rtol=1e-6)  # d loss / d latents = w(t)(eps_hat - eps)

    # a batch of 3: each image's latents receive grad / B; per-image t and weights
    lat3 = torch.randn(3, 4, 6, 6, requires_grad=True)
    t3 = torch.tensor([20, 400, 980])
    n3 = torch.randn(3, 4, 6, 6)
    g3, e3 = sds_gradient(lat3, t3, n3, eps_fn, alphas)
    w = (1 - alphas[t3]).float().view(-1, 1, 1, 1)
    torch.testing.assert_close(g3, w * (e3 - n3), atol=1e-7, rtol=1e-6)
    sds_loss_from_grad(lat3, g3).backward()
    torch.testing.assert_close(lat3.grad, g3 / 3, atol=1e-7, rtol=1e-6)


def test_sds_gradient_nan_clip_and_uniform_weighting():
    alphas = make_alphas_cumprod()
    lat = torch.zeros(1, 1, 2, 2)
    noise = torch.zeros(1, 1, 2, 2)
    t = torch.tensor([999])
    bad = torch.tensor([[[[float("nan"), 5.0], [-5.0, 0.5]]]])
    g, _ = sds_gradient(lat, t, noise, lambda x, tt: bad, alphas, weighting="uniform", grad_clip=1.0)
    assert g.flatten().tolist() == [0.0, 1.0, -1.0, 0.5]
    assert sds_weight(alphas, torch.tensor([0, 999])).tolist() == pytest.approx(
        [1 - float(alphas[0]), 1 - float(alphas[999])])


def test_sds_through_the_tiny_model(tiny_model):
    """Real model path: renders -> VAE (grad reaches the renders) -> CFG eps; scale 1 = plain eps."""
    torch.manual_seed(1)
    rgb = torch.rand(2, 3, 16, 16, requires_grad=True)
    lat = encode_renders(tiny_model, rgb, sample=False)
    assert lat.shape == (2, 4, 16, 16)
    alphas = make_alphas_cumprod()
    ctx = torch.randn(2, 1, tiny_model.context_dim)
    cond = torch.randn(2, 4, 16, 16)
    t = torch.tensor([300, 700])
    noise = torch.randn_like(lat)
    with torch.no_grad():
        a = alphas[t].float().view(-1, 1, 1, 1)
        x_t = a.sqrt() * lat + (1 - a).sqrt() * noise
        eps = tiny_model.predict_noise(x_t, t, ctx, cond)
    grad, _ = sds_gradient(lat, t, noise, lambda x, tt: tiny_model.predict_noise_cfg(x, tt, ctx, cond, 1.0), alphas)
    torch.testing.assert_close(grad, (1 - a) * (eps - noise), atol=1e-5, rtol=1e-5)
    sds_loss_from_grad(lat, grad).backward()
    assert rgb.grad is not None and rgb.grad.abs().sum() > 0


def test_timestep_annealing_matches_reference_keyframes():
    kf = GuidanceConfig().t_keyframes
    assert timestep_range(0, 4000, kf) == (750, 980)
    assert timestep_range(1000, 4000, kf) == (20, 980)
    assert timestep_range(2000, 4000, kf) == (20, 343)
    assert timestep_range(2500, 4000, kf) == (20, 25)
    assert timestep_range(3999, 4000, kf) == (20, 25)
    assert timestep_range(500, 4000, kf) == (385, 980)  # halfway between the first two key frames
    assert timestep_range(100, 400, kf) == (20, 980)  # fractions of the run: short runs keep the shape
    with pytest.raises(ConfigError):
        from_dict(GuidanceConfig, {"t_keyframes": [[0.5, 0.1, 0.9], [0.2, 0.1, 0.9]]})


# --------------------------------------------------------------------------- cameras and schedules


def test_random_cameras_widen_from_the_input_pose():
    cfg = from_dict(D.DistillConfig, {"phases": {"steps": 4000}})
    g = torch.Generator().manual_seed(0)
    first = D.sample_views(0, 5, cfg, g)
    inp = C.camera_on_sphere(math.radians(31.0), 0.0, 1.0)
    torch.testing.assert_close(first, inp.expand(5, 4, 4))
    late = D.sample_views(1000, 400, cfg, g)
    el, az, r = C.cartesian_to_spherical(late[:, :3, 3])
    assert math.degrees(el.min()) >= 5 - 1e-6 and math.degrees(el.max()) <= 80 + 1e-6
    assert r.min() >= 0.8 - 1e-9 and r.max() <= 1.8 + 1e-9
    assert az.min() < -2.5 and az.max() > 2.5  # full circle
    # every camera looks at the origin (OpenGL: -z towards the centre)
    fwd = -late[:, :3, 2]
    torch.testing.assert_close((fwd * -late[:, :3, 3]).sum(-1), r)
    half = D.camera_ranges(500, cfg)
    assert half["azimuth"] == pytest.approx((-math.pi / 2, math.pi / 2))
    assert half["distance"] == pytest.approx((0.9, 1.4))
    assert D.phase(0, cfg.phases, 128) == (6, 64) and D.phase(2000, cfg.phases, 128) == (1, 128)


def test_config_validation_messages():
    with pytest.raises(ConfigError, match="camera.fov_deg"):
        from_dict(D.DistillConfig, {"camera": {"fov_deg": 200}})
    with pytest.raises(ConfigError, match="phases.batch_sizes"):
        from_dict(D.DistillConfig, {"phases": {"batch_sizes": [6, 1], "render_scales": [1.0]}})
    with pytest.raises(ConfigError, match="sds_cameras.distance"):
        from_dict(D.DistillConfig, {"sds_cameras": {"distance": [1.5, 1.0]}})


# --------------------------------------------------------------------------- anchoring


def test_anchor_cameras_and_nearest_anchor():
    el = math.radians(31.0)
    cams = A.anchor_cameras(3, el, 1.0)
    e, az, r = C.cartesian_to_spherical(cams[:, :3, 3])
    assert torch.rad2deg(torch.remainder(az, 2 * math.pi)).tolist() == pytest.approx([90.0, 180.0, 270.0])
    assert e.tolist() == pytest.approx([el] * 3) and r.tolist() == pytest.approx([1.0] * 3)
    pool = torch.cat([C.camera_on_sphere(el, 0.0, 1.0)[None], cams])
    az_deg = torch.tensor([10.0, 80.0, 100.0, 200.0, 300.0, 350.0, 130.0])
    views = C.camera_on_sphere(torch.full_like(az_deg, el), torch.deg2rad(az_deg), torch.full_like(az_deg, 1.4))
    assert A.nearest_condition(views, pool).tolist() == [0, 1, 1, 2, 3, 0, 1]
    # brute force: the chosen index minimises the rotation angle
    ang = torch.stack([C.rotation_angle(views[:, :3, :3], p[:3, :3]) for p in pool], 1)
    assert torch.equal(A.nearest_condition(views, pool), ang.argmin(1))
    u = torch.tensor([0.1, 0.9, 0.2, 0.6, 0.3, 0.0, 0.95])
    assert A.choose_conditions(views, pool, 0.5, u).tolist() == [0, 0, 1, 0, 3, 0, 0]
    assert A.choose_conditions(views, pool, 0.0, u).tolist() == [0] * 7
    cfg = A.AnchoringConfig(num=3)
    assert [A.anchor_probability(s, 4000, cfg) for s in (0, 1000, 2000, 3000)] == pytest.approx([1, 0.5, 0, 0])
    assert A.anchor_probability(0, 4000, A.AnchoringConfig(num=0)) == 0.0


# --------------------------------------------------------------------------- runs


def test_distill_run_resume_and_export(tiny_model, photo, tmp_path, caplog):
    import trimesh

    cfg = tiny_cfg()
    straight = D.run_distill(photo, tmp_path / "a", cfg, progress=False, model=tiny_model)
    assert straight["step"] == 4 and straight["anchors"] == 2
    run = tmp_path / "a"
    for name in ("config.yaml", "input.png", "metrics.csv", "info.json", "anchors/000.png", "anchors/001.png",
                 "previews/step_000002.png", "previews/step_000004.png", D.CHECKPOINT):
        assert (run / name).is_file(), name
    assert (run / "video.mp4").exists() or (run / "video.gif").exists()
    anchors = json.loads((run / "anchors" / "cameras.json").read_text())["frames"]
    az = [math.degrees(math.atan2(f["c2w"][1][3], f["c2w"][0][3])) % 360 for f in anchors]
    assert az == pytest.approx([120.0, 240.0])
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 5 and rows[0].startswith("step,loss,sds,rgb")

    # 2 steps, stop, resume 2 more: same step count and the same loss curve
    part = D.run_distill(photo, tmp_path / "b", cfg, progress=False, model=tiny_model, stop_after=2,
                         write_outputs=False)
    assert part["step"] == 2
    assert (tmp_path / "b" / ".incomplete").is_file()  # stopped early on purpose: unfinished, to resume
    with pytest.raises(NovelViewsError, match="interrupted run: continue it with --resume"):
        D.run_distill(photo, tmp_path / "b", cfg, progress=False, model=tiny_model)
    resumed = D.run_distill(photo, tmp_path / "b", cfg, resume=True, progress=False, model=tiny_model)
    assert resumed["step"] == 4 and resumed["steps_this_call"] == 2
    assert not (tmp_path / "b" / ".incomplete").exists()
    ha = D.load_checkpoint(run / D.CHECKPOINT)
    hb = D.load_checkpoint(tmp_path / "b" / D.CHECKPOINT)
    la = [h["loss"] for h in ha["history"]]
    lb = [h["loss"] for h in hb["history"]]
    assert len(la) == len(lb) == 4
    np.testing.assert_allclose(lb, la, rtol=1e-5, atol=1e-6)
    for k, v in ha["modules"]["field"].items():
        torch.testing.assert_close(hb["modules"]["field"][k], v, atol=1e-6, rtol=1e-5)

    # a resume keeps the run's saved settings in full (outputs included) and names what it ignores
    D.run_distill(photo, tmp_path / "c", cfg, progress=False, model=tiny_model, stop_after=1, write_outputs=False)
    other = tiny_cfg(**{"output.preview_every": 1, "guidance.guidance_scale": 3.0})
    assert D.config_differences(cfg, other) == ["guidance.guidance_scale", "output.preview_every"]
    with caplog.at_level("INFO", logger="novelviews"):
        D.run_distill(photo, tmp_path / "c", other, resume=True, progress=False, model=tiny_model)
    assert "ignored: guidance.guidance_scale, output.preview_every" in caplog.text
    previews = sorted(p.name for p in (tmp_path / "c" / "previews").iterdir())
    assert previews == ["step_000002.png", "step_000004.png"]  # every 2 steps, as saved (not every step)

    # export: mesh with faces and colours that trimesh reloads; video
    info = D.run_export(run, what="mesh", format="ply", resolution=32, device="cpu")
    mesh = trimesh.load(info["path"], process=False)
    assert len(mesh.faces) == info["faces"] > 0
    cols = np.asarray(mesh.visual.vertex_colors)
    assert cols.shape == (len(mesh.vertices), 4) and cols[:, :3].std() >= 0
    assert info["level"] > 0
    with pytest.raises(NovelViewsError, match="already exists"):
        D.run_export(run, what="mesh", format="ply", resolution=32, device="cpu")
    vid = D.run_export(run, what="video", frames=2, device="cpu", progress=False)
    assert vid["frames"] == 2
    from novelviews.splats.ply import read_splat_ply

    spl = D.run_export(run, what="splats", resolution=16, device="cpu")  # one Gaussian per dense grid point
    assert len(read_splat_ply(spl["path"])) == spl["gaussians"] > 0 and Path(spl["points"]).is_file()
    with pytest.raises(NovelViewsError, match="mesh format"):
        D.run_export(run, what="mesh", format="stl", device="cpu")


def test_ctrl_c_saves_a_checkpoint(tiny_model, photo, tmp_path, monkeypatch):
    real = D.train_step

    def step_then_interrupt(step, *args, **kwargs):
        out = real(step, *args, **kwargs)
        if step == 0:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(D, "train_step", step_then_interrupt)
    cfg = tiny_cfg(**{"anchors.num": 0, "output.preview_every": 0})
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN in a background job
    with pytest.raises(KeyboardInterrupt):
        D.run_distill(photo, tmp_path / "c", cfg, progress=False, model=tiny_model)
    state = D.load_checkpoint(tmp_path / "c" / D.CHECKPOINT)
    assert state["step"] == 1 and len(state["history"]) == 1
    assert signal.getsignal(signal.SIGINT) is before
    with pytest.raises(NovelViewsError, match="cannot resume"):
        D.run_distill(photo, tmp_path / "missing", cfg, resume=True, progress=False, model=tiny_model)


_KILLED_RUN = """
import os, signal, sys
import novelviews.nerf.distill as D
real = D.train_step
def train_step(step, *args, **kwargs):
    if step == int(os.environ["KILL_AT_STEP"]):
        os.kill(os.getpid(), signal.SIGKILL)  # no clean-up of any kind, as a power cut or the OOM killer
    return real(step, *args, **kwargs)
D.train_step = train_step
from novelviews.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, tiny_model_dir, photo):
    """SIGKILL during nvs distill, then --resume: the same steps, loss curve and final field as a run
    that was never stopped (checkpoints are written atomically, with the RNG state); the killed run
    is marked unfinished and a rerun without --resume says so."""
    import subprocess
    import sys

    from novelviews.cli import main
    from novelviews.io.runs import INCOMPLETE

    opts = ["--model", str(tiny_model_dir), "--device", "cpu", "--quiet", "--steps", "4", "anchors.num=0",
            "output.checkpoint_every=1", "output.preview_every=0", "output.video_frames=2", "occupancy.resolution=16",
            "field.grid.n_levels=4", "field.grid.log2_hashmap_size=10", "sampler.kind=uniform",
            "sampler.num_samples=8", "phases.batch_sizes=[1,1]"]
    assert main(["distill", str(photo), "--out", str(tmp_path / "straight"), *opts]) == 0
    killed = tmp_path / "killed"
    r = subprocess.run([sys.executable, "-c", _KILLED_RUN, "distill", str(photo), "--out", str(killed), *opts],
                       env={**os.environ, "KILL_AT_STEP": "2"}, capture_output=True, text=True, timeout=300)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    assert (killed / INCOMPLETE).is_file() and D.load_checkpoint(killed / D.CHECKPOINT)["step"] == 2
    assert main(["distill", str(photo), "--out", str(killed), *opts]) == 2  # names --resume, deletes nothing
    assert D.load_checkpoint(killed / D.CHECKPOINT)["step"] == 2
    assert main(["distill", str(photo), "--out", str(killed), *opts, "--resume"]) == 0
    assert not (killed / INCOMPLETE).exists()
    a, b = D.load_checkpoint(tmp_path / "straight" / D.CHECKPOINT), D.load_checkpoint(killed / D.CHECKPOINT)
    assert a["step"] == b["step"] == 4
    np.testing.assert_allclose([h["loss"] for h in b["history"]], [h["loss"] for h in a["history"]], rtol=1e-5,
                               atol=1e-6)
    for k, v in a["modules"]["field"].items():
        torch.testing.assert_close(b["modules"]["field"][k], v, atol=1e-6, rtol=1e-5)
