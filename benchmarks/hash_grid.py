"""Benchmark: the hash-grid encoding alone - PyTorch vs the fused Triton kernels.

Points are what a distillation render queries: samples along the rays of the input camera
(elevation 31 deg, distance 1, fov 52.55 deg), ``--samples`` per ray in the contracted spacing
of the proposal sampler, through the mip-NeRF-360 contraction into ``[0, 1]^3``, in ray order
(as the renderer passes them). For each backend: forward alone, and forward + backward of the
table gradient, timed with CUDA events (median of ``--repeat`` after ``--warmup``), the peak
memory of forward + backward, and the largest difference from the PyTorch result. JSON out.

    python benchmarks/hash_grid.py --out $OUT/hash_grid.json                 # GPU
    python benchmarks/hash_grid.py --sides 16 --repeat 2 --warmup 1          # CPU smoke (torch only)
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from novelviews import cameras as C
from novelviews.io.runs import atomic_write_json
from novelviews.nerf import HashGridConfig, HashGridEncoding
from novelviews.nerf.field import normalize_points
from novelviews.nerf.render import get_rays
from novelviews.nerf.sampler import UniformSampler
from novelviews.runtime import time_calls_ms


def ray_points(side: int, samples: int, device: torch.device, distribution: str = "uniform") -> torch.Tensor:
    """Grid coordinates ``[side * side * samples, 3]`` of the input camera's ray samples.

    ``uniform``: stratified in the contracted spacing; ``surface``: what a trained proposal
    sampler gives, every ray's samples sorted and crowded around one depth (normal, sd 0.02
    about a depth in [1, 1.1]), so consecutive samples share the coarse levels' cells."""
    c2w = C.camera_on_sphere(math.radians(31.0), 0.0, 1.0)
    K = C.intrinsics_from_fov(math.radians(52.55), side, side)
    o, d, _ = get_rays(c2w, K, side, side, device=device)
    if distribution == "surface":
        g = torch.Generator(device=device).manual_seed(0)
        depth = 1.0 + 0.1 * torch.rand(o.shape[0], 1, device=device, generator=g)
        t = torch.sort(depth + 0.02 * torch.randn(o.shape[0], samples, device=device, generator=g), dim=1).values
        pts = o[:, None] + t[..., None] * d[:, None]
    else:
        near = torch.full((o.shape[0],), 0.05, device=device)
        far = torch.full((o.shape[0],), 1000.0, device=device)
        pts = UniformSampler(samples, "contracted", 2.0)(o, d, near, far, stratified=True).points(o, d)
    return normalize_points(pts, 2.0, True)[0].reshape(-1, 3).contiguous()


def timed(fn, warmup: int, repeat: int, device: torch.device) -> float:
    """Median milliseconds of ``fn()``."""
    times = time_calls_ms(fn, device, warmup, repeat)
    return sorted(times)[len(times) // 2]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--sides", default="128,256", help="render sides (pixels), comma-separated")
    p.add_argument("--samples", type=int, default=64, help="samples per ray")
    p.add_argument("--distributions", default="uniform,surface",
                   help="where the samples lie along the rays: uniform (stratified) and/or surface (crowded)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    # triton: the shipped kernels; triton-plain: the backward without summing runs (one atomic per point)
    backends = ["torch"] + (["triton", "triton-plain"] if device.type == "cuda" else [])
    result = {"device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "grid": HashGridConfig().__dict__,
              "samples_per_ray": args.samples, "rows": []}
    torch.manual_seed(0)
    enc = HashGridEncoding(HashGridConfig(backend="torch")).to(device)
    with torch.no_grad():
        enc.table.uniform_(-1e-2, 1e-2)
    for distribution, side in ((dist, int(s)) for dist in args.distributions.split(",") for s in args.sides.split(",")):
        u = ray_points(side, args.samples, device, distribution)
        grad_out = torch.randn(u.shape[0], enc.output_dim, device=device)
        ref = enc._encode(u).detach()
        enc.table.grad = None
        enc._encode(u).backward(grad_out)
        ref_grad, enc.table.grad = enc.table.grad, None
        for backend in backends:
            if backend == "torch":
                fwd = enc._encode
            else:
                from novelviews.nerf.hashgrid_triton import hash_encode_triton

                def fwd(x, reduce_runs=backend == "triton"):
                    return hash_encode_triton(x, enc.table, enc._res, enc._size, enc._offset, enc._dense,
                                              reduce_runs=reduce_runs)

            def fwd_bwd():
                enc.table.grad = None
                fwd(u).backward(grad_out)

            with torch.no_grad():
                ms_fwd = timed(lambda: fwd(u), args.warmup, args.repeat, device)
                diff = float((fwd(u) - ref).abs().max())
            ms_both = timed(fwd_bwd, args.warmup, args.repeat, device)
            peak = None
            if device.type == "cuda":
                torch.cuda.synchronize(device)
                base = torch.cuda.memory_allocated(device)
                torch.cuda.reset_peak_memory_stats(device)
                fwd_bwd()
                torch.cuda.synchronize(device)
                peak = round((torch.cuda.max_memory_allocated(device) - base) / 2**30, 3)
            grad_diff = None
            if backend != "torch":
                fwd_bwd()
                grad_diff = float((enc.table.grad - ref_grad).abs().max() / ref_grad.abs().max().clamp_min(1e-30))
            row = {"distribution": distribution, "side": side, "points": int(u.shape[0]), "backend": backend,
                   "forward_ms": round(ms_fwd, 3), "forward_backward_ms": round(ms_both, 3),
                   "backward_ms": round(ms_both - ms_fwd, 3), "extra_peak_gb": peak, "max_abs_diff": diff,
                   "table_grad_max_rel_diff": grad_diff}
            print(json.dumps(row), flush=True)
            result["rows"].append(row)
    if args.out:
        atomic_write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
