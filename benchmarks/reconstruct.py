"""Benchmark: ``nvs reconstruct`` (3D Gaussian splats) - its speed at full size, and its quality
against the SDS NeRF of ``nvs distill`` on procedural scenes with exact ground truth.

``--part timing``: the ZeroNVS-size architecture (``model_config("zeronvs")``, built on the
device with random weights, nothing loaded; as benchmarks/sampling.py builds it), one input
photo (a procedural scene rendered at the model's size), ``views.num`` = ``--views`` (64)
generated views at ``--size`` (256) px and the splat fit at the reconstruct defaults, or
``--set key=value`` overrides of :class:`~novelviews.splats.reconstruct_config.ReconstructConfig`
(e.g. ``--set splats.backend=gsplat fit.steps=2000``). Reported: wall time of each phase (model
build; generation up to its last VAE decode, the GPU synchronised there; the fit loop, as the run
measures it; setup and outputs: the views saved and read back, the initial Gaussians, the final
checkpoint, the PLYs, held-out renders and video), the total, the peak GPU memory
(``torch.cuda.max_memory_allocated``, weights included: of the generation up to its last VAE
decode, of the fit from its first progress event on and the outputs, and the larger), the Gaussian count and the fit's steps/s. The times come from the run's
progress events and summary, so what is timed is the product's own code path.

``--part quality``: ``--scenes`` held-out procedural scenes chosen as benchmarks/demo_quality.py
chooses them (orbit seeds 0..N-1, or ``--seeds``; input camera from the scene's own camera
distribution; targets rotated about the world z axis by each ``--offsets`` angle, alternating sign,
elevation jittered by +-10 degrees). The input is the one ground-truth view (saved as a PNG, read
by both methods); (a) ``run_reconstruct`` fits splats, (b) ``run_distill`` distils a NeRF
(``--distill-steps``, default the product's 4000: ``phases.steps``, whose phase milestones,
camera widening, timestep and anchor schedules are fractions of it, so a shorter run keeps the
schedule's shape), both from that image with the same model (``--model``, default ``demo``).
Both are rendered at the ground-truth target cameras and scored (PSNR, SSIM, skimage-style)
against the exact renders; copying the input is the baseline. Per scene and per offset, and the
paired difference splats - NeRF (mean over scenes and its standard error).

Camera mapping (scene frame -> the methods' frame). ``nvs reconstruct`` and ``nvs distill`` put
the photo's camera at azimuth 0, elevation ``camera.elevation_deg``, distance ``camera.distance``
(default 1) from the origin, looking at it, z up, vertical fov ``camera.fov_deg``, scene scale
``camera.scale``. The procedural input camera sits at ``eye`` (2.5-4 units out) looking along
``f`` at a jittered origin, z up, no roll. Its orbit centre is taken as the point of its optical
axis closest to the scene origin, ``c = eye + d f`` with ``d = -eye . f``; the similarity

    x_method = s Rz(-a) (x_scene - c),   s = camera.distance / d,

(``a``: azimuth of ``eye - c``) maps the input camera exactly onto the methods' input camera with
``camera.elevation_deg = asin(-f_z)`` and ``camera.fov_deg`` = the scene's fov (checked at run
time). Every ground-truth target maps the same way (rotation ``Rz(-a) R``, position ``s Rz(-a)
(t - c)``), so its pose relative to the input - what the model sees - is unchanged, and the scale
becomes ``camera.scale = s x`` the 0.2-quantile of the input's depth (the 6DoF+1 scale
demo_quality.py gives the model, in the methods' units). Scene lengths shrink by ``s``, so the
NeRF's box (``field.bound`` 2) and the splats' initial ball and extent (multiples of
``camera.distance``) hold the scene as they would a photo at the default distance.

Both run folders are written under ``--work``; JSON to ``--out`` (default ``$OUT/reconstruct.json``),
rewritten after each phase / method / scene, so a killed run keeps what ran. ``--budget-seconds``
(from the start): parts that would start after it, and scenes that would start after it or with
less of it left than the previous scene took, are recorded as skipped.

Examples::

    python benchmarks/reconstruct.py --part timing --device cuda                  # 64 views, 256 px
    python benchmarks/reconstruct.py --part timing --set splats.backend=gsplat fit.steps=2000
    python benchmarks/reconstruct.py --part quality --scenes 4 --distill-steps 600 --device cuda
    python benchmarks/reconstruct.py --part timing,quality --preset tiny --size 32 --views 2 \\
        --set fit.steps=20 --model tiny-random --scenes 1 --distill-steps 10 --device cpu   # smoke test
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from novelviews import cameras as C
from novelviews.config import load, to_dict
from novelviews.io.runs import atomic_write_json

PARTS = ("timing", "quality")
# Settings of the quality part's runs that change only what is written, not what is fitted.
QUIET_SPLATS = ["output.video_frames=0"]
QUIET_NERF = ["output.preview_every=0", "output.video_frames=0"]


# --------------------------------------------------------------------------- helpers


def mean_sem(values) -> tuple[float, float]:
    """Mean and standard error of the mean (NaN for one value)."""
    d = np.asarray(values, dtype=np.float64)
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")


def resolve(device: str) -> torch.device:
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for but no CUDA GPU is available: use --device cpu")
    return dev


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_gib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 3) if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def build_model(preset: str, size: int, device: torch.device):
    """Random-weight model built directly on ``device`` (as benchmarks/sampling.py builds it)."""
    from novelviews.model import ViewConditionedLDM, model_config

    torch.manual_seed(0)
    cfg = model_config(preset, overrides=[f"image_size={size}"])
    with torch.device(device):
        model = ViewConditionedLDM(cfg)
    return model.eval().requires_grad_(False)


def scene_input(seed: int, size: int, device: torch.device):
    """A procedural scene's own input view: ``(rgb [S, S, 3] in [0, 1], depth [S, S], c2w [4, 4], fov)``."""
    from novelviews.synth.render import render
    from novelviews.synth.scenes import sample_cameras, scene_from_seed

    scene = scene_from_seed(seed, "orbit")
    c2w, K = sample_cameras(scene, 1, size, size)
    r = render(scene, c2w, K, size, size, spp=2, device=device)
    return r["rgb"][0].float().cpu(), r["depth"][0].double().cpu(), c2w[0], float(C.fov_from_intrinsics(K[0], size))


# --------------------------------------------------------------------------- camera mapping


def method_frame(c2w_in: torch.Tensor, distance: float) -> dict[str, Any]:
    """The similarity that takes a z-up scene whose input camera is ``c2w_in`` (OpenGL, no roll) to
    the frame of ``nvs reconstruct`` / ``nvs distill`` (module docstring): ``centre`` c, ``azimuth``
    a (radians), ``factor`` s, ``elevation_deg``."""
    c2w_in = torch.as_tensor(c2w_in, dtype=torch.float64)
    eye, fwd = c2w_in[:3, 3], -c2w_in[:3, 2]
    d = float(-(eye @ fwd))
    if d <= 0:
        raise ValueError("the input camera looks away from the scene origin")
    centre = eye + d * fwd
    rel = eye - centre
    return {"centre": centre, "azimuth": math.atan2(float(rel[1]), float(rel[0])), "factor": distance / d,
            "scene_distance": d, "elevation_deg": math.degrees(math.asin(max(-1.0, min(1.0, float(-fwd[2])))))}


def map_cameras(c2w: torch.Tensor, frame: dict[str, Any]) -> torch.Tensor:
    """``[..., 4, 4]`` scene-frame c2w -> the methods' frame (:func:`method_frame`)."""
    c2w = torch.as_tensor(c2w, dtype=torch.float64)
    a = -frame["azimuth"]
    Rz = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]],
                      dtype=torch.float64)
    out = c2w.clone()
    out[..., :3, :3] = Rz @ c2w[..., :3, :3]
    out[..., :3, 3] = frame["factor"] * ((c2w[..., :3, 3] - frame["centre"]) @ Rz.T)
    return out


def check_input_mapped(c2w_in_scene: torch.Tensor, frame: dict[str, Any], distance: float) -> float:
    """Largest element difference between the mapped input camera and the methods' input camera
    (raises when they differ: the mapping would not be the one the methods assume)."""
    want = C.camera_on_sphere(math.radians(frame["elevation_deg"]), 0.0, distance)
    err = float((map_cameras(c2w_in_scene, frame) - want).abs().max())
    if err > 1e-6:
        raise RuntimeError(f"camera mapping is off by {err:.3g}: the scene's input camera is not a z-up look-at")
    return err


# --------------------------------------------------------------------------- timing


def timing_part(args, device: torch.device, rec: dict, save: Callable[[], None], work: Path) -> None:
    from novelviews.io.images import save_image
    from novelviews.splats.reconstruct import run_reconstruct
    from novelviews.splats.reconstruct_config import ReconstructConfig

    rec["status"] = "running"
    t0 = time.perf_counter()
    model = build_model(args.preset, args.size, device)
    sync(device)
    rec["phases_s"] = {"model_build": round(time.perf_counter() - t0, 3)}
    rec["parameters"] = int(sum(p.numel() for p in model.parameters()))
    rec["weights_gib"] = round(torch.cuda.memory_allocated(device) / 2**30, 3) if device.type == "cuda" else None
    S = model.config.image_size
    rgb, _, _, _ = scene_input(args.timing_seed, S, device)
    photo = save_image(work / "timing_input.png", rgb.numpy())
    cfg = load(ReconstructConfig, base={"views": {"num": args.views}}, overrides=list(args.set))
    cfg.device = str(device)
    rec["config"] = to_dict(cfg)
    save()

    marks: dict[str, float] = {}
    last_save = [time.perf_counter()]
    decode = model.decode

    def timed_decode(*a, **k):  # the last batch's VAE decode comes after the last sampler-step event
        x = decode(*a, **k)
        sync(device)
        marks["decode_last"] = time.perf_counter()
        rec["peak_gib_generate"] = peak_gib(device)
        return x

    def progress(event: dict) -> None:
        sync(device)  # phase times include the GPU work queued before the event
        now = time.perf_counter()
        stage = event["stage"]
        if stage == "fit" and "fit_last" not in marks:  # generation is over: its peak is recorded
            rec["phases_s"]["generate"] = round(max(marks.get("generate_last", t_run),
                                                    marks.get("decode_last", t_run)) - t_run, 3)
            reset_peak(device)
            save()
        marks[f"{stage}_last"] = now
        if stage == "fit":
            rec["fit_progress"] = {"step": event["done"], "steps": event["total"], "gaussians": event["gaussians"],
                                   "seconds": round(now - t_run, 3)}
            if now - last_save[0] > 10:
                last_save[0] = now
                save()

    reset_peak(device)
    model.decode = timed_decode
    t_run = time.perf_counter()
    try:
        info = run_reconstruct(photo, work / "timing_run", cfg, overwrite=True, progress=progress, model=model)
    finally:
        del model.decode
    sync(device)
    t_end = time.perf_counter()
    gen_end = max(marks.get("generate_last", t_run), marks.get("decode_last", t_run))
    fit_end = marks.get("fit_last", t_end)
    fit_s = float(info["fit_seconds"])
    rec["phases_s"].update({
        "generate": round(gen_end - t_run, 3),
        "fit": round(fit_s, 3),
        # views saved and read back, the initial Gaussians, the final checkpoint, PLYs, renders, video
        "setup_and_outputs": round(t_end - gen_end - fit_s, 3),
    })
    rec["after_last_fit_step_s"] = round(t_end - fit_end, 3)  # the outputs (and the loop's last writes)
    rec["run_s"] = round(t_end - t_run, 3)
    rec["total_s"] = round(t_end - t0, 3)
    rec["peak_gib_fit"] = peak_gib(device)
    rec["peak_gib"] = (max(rec.get("peak_gib_generate") or 0.0, rec["peak_gib_fit"])
                       if device.type == "cuda" else None)
    rec.update({"image_size": S, "views": cfg.views.num, "gaussians": info["gaussians"], "fit_steps": info["step"],
                "fit_steps_per_second": info["steps_per_second"], "holdout_psnr_vs_generated": info.get("holdout_psnr"),
                "status": "ok"})
    rec.pop("fit_progress", None)


# --------------------------------------------------------------------------- quality


def demo_quality():
    """benchmarks/demo_quality.py as a module (its scene and target choice is the one scored here)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_demo_quality", Path(__file__).with_name("demo_quality.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def scene_truth(seed: int, offsets: list[float], size: int, views: Callable | None = None):
    """The held-out scene of benchmarks/demo_quality.py (its ``scene_views``): input rgb ``[S, S, 3]``,
    input depth ``[S, S]``, input c2w ``[4, 4]``, fov, target c2w ``[N, 4, 4]``, truth ``[N, 3, S, S]``."""
    r_in, c2w, K, tgt, gt = (views or demo_quality().scene_views)(seed, offsets, size)
    return (r_in["rgb"][0].float().cpu(), r_in["depth"][0].double().cpu(), c2w[0], tgt,
            float(C.fov_from_intrinsics(K[0], size)), gt.float().cpu())


def camera_settings(frame: dict[str, Any], fov: float, depth_scale: float) -> list[str]:
    return [f"camera.elevation_deg={frame['elevation_deg']!r}", f"camera.fov_deg={math.degrees(fov)!r}",
            f"camera.scale={frame['factor'] * depth_scale!r}", "camera.depth=null", "camera.depth_estimator=null"]


def scores(pred: torch.Tensor, gt: torch.Tensor) -> dict[str, list[float]]:
    from novelviews.evaluate import psnr, ssim

    return {"psnr": [round(float(v), 4) for v in psnr(pred, gt)], "ssim": [round(float(v), 5) for v in ssim(pred, gt)]}


def run_splats(photo: Path, run: Path, model, args, device, scene_c2w_in, tgt, fov, depth_scale, S) -> dict:
    from novelviews.splats.fit import render_views
    from novelviews.splats.ply import read_splat_ply
    from novelviews.splats.reconstruct import run_reconstruct
    from novelviews.splats.reconstruct_config import ReconstructConfig

    cfg = load(ReconstructConfig, overrides=QUIET_SPLATS + list(args.set))
    frame = method_frame(scene_c2w_in, cfg.camera.distance)
    cfg = load(ReconstructConfig, overrides=QUIET_SPLATS + list(args.set) + camera_settings(frame, fov, depth_scale))
    cfg.model, cfg.device = args.model, str(device)
    check_input_mapped(scene_c2w_in, frame, cfg.camera.distance)
    reset_peak(device)
    t = time.perf_counter()
    info = run_reconstruct(photo, run, cfg, overwrite=True, model=model)
    seconds = time.perf_counter() - t
    gaussians = read_splat_ply(run / "splats.ply").to(device)  # what the run wrote, read back
    K = C.intrinsics_from_fov(fov, S, S).float().to(device)
    pred = render_views(gaussians, map_cameras(tgt, frame).float().to(device), K, S, S, cfg.background, cfg.splats)
    return {"pred": pred.permute(0, 3, 1, 2).float().cpu(), "seconds": round(seconds, 3),
            "gaussians": info["gaussians"], "fit_steps": info["step"], "fit_steps_per_second": info["steps_per_second"],
            "peak_gib": peak_gib(device), "frame": frame}


def run_nerf(photo: Path, run: Path, model, args, device, scene_c2w_in, tgt, fov, depth_scale, S) -> dict:
    from novelviews.nerf.distill import DistillConfig, load_run, render_view, run_distill

    steps = [f"phases.steps={args.distill_steps}"] if args.distill_steps else []
    cfg = load(DistillConfig, overrides=QUIET_NERF + steps + list(args.distill_set))
    frame = method_frame(scene_c2w_in, cfg.camera.distance)
    cfg = load(DistillConfig, overrides=QUIET_NERF + steps + list(args.distill_set)
               + camera_settings(frame, fov, depth_scale))
    cfg.model, cfg.device = args.model, str(device)
    check_input_mapped(scene_c2w_in, frame, cfg.camera.distance)
    reset_peak(device)
    t = time.perf_counter()
    info = run_distill(photo, run, cfg, overwrite=True, progress=False, model=model, write_outputs=False)
    seconds = time.perf_counter() - t
    _, nerf, _ = load_run(run, device)  # the run's saved checkpoint, read back
    with torch.no_grad():
        pred = torch.stack([render_view(nerf, cfg, c, S, fov=fov)["rgb"].clamp(0, 1).float().cpu()
                            for c in map_cameras(tgt, frame).float().to(device)])
    return {"pred": pred.permute(0, 3, 1, 2), "seconds": round(seconds, 3), "steps": info["step"],
            "steps_target": info["steps"], "steps_per_second": info["steps_per_second"],
            "peak_gib": info.get("peak_memory_gb"), "frame": frame}


def summarise(scenes: list[dict], offsets: list[float]) -> dict:
    """Per offset and over all offsets: mean PSNR / SSIM of splats, NeRF and the copied input, and the
    paired per-scene difference splats - NeRF (mean, standard error, n) over the finished scenes."""
    done = [s for s in scenes if s.get("status") == "ok"]
    if not done:
        return {"n": 0}
    out: dict[str, Any] = {"n": len(done), "per_offset": {}}

    def block(pick: Callable[[dict, str, str], float]) -> dict:
        b: dict[str, float] = {}
        for metric in ("psnr", "ssim"):
            for method in ("splats", "nerf", "copy"):
                b[f"{metric}_{method}"] = float(np.mean([pick(s, method, metric) for s in done]))
            diff = [pick(s, "splats", metric) - pick(s, "nerf", metric) for s in done]
            b[f"{metric}_splats_minus_nerf"], b[f"{metric}_splats_minus_nerf_sem"] = mean_sem(diff)
        return b

    for i, off in enumerate(offsets):
        out["per_offset"][f"{off:g}"] = block(lambda s, m, k, i=i: s[m][k][i])
    out["all_offsets"] = block(lambda s, m, k: float(np.mean(s[m][k])))
    a = out["all_offsets"]
    out["splats_at_least_nerf"] = bool(a["psnr_splats_minus_nerf"] >= 0 and a["ssim_splats_minus_nerf"] >= 0)
    return out


def write_grid(path: Path, grid: list, offsets: list[float]) -> None:
    """PNG: per scene and offset, the input, the splats' and the NeRF's renders and the truth."""
    from novelviews.io.images import save_image
    from novelviews.io.video import contact_sheet

    tiles, labels = [], []
    for rgb, sp, ne, gt in grid:
        for j, off in enumerate(offsets):
            tiles += [rgb.numpy(), sp[j].permute(1, 2, 0).numpy(), ne[j].permute(1, 2, 0).numpy(),
                      gt[j].permute(1, 2, 0).numpy()]
            labels += ["input", f"splats {off:g}°", f"NeRF {off:g}°", "truth"]
    save_image(path, contact_sheet(tiles, cols=4, labels=labels))


def quality_part(args, device: torch.device, rec: dict, save: Callable[[], None], work: Path, deadline: float) -> None:
    from novelviews.io.images import save_image
    from novelviews.views import load_any_model

    offsets = [float(x) for x in args.offsets.split(",")]
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else list(range(args.scenes))
    rec.update({"status": "running", "model": args.model, "offsets_deg": offsets, "seeds": seeds,
                "distill_steps": args.distill_steps, "splat_overrides": list(args.set),
                "distill_overrides": list(args.distill_set), "scenes": []})
    model = load_any_model(args.model, device)
    S = model.config.image_size
    rec["image_size"] = S
    save()
    views = demo_quality().scene_views
    grid = []
    last = 0.0  # seconds the previous scene took: a scene that would not finish in the budget is skipped
    for seed in seeds:
        left = deadline - time.perf_counter()
        if left <= last:
            rec["scenes"].append({"seed": seed, "status": "skipped",
                                  "note": f"budget: {max(left, 0):.0f} s left, the previous scene took {last:.0f} s"})
            save()
            continue
        t_scene = time.perf_counter()
        row: dict[str, Any] = {"seed": seed, "status": "running"}
        rec["scenes"].append(row)
        try:
            rgb, depth, c2w_in, tgt, fov, gt = scene_truth(seed, offsets, S, views)
            depth_scale = float(C.depth_quantile_scale(depth))
            folder = work / f"scene_{seed:03d}"
            photo = save_image(folder / "input.png", rgb.numpy())
            row.update({"fov_deg": round(math.degrees(fov), 4), "depth_scale_scene": round(depth_scale, 5),
                        "copy": scores(rgb.permute(2, 0, 1)[None].expand_as(gt), gt)})
            preds = {}
            for name, fn in (("splats", run_splats), ("nerf", run_nerf)):
                res = fn(photo, folder / name, model, args, device, c2w_in, tgt, fov, depth_scale, S)
                preds[name] = res.pop("pred")
                frame = res.pop("frame")
                row.setdefault("camera", {"elevation_deg": round(frame["elevation_deg"], 4),
                                          "scene_distance": round(frame["scene_distance"], 5),
                                          "factor": round(frame["factor"], 6),
                                          "scale": round(frame["factor"] * depth_scale, 6)})
                row[name] = scores(preds[name], gt) | res
                save()
            row["status"] = "ok"
            if args.grid and len(grid) < 4:
                grid.append((rgb, preds["splats"], preds["nerf"], gt))
                write_grid(args.grid, grid, offsets)
            print(f"[reconstruct bench] scene {seed}: PSNR splats {np.round(row['splats']['psnr'], 2)} "
                  f"NeRF {np.round(row['nerf']['psnr'], 2)} copy {np.round(row['copy']['psnr'], 2)}",
                  file=sys.stderr, flush=True)
        except Exception as e:  # noqa: BLE001 - record it, go on with the next scene
            row.update({"status": "error", "error": f"{type(e).__name__}: {e}",
                        "traceback": traceback.format_exc(limit=8)})
            print(f"[reconstruct bench] scene {seed}: {row['error']}", file=sys.stderr, flush=True)
        last = time.perf_counter() - t_scene
        row["seconds"] = round(last, 3)
        rec["summary"] = summarise(rec["scenes"], offsets)
        save()
    rec["status"] = "ok"


# --------------------------------------------------------------------------- main


class Terminated(BaseException):
    """SIGTERM (e.g. from ``timeout``) arrived: not an Exception, so no per-scene handler swallows it."""


def _terminated(signum, frame):
    raise Terminated


def default_out() -> Path | None:
    out = os.environ.get("OUT")
    return Path(out) / "reconstruct.json" if out else None


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", default="timing,quality", help="comma-separated: timing, quality (in that order)")
    p.add_argument("--device", default="auto", help="auto | cuda | cuda:N | cpu")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="ReconstructConfig overrides of both parts' splat runs (e.g. splats.backend=gsplat)")
    p.add_argument("--budget-seconds", type=float, default=270.0,
                   help="parts and scenes that would start after this (from the start) are skipped")
    p.add_argument("--out", type=Path, default=None, help="JSON (default: $OUT/reconstruct.json if $OUT is set)")
    p.add_argument("--work", type=Path, default=Path("runs/bench_reconstruct"), help="folder of the run folders")
    g = p.add_argument_group("timing")
    g.add_argument("--preset", default="zeronvs", help="model preset built with random weights (zeronvs = full size)")
    g.add_argument("--size", type=int, default=256, help="image side in pixels")
    g.add_argument("--views", type=int, default=64, help="generated views (views.num; --set views.num wins)")
    g.add_argument("--timing-seed", type=int, default=0, help="procedural scene of the input photo")
    g = p.add_argument_group("quality")
    g.add_argument("--model", default="demo", help="demo | PRESET-random | a checkpoint path")
    g.add_argument("--scenes", type=int, default=4, help="held-out scenes: orbit seeds 0..N-1")
    g.add_argument("--seeds", default=None, help="comma-separated scene seeds instead of 0..scenes-1")
    g.add_argument("--offsets", default="15,30,60,90", help="target azimuth offsets in degrees")
    g.add_argument("--distill-steps", type=int, default=None,
                   help="NeRF distillation steps (phases.steps; default the product's); its phases scale with it")
    g.add_argument("--distill-set", nargs="*", default=[], metavar="KEY=VALUE", help="DistillConfig overrides")
    g.add_argument("--grid", type=Path, default=None, help="PNG: input / splats / NeRF / truth of up to 4 scenes")
    args = p.parse_args(argv)
    parts = [x.strip() for x in args.part.split(",") if x.strip()]
    bad = [x for x in parts if x not in PARTS]
    if bad or not parts:
        raise SystemExit(f"--part {args.part!r}: use a comma-separated list of {', '.join(PARTS)}")
    if args.size < 8 or args.views < 1 or args.scenes < 0 or (args.distill_steps is not None and args.distill_steps < 1):
        raise SystemExit("--size must be >= 8, --views and --distill-steps >= 1, --scenes >= 0")

    t0 = time.perf_counter()
    deadline = t0 + args.budget_seconds
    device = resolve(args.device)
    out = args.out or default_out()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "benchmark": "reconstruct",
        "command": " ".join(["python", "benchmarks/reconstruct.py", *(sys.argv[1:] if argv is None else argv)]),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "device": str(device), "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "parts": {},
    }

    def save() -> None:
        report["elapsed_s"] = round(time.perf_counter() - t0, 3)
        if out is not None:
            atomic_write_json(out, report)

    runners = {"timing": lambda rec: timing_part(args, device, rec, save, work),
               "quality": lambda rec: quality_part(args, device, rec, save, work, deadline)}
    old_term = signal.signal(signal.SIGTERM, _terminated)  # `timeout`: record where it stopped
    try:
        for part in [x for x in PARTS if x in parts]:
            rec: dict[str, Any] = {}
            report["parts"][part] = rec
            left = deadline - time.perf_counter()
            if left <= 0:
                rec.update({"status": "skipped", "note": "budget spent"})
                save()
                continue
            print(f"[reconstruct bench] {part} ({left:.0f} s of budget left)", file=sys.stderr, flush=True)
            try:
                runners[part](rec)
            except Terminated:
                rec["status"] = "terminated"
                for row in rec.get("scenes", []):
                    if row.get("status") == "running":
                        row["status"] = "terminated"
                save()
                raise SystemExit("terminated (SIGTERM): the JSON holds what finished")
            except Exception as e:  # noqa: BLE001 - record it, still write the JSON, go on with the next part
                oom = "out of memory" in str(e).lower()
                rec.update({"status": "oom" if oom else "error", "error": f"{type(e).__name__}: {e}",
                            "traceback": traceback.format_exc(limit=8)})
                print(f"[reconstruct bench] {part}: {rec['error']}", file=sys.stderr, flush=True)
            finally:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            save()
    finally:
        signal.signal(signal.SIGTERM, old_term)
    save()
    print(summary_text(report))
    return report


def summary_text(report: dict) -> str:
    lines = []
    tm = report["parts"].get("timing")
    if tm and tm.get("status") == "ok":
        ph = tm["phases_s"]
        lines.append(f"timing ({report['gpu'] or report['device']}): {tm['views']} views at {tm['image_size']} px + "
                     f"{tm['fit_steps']} fit steps in {tm['run_s']:.1f} s (generate "
                     f"{ph['generate']:.1f}, fit {ph['fit']:.1f} at {tm['fit_steps_per_second']:.3g} steps/s, setup and "
                     f"outputs {ph['setup_and_outputs']:.1f}; {tm['total_s']:.1f} s with the build); {tm['gaussians']} "
                     f"Gaussians; peak {tm['peak_gib']} GiB")
    elif tm:
        lines.append(f"timing: {tm.get('status')} {tm.get('error', tm.get('note', ''))}")
    q = report["parts"].get("quality")
    if q and q.get("summary", {}).get("n"):
        s = q["summary"]
        lines.append(f"quality ({s['n']} scenes): offset  PSNR splats / NeRF / copy  (splats - NeRF +- sem)  "
                     "SSIM splats / NeRF / copy")
        for off, b in [*s["per_offset"].items(), ("all", s["all_offsets"])]:
            lines.append(f"  {off:>5}  {b['psnr_splats']:.2f} / {b['psnr_nerf']:.2f} / {b['psnr_copy']:.2f}  "
                         f"({b['psnr_splats_minus_nerf']:+.2f} +- {b['psnr_splats_minus_nerf_sem']:.2f})  "
                         f"{b['ssim_splats']:.3f} / {b['ssim_nerf']:.3f} / {b['ssim_copy']:.3f}")
    elif q:
        lines.append(f"quality: {q.get('status')} {q.get('error', q.get('note', ''))}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
