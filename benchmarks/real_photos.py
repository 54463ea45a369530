"""Benchmark: how a model behaves on real photographs (none of them used in training).

Three measurements, each against copying the input (JSON out):

* (a) **input-view fidelity**: for scikit-image's bundled colour photographs (astronaut, chelsea,
  coffee, rocket, motorcycle_left; test data, never trained on), centre-cropped to the model's
  size, the view generated *at the input camera* (the `nvs views` defaults: elevation 31 deg,
  distance 1, scene scale 0.7) against the photo itself, and the VAE's reconstruction of the
  photo (the ceiling of anything the model generates);
* (b) **photo-plane scenes** (`novelviews.synth.photo_planes`): cards textured with those photos
  on planes at several depths before a photo background, exact ground truth at cameras rotated
  by `--offsets` degrees about the scene's vertical axis (alternating sign); the 6DoF+1 scale is
  the input depth's 0.2-quantile, as in training;
* (c) **leave-out on a real capture** (`--capture DIR`, e.g. `../shared/data/fruit`; skipped when
  absent): `nvs eval` with `--holdout` every 16th view at the model's size, nearest input vs the
  model with 1 and 2 anchors.

    python benchmarks/real_photos.py --out docs/results/real_photos_demo.json \
        --capture ../shared/data/fruit                          # demo model, CPU, a few minutes
    python benchmarks/real_photos.py --device cuda --model converted/zeronvs --scenes 24
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_quality import mean_sem, targets_for  # noqa: E402

from novelviews import cameras as C  # noqa: E402
from novelviews.evaluate import psnr, ssim  # noqa: E402
from novelviews.io.runs import atomic_write_json  # noqa: E402
from novelviews.sampling import SamplingConfig  # noqa: E402
from novelviews.views import InputCameraConfig, generate, load_any_model, resolve_device  # noqa: E402

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png")


def load_photos(size: int) -> dict[str, torch.Tensor]:
    """scikit-image's colour photographs (files of its data folder), centre-cropped square, resized:
    ``[3, size, size]`` in [0, 1]."""
    import skimage

    from novelviews.io.images import center_crop_resize, load_image

    out = {}
    for name in PHOTOS:
        img = load_image(Path(skimage.__file__).parent / "data" / name)
        sq, _ = center_crop_resize(img, None, size)
        out[name] = torch.from_numpy(np.clip(sq, 0, 1).astype(np.float32)).permute(2, 0, 1).contiguous()
    return out


def input_fidelity(model, photos: dict[str, torch.Tensor], cfg: SamplingConfig) -> dict:
    """(a): PSNR / SSIM of the view generated at the input camera and of the VAE round trip."""
    cam = InputCameraConfig()
    c2w = C.camera_on_sphere(math.radians(cam.elevation_deg), 0.0, cam.distance)[None]
    fov = torch.tensor([math.radians(cam.fov_deg)], dtype=torch.float64)
    rows = {}
    for name, img in photos.items():
        x = img[None] * 2 - 1
        view = (generate(model, x, c2w, c2w, fov, scale=cam.scale, cfg=cfg, progress=False) + 1) / 2
        with torch.no_grad():
            rec = (model.decode(model.encode(x.to(model.device)), clamp=True).float().cpu() + 1) / 2
        rows[name] = {"psnr_view": float(psnr(view, img[None])[0]), "ssim_view": float(ssim(view, img[None])[0]),
                      "psnr_vae": float(psnr(rec, img[None])[0])}
    summary = {k: mean_sem([r[k] for r in rows.values()]) for k in ("psnr_view", "ssim_view", "psnr_vae")}
    return {"per_photo": rows, "mean": {k: v[0] for k, v in summary.items()},
            "sem": {k: v[1] for k, v in summary.items()}}


def photo_planes(model, photos: dict[str, torch.Tensor], scenes: int, offsets: list[float],
                 cfg: SamplingConfig) -> dict:
    """(b): gain over copying the input on card scenes, per offset (mean and sem over scenes)."""
    from novelviews.synth.photo_planes import random_card_scene, render_photo_planes

    size = model.config.image_size
    textures = [p.permute(1, 2, 0) for p in photos.values()]
    rows = {off: {"psnr_model": [], "psnr_copy": [], "ssim_model": [], "ssim_copy": []} for off in offsets}
    for seed in range(scenes):
        scene = random_card_scene(textures, torch.Generator().manual_seed(seed), n_cards=(1, 3))
        K = scene.input_intrinsics(size, size)
        c2w = scene.input_c2w.to(torch.float64)[None]
        tgt = targets_for(c2w[0], offsets, np.random.default_rng(seed))
        r_in = render_photo_planes(scene, c2w, K, size, size, spp=2)
        gt = render_photo_planes(scene, tgt, K, size, size, spp=2)["rgb"].permute(0, 3, 1, 2).float()
        inp = r_in["rgb"].permute(0, 3, 1, 2).float()
        scale = C.depth_quantile_scale(r_in["depth"][0].double())  # (pixels without a surface are ignored)
        fov = C.fov_from_intrinsics(torch.as_tensor(K, dtype=torch.float64), size)
        out = (generate(model, inp * 2 - 1, c2w, tgt, fov.expand(len(offsets)), scale=scale,
                        cfg=SamplingConfig(**{**cfg.__dict__, "seed": seed * 100}), progress=False) + 1) / 2
        pm, pc = psnr(out, gt), psnr(inp.expand_as(gt), gt)
        sm, sc = ssim(out, gt), ssim(inp.expand_as(gt), gt)
        for i, off in enumerate(offsets):
            rows[off]["psnr_model"].append(float(pm[i]))
            rows[off]["psnr_copy"].append(float(pc[i]))
            rows[off]["ssim_model"].append(float(sm[i]))
            rows[off]["ssim_copy"].append(float(sc[i]))
    summary = {}
    for off, r in rows.items():
        gain, sem = mean_sem(np.asarray(r["psnr_model"]) - np.asarray(r["psnr_copy"]))
        summary[f"{off:g}"] = {"psnr_model": float(np.mean(r["psnr_model"])), "psnr_copy": float(np.mean(r["psnr_copy"])),
                               "gain": gain, "gain_sem": sem, "ssim_model": float(np.mean(r["ssim_model"])),
                               "ssim_copy": float(np.mean(r["ssim_copy"])), "n": len(r["psnr_model"])}
    return {"scenes": scenes, "per_offset": summary, "per_view": {f"{k:g}": v for k, v in rows.items()}}


def capture_leave_out(model, capture: Path, every: int, cfg: SamplingConfig) -> dict:
    """(c): ``nvs eval`` of the capture: every ``every``-th view held out, nearest / model / 2 anchors."""
    from novelviews.config import load
    from novelviews.evaluate import EvalConfig, run_eval

    ecfg = load(EvalConfig, base={"holdout": f"every:{every}", "methods": ["nearest", "model", "model_k"],
                                  "anchor": {"k": 2}, "lpips": "off", "save_images": False,
                                  "sampling": {"steps": cfg.steps, "guidance_scale": cfg.guidance_scale}})
    with tempfile.TemporaryDirectory() as tmp:
        res = run_eval(capture, Path(tmp) / "eval", ecfg, progress=False, model=model)
    return {"capture": str(capture), "holdout": f"every:{every}", "views": res["views"], "mean": res["mean"]}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo")
    p.add_argument("--device", default="auto")
    p.add_argument("--scenes", type=int, default=8, help="photo-plane scenes (seeds 0..N-1)")
    p.add_argument("--offsets", default="5,10,20,45", help="azimuth offsets (degrees) of the photo-plane targets")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps")
    p.add_argument("--capture", type=Path, default=None, help="a posed real capture for (c); skipped when absent")
    p.add_argument("--every", type=int, default=16, help="(c): hold out every N-th view")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    t0 = time.time()
    device = resolve_device(args.device)
    model = load_any_model(args.model, device)
    cfg = SamplingConfig(steps=args.steps)
    photos = load_photos(model.config.image_size)
    result = {"model": args.model, "device": str(device), "date": time.strftime("%Y-%m-%d"),
              "image_size": model.config.image_size, "steps": args.steps, "photos": list(PHOTOS)}
    result["input_view"] = input_fidelity(model, photos, cfg)
    print("(a) input view:", json.dumps(result["input_view"]["mean"]), flush=True)
    result["photo_planes"] = photo_planes(model, photos, args.scenes, [float(o) for o in args.offsets.split(",")],
                                          cfg)
    for off, r in result["photo_planes"]["per_offset"].items():
        print(f"(b) {off:>3} deg: model {r['psnr_model']:.2f} copy {r['psnr_copy']:.2f} "
              f"gain {r['gain']:+.2f} +- {r['gain_sem']:.2f}", flush=True)
    if args.capture is not None and args.capture.exists():
        result["capture"] = capture_leave_out(model, args.capture, args.every, cfg)
        print("(c) capture:", json.dumps(result["capture"]["mean"]), flush=True)
    elif args.capture is not None:
        result["capture"] = None
        print(f"(c) skipped: {args.capture} does not exist", flush=True)
    result["seconds"] = round(time.time() - t0, 1)
    if args.out:
        atomic_write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
