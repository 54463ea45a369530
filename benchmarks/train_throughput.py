"""Benchmark: where the time of one LDM training step goes (``nvs train``, stage ``ldm``).

Builds a model preset (``demo`` by default, random weights) and a random view pool
(uint8 images, cameras on a sphere; no rendering) at the model's image size, then times,
each for ``--iters`` iterations after ``--warmup`` (CUDA-synchronised, median ms):

* ``data_float`` / ``data_uint8``: one :class:`PairBatches` item (the whole batch, built
  vectorised, in one data-loader worker) with float ``[-1, 1]`` images / uint8 images;
  ``it/s`` is what ONE worker can feed (``--workers`` of them run in parallel).
* ``h2d_float`` / ``h2d_uint8``: pin + copy of that batch to the device (what the
  loader's pin-memory thread and Lightning's transfer do), uint8 converted on the device.
* ``vae_encode``: VAE posterior sample of the targets (``model.encode``, no grad);
  ``image_embed``: image encoder of the conditions; ``cond_latent``: VAE encode of the
  conditions (both halves of ``model.embed_image``).
* ``unet_fwd_bwd``: ``predict_noise`` forward + backward (with ``cc_projection``) on a
  batch of latents; ``loss_fwd_bwd``: the whole ``LDMModule.diffusion_loss`` + backward.
* ``optimizer``: ``AdamW.step`` + ``zero_grad`` as configured (foreach), and ``optimizer_fused``.
* ``ema_foreach`` / ``ema_loop``: ``EMA.update`` vs the per-parameter reference loop.
* ``manual_step``: loss + backward + grad clip + optimizer + EMA in a plain loop (no Lightning),
  on a batch with the cached VAE posterior (as ``nvs train`` by default); ``manual_step_uncached``
  encodes the images every step. ``--compile``: ``manual_step_compiled`` after
  ``train.module.prepare_for_training`` (what ``nvs train compile=true`` does: UNet and image
  encoder compiled in place; ``--channels-last`` adds ``channels_last=true``), its first step
  (the compilation), and ``lightning_compiled``; ``--profile N``: the top ops of N steps.
* ``lightning``: ``run_train`` itself (pool saved to a temp folder, ``--lightning-steps``
  steps, ``--workers`` workers, no progress bar): steps/s between step ``--warmup`` and the
  last step (timestamps from ``on_train_batch_end``, synchronised), plus the whole call.

Components run under ``torch.autocast`` for ``bf16`` / ``fp16`` (Lightning's ``bf16-mixed`` / ``16-mixed``, as
Lightning does); the Lightning run uses ``--precision``. If ``lightning`` is far slower than
``manual_step``, the loop's own overhead (logging, loader, hooks) is the problem; if
``manual_step`` is far slower than ``unet_fwd_bwd``, look at the VAE / image encoder rows.

Examples::

    python benchmarks/train_throughput.py                                  # demo, batch 128, bf16, cuda
    python benchmarks/train_throughput.py --batch 256 --workers 8 --out $OUT/train_throughput.json
    python benchmarks/train_throughput.py --preset tiny --batch 4 --device cpu --precision fp32 \\
        --iters 2 --warmup 1 --lightning-steps 3 --workers 0     # smoke test (tests/test_train_ddp.py)
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

from novelviews import cameras as C
from novelviews.config import from_dict
from novelviews.io.runs import atomic_write_json
from novelviews.model import ViewConditionedLDM, model_config
from novelviews.runtime import resolve_device
from novelviews.train.data import ViewPool, images_to_float
from novelviews.train.module import prepare_for_training
from novelviews.train.pairs import PairBatches, PairDataset
from novelviews.train.run import TrainConfig

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def random_pool(scenes: int, views: int, size: int, seed: int = 0) -> ViewPool:
    """A pool of random uint8 images with cameras on a sphere (content does not affect speed)."""
    g = torch.Generator().manual_seed(seed)
    n = scenes * views
    c2w = C.camera_on_sphere(torch.rand(n, generator=g) * 0.8 + 0.1, torch.rand(n, generator=g) * 6.28,
                             torch.full((n,), 2.0))
    return ViewPool(images=torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8),
                    c2w=c2w.double(), fov=torch.full((n,), 0.8, dtype=torch.float64),
                    scale=torch.full((n,), 1.5, dtype=torch.float64),
                    scene=torch.arange(scenes).repeat_interleave(views), frame=torch.arange(views).repeat(scenes))


def timed(fn: Callable[[], Any], device: torch.device, iters: int, warmup: int) -> dict[str, float]:
    """Median / mean ms of ``fn`` over ``iters`` calls after ``warmup`` (device-synchronised)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t) * 1000)
    med = statistics.median(times)
    return {"ms": round(med, 3), "mean_ms": round(statistics.mean(times), 3), "it_s": round(1000 / med, 2) if med else None}


def lightning_run(cfg_dict: dict, pool: ViewPool, steps: int, warmup: int, device: torch.device) -> dict:
    """``run_train`` for ``steps`` steps; steps/s from synchronised timestamps after ``warmup`` steps."""
    from novelviews.train import module as M
    from novelviews.train.run import run_train

    stamps: list[float] = []
    original = M.LDMModule.on_train_batch_end

    def stamping(self, outputs, batch, batch_idx):
        original(self, outputs, batch, batch_idx)
        step = len(stamps)
        if step == warmup or step == steps - 1:
            if device.type == "cuda":
                torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        pool.save(Path(tmp) / "pool.pt")
        cfg = from_dict(TrainConfig, cfg_dict | {"data": [{"path": str(Path(tmp) / "pool.pt")}], "max_steps": steps})
        M.LDMModule.on_train_batch_end = stamping
        try:
            t = time.perf_counter()
            info = run_train(cfg, Path(tmp) / "run", progress=False)
            total = time.perf_counter() - t
        finally:
            M.LDMModule.on_train_batch_end = original
    n = len(stamps) - 1 - warmup
    rate = n / (stamps[-1] - stamps[warmup]) if n > 0 else None
    return {"steps": info["steps"], "it_s": round(rate, 2) if rate else None,
            "ms": round(1000 / rate, 3) if rate else None, "call_seconds": round(total, 1)}


def component_rows(rows: dict, args, module, batches, batches_u8, batch: dict, opt, params: list,
                   autocast, device: torch.device) -> None:
    """The per-component rows (data, transfer, encoders, UNet, loss, optimizer, EMA)."""
    model, b = module.model, args.batch
    counter = iter(range(10**9))
    rows["data_float"] = timed(lambda: batches[next(counter)], torch.device("cpu"), args.iters, 1)
    rows["data_uint8"] = timed(lambda: batches_u8[next(counter)], torch.device("cpu"), args.iters, 1)
    host, host_u8 = batches[0], batches_u8[0]
    pin = device.type == "cuda"

    def h2d(batch):
        def go():
            moved = {k: (v.pin_memory() if pin else v).to(device, non_blocking=pin) for k, v in batch.items()}
            return images_to_float(moved)
        return go

    rows["h2d_float"] = timed(h2d(host), device, args.iters, args.warmup)
    rows["h2d_uint8"] = timed(h2d(host_u8), device, args.iters, args.warmup)
    with torch.no_grad(), autocast():
        rows["vae_encode"] = timed(lambda: model.encode(batch["target"], sample=True), device, args.iters, args.warmup)
        rows["image_embed"] = timed(lambda: model.image_embedding(batch["cond"]), device, args.iters, args.warmup)
        rows["cond_latent"] = timed(lambda: model.vae.encode(batch["cond"]).latent_dist.mode(), device,
                                    args.iters, args.warmup)
        z0 = model.encode(batch["target"], sample=True).float()
        emb, lat = model.embed_image(batch["cond"])
    emb, lat = emb.float(), lat.float()
    t = torch.randint(0, 1000, (b,), device=device)

    def unet_step():
        with autocast():
            ctx = model.context(emb, batch["cam"])
            out = model.predict_noise(z0, t, ctx, lat)
            loss = out.float().square().mean()
        loss.backward()

    rows["unet_fwd_bwd"] = timed(unet_step, device, args.iters, args.warmup)

    def loss_step():
        with autocast():
            loss = module.diffusion_loss(batch)
        loss.backward()

    rows["loss_fwd_bwd"] = timed(loss_step, device, args.iters, args.warmup)
    def opt_step(o):
        def go():
            o.step()
            o.zero_grad(set_to_none=False)
        return go

    loss_step()
    rows["optimizer"] = timed(opt_step(opt), device, args.iters, args.warmup)
    if device.type == "cuda":  # not usable under nvs train: Lightning refuses clipping with a fused optimizer
        fused = torch.optim.AdamW(params, lr=1e-4, fused=True)
        rows["optimizer_fused"] = timed(opt_step(fused), device, args.iters, args.warmup)
    ema_ref = copy.deepcopy(module.ema)
    rows["ema_foreach"] = timed(lambda: module.ema.update(model), device, args.iters, args.warmup)
    rows["ema_loop"] = timed(lambda: ema_ref.update_reference(model), device, args.iters, args.warmup)

def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--precision", default="bf16", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--lightning-steps", type=int, default=60, help="0 skips the Lightning run")
    ap.add_argument("--workers", type=int, default=6)
    ap.add_argument("--scenes", type=int, default=64)
    ap.add_argument("--views", type=int, default=16)
    ap.add_argument("--compile", action="store_true",
                    help="also time manual_step and the Lightning run with nvs train's compile=true")
    ap.add_argument("--channels-last", action="store_true", help="with --compile: channels_last=true too")
    ap.add_argument("--skip-components", action="store_true", help="only the step rows (manual / Lightning)")
    ap.add_argument("--profile", type=int, default=0, help="profile N manual steps: top CUDA/CPU ops in the JSON")
    ap.add_argument("--out", default=None, help="JSON file (default: print only)")
    args = ap.parse_args(argv)

    device = resolve_device(args.device)
    torch.manual_seed(0)
    mcfg = model_config(args.preset)
    size, b = mcfg.image_size, args.batch
    base_cfg = {"arch": args.preset, "batch_size": b, "precision": args.precision, "num_workers": args.workers,
                "accelerator": "gpu" if device.type == "cuda" else "cpu", "devices": "1", "val_every": 10**6,
                "ckpt_every": 10**6, "val_batch": 2, "val_steps": 1, "log_every": 25, "warmup_steps": 1,
                "ema_decay": 0.999}
    cfg = from_dict(TrainConfig, base_cfg | {"synth": {"scenes": 1}})
    pool = random_pool(args.scenes, args.views, size)
    ds = PairDataset(pool, mcfg.camera_mode)
    batches = PairBatches([ds], [1.0], b, num_batches=10**6, seed=0)
    batches_u8 = PairBatches([ds], [1.0], b, num_batches=10**6, seed=0, uint8=True)

    from novelviews.train.module import LDMModule

    module = LDMModule(ViewConditionedLDM(mcfg), cfg).to(device)
    model = module.model
    unet_params = sum(p.numel() for p in model.unet.parameters())
    ac = AUTOCAST.get(args.precision)
    autocast = (lambda: torch.autocast(device.type, dtype=ac)) if ac else contextlib.nullcontext
    rows: dict[str, dict] = {}
    batch = {k: v.to(device) for k, v in batches[0].items()}
    params = [p for p in model.parameters() if p.requires_grad]
    opt = module.configure_optimizers()["optimizer"]
    if not args.skip_components:
        component_rows(rows, args, module, batches, batches_u8, batch, opt, params, autocast, device)

    with torch.no_grad():  # the pool's cached VAE posterior, as nvs train uses by default (cache_latents)
        post_t, post_c = model.vae.encode(batch["target"]).latent_dist, model.vae.encode(batch["cond"]).latent_dist
    cached = batch | {"cond_latent": post_c.mean, "target_mean": post_t.mean, "target_std": post_t.std}
    step_batch = [cached]

    def manual_step():
        with autocast():
            loss = module.diffusion_loss(step_batch[0])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        module.ema.update(model)

    rows["manual_step"] = timed(manual_step, device, args.iters, args.warmup)
    step_batch[0] = batch
    rows["manual_step_uncached"] = timed(manual_step, device, args.iters, args.warmup)
    step_batch[0] = cached
    profile = None
    if args.profile > 0:
        from torch.profiler import ProfilerActivity, profile as torch_profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with torch_profile(activities=acts) as prof:
            for _ in range(args.profile):
                manual_step()
            if device.type == "cuda":
                torch.cuda.synchronize()
        key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        profile = prof.key_averages().table(sort_by=key, row_limit=25)
        print(profile)
    if args.compile:  # as nvs train compile=true (channels_last=true with --channels-last)
        prepare_for_training(model, compile=True, channels_last=args.channels_last)
        # a new optimizer, as nvs train makes it after prepare_for_training (its state gets the parameters'
        # memory format; a fused AdamW refused channels-last weights with the old contiguous state)
        opt = module.configure_optimizers()["optimizer"]
        t0 = time.perf_counter()
        manual_step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        rows["compile_first_step"] = {"ms": round((time.perf_counter() - t0) * 1000, 1), "mean_ms": None, "it_s": None}
        rows["manual_step_compiled"] = timed(manual_step, device, args.iters, args.warmup)
    del module, model, opt, batch  # noqa: F821 - frees the cells the closures share (GPU memory)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if args.lightning_steps > 0:
        steps = max(args.lightning_steps, args.warmup + 2)
        rows["lightning"] = lightning_run(base_cfg, pool, steps, args.warmup, device)
        if args.compile:
            fast = base_cfg | {"compile": True, "channels_last": args.channels_last}
            rows["lightning_compiled"] = lightning_run(fast, pool, steps, args.warmup, device)

    result = {
        "preset": args.preset, "batch": b, "image_size": size, "latent_size": mcfg.latent_size,
        "precision": args.precision, "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__, "workers": args.workers,
        "unet_params_m": round(unet_params / 1e6, 2),
        "rows": rows, "profile": profile,
    }
    print(f"{args.preset} batch {b} at {size}px, {args.precision} on {result['gpu'] or device}")
    print(f"{'component':<16}{'ms':>10}{'it/s':>10}")
    for name, r in rows.items():
        print(f"{name:<16}{r['ms'] if r['ms'] is not None else '-':>10}{r['it_s'] if r['it_s'] is not None else '-':>10}")
    if args.out:
        atomic_write_json(Path(args.out), result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
