"""Benchmark: the full distillation pipeline (demo model), with and without SDS anchoring.

A procedural scene (``synth.scene_from_seed``) gives the input photo and exact ground truth
at held-out cameras. The input camera is at azimuth 0, elevation 31 deg, distance
``--scene-distance`` (synth units) looking at the origin with the default fov; the NeRF world
puts the same camera at distance 1 (``camera.distance``), so a held-out camera at (elevation,
azimuth, D) in the scene is (elevation, azimuth, 1) in the NeRF. The 6DoF+1 scale is the
input depth's 0.2-quantile divided by D.

For each variant (``anchors.num = 0`` and ``--anchors``) it runs ``run_distill`` for at most
``--steps`` steps and half the ``--budget-seconds`` (minus overhead), then renders the held-out
cameras and scores PSNR / SSIM (``novelviews.evaluate``). Writes ``distill.json`` (steps/s,
peak GPU memory, wall time, metrics per variant) and each run's folder (orbit ``video.mp4``,
``depth.mp4``, previews, metrics.csv) under ``--out`` (default ``$OUT`` or ``runs/bench_distill``).

Examples::

    python benchmarks/distill.py --preset tiny                     # CPU smoke run (~1-2 min)
    python benchmarks/distill.py --device cuda --budget-seconds 540 --steps 4000 --anchors 4
    python benchmarks/distill.py --device cuda --anchors 0 --reference-path --out runs/ref   # the plain PyTorch path
    python benchmarks/distill.py --device cuda --anchors 0 --model zeronvs-random          # full-size timing

``--reference-path`` runs the plain PyTorch path (``novelviews.nerf.distill.REFERENCE_PATH``) for
paired comparisons with the fast defaults (same scene, seed and settings); ``--model
zeronvs-random`` times the full-size architecture with random weights (its images are noise).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch

from novelviews import cameras as C
from novelviews import synth
from novelviews.config import load, merge, nest_dotted
from novelviews.evaluate import psnr, ssim
from novelviews.io.images import save_image
from novelviews.nerf.distill import REFERENCE_PATH, DistillConfig, load_run, render_view, run_distill
from novelviews.views import load_any_model, resolve_device

TINY = {
    "phases": {"steps": 3, "batch_sizes": [1, 1], "render_scales": [0.5, 1.0], "milestones": [0.5]},
    "field": {"grid": {"n_levels": 6, "log2_hashmap_size": 14, "base_resolution": 8, "per_level_scale": 1.5}},
    "sampler": {"kind": "uniform", "num_samples": 24},
    "anchors": {"steps": 3},
    "output": {"video_frames": 4, "preview_every": 0, "checkpoint_every": 1000},
}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="default", choices=["default", "tiny"])
    p.add_argument("--model", default="demo")
    p.add_argument("--device", default="auto")
    p.add_argument("--scene-seed", type=int, default=3)
    p.add_argument("--scene-distance", type=float, default=3.0)
    p.add_argument("--steps", type=int, default=None, help="distillation steps per variant (default: preset's)")
    p.add_argument("--anchors", type=int, default=4, help="K of the anchored variant (0 runs plain SDS only)")
    p.add_argument("--no-plain", action="store_true", help="run the anchored variant only (e.g. on a second GPU)")
    p.add_argument("--anchor-steps", type=int, default=None, help="DDIM steps per anchor")
    p.add_argument("--heldout", type=int, default=7, help="held-out azimuths (evenly spaced, excluding the input)")
    p.add_argument("--budget-seconds", type=float, default=540.0, help="wall-time budget of the whole benchmark")
    p.add_argument("--out", default=None)
    p.add_argument("--reference-path", action="store_true", help="the plain PyTorch path (REFERENCE_PATH)")
    p.add_argument("overrides", nargs="*", help="extra DistillConfig overrides key=value")
    args = p.parse_args(argv)
    t0 = time.time()
    out = Path(args.out or os.environ.get("OUT") or "runs/bench_distill")
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(args.device)
    model = load_any_model(args.model, device)
    S = model.config.image_size

    # input + ground truth from the procedural scene
    scene = synth.scene_from_seed(args.scene_seed, "orbit")
    preset = merge(TINY if args.preset == "tiny" else {}, nest_dotted(REFERENCE_PATH) if args.reference_path else {})
    base = load(DistillConfig, base=preset, overrides=args.overrides)
    el = math.radians(base.camera.elevation_deg)
    fov = math.radians(base.camera.fov_deg)
    K = C.intrinsics_from_fov(fov, S, S)
    az = torch.tensor([0.0] + [2 * math.pi * (i + 1) / (args.heldout + 1) for i in range(args.heldout)],
                      dtype=torch.float64)
    D = args.scene_distance
    cams_scene = C.camera_on_sphere(torch.full_like(az, el), az, torch.full_like(az, D))
    gt = synth.render(scene, cams_scene, K.expand(len(az), 3, 3), S, S, spp=2, device=device)
    gt_rgb = gt["rgb"].float().cpu()  # [N, S, S, 3]
    scale = float(C.depth_quantile_scale(gt["depth"][0].cpu())) / D
    save_image(out / "input.png", gt_rgb[0].numpy())
    save_image(out / "heldout_gt.png", torch.cat(list(gt_rgb[1:]), 1).numpy())
    cams_nerf = C.camera_on_sphere(torch.full_like(az, el), az, torch.full_like(az, base.camera.distance))

    variants = ([] if args.no_plain and args.anchors > 0 else [0]) + ([args.anchors] if args.anchors > 0 else [])
    setup_s = time.time() - t0
    result = {"device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
              "model": args.model, "image_size": S, "preset": args.preset, "reference_path": args.reference_path,
              "scene_seed": args.scene_seed,
              "scale": scale, "heldout_azimuth_deg": [round(math.degrees(a), 2) for a in az[1:].tolist()],
              "setup_seconds": round(setup_s, 2), "variants": {}}
    for i, k in enumerate(variants):
        over = [f"camera.scale={scale}", f"anchors.num={k}"]
        if args.steps:
            over.append(f"phases.steps={args.steps}")
        if args.anchor_steps:
            over.append(f"anchors.steps={args.anchor_steps}")
        cfg = load(DistillConfig, base=preset, overrides=list(args.overrides) + over)
        cfg.device = str(device)
        left = args.budget_seconds - (time.time() - t0)
        budget = max(5.0, 0.8 * left / (len(variants) - i) - 15.0)  # leave room for anchors, videos, scoring
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        tv = time.time()
        run_dir = out / f"anchors_{k}"
        info = run_distill(out / "input.png", run_dir, cfg, overwrite=True, progress=False, model=model,
                           max_seconds=budget)
        wall = time.time() - tv
        _, nerf, _ = load_run(run_dir, device)
        with torch.no_grad():
            preds = torch.stack([render_view(nerf, cfg, c, S)["rgb"].clamp(0, 1).float().cpu() for c in cams_nerf])
        save_image(run_dir / "heldout_pred.png", torch.cat(list(preds[1:]), 1).numpy())
        p_ = preds.permute(0, 3, 1, 2)
        g_ = gt_rgb.permute(0, 3, 1, 2)
        ps, ss = psnr(p_, g_), ssim(p_, g_)
        result["variants"][f"anchors_{k}"] = {
            "anchors": k, "steps": info["step"], "steps_target": info["steps"],
            "steps_per_second": info["steps_per_second"], "train_seconds": info["train_seconds"],
            "wall_seconds": round(wall, 2), "peak_memory_gb": info.get("peak_memory_gb"),
            "precision": info["precision"], "stopped": info["stopped"],
            "input_psnr": round(float(ps[0]), 3), "input_ssim": round(float(ss[0]), 4),
            "heldout_psnr": round(float(ps[1:].mean()), 3), "heldout_ssim": round(float(ss[1:].mean()), 4),
            "heldout_psnr_per_view": [round(float(v), 3) for v in ps[1:]],
        }
        print(json.dumps({f"anchors_{k}": result["variants"][f"anchors_{k}"]}), flush=True)
    result["wall_seconds"] = round(time.time() - t0, 2)
    (out / "distill.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
