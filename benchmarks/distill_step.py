"""Benchmark: one distillation step in each phase of the run (``phases``) - speed, peak memory, profile.

A full run needs thousands of steps before its later phases start, so this benchmark times
each phase directly: it builds a fresh run exactly as ``nvs distill`` does (demo model, the
bundled example image, ``DistillConfig`` defaults plus any overrides), then, for every phase of
``phases`` (e.g. batch 6 at 64 px, then 1 view at 128 px), runs ``--warmup`` steps at the
phase's first step index, times ``--steps`` steps (synchronised) with the peak GPU memory of
that phase, and profiles ``--profile`` more steps with ``torch.profiler`` (top ops by device
time, kernels launched per step, CPU time per step). Writes JSON (``--out``).

    python benchmarks/distill_step.py --device cpu --steps 2 --warmup 1 --profile 1 \\
        phases.batch_sizes=[2,1] field.grid.n_levels=8            # CPU smoke run
    python benchmarks/distill_step.py --device cuda --out $OUT/distill_step.json
    python benchmarks/distill_step.py --device cuda --low-memory --out $OUT/distill_step_lowmem.json
    python benchmarks/distill_step.py --device cuda --model zeronvs-random     # ZeroNVS-size, random weights
    python benchmarks/distill_step.py --device cuda --reference-path          # the plain PyTorch path

``--model PRESET-random`` (``zeronvs-random``: 859 M UNet, SD VAE, CLIP ViT-L/14) builds that
architecture with random weights on the device, so the full-size numbers need no checkpoint
(speed and memory do not depend on the weights' values). ``--reference-path`` applies
``novelviews.nerf.distill.REFERENCE_PATH`` (PyTorch hash grid, no checkpointing, nothing
offloaded) before the overrides.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from novelviews.config import load, nest_dotted
from novelviews.io.images import image_to_tensor
from novelviews.io.runs import atomic_write_json
from novelviews.nerf.distill import (LOW_MEMORY_PRESET, REFERENCE_PATH, DistillConfig, guidance_inputs, optimizer_step,
                                     phase, preset_settings, resolve_precision, start_training, step_info, train_step,
                                     unused_parts_offloaded)
from novelviews.views import input_scale, load_any_model, prepare_input_image, resolve_device

ROOT = Path(__file__).resolve().parents[1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def profile_steps(run_step, n: int, device: torch.device, rows: int = 20) -> dict:
    """``torch.profiler`` over ``n`` calls of ``run_step``: top ops, kernels and CPU time per step."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    _sync(device)
    t0 = time.perf_counter()
    with profile(activities=acts) as prof:
        for _ in range(n):
            run_step()
        _sync(device)
    wall = (time.perf_counter() - t0) / n
    events = prof.key_averages()
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    out = {"wall_ms_per_step_profiled": round(1e3 * wall, 2),
           "table": events.table(sort_by=key, row_limit=rows)}
    if device.type == "cuda":
        kernels = [e for e in prof.events() if e.device_type.name == "CUDA"]
        out["kernels_per_step"] = round(len(kernels) / n, 1)
        out["device_ms_per_step"] = round(sum(e.device_time for e in kernels) / 1e3 / n, 2)
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo")
    p.add_argument("--image", default=str(ROOT / "examples" / "scene.png"))
    p.add_argument("--device", default="auto")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps per phase")
    p.add_argument("--steps", type=int, default=30, help="timed steps per phase")
    p.add_argument("--profile", type=int, default=3, help="profiled steps per phase (0: no profile)")
    p.add_argument("--out", type=Path, default=None, help="JSON file")
    p.add_argument("--low-memory", action="store_true", help="start from `nvs distill --low-memory`'s settings")
    p.add_argument("--reference-path", action="store_true", help="the plain PyTorch path (REFERENCE_PATH)")
    p.add_argument("overrides", nargs="*", help="DistillConfig overrides key=value")
    args = p.parse_args(argv)
    base = {**(preset_settings(LOW_MEMORY_PRESET) if args.low_memory else {}),
            **(REFERENCE_PATH if args.reference_path else {})}
    cfg = load(DistillConfig, base=nest_dotted(base), overrides=args.overrides)
    cfg.validate()
    device = resolve_device(args.device)
    amp = resolve_precision(cfg.precision, device)
    model = load_any_model(args.model, device, torch.float32, cfg.use_ema).eval().requires_grad_(False)
    S = model.config.image_size
    img = prepare_input_image(args.image, S, cfg.image)
    scale, _ = input_scale(cfg.camera, S, cfg.image, image=img, device=device)
    input_img = image_to_tensor(img)  # [1, 3, S, S] in [-1, 1]
    # as nvs distill sets a run up (no anchors)
    scene, opt, scaler, gen = start_training(cfg, S, device, amp)
    pool, target, alphas, denoiser = guidance_inputs(model, cfg, scene, input_img, torch.zeros(0, 4, 4,
                                                     dtype=torch.float64), scale, input_img, amp)

    result = {"device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "model": args.model,
              "model_parameters": model.num_parameters(), "precision": cfg.precision, "low_memory": args.low_memory,
              "reference_path": args.reference_path, "overrides": list(args.overrides), "phases": []}
    # as nvs distill's training loop: the image encoder and the VAE decoder off the GPU
    with unused_parts_offloaded(model, cfg.offload_unused and device.type == "cuda"):
        starts = [0] + [int(m * cfg.phases.steps) for m in cfg.phases.milestones]
        for i, s0 in enumerate(starts):
            B, r = phase(s0, cfg.phases, S)
            state = {"step": s0, "infos": []}

            def run_step():
                loss, info = train_step(state["step"], scene, model, pool, target, cfg, gen, alphas, amp, denoiser)
                optimizer_step(loss, opt, scaler)
                state["step"] += 1
                state["infos"].append(step_info(info))  # as the training loop: one read-back per step

            t0 = time.perf_counter()
            for k in range(args.warmup):
                run_step()
                if k == 0:  # the phase's first step: with render.compile it waits for torch.compile
                    _sync(device)
                    first = time.perf_counter() - t0
            state["infos"].clear()
            _sync(device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                run_step()
            _sync(device)
            dt = (time.perf_counter() - t0) / max(args.steps, 1)
            row = {"phase": i, "first_step": s0, "batch": B, "render_size": r, "timed_steps": args.steps,
                   "ms_per_step": round(1e3 * dt, 2), "steps_per_s": round(1.0 / dt, 3)}
            if args.warmup:
                row["first_step_s"] = round(first, 2)
            # samples per ray the fields were queried at (empty-space skipping), mean over the timed steps
            for key, n in (("field_kept", cfg.sampler.num_samples), ("proposal_kept", cfg.sampler.num_proposal_samples)):
                kept = [inf[key] for inf in state["infos"] if key in inf]
                if kept:
                    row[key.replace("_kept", "_samples_per_ray")] = round(n * sum(kept) / len(kept), 2)
            if device.type == "cuda":
                row["peak_memory_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
                row["peak_reserved_gb"] = round(torch.cuda.max_memory_reserved(device) / 2**30, 3)
            if args.profile > 0:
                row["profile"] = profile_steps(run_step, args.profile, device)
            print(json.dumps({k: v for k, v in row.items() if k != "profile"}), flush=True)
            if "profile" in row:
                print(row["profile"]["table"], flush=True)
            result["phases"].append(row)
    # a full run at these settings: the phases' step counts at their measured speed
    bounds = starts + [cfg.phases.steps]
    result["estimated_run_minutes"] = round(sum((bounds[k + 1] - bounds[k]) * result["phases"][k]["ms_per_step"]
                                                for k in range(len(starts))) / 6e4, 2)
    if args.out:
        atomic_write_json(args.out, result)
    print(f"estimated {cfg.phases.steps}-step run: {result['estimated_run_minutes']} min")
    return result


if __name__ == "__main__":
    main()
