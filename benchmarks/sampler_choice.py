"""Which sampler and how many steps: quality and time of each setting, paired per view against the
reference (DDIM, 50 steps, eta 1) on the held-out procedural scenes of ``demo_quality.py``.

Every setting generates the same targets from the same inputs with the same per-view seeds (the
scenes, targets and seeds of ``benchmarks/demo_quality.py``: scene ``s``, view ``i`` uses seed
``100 s + i``), so its difference from the reference is read per view: the mean and standard error
(over scenes, each scene's views averaged first) of the PSNR and SSIM change. A setting *keeps the
quality* when both mean changes are above ``-psnr_tol`` dB and ``-ssim_tol``; the recommendation is
the one of those with the fewest denoiser evaluations per view (the UNet calls dominate a view's time;
the measured seconds are in the table too).

    python benchmarks/sampler_choice.py --device cuda --scenes 24 --out docs/results/sampler_choice.json
    python benchmarks/sampler_choice.py --device cpu --scenes 2 --samplers ddim,dpm++2m --steps 10,50   # smoke run

Samplers (``sampling.scheduler``): ``ddim`` (ours, the reference's; eta from ``--etas``),
``dpm++2m``, ``dpm++2m-sde``, ``unipc``, ``euler-a`` (diffusers schedulers; see
``novelviews.sampling.SCHEDULER_ALIASES``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_quality import mean_sem, scene_views  # noqa: E402  (the quality benchmark's scenes and targets)

from novelviews import cameras as C  # noqa: E402
from novelviews.evaluate import psnr, ssim  # noqa: E402
from novelviews.sampling import SamplingConfig  # noqa: E402
from novelviews.views import generate, load_any_model, resolve_device  # noqa: E402

REFERENCE = ("ddim", 1.0, 50)


def settings(samplers: list[str], steps: list[int], etas: list[float]) -> list[tuple[str, float, int]]:
    """``(scheduler, eta, steps)`` of the grid, the reference first; eta matters only for DDIM."""
    out = [REFERENCE]
    for name in samplers:
        for eta in (etas if name == "ddim" else [1.0]):
            for n in steps:
                if (name, eta, n) not in out:
                    out.append((name, eta, n))
    return out


def label(setting: tuple[str, float, int]) -> str:
    name, eta, n = setting
    return f"{name}{f' eta {eta:g}' if name == 'ddim' else ''} {n}"


def paired(values: dict, ref: dict, n_scenes: int, per_scene: int) -> tuple[float, float]:
    """Mean and standard error over scenes of the per-scene mean change ``values - ref``."""
    d = (np.asarray(values) - np.asarray(ref)).reshape(n_scenes, per_scene).mean(1)
    return mean_sem(d)


def choose(rows: list[dict], psnr_tol: float, ssim_tol: float) -> dict:
    """The setting with the fewest denoiser evaluations per view among those that keep the quality
    (ties: the faster measured time)."""
    ok = [r for r in rows if r["psnr_change"] >= -psnr_tol and r["ssim_change"] >= -ssim_tol]
    return min(ok, key=lambda r: (r["steps"], r["seconds_per_view"]))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="demo")
    ap.add_argument("--scenes", type=int, default=24)
    ap.add_argument("--offsets", default="15,30,60,90")
    ap.add_argument("--samplers", default="ddim,dpm++2m,dpm++2m-sde,unipc,euler-a")
    ap.add_argument("--steps", default="10,15,20,25,50")
    ap.add_argument("--etas", default="0,1", help="DDIM eta values")
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--batch-size", type=int, default=32, help="views per UNet batch")
    ap.add_argument("--psnr-tol", type=float, default=0.1, help="dB")
    ap.add_argument("--ssim-tol", type=float, default=0.005)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"))
    ap.add_argument("--cuda-graph", action="store_true", help="sampling.cuda_graph (CUDA only)")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    t0 = time.time()
    dev = resolve_device(a.device)
    model = load_any_model(a.model, dev)
    size = model.config.image_size
    offsets = [float(x) for x in a.offsets.split(",")]
    n_views = len(offsets)
    seeds = list(range(a.scenes))
    # every scene's input and targets once; one generate call per setting covers all of them
    inputs, c2w_in, tgt, fov_t, scales, gts = [], [], [], [], [], []
    for s in seeds:
        r_in, c2w, K, t_c2w, gt = scene_views(s, offsets, size)
        inputs.append(r_in["rgb"].permute(0, 3, 1, 2))
        c2w_in.append(c2w)
        tgt.append(t_c2w)
        fov_t.append(C.fov_from_intrinsics(K[0], size).expand(n_views))
        scales.append(C.depth_quantile_scale(r_in["depth"][0].double()).reshape(1))
        gts.append(gt)
    inp, c2w_in, tgt = torch.cat(inputs), torch.cat(c2w_in), torch.cat(tgt)
    fov_t, scales, gt = torch.cat(fov_t), torch.cat(scales), torch.cat(gts)
    anchors = torch.arange(len(seeds)).repeat_interleave(n_views)
    view_seeds = [100 * s + i for s in seeds for i in range(n_views)]  # demo_quality's seeds
    grid = settings(a.samplers.split(","), [int(x) for x in a.steps.split(",")],
                    [float(x) for x in a.etas.split(",")])
    results = {}
    for setting in grid:
        name, eta, n = setting
        cfg = SamplingConfig(scheduler=name, steps=n, eta=eta, guidance_scale=a.guidance, batch_size=a.batch_size,
                             precision=a.dtype, cuda_graph=a.cuda_graph)
        generate(model, inp[:1] * 2 - 1, c2w_in[:1], tgt[:1], fov_t[:1], scale=scales[:1], cfg=cfg,
                 seeds=view_seeds[:1], progress=False)  # warm-up (kernels, graphs)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t1 = time.perf_counter()
        out = (generate(model, inp * 2 - 1, c2w_in, tgt, fov_t, anchors=anchors, scale=scales, cfg=cfg,
                        seeds=view_seeds, progress=False) + 1) / 2
        dt = time.perf_counter() - t1
        results[setting] = {"psnr": psnr(out, gt).tolist(), "ssim": ssim(out, gt).tolist(),
                            "seconds_per_view": dt / len(view_seeds)}
        print(f"{label(setting):>22}: PSNR {np.mean(results[setting]['psnr']):.3f}  SSIM "
              f"{np.mean(results[setting]['ssim']):.4f}  {1e3 * dt / len(view_seeds):.1f} ms/view "
              f"({time.time() - t0:.0f} s)", flush=True)
    ref = results[REFERENCE]
    rows = []
    for setting, r in results.items():
        dp, dp_sem = paired(r["psnr"], ref["psnr"], len(seeds), n_views)
        ds, ds_sem = paired(r["ssim"], ref["ssim"], len(seeds), n_views)
        rows.append({"scheduler": setting[0], "eta": setting[1], "steps": setting[2], "label": label(setting),
                     "psnr": float(np.mean(r["psnr"])), "ssim": float(np.mean(r["ssim"])),
                     "psnr_change": dp, "psnr_change_sem": dp_sem, "ssim_change": ds, "ssim_change_sem": ds_sem,
                     "seconds_per_view": r["seconds_per_view"],
                     "psnr_per_offset": {f"{o:g}": float(np.mean(np.asarray(r["psnr"]).reshape(-1, n_views)[:, j]))
                                         for j, o in enumerate(offsets)}})
    best = choose(rows, a.psnr_tol, a.ssim_tol)
    print(f"{'setting':>22} {'PSNR':>7} {'change':>8} {'+-':>5} {'SSIM':>7} {'change':>8} {'+-':>6} {'ms/view':>8}")
    for r in rows:
        print(f"{r['label']:>22} {r['psnr']:>7.3f} {r['psnr_change']:>+8.3f} {r['psnr_change_sem']:>5.3f} "
              f"{r['ssim']:>7.4f} {r['ssim_change']:>+8.4f} {r['ssim_change_sem']:>6.4f} "
              f"{1e3 * r['seconds_per_view']:>8.1f}")
    print(f"fewest steps within {a.psnr_tol} dB / {a.ssim_tol} SSIM of {label(REFERENCE)}: {best['label']}")
    info = {"model": a.model, "device": str(dev),
            "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
            "date": time.strftime("%Y-%m-%d"), "scenes": len(seeds), "offsets": offsets, "size": size,
            "guidance": a.guidance, "dtype": a.dtype, "cuda_graph": a.cuda_graph, "reference": label(REFERENCE),
            "psnr_tol": a.psnr_tol, "ssim_tol": a.ssim_tol, "choice": best["label"], "rows": rows,
            "seconds": round(time.time() - t0, 1)}
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(info, indent=2) + "\n")
    return info


if __name__ == "__main__":
    main()
