"""Benchmark: fit a NeRF (no diffusion prior) to known views of a synthetic scene.

Proves the geometry half of distillation on its own: hash-grid field + sampler + volume
renderer, trained with a plain photometric loss on ``--views`` views with exact cameras,
scored by PSNR on held-out views. Prints one JSON object and optionally writes it.

Examples::

    python benchmarks/nerf_fit.py                                  # small CPU run (~30 s)
    python benchmarks/nerf_fit.py --device cuda --preset reference --steps 3000 --size 128
    python benchmarks/nerf_fit.py --scene seed:3 --preset reference --device cuda --out fit.json

Scenes: ``objects`` (three solid primitives on a uniform grey background, a bounded field
and a fixed background) or ``seed:N`` (``synth.scene_from_seed(N)``: ground plane and sky, an
unbounded contracted field with an MLP background).
Presets: ``small`` (8 levels, 2^15 table, uniform 24 samples; the test's setting) or
``reference`` (the reference's field: 16 levels x 2, 2^19, base 16, scale 1.4473, proposal
sampler 64 + 64).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from novelviews import cameras as C
from novelviews import synth
from novelviews.nerf import (
    Background,
    BackgroundConfig,
    HashGridConfig,
    NeRFField,
    NeRFFieldConfig,
    SamplerConfig,
    get_rays,
    make_sampler,
    render_image,
    render_rays,
)


def objects_scene():
    prims = [
        synth.sphere((0.0, 0.0, 0.35), 0.35, synth.Material((0.85, 0.3, 0.2))),
        synth.box((0.35, -0.45, 0.2), (0.2, 0.2, 0.2), 0.02, synth.Material((0.2, 0.5, 0.85))),
        synth.cylinder((-0.4, 0.35, 0.25), 0.15, 0.25, synth.Material((0.3, 0.8, 0.35))),
    ]
    return synth.build_scene(prims, ground=False, sky_zenith=(0.5, 0.5, 0.5), sky_horizon=(0.5, 0.5, 0.5))


def orbit_cameras(n: int, offset: float, distance: float = 3.0) -> torch.Tensor:
    az = [2 * math.pi * (i + offset) / n for i in range(n)]
    el = [math.radians(15 + 25 * (0.5 + 0.5 * math.sin(3 * a))) for a in az]
    return torch.stack([C.camera_on_sphere(e, a, distance, target=(0, 0, 0.2)) for e, a in zip(el, az)])


def build(args) -> tuple:
    if args.scene == "objects":
        scene = objects_scene()
        K = C.intrinsics_from_fov(math.radians(40), args.size, args.size)
        train_c2w, test_c2w = orbit_cameras(args.views, 0.0), orbit_cameras(args.test_views, 0.37)
        bounded, bound, background = True, 0.8, BackgroundConfig()
        near, far = 0.1, 10.0
    elif args.scene.startswith("seed:"):
        scene = synth.scene_from_seed(int(args.scene.split(":", 1)[1]), "orbit")
        c2w, K = synth.sample_cameras(scene, args.views + args.test_views, args.size, args.size)
        K = K[0]
        train_c2w, test_c2w = c2w[: args.views], c2w[args.views:]
        bounded, bound, background = False, 2.0, BackgroundConfig(kind="mlp")
        near, far = 0.05, 1000.0
    else:
        raise SystemExit(f"unknown --scene {args.scene!r}: use objects or seed:N")
    if args.preset == "small":
        grid = HashGridConfig(n_levels=8, log2_hashmap_size=15, base_resolution=8, per_level_scale=1.5)
        sampler_cfg = SamplerConfig(kind="uniform", num_samples=24)
    else:
        grid = HashGridConfig()
        sampler_cfg = SamplerConfig()
    fcfg = NeRFFieldConfig(bound=bound, unbounded=not bounded, grid=grid, blob_density=0.0)
    return scene, K, train_c2w, test_c2w, fcfg, sampler_cfg, background, near, far


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10.0 * math.log10(max(float(((a - b) ** 2).mean()), 1e-12))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scene", default="objects", help="objects | seed:N")
    p.add_argument("--preset", default="small", choices=["small", "reference"])
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--size", type=int, default=64, help="image height = width (pixels)")
    p.add_argument("--views", type=int, default=24)
    p.add_argument("--test-views", type=int, default=4)
    p.add_argument("--steps", type=int, default=250)
    p.add_argument("--batch", type=int, default=1024, help="rays per step")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--out", default=None, help="write the JSON result here")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)

    scene, K, train_c2w, test_c2w, fcfg, scfg, bcfg, near, far = build(args)
    t_data = time.time()
    train = synth.render(scene, train_c2w, K, args.size, args.size, spp=2)["rgb"]
    test_out = synth.render(scene, test_c2w, K, args.size, args.size, spp=2)
    t_data = time.time() - t_data
    rays = [get_rays(c, K, args.size, args.size, device=dev) for c in train_c2w]
    ro, rd = torch.cat([r[0] for r in rays]), torch.cat([r[1] for r in rays])
    target = train.reshape(-1, 3).to(dev)

    field = NeRFField(fcfg).to(dev)
    sampler = make_sampler(scfg, fcfg.bound, fcfg.unbounded).to(dev)
    bg = Background(bcfg).to(dev)
    params = list(field.parameters()) + list(sampler.parameters()) + list(bg.parameters())
    opt = torch.optim.Adam(params, lr=args.lr, betas=(0.9, 0.99), eps=1e-15)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.1 ** (i / args.steps))

    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.time()
    for step in range(args.steps):
        idx = torch.randint(0, ro.shape[0], (args.batch,), device=dev)
        out = render_rays(field, ro[idx], rd[idx], sampler, bg, near=near, far=far, stratified=True,
                          chunk=args.batch)
        loss = ((out["rgb"] - target[idx]) ** 2).mean()
        if "interlevel" in out:
            loss = loss + out["interlevel"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    train_s = time.time() - t0

    t1 = time.time()
    preds = [render_image(field, c, K, args.size, args.size, sampler, bg, near=near, far=far, chunk=16384)["rgb"].cpu()
             for c in test_c2w]
    render_s = (time.time() - t1) / len(preds)
    gt = test_out["rgb"]
    mask = test_out["object_mask"]
    stacked = torch.stack(preds)
    result = {
        "scene": args.scene,
        "preset": args.preset,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "size": args.size,
        "views": args.views,
        "steps": args.steps,
        "batch": args.batch,
        "psnr_heldout": sum(psnr(a, b) for a, b in zip(preds, gt)) / len(preds),
        "psnr_heldout_per_view": [psnr(a, b) for a, b in zip(preds, gt)],
        "psnr_object_pixels": psnr(stacked[mask], gt[mask]) if mask.any() else None,
        "psnr_train_last_batch": psnr(out["rgb"].detach(), target[idx]),
        "train_seconds": train_s,
        "seconds_per_step": train_s / max(args.steps, 1),
        "render_seconds_per_view": render_s,
        "data_seconds": t_data,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
