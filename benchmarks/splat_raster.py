"""Benchmark: the splat rasterizer backends - the PyTorch reference (a loop over tiles), the
tile-batched one and gsplat - on one random scene.

The scene: ``--gaussians`` Gaussians in a ball of radius 0.5 (standard deviations log-uniform in
[0.005, 0.03], random rotations, opacities uniform in [0.05, 0.95], SH degree ``--sh-degree`` with
small random coefficients), seen from distance 2 with a 50 deg field of view at ``--size`` px.
For each backend: the forward render alone (no autograd) and forward + backward of an L1 loss
(ms per view, median of ``--repeats`` after ``--warmup``; CUDA events on a GPU), the peak memory of
forward + backward above what was allocated before (GPU only), the largest difference of its image
and alpha from the first backend's and the relative difference of its means gradient, and with
``--fit-steps`` the ms per step of :class:`novelviews.splats.fit.Fitter` (render + L1/D-SSIM +
backward + Adam, no densification) on 8 views of the scene rendered by the first backend. A backend
that fails (out of memory, not installed) is recorded with its error. JSON out.

    python benchmarks/splat_raster.py --out $OUT/splat_raster.json                     # GPU: 256 px, 100k Gaussians
    python benchmarks/splat_raster.py --device cpu --size 32 --gaussians 200 --repeats 2 --fit-steps 2   # CPU smoke
"""

from __future__ import annotations

import argparse
import json
import math
import time
import traceback
from pathlib import Path

import torch

from novelviews import cameras as C
from novelviews.io.runs import atomic_write_json
from novelviews.splats.backend import SplatRenderConfig, gsplat_available, rasterize_gsplat
from novelviews.splats.fit import FitConfig, Fitter, TrainView
from novelviews.splats.gaussians import GaussianModel
from novelviews.splats.rasterize import rasterize
from novelviews.splats.rasterize_batched import CHUNK, rasterize_batched
from novelviews.splats.sh import num_coefficients
from novelviews.runtime import time_calls_ms

FUNCTIONS = {"torch": rasterize, "batched": rasterize_batched, "gsplat": rasterize_gsplat}


def random_scene(n: int, sh_degree: int, device: torch.device, seed: int = 0) -> GaussianModel:
    g = torch.Generator().manual_seed(seed)
    direction = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
    means = direction * 0.5 * torch.rand(n, 1, generator=g) ** (1 / 3)
    log_scales = math.log(0.005) + torch.rand(n, 3, generator=g) * math.log(6.0)
    opacity = 0.05 + 0.9 * torch.rand(n, generator=g)
    k = num_coefficients(sh_degree)
    model = GaussianModel(means, log_scales, torch.randn(n, 4, generator=g), torch.logit(opacity),
                          torch.randn(n, 3, generator=g) * 0.8, torch.randn(n, k - 1, 3, generator=g) * 0.1)
    return model.to(device)


def cameras(views: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    az = torch.arange(views) * 2 * math.pi / views
    c2w = C.camera_on_sphere(torch.full((views,), 0.3), az, torch.full((views,), 2.0)).float()
    return c2w, C.intrinsics_from_fov(math.radians(50.0), size, size).float()


def timed(fn, warmup: int, repeats: int, device: torch.device) -> list[float]:
    """Milliseconds of ``repeats`` calls of ``fn()`` after ``warmup`` untimed ones."""
    return time_calls_ms(fn, device, warmup, repeats)


def median(xs: list[float]) -> float:
    s = sorted(xs)
    return s[len(s) // 2] if len(s) % 2 else 0.5 * (s[len(s) // 2 - 1] + s[len(s) // 2])


def failure(e: Exception) -> dict:
    if isinstance(e, torch.cuda.OutOfMemoryError):
        return {"status": "oom", "error": str(e).splitlines()[0][:300]}
    return {"status": "error", "error": f"{type(e).__name__}: {str(e)[:300]}",
            "traceback": traceback.format_exc(limit=6)[-2000:]}


def bench_backend(name: str, model: GaussianModel, c2w, K, size: int, args, device: torch.device) -> dict:
    fn = FUNCTIONS[name]
    kw = {"tile_size": args.tile_size}
    if name == "batched":
        kw["chunk"] = args.chunk
    if name != "gsplat":
        kw["checkpoint"] = args.checkpoint
    bg = torch.ones(3, device=device)
    target = torch.full((size, size, 3), 0.5, device=device)

    def render():
        return fn(model.means, model.quats, model.scales, model.opacities, model.sh, model.sh_degree, c2w, K,
                  size, size, bg, **kw)

    def forward_backward():
        model.zero_grad(set_to_none=True)
        out = render()
        (out.rgb - target).abs().mean().backward()
        return out

    with torch.no_grad():
        fwd = timed(render, args.warmup, args.repeats, device)
    both = timed(forward_backward, args.warmup, args.repeats, device)
    row = {"backend": name, "status": "ok", "forward_ms": round(median(fwd), 3),
           "forward_backward_ms": round(median(both), 3), "forward_ms_all": [round(t, 3) for t in fwd],
           "forward_backward_ms_all": [round(t, 3) for t in both], "peak_gib": None}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    out = forward_backward()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        row["peak_gib"] = round((torch.cuda.max_memory_allocated(device) - base) / 2**30, 4)
    row["visible"] = int(out.visible.sum())
    row["_image"] = (out.rgb.detach().float(), out.alpha.detach().float(), model.means.grad.detach().clone())
    return row


def bench_fit(name: str, model: GaussianModel, views: list[TrainView], args, device: torch.device) -> dict:
    steps = args.fit_steps
    cfg = FitConfig(steps=10 * steps, sh_degree=model.sh_degree, sh_increase_every=1, densify_start=1.0,
                    densify_stop=1.0)
    fit_model = GaussianModel.from_state(model.tensors()).to(device)
    render = SplatRenderConfig(backend=name, tile_size=args.tile_size, chunk=args.chunk, checkpoint=args.checkpoint)
    fitter = Fitter(fit_model, views, cfg, extent=1.0, render=render)
    ms = timed(fitter.train_step, min(args.warmup, 1), steps, device)
    return {"fit_step_ms": round(median(ms), 3), "fit_step_ms_all": [round(t, 3) for t in ms]}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--size", type=int, default=256, help="image side (pixels)")
    p.add_argument("--gaussians", type=int, default=100_000)
    p.add_argument("--sh-degree", type=int, default=3)
    p.add_argument("--backends", default=None,
                   help="comma-separated, the first is the one others are compared with "
                        "(default: torch,batched plus gsplat on CUDA where installed)")
    p.add_argument("--tile-size", type=int, default=16)
    p.add_argument("--chunk", type=int, default=CHUNK, help="batched: pixel x Gaussian pairs composited at once")
    p.add_argument("--checkpoint", action="store_true", help="torch / batched: recompute tiles in the backward")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--fit-steps", type=int, default=20, help="timed Fitter steps per backend (0: none)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    names = (args.backends.split(",") if args.backends else
             ["torch", "batched"] + (["gsplat"] if cuda and gsplat_available() else []))
    unknown = [n for n in names if n not in FUNCTIONS]
    if unknown:
        p.error(f"unknown backend {unknown[0]!r}: use {', '.join(FUNCTIONS)}")
    result = {"device": str(device), "gpu": torch.cuda.get_device_name(device) if cuda else None,
              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
              "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "rows": []}
    model = random_scene(args.gaussians, args.sh_degree, device)
    c2w, K = cameras(8, args.size)
    views = None
    first = None
    for name in names:
        try:
            row = bench_backend(name, model, c2w[0], K, args.size, args, device)
        except Exception as e:  # noqa: BLE001 - recorded, the next backend still runs
            row = {"backend": name, **failure(e)}
        if row["status"] == "ok":
            rgb, alpha, grad = row.pop("_image")
            if first is None:
                first = (name, rgb, alpha, grad)
            row["compared_with"] = first[0]
            row["max_abs_diff_rgb"] = float((rgb - first[1]).abs().max())
            row["max_abs_diff_alpha"] = float((alpha - first[2]).abs().max())
            row["means_grad_rel_diff"] = float((grad - first[3]).norm() / first[3].norm().clamp_min(1e-30))
            if args.fit_steps > 0:
                try:
                    if views is None:
                        with torch.no_grad():
                            fn = FUNCTIONS[first[0]]
                            views = [TrainView(fn(model.means, model.quats, model.scales, model.opacities, model.sh,
                                                  model.sh_degree, c2w[i], K, args.size, args.size,
                                                  torch.ones(3, device=device), tile_size=args.tile_size
                                                  ).rgb.clamp(0, 1).detach(), c2w[i].to(device), K.to(device))
                                     for i in range(len(c2w))]
                    row.update(bench_fit(name, model, views, args, device))
                except Exception as e:  # noqa: BLE001
                    row["fit"] = failure(e)
        print(json.dumps({k: v for k, v in row.items() if not k.endswith("_all") and k != "traceback"}), flush=True)
        result["rows"].append(row)
        if args.out:
            atomic_write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
