"""benchmarks/diffusers_loops.py: the hand-written diffusers loops agree with our sampler, and the CLI runs."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from novelviews.generation import generate
from novelviews.sampling import SamplingConfig, ddim_timesteps, make_alphas_cumprod

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def loops(one_thread):
    name = "bench_diffusers_loops"
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "diffusers_loops.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def tiny(loops):
    torch.manual_seed(0)
    model = loops.build_model("tiny", 32, torch.device("cpu"))
    return model, loops.make_inputs(model, 2, 0)


def test_scheduler_is_our_ddim_schedule(loops):
    from novelviews.model import model_config

    schedule = model_config("tiny").schedule
    for steps in (1, 3, 7, 50, 333):
        sched = loops.ddim_scheduler(schedule)
        sched.set_timesteps(steps)
        assert [int(t) for t in sched.timesteps] == ddim_timesteps(1000, steps)
    ours = make_alphas_cumprod(1000, 0.00085, 0.012, "scaled_linear")
    assert torch.allclose(sched.alphas_cumprod.double(), ours, rtol=1e-5, atol=0)
    assert float(sched.final_alpha_cumprod) == pytest.approx(float(ours[0]), rel=1e-6)  # set_alpha_to_one=False
    rep = loops.scheduler_report(schedule, 50)
    assert rep["timesteps_match_reference"] and rep["first_timesteps"] == [1, 21, 41] and rep["last_timestep"] == 981


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_plain_loop_fp32_agrees_with_our_sampler(loops, eta):
    # same initial noise (and, at eta 1, the same per-view DDIM noise) -> the same images and latents
    rep = loops.agreement(steps=3, eta=eta, batch=2, tolerance=1e-4)
    assert rep["passed"], rep
    assert rep["max_abs_diff_images"] <= 1e-4 and rep["max_abs_diff_latents"] <= 1e-4
    assert rep["latent_abs_max"] > 1.0 and rep["image_abs_mean"] > 0.05  # the outputs are not trivially zero


def test_agreement_is_not_vacuous(loops, tiny):
    model, (image, cond, targets, fov) = tiny
    cfg = SamplingConfig(steps=3, guidance_scale=3.0, eta=0.0, batch_size=2, precision="fp32", seed=0)
    ours = generate(model, image, cond, targets, fov, scale=0.7, cfg=cfg, progress=False)
    same = loops.plain_loop(model, image, cond, targets, fov, 3, 3.0, 0.0, 0, scale=0.7)
    other_seed = loops.plain_loop(model, image, cond, targets, fov, 3, 3.0, 0.0, 1, scale=0.7)
    other_cfg = loops.plain_loop(model, image, cond, targets, fov, 3, 1.0, 0.0, 0, scale=0.7)
    assert (ours - same).abs().max() <= 1e-4
    assert (ours - other_seed).abs().max() > 1e-2 and (ours - other_cfg).abs().max() > 1e-2
    assert same.shape == (2, 3, 32, 32) and same.dtype == torch.float32 and same.device.type == "cpu"


def test_tuned_loop_prepares_and_restores(loops, tiny):
    from copy import deepcopy

    model, (image, cond, targets, fov) = tiny
    model = deepcopy(model)
    ref = loops.plain_loop(model, image, cond, targets, fov, 3, 3.0, 0.0, 0, scale=0.7)
    keys = set(model.state_dict())
    procs = {k: type(v).__name__ for k, v in model.unet.attn_processors.items()}
    tuned = loops.TunedLoop(model, compile_mode="off")
    assert tuned.applied["fuse_qkv"] == "applied" and tuned.applied["attention_processor"] == ["FusedAttnProcessor2_0"]
    assert model.unet.dtype == torch.bfloat16
    assert model.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    out = tuned(model, image, cond, targets, fov, 3, 3.0, 0.0, 0, scale=0.7)
    assert torch.isfinite(out).all() and (out - ref).abs().mean() < 0.02 and (out - ref).abs().max() < 0.2
    tuned.restore()
    assert set(model.state_dict()) == keys  # fused copies dropped
    assert {k: type(v).__name__ for k, v in model.unet.attn_processors.items()} == procs
    assert model.unet.conv_in.weight.is_contiguous()
    with pytest.raises(ValueError):
        loops.TunedLoop(model, compile_mode="fastest")


TINY = ["--device", "cpu", "--preset", "tiny", "--size", "32", "--steps", "2", "--batches", "2",
        "--repeats", "2", "--warmup-steps", "1"]


def test_main_writes_json(loops, tmp_path):
    out = tmp_path / "loops.json"
    rep = loops.main(TINY + ["--loops", "plain", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["results"] == json.loads(json.dumps(rep["results"]))
    env = data["environment"]
    assert env["torch"] == torch.__version__ and env["diffusers"] and env["date"] and env["gpu"] is None
    assert data["scheduler"]["timesteps_match_reference"] and data["agreement"]["passed"]
    assert data["settings"]["steps"] == 2 and data["parameters"]["unet"] > 0
    (r,) = data["results"]
    assert r["config"] == "plain:2" and r["status"] == "ok" and r["dtype"] == "float16", r
    assert r["output_finite"] is True and r["output_shape"] == [2, 3, 32, 32]
    assert len(r["latencies_s"]) == 2 and all(t > 0 for t in r["latencies_s"]) and r["warmup_s"] > 0
    assert r["latency_s"] == pytest.approx(sum(r["latencies_s"]) / 2)
    assert r["s_per_view"] == pytest.approx(r["latency_s"] / 2) and r["ms_per_view"] == pytest.approx(500 * r["latency_s"])
    assert "achieved_tflops" not in r  # the cost model covers the zeronvs preset only


def test_main_tuned_without_compile_and_budget(loops, tmp_path):
    out = tmp_path / "t.json"
    loops.main(TINY + ["--loops", "tuned", "--compile", "off", "--check", "off", "--out", str(out)])
    data = json.loads(out.read_text())
    (r,) = data["results"]
    assert r["status"] == "ok" and r["dtype"] == "bfloat16" and r["cudnn_benchmark"] is True, r
    assert r["applied"]["fuse_qkv"] == "applied" and r["applied"]["compile"] == "off" and r["output_finite"]
    assert "agreement" not in data

    skipped = tmp_path / "s.json"
    loops.main(TINY + ["--loops", "plain,tuned", "--batches", "2,1", "--check", "off", "--budget-seconds", "0",
                       "--out", str(skipped)])
    data = json.loads(skipped.read_text())
    assert [r["config"] for r in data["results"]] == ["plain:2", "plain:1", "tuned:2", "tuned:1"]
    assert all(r["status"] == "skipped" for r in data["results"])


def test_bad_lists_name_the_fix(loops):
    assert loops.parse_list("16, 1", "batches", int) == [16, 1]
    for text, what, conv, allowed in (("16,x", "batches", int, None), ("0", "batches", int, None),
                                      ("plain,fast", "loops", str, loops.LOOPS), ("", "loops", str, loops.LOOPS)):
        with pytest.raises(SystemExit, match=what):
            loops.parse_list(text, what, conv, allowed)
