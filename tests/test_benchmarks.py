"""Smoke tests of the benchmarks: each runs end to end at tiny size on the CPU."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_sampling", ROOT / "benchmarks" / "sampling.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop(spec.name, None)


TINY = ["--preset", "tiny", "--size", "32", "--steps", "2", "--device", "cpu", "--repeats", "2",
        "--unet-iters", "2", "--warmup-steps", "1"]


def test_main_runs_tiny_and_writes_json(bench, tmp_path):
    torch.manual_seed(0)
    out = tmp_path / "sampling.json"
    rep = bench.main(TINY + ["--configs", "fp32:1,fp32:3", "--channels-last", "--profile", "--profile-rows", "4",
                             "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["results"] == json.loads(json.dumps(rep["results"]))
    names = [r["config"] for r in data["results"]]
    assert names == ["fp32:1", "fp32:3"]  # channels-last variants are added for fp16/bf16 only
    for r in data["results"]:
        assert r["status"] == "ok", r
        assert len(r["latencies_s"]) == 2 and all(t > 0 for t in r["latencies_s"])
        assert r["latency_s"] == pytest.approx(sorted(r["latencies_s"])[0] / 2 + sorted(r["latencies_s"])[1] / 2)
        assert r["s_per_view"] == pytest.approx(r["latency_s"] / r["batch"])
        assert r["unet_ms_per_step"] > 0 and r["output_finite"] is True
        assert "achieved_tflops" not in r  # the docs/REFERENCE.md cost model is for the zeronvs preset only
        prof = r["profile"]  # --profile: one more full run under torch.profiler, its top operators
        assert prof["wall_ms"] > 0 and prof["device_busy_share"] is None and "convolution" in prof["table"]
    assert data["parameters"]["unet"] > 0 and data["environment"]["torch"] == torch.__version__
    assert data["environment"]["unet_attention_processor"]
    assert data["markdown_rows"].count("\n") == 1 and data["markdown_rows"].startswith("| cpu | fp32 | 1 | eager |")
    assert data["settings"]["steps"] == 2


def test_budget_spent_skips_but_still_writes(bench, tmp_path):
    out = tmp_path / "b.json"
    bench.main(TINY + ["--configs", "fp32:1,bf16:2", "--compile", "--budget-seconds", "0", "--out", str(out)])
    data = json.loads(out.read_text())
    assert [r["config"] for r in data["results"]] == ["fp32:1", "bf16:2", "bf16:2+compile"]
    assert all(r["status"] == "skipped" for r in data["results"])


def test_parse_and_expand_configs(bench):
    cs = bench.parse_configs("fp32:1, bf16:4, fp16:16+cl+compile, bf16:1+graph, bf16:16+cudnn+graph+fuse")
    assert [c.name for c in cs] == ["fp32:1", "bf16:4", "fp16:16+cl+compile", "bf16:1+graph",
                                    "bf16:16+graph+cudnn+fuse"]
    assert cs[4].fuse and not cs[3].fuse
    assert cs[3].graph and not cs[2].graph and cs[4].cudnn and not cs[3].cudnn
    ex = bench.expand_configs(bench.parse_configs("fp32:1,bf16:1,bf16:16"), channels_last=True, compile_=True)
    assert [c.name for c in ex] == ["fp32:1", "bf16:1", "bf16:16", "bf16:16+cl", "bf16:1+cl",
                                    "bf16:16+cl+compile", "bf16:1+cl+compile"]
    for bad in ("fp8:1", "bf16", "bf16:0", "bf16:2+fast", ""):
        with pytest.raises(SystemExit):
            bench.parse_configs(bad)


def test_cost_model_matches_design(bench):
    # docs/REFERENCE.md: one 256^2 view, 50 DDIM steps, CFG ~ 18.5 TFLOP (UNet 0.18 x 2 x 50 + decode 0.62)
    f = bench.flops_per_batch("zeronvs", 256, 32, 16, 50, 3.0)
    assert f["unet_step_tflop"] == pytest.approx(16 * 2 * 0.18)
    assert f["view_tflop"] == pytest.approx(18.0 + 0.62 + 0.27 / 16)
    assert bench.flops_per_batch("zeronvs", 256, 32, 1, 50, 1.0)["view_tflop"] == pytest.approx(9.0 + 0.62 + 0.27)
    assert bench.flops_per_batch("zeronvs", 512, 64, 1, 1, 3.0)["unet_step_tflop"] == pytest.approx(4 * 0.36)
    assert bench.flops_per_batch("tiny", 32, 16, 1, 2, 3.0) is None
    assert bench.fmt(None, "9.1f") == "        -" and bench.fmt(1.25, "9.1f") == "      1.2"


def _load_bench(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _benchmark_views(seed: int, offsets: list[float], size: int = 32):
    """Input and target renders of one held-out scene, as benchmarks/demo_quality.py makes them."""
    from novelviews.synth.render import render
    from novelviews.synth.scenes import sample_cameras, scene_from_seed

    scene = scene_from_seed(seed, "orbit")
    c2w, K = sample_cameras(scene, 1, size, size)
    tgt = _load_bench("demo_quality").targets_for(c2w[0], offsets, np.random.default_rng(seed))
    inp = render(scene, c2w, K, size, size, spp=2)["rgb"].permute(0, 3, 1, 2)
    gt = render(scene, tgt, K[0].expand(len(offsets), 3, 3), size, size, spp=2)["rgb"].permute(0, 3, 1, 2)
    return inp, gt


def test_demo_quality_compare_pairs_scenes_and_refuses_other_seeds(tmp_path, monkeypatch, capsys):
    dq = _load_bench("demo_quality")
    old = {"seeds": "0..2 (orbit family)", "per_view": {"30": {"psnr_model": [10.0, 12.0, 20.0]},
                                                      "90": {"psnr_model": [15.0, 15.0, 15.0]}}}
    new = {"seeds": "0..2 (orbit family)", "per_view": {"30": {"psnr_model": [11.0, 12.5, 21.5]},
                                                      "90": {"psnr_model": [14.0, 15.0, 16.0]}}}
    change = dq.paired_change(old, new)
    assert change["30"]["mean"] == pytest.approx(1.0) and change["30"]["n"] == 3
    assert change["30"]["sem"] == pytest.approx(0.5 / 3**0.5)  # std of [1, 0.5, 1.5] is 0.5
    assert change["90"]["mean"] == pytest.approx(0.0) and change["90"]["sem"] == pytest.approx(1 / 3**0.5)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(old))
    b.write_text(json.dumps(new))
    monkeypatch.setattr(sys, "argv", ["demo_quality.py", "--compare", str(a), str(b), "--out", str(tmp_path / "c.json")])
    dq.main()
    assert "+1.00 +- 0.29" in capsys.readouterr().out
    assert json.loads((tmp_path / "c.json").read_text())["change"]["90"]["mean"] == pytest.approx(0.0)
    with pytest.raises(SystemExit, match="different scenes or offsets"):
        dq.paired_change(old, new | {"seeds": "0..23 (orbit family)"})


def test_demo_quality_scores_mean_of_samples_and_blurred_copy_baseline(tmp_path, monkeypatch, tiny_model_dir):
    dq = _load_bench("demo_quality")
    out = tmp_path / "q.json"
    monkeypatch.setattr(sys, "argv", ["demo_quality.py", "--model", str(tiny_model_dir), "--scenes", "1",
                                      "--offsets", "30,90", "--steps", "2", "--samples", "2", "--blur", "2,8",
                                      "--device", "cpu", "--out", str(out)])
    dq.main()
    res = json.loads(out.read_text())
    assert res["samples"] == 2 and res["blur_sigmas"] == [2.0, 8.0]
    # the blurred-copy baseline, recomputed from the same render (32 px: sigma scales by 32 / 128)
    from novelviews.evaluate import gaussian_blur, psnr

    inp, gt = _benchmark_views(0, [30.0, 90.0])
    for sg in (2, 8):
        want = psnr(gaussian_blur(inp, sg / 4).expand_as(gt), gt)
        got = [res["per_view"][o][f"psnr_blur{sg}"][0] for o in ("30", "90")]
        assert got == pytest.approx(want.tolist(), abs=1e-4)
    for o in ("30", "90"):
        m = res["per_offset"][o]
        assert m["psnr_blur_best"] == max(m["psnr_blur2"], m["psnr_blur8"])
        assert m["gain_over_blur"] == pytest.approx(m["psnr_model"] - m["psnr_blur_best"])


def test_demo_diagnostics_runs_and_reports_vae_and_conditioning(tmp_path, monkeypatch, tiny_model_dir):
    mod = _load_bench("demo_diagnostics")
    out = tmp_path / "d.json"
    monkeypatch.setattr(sys, "argv", ["demo_diagnostics.py", "--model", str(tiny_model_dir), "--scenes", "2",
                                      "--offsets", "30", "--timesteps", "200,800", "--device", "cpu", "--out", str(out)])
    mod.main()
    res = json.loads(out.read_text())
    v = res["vae_recon_psnr"]
    assert 0 < v["min"] <= v["mean"] <= v["max"] < 100
    assert set(res["eps_mse_0deg"]) == {"full", "no_latent", "no_camera"}
    assert all(set(d) == {"200", "800"} and all(x > 0 for x in d.values()) for d in res["eps_mse_0deg"].values())
    # the copy baseline equals the quality benchmark's (same scenes and targets)
    from novelviews.evaluate import psnr

    want = [float(psnr(x, gt)[0]) for x, gt in (_benchmark_views(seed, [30.0]) for seed in range(2))]
    assert res["psnr_copy"]["30.0"] == pytest.approx(np.mean(want), abs=1e-4)


def test_real_photos_benchmark_on_the_tiny_model(tmp_path):
    """benchmarks/real_photos.py end to end on a tiny random model: real numbers in its JSON, and the
    copy baseline of the photo-plane scenes falls with the camera offset (the scenes are real 3D)."""
    pytest.importorskip("skimage")
    bench = _load_bench("real_photos")
    out = tmp_path / "rp.json"
    res = bench.main(["--model", "tiny-random", "--device", "cpu", "--scenes", "2", "--steps", "2",
                      "--offsets", "5,45", "--capture", str(tmp_path / "absent"), "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["photos"] == list(bench.PHOTOS) and saved["capture"] is None and res["capture"] is None
    per_photo = saved["input_view"]["per_photo"]
    assert len(per_photo) == 5 and all(np.isfinite(v["psnr_vae"]) and np.isfinite(v["psnr_view"])
                                       for v in per_photo.values())
    planes = saved["photo_planes"]["per_offset"]
    assert planes["5"]["n"] == planes["45"]["n"] == 2
    assert planes["5"]["psnr_copy"] > planes["45"]["psnr_copy"] + 1.0
    assert planes["5"]["gain"] == pytest.approx(planes["5"]["psnr_model"] - planes["5"]["psnr_copy"], abs=1e-6)


def test_sampler_choice_pairs_against_the_reference_and_picks_fewest_steps(tmp_path, tiny_model_dir):
    """benchmarks/sampler_choice.py on a tiny model: the reference row changes by exactly zero, every
    row is scored on the same views, and the choice obeys the tolerance rule."""
    pytest.importorskip("diffusers")
    sc = _load_bench("sampler_choice")
    out = tmp_path / "sc.json"
    res = sc.main(["--model", str(tiny_model_dir), "--scenes", "2", "--offsets", "30,90", "--samplers", "ddim,euler-a",
                   "--steps", "2,3", "--etas", "1", "--device", "cpu", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["rows"] == res["rows"] and saved["reference"] == "ddim eta 1 50"
    labels = [r["label"] for r in res["rows"]]
    assert labels == ["ddim eta 1 50", "ddim eta 1 2", "ddim eta 1 3", "euler-a 2", "euler-a 3"]
    ref = res["rows"][0]
    assert ref["psnr_change"] == 0.0 and ref["ssim_change"] == 0.0 and ref["psnr_change_sem"] == 0.0
    for r in res["rows"][1:]:
        assert r["psnr_change"] == pytest.approx(r["psnr"] - ref["psnr"], abs=1e-6)
    # the rule, applied to made-up rows: the fewest steps among those within both tolerances
    rows = [dict(label="a", steps=50, psnr_change=0.0, ssim_change=0.0, seconds_per_view=5.0),
            dict(label="b", steps=5, psnr_change=-0.3, ssim_change=0.01, seconds_per_view=0.5),
            dict(label="c", steps=10, psnr_change=-0.05, ssim_change=-0.001, seconds_per_view=1.0),
            dict(label="d", steps=10, psnr_change=0.02, ssim_change=-0.01, seconds_per_view=0.9)]
    assert sc.choose(rows, 0.1, 0.005)["label"] == "c"


def test_reconstruct_camera_mapping_keeps_relative_poses_and_matches_the_methods_input_camera(one_thread):
    """benchmarks/reconstruct.py maps a demo_quality scene into the frame of nvs reconstruct / distill:
    the input camera lands on theirs, relative poses keep their rotation and scale their translation."""
    rb = _load_bench("reconstruct")
    from novelviews import cameras as C
    from novelviews.synth.scenes import sample_cameras, scene_from_seed

    c2w = sample_cameras(scene_from_seed(2, "orbit"), 1, 32, 32)[0][0]  # demo_quality's input camera
    tgt = C.orbit_about_vertical(c2w, [np.radians(30), -np.radians(90)], [0.1, -0.1])
    frame = rb.method_frame(c2w, 1.5)
    assert rb.check_input_mapped(c2w, frame, 1.5) < 1e-9
    mapped = rb.map_cameras(torch.cat([c2w[None], tgt]), frame)
    want = C.camera_on_sphere(np.radians(frame["elevation_deg"]), 0.0, 1.5)
    assert torch.allclose(mapped[0], want, atol=1e-9)
    assert frame["factor"] == pytest.approx(1.5 / frame["scene_distance"]) and 2.0 < frame["scene_distance"] < 4.5
    rel_scene = torch.linalg.inv(c2w) @ tgt
    rel_method = torch.linalg.inv(mapped[0]) @ mapped[1:]
    assert torch.allclose(rel_method[:, :3, :3], rel_scene[:, :3, :3], atol=1e-9)
    assert torch.allclose(rel_method[:, :3, 3], frame["factor"] * rel_scene[:, :3, 3], atol=1e-9)
    # the targets keep their distance from the input camera's orbit centre, in the new units
    dist = (tgt[:, :3, 3] - frame["centre"]).norm(dim=1) * frame["factor"]
    assert torch.allclose(mapped[1:, :3, 3].norm(dim=1), dist, atol=1e-9)
    rolled = c2w.clone()
    rolled[:3, :2] = c2w[:3, [1, 0]] * torch.tensor([1.0, -1.0], dtype=c2w.dtype)  # 90 degrees of roll
    with pytest.raises(RuntimeError, match="not a z-up look-at"):
        rb.check_input_mapped(rolled, rb.method_frame(rolled, 1.0), 1.0)


def test_reconstruct_benchmark_times_and_scores_both_methods_on_the_tiny_model(tmp_path, one_thread):
    """benchmarks/reconstruct.py, both parts on the CPU at 32 px: phase times add up, --set reaches the
    run's config, and the quality numbers are those of the written splats / NeRF checkpoint rendered
    again at the mapped ground-truth cameras; the summary is the paired per-scene difference."""
    rb = _load_bench("reconstruct")
    from novelviews import cameras as C
    from novelviews.config import read_yaml
    from novelviews.evaluate import psnr, ssim
    from novelviews.nerf.distill import load_run, render_view
    from novelviews.splats.fit import render_views
    from novelviews.splats.ply import read_splat_ply

    out, work = tmp_path / "r.json", tmp_path / "work"
    res = rb.main(["--part", "timing,quality", "--preset", "tiny", "--size", "32", "--views", "2", "--device", "cpu",
                   "--set", "fit.steps=8", "views.num=2", "init.points=300", "splats.backend=torch", "output.video_frames=0",
                   "--model", "tiny-random", "--scenes", "1", "--offsets", "30,90", "--distill-steps", "2",
                   "--distill-set", "phases.batch_sizes=[1,1]", "field.grid.n_levels=4",
                   "field.grid.log2_hashmap_size=12", "sampler.kind=uniform", "sampler.num_samples=16",
                   "occupancy.enabled=false",
                   "--out", str(out), "--work", str(work)])
    saved = json.loads(out.read_text())
    assert saved["parts"] == json.loads(json.dumps(res["parts"]))
    tm = saved["parts"]["timing"]
    assert tm["status"] == "ok" and tm["views"] == 2 and tm["fit_steps"] == 8 and tm["gaussians"] > 0
    assert tm["config"]["splats"]["backend"] == "torch" and tm["config"]["init"]["points"] == 300
    ph = tm["phases_s"]
    assert all(v >= 0 for v in ph.values())
    assert ph["generate"] + ph["fit"] + ph["setup_and_outputs"] == pytest.approx(tm["run_s"], abs=0.005)
    assert tm["after_last_fit_step_s"] > 0
    assert tm["total_s"] >= tm["run_s"] + ph["model_build"] - 0.01 and tm["peak_gib"] is None  # no GPU
    assert tm["fit_steps_per_second"] == pytest.approx(8 / ph["fit"], rel=0.05)

    q = saved["parts"]["quality"]
    assert q["status"] == "ok" and [s["status"] for s in q["scenes"]] == ["ok"]
    sc = q["scenes"][0]
    assert sc["nerf"]["steps"] == 2 and sc["splats"]["fit_steps"] == 8
    rgb, depth, c2w, tgt, fov, gt = rb.scene_truth(0, [30.0, 90.0], 32)
    assert sc["copy"]["psnr"] == pytest.approx(psnr(rgb.permute(2, 0, 1)[None].expand_as(gt), gt).tolist(), abs=1e-3)
    for name in ("splats", "nerf"):  # each run was told the mapped input camera
        cam = read_yaml(work / "scene_000" / name / "config.yaml")["camera"]
        assert cam["elevation_deg"] == pytest.approx(sc["camera"]["elevation_deg"], abs=1e-3)
        assert cam["fov_deg"] == pytest.approx(np.degrees(fov), abs=1e-6)
        assert cam["scale"] == pytest.approx(sc["camera"]["scale"], rel=1e-4)
    frame = rb.method_frame(c2w, 1.0)
    cams = rb.map_cameras(tgt, frame).float()
    K = C.intrinsics_from_fov(fov, 32, 32).float()
    splat = render_views(read_splat_ply(work / "scene_000" / "splats" / "splats.ply"), cams, K, 32, 32,
                         (1.0, 1.0, 1.0)).permute(0, 3, 1, 2)
    assert sc["splats"]["psnr"] == pytest.approx(psnr(splat, gt).tolist(), abs=1e-3)
    assert sc["splats"]["ssim"] == pytest.approx(ssim(splat, gt).tolist(), abs=1e-4)
    cfg, nerf, _ = load_run(work / "scene_000" / "nerf")
    with torch.no_grad():
        rend = torch.stack([render_view(nerf, cfg, c, 32, fov=fov)["rgb"].clamp(0, 1) for c in cams])
    assert sc["nerf"]["psnr"] == pytest.approx(psnr(rend.permute(0, 3, 1, 2), gt).tolist(), abs=1e-3)
    s = q["summary"]
    assert s["n"] == 1
    for i, off in enumerate(("30", "90")):
        b = s["per_offset"][off]
        assert b["psnr_splats_minus_nerf"] == pytest.approx(sc["splats"]["psnr"][i] - sc["nerf"]["psnr"][i])
        assert b["ssim_copy"] == pytest.approx(sc["copy"]["ssim"][i])
    assert s["all_offsets"]["psnr_nerf"] == pytest.approx(np.mean(sc["nerf"]["psnr"]))
    assert s["splats_at_least_nerf"] == (s["all_offsets"]["psnr_splats_minus_nerf"] >= 0
                                        and s["all_offsets"]["ssim_splats_minus_nerf"] >= 0)


def test_reconstruct_benchmark_records_skipped_parts_when_the_budget_is_spent(tmp_path):
    rb = _load_bench("reconstruct")
    out = tmp_path / "r.json"
    rb.main(["--part", "quality,timing", "--budget-seconds", "0", "--device", "cpu", "--out", str(out),
             "--work", str(tmp_path / "w")])
    parts = json.loads(out.read_text())["parts"]
    assert list(parts) == ["timing", "quality"] and all(p["status"] == "skipped" for p in parts.values())
    with pytest.raises(SystemExit):
        rb.main(["--part", "speed", "--device", "cpu", "--out", str(out)])
