"""Smoke tests of benchmarks/sampling.py: it runs end to end at tiny size on the CPU."""

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
    rep = bench.main(TINY + ["--configs", "fp32:1,fp32:3", "--channels-last", "--out", str(out)])
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
    cs = bench.parse_configs("fp32:1, bf16:4, fp16:16+cl+compile, bf16:1+graph, bf16:16+cudnn+graph")
    assert [c.name for c in cs] == ["fp32:1", "bf16:4", "fp16:16+cl+compile", "bf16:1+graph", "bf16:16+graph+cudnn"]
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
