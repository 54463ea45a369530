"""Benchmark: speed and memory of novel-view sampling (``views.generate``) on the GPU.

Builds the full ZeroNVS-size architecture (``model_config("zeronvs")``: 859 M-parameter
SD-1.x UNet, SD KL-f8 VAE, CLIP ViT-L/14 image encoder) with **random weights** (nothing
is loaded) directly on the device, then times the code path users get:
``novelviews.views.generate`` -> ``sampling.sample`` (DDIM, eta 1) + ``sampling.guided_denoiser``
(``model.predict_noise_cfg``: both CFG branches in one batched UNet forward), image
encoding (CLIP + VAE encode of the one conditioning image) once per batch, VAE decode
included (``SamplingConfig.vae_chunk`` latents at a time, as users get).

Each config is ``DTYPE:BATCH`` with optional modifiers ``+cl`` (``SamplingConfig.channels_last``:
channels-last UNet and VAE)
and ``+compile`` (``SamplingConfig.compile``: ``torch.compile`` of the UNet and VAE decoder in place,
``--compile-mode``, static shapes), ``+graph`` (``SamplingConfig.cuda_graph``: the guided UNet
call replayed from a CUDA graph), ``+cudnn`` (``SamplingConfig.cudnn_benchmark``: cuDNN picks
its convolution algorithms by timing them; configs without it run with it off) and ``+fuse``
(``SamplingConfig.fuse_qkv``: one QKV matmul per attention). For
each: a short warm-up (``--warmup-steps`` DDIM steps; includes compilation), then
``--repeats`` full runs timed with CUDA events (median reported), peak memory
(``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, weights included),
then ``--unet-iters`` calls of the guided denoiser alone (one UNet forward of 2 x batch
images + the CFG mix) -> UNet ms per step.

Achieved TFLOP/s uses the per-image costs of docs/REFERENCE.md (zeronvs preset only): UNet 0.18 TFLOP
per image-forward at a 32x32 latent (x2 with CFG), VAE decode 0.62 and encode 0.27 TFLOP
per 256^2 image (scaled by area for other sizes); the CLIP encoder is not counted.

Time-bounded: ``--budget-seconds`` (default 150, counted from start, model build
included); when it is spent the remaining configs are recorded as skipped. The JSON is
rewritten (atomically) after every config, so a killed run still leaves what ran.

Examples::

    python benchmarks/sampling.py                                   # 7 eager configs, JSON to $OUT/sampling.json
    python benchmarks/sampling.py --compile --channels-last --budget-seconds 420
    python benchmarks/sampling.py --configs bf16:16,bf16:16+cl+compile --compile-mode max-autotune-no-cudagraphs
    python benchmarks/sampling.py --configs bf16:16+graph,bf16:16+graph+cudnn,bf16:16+graph+cudnn+compile
    python benchmarks/sampling.py --preset tiny --size 32 --steps 2 --device cpu   # smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from novelviews import cameras as C
from novelviews.io.runs import atomic_write_json
from novelviews.model import ViewConditionedLDM, model_config
from novelviews.cuda_graphs import denoiser_graphs
from novelviews.sampling import (COMPILE_MODES, DTYPES, SamplingConfig, cudnn_benchmark, guided_denoiser,
                                 uncompile_model, unfuse_qkv)
from novelviews.views import generate

DEFAULT_CONFIGS = "fp32:1,fp16:1,fp16:4,fp16:16,bf16:1,bf16:4,bf16:16"

# docs/REFERENCE.md "Compute cost of one view": TFLOP per image at 256 px (UNet at a 32x32 latent).
UNET_TFLOP_32 = 0.18
VAE_DECODE_TFLOP_256 = 0.62
VAE_ENCODE_TFLOP_256 = 0.27


# --------------------------------------------------------------------------- configs


@dataclass
class BenchConfig:
    """One measured setting: dtype ("fp32" | "fp16" | "bf16"), views per batch, modifiers."""

    dtype: str
    batch: int
    channels_last: bool = False
    compile: bool = False
    graph: bool = False
    cudnn: bool = False  # cudnn.benchmark (sampling.cudnn_benchmark)
    fuse: bool = False  # fused QKV projections (sampling.fuse_qkv)

    @property
    def name(self) -> str:
        return (f"{self.dtype}:{self.batch}" + ("+cl" if self.channels_last else "")
                + ("+compile" if self.compile else "") + ("+graph" if self.graph else "")
                + ("+cudnn" if self.cudnn else "") + ("+fuse" if self.fuse else ""))


def profile_call(fn: Callable[[], Any], device: torch.device, rows: int = 25) -> dict[str, Any]:
    """One call of ``fn`` under torch.profiler: its wall time, the time the device was busy (the
    sum of the kernels' own times: a busy share well under 1 means the GPU waits for the host),
    and the top ``rows`` operators by own device time (CPU time on a CPU) as a table."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    if cuda:
        torch.cuda.synchronize(device)
    t = time.perf_counter()
    with profile(activities=acts) as prof:
        fn()
        if cuda:
            torch.cuda.synchronize(device)
    wall_ms = 1000 * (time.perf_counter() - t)
    events = prof.key_averages()
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    if cuda and len(events) and not hasattr(events[0], key):
        key = "self_cuda_time_total"  # the name before torch 2.4
    busy_ms = sum(getattr(e, key) for e in events) / 1000 if cuda else None
    return {"wall_ms": round(wall_ms, 3), "device_busy_ms": None if busy_ms is None else round(busy_ms, 3),
            "device_busy_share": None if busy_ms is None else round(busy_ms / wall_ms, 4),
            "sort_by": key, "table": events.table(sort_by=key, row_limit=rows)}


def parse_configs(text: str) -> list[BenchConfig]:
    """``"fp16:16,bf16:1+cl+compile"`` -> configs (raises SystemExit with the fix on bad input)."""
    out = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        head, *mods = item.split("+")
        try:
            dtype, batch_s = head.split(":")
            batch = int(batch_s)
        except ValueError:
            raise SystemExit(f"--configs entry {item!r}: write DTYPE:BATCH[+cl][+compile][+graph][+cudnn][+fuse], "
                             "e.g. bf16:16+graph")
        if dtype not in DTYPES or batch < 1:
            raise SystemExit(f"--configs entry {item!r}: dtype must be one of {', '.join(DTYPES)} and batch >= 1")
        bad = [m for m in mods if m not in ("cl", "compile", "graph", "cudnn", "fuse")]
        if bad:
            raise SystemExit(f"--configs entry {item!r}: unknown modifier(s) {bad}; use +cl, +compile, +graph, +cudnn, +fuse")
        out.append(BenchConfig(dtype, batch, "cl" in mods, "compile" in mods, "graph" in mods, "cudnn" in mods,
                               "fuse" in mods))
    if not out:
        raise SystemExit("--configs is empty: give at least one DTYPE:BATCH")
    return out


def expand_configs(base: list[BenchConfig], channels_last: bool, compile_: bool) -> list[BenchConfig]:
    """Append the ``--channels-last`` / ``--compile`` variants of the half-precision configs.

    Eager configs come first, then channels-last, then compiled (largest batch first), so
    a tight budget cuts the most expensive variants.
    """
    out = list(base)
    half = [c for c in base if c.dtype != "fp32" and not c.channels_last and not c.compile]
    half = sorted(half, key=lambda c: -c.batch)
    if channels_last:
        out += [BenchConfig(c.dtype, c.batch, True, False) for c in half]
    if compile_:
        out += [BenchConfig(c.dtype, c.batch, channels_last, True) for c in half]
    seen, uniq = set(), []
    for c in out:
        if c.name not in seen:
            seen.add(c.name)
            uniq.append(c)
    return uniq


# --------------------------------------------------------------------------- environment


def environment(device: torch.device) -> dict[str, Any]:
    """Versions, GPU, matmul flags and SDPA backend availability (probed at the UNet's shape)."""
    from importlib import metadata

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    env: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "diffusers": version("diffusers"),
        "transformers": version("transformers"),
        "triton": version("triton"),
        "python": sys.version.split()[0],
        "device": str(device),
        "allow_tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "allow_tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        env.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 2),
                   capability=f"{p.major}.{p.minor}", sm_count=p.multi_processor_count)
    else:
        env["gpu"] = None
    sdpa: dict[str, Any] = {}
    for flag in ("flash_sdp_enabled", "mem_efficient_sdp_enabled", "math_sdp_enabled", "cudnn_sdp_enabled"):
        fn = getattr(torch.backends.cuda, flag, None)
        sdpa[flag] = fn() if fn is not None else None
    fn = getattr(torch.backends.cuda, "is_flash_attention_available", None)
    sdpa["is_flash_attention_available"] = fn() if fn is not None else None
    if device.type == "cuda":
        sdpa["probe"] = probe_sdpa(device)
    env["sdpa"] = sdpa
    return env


def probe_sdpa(device: torch.device) -> dict[str, str]:
    """Which SDPA kernels run at the UNet's largest self-attention (heads 8, 1024 tokens, dim 40)."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    out = {}
    for dname in ("fp16", "bf16"):
        q = torch.randn(2, 8, 1024, 40, device=device, dtype=DTYPES[dname])
        for backend in ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH"):
            be = getattr(SDPBackend, backend, None)
            if be is None:
                out[f"{dname}/{backend}"] = "absent"
                continue
            try:
                with torch.no_grad(), sdpa_kernel([be]):
                    F.scaled_dot_product_attention(q, q, q)
                torch.cuda.synchronize(device)
                out[f"{dname}/{backend}"] = "ok"
            except Exception as e:  # noqa: BLE001 - report any failure as unavailable
                out[f"{dname}/{backend}"] = f"unavailable: {str(e).splitlines()[0][:120]}"
    return out


# --------------------------------------------------------------------------- model


def build_model(preset: str, size: int, device: torch.device) -> ViewConditionedLDM:
    """Random-weight model built directly on ``device`` (fp32; cast per config)."""
    cfg = model_config(preset, overrides=[f"image_size={size}"])
    with torch.device(device):
        model = ViewConditionedLDM(cfg)
    return model.eval().requires_grad_(False)


def flops_per_batch(preset: str, size: int, latent: int, batch: int, steps: int, cfg_scale: float) -> dict | None:
    """docs/REFERENCE.md cost model (TFLOP) of one ``generate`` call of ``batch`` views; None off zeronvs."""
    if preset != "zeronvs":
        return None
    branches = 1 if cfg_scale == 1.0 else 2
    unet_fwd = UNET_TFLOP_32 * (latent / 32) ** 2
    area = (size / 256) ** 2
    unet_step = branches * batch * unet_fwd
    total = steps * unet_step + batch * VAE_DECODE_TFLOP_256 * area + VAE_ENCODE_TFLOP_256 * area
    return {"unet_step_tflop": unet_step, "batch_tflop": total, "view_tflop": total / batch}


# --------------------------------------------------------------------------- timing


class Timer:
    """Wall time of a region: CUDA events on a GPU, perf_counter on the CPU (seconds)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    @contextlib.contextmanager
    def __call__(self, out: list[float]):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            yield
            b.record()
            torch.cuda.synchronize(self.device)
            out.append(a.elapsed_time(b) / 1000.0)
        else:
            t = time.perf_counter()
            yield
            out.append(time.perf_counter() - t)


def timed_runs(rec: dict[str, Any], warm: Callable[[], Any], full: Callable[[], Any], repeats: int,
               deadline: float, timer: Timer, device: torch.device, batch: int) -> Any:
    """One warm-up call (``rec["warmup_s"]``), then up to ``repeats`` timed full calls (at least one;
    no new one after ``deadline``), the peak-memory counter reset between: ``rec`` gets
    ``latencies_s``, their median ``latency_s`` and ``s_per_view``. Returns the last output."""
    cuda = device.type == "cuda"
    t = time.perf_counter()
    warm()
    if cuda:
        torch.cuda.synchronize(device)
    rec["warmup_s"] = time.perf_counter() - t
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    lat: list[float] = []
    out = None
    for i in range(repeats):
        if i > 0 and time.perf_counter() > deadline:
            rec["note"] = f"budget spent: {len(lat)} of {repeats} repeats"
            break
        with timer(lat):
            out = full()
    rec["latencies_s"] = lat
    rec["latency_s"] = statistics.median(lat)
    rec["s_per_view"] = rec["latency_s"] / batch
    return out


def record_failure(rec: dict[str, Any], e: Exception) -> None:
    """A failed config's status in ``rec``: ``oom`` (the first line of the message) or ``error``
    (type, message, the end of the traceback)."""
    if isinstance(e, torch.cuda.OutOfMemoryError):
        rec["status"] = "oom"
        rec["error"] = str(e).splitlines()[0][:300]
    else:
        rec["status"] = "error"
        rec["error"] = f"{type(e).__name__}: {str(e)[:300]}"
        rec["traceback"] = traceback.format_exc(limit=6)[-2000:]


def make_inputs(model: ViewConditionedLDM, batch: int, seed: int = 0):
    """One conditioning image + ``batch`` target cameras on an orbit (OpenGL c2w, radians)."""
    g = torch.Generator("cpu").manual_seed(seed)
    s = model.config.image_size
    image = torch.rand(1, 3, s, s, generator=g) * 2 - 1
    cond = C.camera_on_sphere(math.radians(30.0), 0.0, 1.5)[None]
    az = torch.linspace(0, 2 * math.pi, batch + 1)[:-1] + 0.3
    targets = torch.stack([C.camera_on_sphere(math.radians(20.0), float(a), 1.5) for a in az])
    fov = torch.full((batch,), math.radians(50.0))
    return image, cond, targets, fov


def run_config(model: ViewConditionedLDM, bc: BenchConfig, args, device: torch.device, deadline: float,
               timer: Timer) -> dict[str, Any]:
    """Measure one config; the model is restored (no compile, contiguous format) afterwards."""
    rec: dict[str, Any] = {"config": bc.name, **asdict(bc)}
    dtype = DTYPES[bc.dtype]
    model.to(dtype)
    cuda = device.type == "cuda"
    try:
        if cuda:
            torch.cuda.empty_cache()
            rec["weights_gib"] = torch.cuda.memory_allocated(device) / 2**30
        # the product path: sampling.compile / channels_last act on the model in place, undone below

        image, cond, targets, fov = make_inputs(model, bc.batch, args.seed)
        scfg = SamplingConfig(steps=args.steps, guidance_scale=args.guidance, eta=args.eta, batch_size=bc.batch,
                              precision=bc.dtype, seed=args.seed, vae_chunk=args.vae_chunk or SamplingConfig.vae_chunk,
                              cuda_graph=bc.graph, compile=args.compile_mode if bc.compile else "off",
                              cudnn_benchmark=bc.cudnn, channels_last=bc.channels_last,
                              fuse_qkv=bc.fuse)
        warm = SamplingConfig(**{**asdict(scfg), "steps": max(1, min(args.warmup_steps, args.steps))})

        def once(c: SamplingConfig) -> torch.Tensor:
            return generate(model, image, cond, targets, fov, scale=0.7, cfg=c, progress=False)

        with torch.no_grad():
            img = timed_runs(rec, lambda: once(warm), lambda: once(scfg), args.repeats, deadline, timer,
                             device, bc.batch)
        rec["output_finite"] = bool(torch.isfinite(img).all()) if img is not None else None
        if args.profile and img is not None:
            with torch.no_grad():
                rec["profile"] = profile_call(lambda: once(scfg), device, args.profile_rows)
        if cuda:
            rec["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            rec["peak_reserved_gib"] = torch.cuda.max_memory_reserved(device) / 2**30

        # UNet alone (one guided denoiser call = one UNet forward on 2 x batch + the CFG mix)
        ls = model.config.latent_size
        with torch.no_grad():
            emb, cond_lat = model.embed_image(image.to(device))
            cam = C.camera_embedding(model.config.camera_mode, cond.expand(bc.batch, 4, 4), targets, 0.7, fov)
            ctx = model.context(emb, cam.to(device=device, dtype=emb.dtype))
            eps_fn = guided_denoiser(model, ctx, cond_lat, args.guidance, dtype)
            x = torch.randn(bc.batch, model.latent_channels, ls, ls, device=device)
            tt = torch.full((bc.batch,), 500, device=device, dtype=torch.long)
            with cudnn_benchmark(bc.cudnn):
                for _ in range(2):
                    eps_fn(x, tt)
                step: list[float] = []
                with timer(step):
                    for _ in range(args.unet_iters):
                        eps_fn(x, tt)
        rec["unet_ms_per_step"] = 1000 * step[0] / args.unet_iters

        fl = flops_per_batch(args.preset, model.config.image_size, ls, bc.batch, args.steps, args.guidance)
        if fl is not None:
            rec["tflop_per_view"] = fl["view_tflop"]
            rec["achieved_tflops"] = fl["batch_tflop"] / rec["latency_s"]
            rec["unet_achieved_tflops"] = fl["unet_step_tflop"] / (rec["unet_ms_per_step"] / 1000)
        rec["status"] = "ok"
    except Exception as e:  # noqa: BLE001 - one failing config must not lose the others
        record_failure(rec, e)
    finally:
        if bc.channels_last:
            model.unet.to(memory_format=torch.contiguous_format)
            model.vae.to(memory_format=torch.contiguous_format)
        denoiser_graphs(model).clear()  # this config's CUDA graphs and their memory pools
        if bc.fuse:
            unfuse_qkv(model)
        if bc.compile:
            uncompile_model(model)  # undo sampling.compile (nn.Module.compile in place)
            torch._dynamo.reset()
        if cuda:
            torch.cuda.empty_cache()
    return rec


# --------------------------------------------------------------------------- report


def fmt(v, spec: str) -> str:
    """``format(v, spec)``, or a dash padded to the spec's width when ``v`` is None."""
    if v is None:
        width = spec.split(".")[0]
        return "-".rjust(int(width)) if width.isdigit() else "-"
    return format(v, spec)


def table(results: list[dict]) -> str:
    """Compact fixed-width table of the results."""
    w = max([22] + [len(r["config"]) + 2 for r in results])
    head = f"{'config':<{w}}{'status':<8}{'ms/view':>9}{'batch s':>9}{'unet ms':>9}{'peak GiB':>10}{'TFLOP/s':>9}{'unet TF/s':>10}"
    lines = [head, "-" * len(head)]
    for r in results:
        spv = r.get("s_per_view")
        lines.append(
            f"{r['config']:<{w}}{r.get('status', '?'):<8}{fmt(None if spv is None else 1000 * spv, '9.1f')}"
            f"{fmt(r.get('latency_s'), '9.3f')}{fmt(r.get('unet_ms_per_step'), '9.2f')}"
            f"{fmt(r.get('peak_gib'), '10.2f')}{fmt(r.get('achieved_tflops'), '9.1f')}"
            f"{fmt(r.get('unet_achieved_tflops'), '10.1f')}"
        )
    return "\n".join(lines)


def markdown_rows(report: dict) -> str:
    """Rows for docs/BENCHMARKS.md (card | dtype | batch | variant | ms/view | latency | UNet ms | peak | TFLOP/s)."""
    gpu = report["environment"].get("gpu") or "cpu"
    rows = []
    for r in report["results"]:
        if r.get("status") != "ok":
            continue
        variant = " ".join(name for key, name in (("channels_last", "channels-last"), ("compile", "compile"),
                                                   ("graph", "CUDA graph"), ("cudnn", "cudnn-benchmark"),
                                                   ("fuse", "fused QKV"))
                           if r.get(key))
        rows.append(
            f"| {gpu} | {r['dtype']} | {r['batch']} | {variant.strip() or 'eager'} | {1000 * r['s_per_view']:.0f} "
            f"| {r['latency_s']:.2f} | {r['unet_ms_per_step']:.1f} | {fmt(r.get('peak_gib'), '.2f')} "
            f"| {fmt(r.get('achieved_tflops'), '.0f')} |"
        )
    return "\n".join(rows)


# --------------------------------------------------------------------------- main


def default_out() -> Path | None:
    out = os.environ.get("OUT")
    return Path(out) / "sampling.json" if out else None


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="zeronvs", help="model preset (random weights); zeronvs = full size")
    p.add_argument("--size", type=int, default=256, help="image side in pixels (latent = size / 8 for zeronvs)")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps")
    p.add_argument("--guidance", type=float, default=3.0, help="CFG scale (1 = no unconditional branch)")
    p.add_argument("--eta", type=float, default=1.0, help="DDIM eta (reference: 1)")
    p.add_argument("--configs", default=DEFAULT_CONFIGS, help="DTYPE:BATCH[+cl][+compile],... (default: %(default)s)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd UNet variants of the fp16/bf16 configs")
    p.add_argument("--compile-mode", default="default", choices=[m for m in COMPILE_MODES if m != "off"],
                   help="sampling.compile of the +compile configs")
    p.add_argument("--compile-min-seconds", type=float, default=60.0,
                   help="skip a compiled config when less budget than this is left (compilation is slow)")
    p.add_argument("--channels-last", action="store_true", help="also time channels-last variants of the fp16/bf16 configs")
    p.add_argument("--repeats", type=int, default=3, help="timed full runs per config (median reported)")
    p.add_argument("--unet-iters", type=int, default=10, help="timed guided-denoiser calls per config")
    p.add_argument("--warmup-steps", type=int, default=5, help="DDIM steps of the warm-up run")
    p.add_argument("--vae-chunk", type=int, default=None, help="VAE decode chunk (default: SamplingConfig's)")
    p.add_argument("--budget-seconds", type=float, default=150.0, help="stop starting configs after this (from start)")
    p.add_argument("--device", default="auto", help="auto | cuda | cuda:N | cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", action="store_true",
                   help="also profile one full run per config (device busy share, top operators) into the JSON")
    p.add_argument("--profile-rows", type=int, default=25, help="operators in each --profile table")
    p.add_argument("--out", type=Path, default=None, help="JSON output (default: $OUT/sampling.json if $OUT is set)")
    args = p.parse_args(argv)
    for name in ("steps", "repeats", "unet_iters", "warmup_steps", "size"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1")

    t0 = time.perf_counter()
    deadline = t0 + args.budget_seconds
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for but no CUDA GPU is available: use --device cpu")
    configs = expand_configs(parse_configs(args.configs), args.channels_last, args.compile)
    out = args.out or default_out()

    report: dict[str, Any] = {
        "benchmark": "sampling",
        "command": " ".join(["python", "benchmarks/sampling.py", *(sys.argv[1:] if argv is None else argv)]),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "environment": environment(device),
        "cost_model": {"unet_tflop_per_image_forward_32x32": UNET_TFLOP_32,
                       "vae_decode_tflop_256": VAE_DECODE_TFLOP_256, "vae_encode_tflop_256": VAE_ENCODE_TFLOP_256,
                       "source": "docs/REFERENCE.md compute cost; CLIP encoder not counted"},
        "results": [],
    }

    def save() -> None:
        report["elapsed_s"] = time.perf_counter() - t0
        if out is not None:
            atomic_write_json(out, report)

    try:
        tb = time.perf_counter()
        model = build_model(args.preset, args.size, device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        report["build_s"] = time.perf_counter() - tb
        report["parameters"] = model.num_parameters()
        procs = getattr(model.unet, "attn_processors", {})
        report["environment"]["unet_attention_processor"] = (
            sorted({type(v).__name__ for v in procs.values()}) if procs else None)
    except Exception as e:  # noqa: BLE001 - still write the JSON
        report["error"] = f"model build failed: {type(e).__name__}: {e}"
        save()
        print(report["error"], file=sys.stderr)
        return report
    save()

    # fp32 first, so later casts go fp32 -> half (random weights: precision is irrelevant to timing)
    order = sorted(range(len(configs)), key=lambda i: (configs[i].dtype != "fp32", i))
    for i in order:
        bc = configs[i]
        left = deadline - time.perf_counter()
        if left <= 0 or (bc.compile and left < args.compile_min_seconds):
            report["results"].append({"config": bc.name, **asdict(bc), "status": "skipped",
                                      "note": f"budget: {max(left, 0):.0f} s left"})
            save()
            continue
        print(f"[sampling bench] {bc.name} ({left:.0f} s of budget left)", file=sys.stderr, flush=True)
        rec = run_config(model, bc, args, device, deadline, timer=Timer(device))
        report["results"].append(rec)
        save()
        if rec["status"] != "ok":
            print(f"[sampling bench] {bc.name}: {rec['status']}: {rec.get('error')}", file=sys.stderr, flush=True)

    report["markdown_rows"] = markdown_rows(report)
    save()
    env = report["environment"]
    print(f"\n{env.get('gpu') or 'cpu'} | torch {env['torch']} | {args.preset} {args.size}px, {args.steps} DDIM "
          f"steps, CFG {args.guidance} | build {report['build_s']:.1f} s, total {report['elapsed_s']:.0f} s"
          + (f" | JSON: {out}" if out else ""))
    print(table(report["results"]))
    return report


if __name__ == "__main__":
    main()
