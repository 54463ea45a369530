"""Quality of a model on procedural scenes never used in training (docs/RESULTS.md).

For each held-out orbit scene (seeds 0..N-1; training seeds start at 10000): one input
view from the scene's own camera distribution, then targets rotated about the scene's
vertical axis by each azimuth offset (15/30/60/90 degrees by default, alternating sign)
with the elevation jittered by +-10 degrees. Ground truth is rendered exactly; the model
generates each target from the single input view (6DoF+1 scale from the input's depth,
as in training); the baseline copies the input. PSNR / SSIM (skimage-style) per offset.

    python benchmarks/demo_quality.py --scenes 12 --out docs/results/demo_quality.json \
        --grid docs/images/demo_grid.png
    python benchmarks/demo_quality.py --compare docs/results/demo_quality_v7_24scenes.json \
        docs/results/demo_quality_v9_24scenes.json      # per-scene PSNR change, no sampling

``--samples K`` scores the mean of K samples per view (``sampling.samples``: the Monte-Carlo
posterior mean, the estimate with the least expected squared error). Besides copying the input,
the input blurred by a Gaussian of each ``--blur`` sigma (pixels at 128 px, scaled with the size)
is a second baseline: PSNR rewards hedging, so a blurred copy already beats a sharp one; the
summary names the best sigma per offset (chosen on the scored scenes: a baseline tuned on the
test set, the harder one to beat).

Two models scored on the same seeds share scenes, targets and sampler seeds, so their
difference is best read per scene (``--compare``: mean and standard error of the per-scene
PSNR difference at each offset), which is far less noisy than the difference of two means.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from novelviews import cameras as C
from novelviews.evaluate import gaussian_blur, psnr, ssim
from novelviews.sampling import SamplingConfig, schedule_alphas
from novelviews.synth.render import render
from novelviews.synth.scenes import sample_cameras, scene_from_seed
from novelviews.views import generate, load_any_model, resolve_device


def targets_for(c2w_in: torch.Tensor, offsets_deg, rng: np.random.Generator) -> torch.Tensor:
    """Rotate the input camera about the world z axis through the origin (alternating sign),
    jitter the elevation by +-10 degrees within 5-60 degrees."""
    signs = [1 if i % 2 == 0 else -1 for i in range(len(offsets_deg))]
    d_az = [s * math.radians(off) for s, off in zip(signs, offsets_deg)]
    d_el = [math.radians(rng.uniform(-10, 10)) for _ in offsets_deg]
    return C.orbit_about_vertical(c2w_in, d_az, d_el, math.radians(5), math.radians(60))


def mean_sem(d) -> tuple[float, float]:
    """Mean and standard error of the mean of per-scene values (sem NaN for one scene)."""
    d = np.asarray(d, dtype=np.float64)
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")


def scene_views(seed: int, offsets, size: int):
    """One held-out orbit scene of the benchmark: ``(input render, c2w [1,4,4], K [1,3,3], target
    c2w [N,4,4], ground truth [N,3,S,S] in [0, 1])``; the input render is the renderer's dict."""
    scene = scene_from_seed(seed, "orbit")
    c2w, K = sample_cameras(scene, 1, size, size)
    tgt = targets_for(c2w[0], offsets, np.random.default_rng(seed))
    r_in = render(scene, c2w, K, size, size, spp=2)
    gt = render(scene, tgt, K[0].expand(len(offsets), 3, 3), size, size, spp=2)["rgb"].permute(0, 3, 1, 2)
    return r_in, c2w, K, tgt, gt


def paired_change(old: dict, new: dict) -> dict[str, dict[str, float]]:
    """Per offset: mean and standard error of the per-scene PSNR change ``new - old`` of two
    results of this benchmark (their JSON), which must cover the same seeds and offsets."""
    if old.get("seeds") != new.get("seeds") or old["per_view"].keys() != new["per_view"].keys():
        raise SystemExit(f"--compare: the results cover different scenes or offsets ({old.get('seeds')} / "
                         f"{sorted(old['per_view'])} vs {new.get('seeds')} / {sorted(new['per_view'])}); "
                         "score both models with the same --scenes / --seeds and --offsets")
    out = {}
    for off, rows in new["per_view"].items():
        d = np.asarray(rows["psnr_model"]) - np.asarray(old["per_view"][off]["psnr_model"])
        mean, sem = mean_sem(d)
        out[off] = {"mean": mean, "sem": sem, "n": len(d)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="demo")
    ap.add_argument("--scenes", type=int, default=12)
    ap.add_argument("--seeds", default=None,
                    help="comma-separated scene seeds instead of 0..scenes-1 (e.g. training seeds, to tell "
                         "under- from over-fitting; a seed whose 'mixed' family is a walk is still rendered as an orbit)")
    ap.add_argument("--offsets", default="15,30,60,90")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--eta", type=float, default=SamplingConfig.eta,
                    help="DDIM eta (1 = the reference's stochastic DDIM)")
    ap.add_argument("--samples", type=int, default=1, help="samples averaged per view (sampling.samples)")
    ap.add_argument("--blur", default="2,4,8,16", help="sigmas (px at 128 px) of the blurred-copy baseline")
    ap.add_argument("--batch-size", type=int, default=SamplingConfig.batch_size,
                    help="views per UNet batch (results do not depend on it: per-view seeds)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--grid", type=Path, default=None, help="PNG: rows of input / model / ground truth")
    ap.add_argument("--compare", nargs=2, type=Path, default=None, metavar=("OLD.json", "NEW.json"),
                    help="no sampling: the per-scene PSNR change between two saved results of the same seeds")
    a = ap.parse_args()
    from novelviews.train.module import camera_use  # Lightning: imported only when scoring

    if a.compare:
        old, new = (json.loads(Path(f).read_text()) for f in a.compare)
        change = paired_change(old, new)
        print(f"PSNR change per scene, {a.compare[1]} - {a.compare[0]} ({old['seeds']}):")
        for off, c in change.items():
            print(f"{off:>6}°  {c['mean']:+.2f} +- {c['sem']:.2f}  (n = {c['n']})")
        if a.out:
            a.out.parent.mkdir(parents=True, exist_ok=True)
            a.out.write_text(json.dumps({"old": str(a.compare[0]), "new": str(a.compare[1]), "change": change}, indent=2))
        return
    t0 = time.time()
    dev = resolve_device(a.device)
    model = load_any_model(a.model, dev)
    size = model.config.image_size
    offsets = [float(x) for x in a.offsets.split(",")]
    sigmas = [float(x) for x in a.blur.split(",")] if a.blur else []
    blur_keys = [f"psnr_blur{sg:g}" for sg in sigmas]
    rows = {off: {k: [] for k in ["psnr_model", "psnr_copy", "ssim_model", "ssim_copy", *blur_keys]} for off in offsets}
    grid = []
    alphas = schedule_alphas(model.config.schedule).float()
    use_sum = {"eps_mse": [], "camera_gain": [], "camera_gain_rel": []}
    seeds = [int(x) for x in a.seeds.split(",")] if a.seeds else list(range(a.scenes))
    for n_done, seed in enumerate(seeds):
        r_in, c2w, K, tgt, gt = scene_views(seed, offsets, size)
        fov = C.fov_from_intrinsics(K[0], size)
        inp = r_in["rgb"].permute(0, 3, 1, 2)
        scale = C.depth_quantile_scale(r_in["depth"][0].double())
        cfg = SamplingConfig(steps=a.steps, guidance_scale=a.guidance, eta=a.eta, seed=seed * 100, samples=a.samples,
                             batch_size=a.batch_size)
        out = (generate(model, inp * 2 - 1, c2w, tgt, fov.expand(len(offsets)), scale=scale, cfg=cfg,
                        progress=False) + 1) / 2
        with torch.no_grad():  # does the model use the camera? (0 = it ignores it)
            emb, lat = model.embed_image((inp * 2 - 1).to(dev))
            n = len(offsets)
            cams = C.camera_embedding(model.config.camera_mode, c2w.expand(n, 4, 4), tgt,
                                      scale.expand(n), fov.expand(n))
            use = camera_use(model, emb.expand(n, -1), lat.expand(n, -1, -1, -1), (gt * 2 - 1).to(dev), cams,
                             alphas, seed=seed)
        for k in use_sum:
            use_sum[k].append(use[k])
        pm, pc = psnr(out, gt), psnr(inp.expand_as(gt), gt)
        sm, sc = ssim(out, gt), ssim(inp.expand_as(gt), gt)
        pb = {k: psnr(gaussian_blur(inp, sg * size / 128).expand_as(gt), gt) for k, sg in zip(blur_keys, sigmas)}
        for i, off in enumerate(offsets):
            for k in blur_keys:
                rows[off][k].append(float(pb[k][i]))
            rows[off]["psnr_model"].append(float(pm[i]))
            rows[off]["psnr_copy"].append(float(pc[i]))
            rows[off]["ssim_model"].append(float(sm[i]))
            rows[off]["ssim_copy"].append(float(sc[i]))
        if n_done < 6:
            grid.append((inp[0], out, gt))
        print(f"scene {seed}: model {pm.numpy().round(2)} copy {pc.numpy().round(2)} ({time.time() - t0:.0f} s)",
              flush=True)
    summary = {}
    print(f"{'offset':>7} {'PSNR model':>11} {'PSNR copy':>10} {'gain':>6} {'+-sem':>6} {'SSIM model':>11} {'SSIM copy':>10}")
    for off, r in rows.items():
        m = {k: float(np.mean(v)) for k, v in r.items()}
        # standard error of the mean gain over scenes (how far the mean can move with other scenes)
        m["gain_sem"] = mean_sem(np.asarray(r["psnr_model"]) - np.asarray(r["psnr_copy"]))[1]
        if blur_keys:  # the best blurred copy at this offset, and the model's paired gain over it
            best = max(blur_keys, key=lambda k: m[k])
            over, over_sem = mean_sem(np.asarray(r["psnr_model"]) - np.asarray(r[best]))
            m |= {"blur_best_sigma": sigmas[blur_keys.index(best)], "psnr_blur_best": m[best],
                  "gain_over_blur": over, "gain_over_blur_sem": over_sem}
        summary[f"{off:g}"] = m | {"n": len(r["psnr_model"])}
        blur_text = (f"   best blurred copy {m['psnr_blur_best']:.2f} (sigma {m['blur_best_sigma']:g}),"
                     f" model {m['gain_over_blur']:+.2f} +- {m['gain_over_blur_sem']:.2f}") if blur_keys else ""
        print(f"{off:>6g}° {m['psnr_model']:>11.2f} {m['psnr_copy']:>10.2f} {m['psnr_model'] - m['psnr_copy']:>+6.2f}"
              f" {m['gain_sem']:>6.2f}"
              f" {m['ssim_model']:>11.3f} {m['ssim_copy']:>10.3f}{blur_text}")
    print("camera use (eps MSE true camera, gain of it over a zeroed camera):",
          {k: round(float(np.mean(v)), 5) for k, v in use_sum.items()})
    seed_text = (a.seeds or f"0..{a.scenes - 1}") + " (orbit family)"
    info = {"model": a.model, "scenes": len(seeds), "seeds": seed_text, "size": size,
            "steps": a.steps, "guidance": a.guidance, "eta": a.eta, "samples": a.samples,
            "blur_sigmas": sigmas, "device": str(dev), "seconds": round(time.time() - t0, 1),
            "camera_use": {k: float(np.mean(v)) for k, v in use_sum.items()},
            "per_offset": summary, "per_view": {f"{k:g}": v for k, v in rows.items()}}
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(info, indent=2))
    if a.grid and grid:
        from novelviews.io.images import save_image
        from novelviews.io.video import contact_sheet

        tiles, labels = [], []
        for inp, out, gt in grid:
            for j in range(len(offsets)):
                tiles += [inp.permute(1, 2, 0).numpy(), out[j].permute(1, 2, 0).numpy(), gt[j].permute(1, 2, 0).numpy()]
                labels += ["input", f"model {offsets[j]:g}°", "truth"]
        save_image(a.grid, contact_sheet(tiles[: 3 * 2 * len(offsets)], cols=6, labels=labels[: 3 * 2 * len(offsets)]))


if __name__ == "__main__":
    main()
