"""Benchmark: hand-written diffusers sampling loops for the view-conditioned LDM, timed on one card.

The counterpart of ``benchmarks/sampling.py`` (which times our sampler, ``novelviews.views.generate``):
the same random-weight model (``build_model``), the same inputs (``make_inputs``), the same timer
and cost model, but the denoising loop is the one a careful diffusers user would write around
``model.unet`` (diffusers ``UNet2DConditionModel``) and ``model.vae`` (diffusers ``AutoencoderKL``):

* conditioning as our sampler builds it: the VAE posterior *mode* of the input image (fed to the
  UNet unscaled, concatenated to the noisy latent, as the model was trained; the scaling factor
  applies to the diffusion latents only), the image embedding plus the camera embedding through
  ``model.context``; the unconditional branch has a zero context token and a zero latent;
* ``diffusers.DDIMScheduler`` set up as our schedule (scaled_linear 0.00085..0.012, 1000 steps,
  ``timestep_spacing="leading"`` + ``steps_offset=1`` -> timesteps ``1, 1 + c, ...`` as
  ``sampling.ddim_timesteps``; ``set_alpha_to_one=False``, ``clip_sample=False``, epsilon), checked
  against ours at start-up;
* initial noise and the DDIM noise from one CPU generator per view (seed + i, as ours), passed to
  ``randn_tensor`` and ``scheduler.step(..., eta=eta, generator=...)``; latents kept in float32;
* batched CFG (one UNet call on ``[uncond, cond]``), then one VAE decode of the whole batch.

Loops (``--loops``):

* ``plain``: fp16 weights, eager, cuDNN autotuning off (PyTorch's default);
* ``tuned``: diffusers' documented speed-ups: bf16 weights, channels-last UNet and VAE,
  ``unet.fuse_qkv_projections()`` (where the installed diffusers has it; recorded), ``torch.compile``
  of the UNet and of ``vae.decode`` (``--compile-mode``, static shapes; ``off`` skips it),
  ``torch.backends.cudnn.benchmark`` on; optional ``--fullgraph`` and ``--inductor-flags``
  (the inductor settings of diffusers' inference tutorial); compilation falls in the warm-up;
* ``ours``: ``views.generate`` at fp16 with ``SamplingConfig`` defaults, through the same harness,
  for a side-by-side row from the same process (``benchmarks/sampling.py`` has the full matrix).

Per (loop, batch): preparation time, warm-up time (``--warmup-steps`` steps; includes compilation),
median latency of ``--repeats`` full runs (CUDA events), s/view and ms/view, peak memory after a
reset (weights included), whether the output is finite, achieved TFLOP/s (zeronvs cost model).

Correctness (``agreement``, also run by the CLI unless ``--check off``): on the tiny preset at
32 px in fp32 the plain loop, started from the same noise, must give the images of our
``generate`` and the latents of our DDIM on the same guided denoiser within ``--check-tolerance``.

Time-bounded: ``--budget-seconds`` (from start, model build included) stops starting new configs
(recorded as skipped); a compiled config also needs ``--compile-min-seconds`` left. The JSON is
rewritten atomically after every config.

Examples::

    python benchmarks/diffusers_loops.py --device cuda --preset zeronvs --size 256 --steps 50 --eta 1 \\
        --batches 16,1 --loops plain,tuned --out diffusers_loops.json
    python benchmarks/diffusers_loops.py --loops plain,tuned,ours --compile-mode max-autotune-no-cudagraphs
    python benchmarks/diffusers_loops.py --device cpu --preset tiny --size 32 --steps 2 --batches 2 \\
        --loops plain,tuned --compile-mode off   # smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from novelviews import cameras as C
from novelviews.generation import generate
from novelviews.io.runs import atomic_write_json
from novelviews.sampling import (COMPILE_MODES, SamplingConfig, cudnn_benchmark, ddim_timesteps, guided_denoiser,
                                 make_generators, randn_per_sample, sample_ddim, schedule_alphas, unfuse_qkv)


def _load_sampling_bench():
    """``benchmarks/sampling.py`` as a module (the benchmarks folder is not a package)."""
    name = "novelviews_bench_sampling"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / "sampling.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return mod


_bench = _load_sampling_bench()
build_model, make_inputs, Timer, flops_per_batch, timed_runs, record_failure = (
    _bench.build_model, _bench.make_inputs, _bench.Timer, _bench.flops_per_batch, _bench.timed_runs,
    _bench.record_failure)

LOOPS = ("plain", "tuned", "ours")
LOOP_DTYPES = {"plain": torch.float16, "tuned": torch.bfloat16, "ours": torch.float16}
# the inductor settings of diffusers' "accelerate inference of text-to-image diffusion models" tutorial
INDUCTOR_FLAGS = {"conv_1x1_as_mm": True, "coordinate_descent_tuning": True, "epilogue_fusion": False,
                  "coordinate_descent_check_all_directions": True}


# --------------------------------------------------------------------------- scheduler


def ddim_scheduler(schedule):
    """``diffusers.DDIMScheduler`` with the model's training schedule and the reference's DDIM conventions."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(num_train_timesteps=schedule.num_train_timesteps, beta_start=schedule.beta_start,
                         beta_end=schedule.beta_end, beta_schedule=schedule.beta_schedule,
                         prediction_type=schedule.prediction_type, clip_sample=False, set_alpha_to_one=False,
                         steps_offset=1, timestep_spacing="leading")


def scheduler_report(schedule, steps: int) -> dict[str, Any]:
    """The scheduler's settings and whether its timesteps are ours (``sampling.ddim_timesteps``)."""
    sched = ddim_scheduler(schedule)
    sched.set_timesteps(steps)
    theirs = [int(t) for t in sched.timesteps]
    ours = ddim_timesteps(schedule.num_train_timesteps, steps)
    keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "prediction_type", "clip_sample",
            "set_alpha_to_one", "steps_offset", "timestep_spacing")
    return {"class": type(sched).__name__, **{k: sched.config[k] for k in keys},
            "timesteps_match_reference": theirs == ours, "first_timesteps": theirs[-3:][::-1],
            "last_timestep": theirs[0]}


# --------------------------------------------------------------------------- the loop


def _randn(shape, generators: list[torch.Generator], device) -> torch.Tensor:
    from diffusers.utils.torch_utils import randn_tensor

    return randn_tensor(tuple(shape), generator=generators, device=torch.device(device), dtype=torch.float32)


@torch.no_grad()
def diffusers_latents(model, image: torch.Tensor, cond_c2w, target_c2w, fov, steps: int, guidance: float,
                      eta: float, seed: int, scale=1.0, unet: Callable | None = None) -> torch.Tensor:
    """The denoising part of the diffusers loop: final latents ``[B, 4, h, w]`` (float32, scaled).

    ``image [1, 3, S, S]`` in [-1, 1]; ``cond_c2w [1, 4, 4]`` and ``target_c2w [B, 4, 4]`` OpenGL;
    ``fov`` radians (scalar or ``[B]``); view i draws its noise from a CPU generator seeded ``seed + i``.
    ``unet`` replaces ``model.unet`` (e.g. a compiled one). Computes in the UNet's dtype.
    """
    unet = model.unet if unet is None else unet
    device, dtype = model.unet.device, model.unet.dtype
    target_c2w = torch.as_tensor(target_c2w)
    B = target_c2w.shape[0]

    # conditioning, once per batch
    image = image.to(device=device, dtype=dtype)
    cond_latent = model.vae.encode(image).latent_dist.mode()  # unscaled, as the model was trained
    image_emb = model.image_embedding(image)
    fov = torch.as_tensor(fov, dtype=torch.float64).expand(B)
    scale = torch.as_tensor(scale, dtype=torch.float64).expand(B)
    cam = C.camera_embedding(model.config.camera_mode, torch.as_tensor(cond_c2w).expand(B, 4, 4), target_c2w,
                             scale, fov)
    context = model.context(image_emb, cam.to(device=device, dtype=dtype))
    cond_latent = cond_latent.expand(B, *cond_latent.shape[1:])
    cfg = guidance != 1.0
    if cfg:  # [uncond, cond]: zero context token, zero conditioning latent
        context = torch.cat([torch.zeros_like(context), context])
        cond_latent = torch.cat([torch.zeros_like(cond_latent), cond_latent])
    else:
        cond_latent = cond_latent.contiguous()

    sched = ddim_scheduler(model.config.schedule)
    sched.set_timesteps(steps, device=device)
    generators = make_generators(range(seed, seed + B))
    shape = (B, model.config.vae.latent_channels, model.config.latent_size, model.config.latent_size)
    latents = _randn(shape, generators, device) * sched.init_noise_sigma
    for t in sched.timesteps:
        x = torch.cat([latents, latents]) if cfg else latents
        x = sched.scale_model_input(x, t)
        h = torch.cat([x.to(dtype), cond_latent], dim=1)
        eps = unet(h, t, encoder_hidden_states=context, return_dict=False)[0].float()
        if cfg:
            eps_u, eps_c = eps.chunk(2)
            eps = eps_u + guidance * (eps_c - eps_u)
        latents = sched.step(eps, t, latents, eta=eta, generator=generators).prev_sample
    return latents


def decode_latents(model, latents: torch.Tensor, decode: Callable | None = None) -> torch.Tensor:
    """Diffusion latents -> images ``[B, 3, S, S]`` in [-1, 1], float32 on the CPU (as ``generate``)."""
    decode = model.vae.decode if decode is None else decode
    z = latents.to(dtype=model.vae.dtype) / model.vae.config.scaling_factor
    return decode(z, return_dict=False)[0].float().clamp(-1, 1).cpu()


@torch.no_grad()
def plain_loop(model, image, cond_c2w, target_c2w, fov, steps: int, guidance: float, eta: float, seed: int,
               scale=1.0) -> torch.Tensor:
    """The diffusers loop on the model as it is (eager, its own dtype): images ``[B, 3, S, S]``."""
    z = diffusers_latents(model, image, cond_c2w, target_c2w, fov, steps, guidance, eta, seed, scale)
    return decode_latents(model, z)


class TunedLoop:
    """The tuned diffusers loop: prepares the model in place on construction, :meth:`restore` undoes it.

    bf16 weights, channels-last UNet and VAE, fused QKV projections (when diffusers has them for
    this UNet), ``torch.compile`` of the UNet and ``vae.decode`` (``compile_mode`` "off" skips it;
    compiled lazily on the first call). ``applied`` records what was done. cuDNN autotuning is the
    caller's (the benchmark turns it on around the runs).
    """

    def __init__(self, model, compile_mode: str = "default", fuse_qkv: bool = True, channels_last: bool = True,
                 fullgraph: bool = False, dtype: torch.dtype = torch.bfloat16) -> None:
        if compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode {compile_mode!r}: use one of {', '.join(COMPILE_MODES)}")
        self.model = model
        model.to(dtype)
        self.applied: dict[str, Any] = {"dtype": str(dtype).replace("torch.", ""), "channels_last": channels_last}
        if channels_last:
            model.unet.to(memory_format=torch.channels_last)
            model.vae.to(memory_format=torch.channels_last)
        self.applied["fuse_qkv"] = self._fuse() if fuse_qkv else "off"
        procs = getattr(model.unet, "attn_processors", {})
        self.applied["attention_processor"] = sorted({type(p).__name__ for p in procs.values()}) or None
        self.unet, self.decode = model.unet, model.vae.decode
        if compile_mode != "off":
            mode = None if compile_mode == "default" else compile_mode
            self.unet = torch.compile(model.unet, mode=mode, fullgraph=fullgraph, dynamic=False)
            self.decode = torch.compile(model.vae.decode, mode=mode, fullgraph=fullgraph, dynamic=False)
        self.applied.update(compile=compile_mode, fullgraph=fullgraph if compile_mode != "off" else None)

    def _fuse(self) -> str:
        fuse = getattr(self.model.unet, "fuse_qkv_projections", None)
        if fuse is None:
            return "unavailable: this diffusers' UNet2DConditionModel has no fuse_qkv_projections"
        try:
            fuse()
        except Exception as e:  # noqa: BLE001 - record why it did not apply, run unfused
            self._unfuse()
            return f"unavailable: {type(e).__name__}: {str(e)[:160]}"
        return "applied"

    def _unfuse(self) -> None:
        unfuse_qkv(self.model)  # also drops the fused copies of the weights (memory of later configs)

    @torch.no_grad()
    def __call__(self, model, image, cond_c2w, target_c2w, fov, steps: int, guidance: float, eta: float, seed: int,
                 scale=1.0) -> torch.Tensor:
        if model is not self.model:
            raise ValueError("TunedLoop was prepared for another model")
        z = diffusers_latents(model, image, cond_c2w, target_c2w, fov, steps, guidance, eta, seed, scale, self.unet)
        return decode_latents(model, z, self.decode)

    def restore(self) -> None:
        """Unfused, contiguous, eager again (the dtype is left to the caller)."""
        if self.applied.get("fuse_qkv") == "applied":
            self._unfuse()
        if self.applied["channels_last"]:
            self.model.unet.to(memory_format=torch.contiguous_format)
            self.model.vae.to(memory_format=torch.contiguous_format)
        if self.applied["compile"] != "off":
            self.unet, self.decode = self.model.unet, self.model.vae.decode
            torch._dynamo.reset()


def ours_loop(model, image, cond_c2w, target_c2w, fov, steps: int, guidance: float, eta: float, seed: int,
              scale=1.0) -> torch.Tensor:
    """Our sampler (``generate``) at the model's dtype with ``SamplingConfig`` defaults, one batch."""
    dtype = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[model.unet.dtype]
    B = torch.as_tensor(target_c2w).shape[0]
    cfg = SamplingConfig(steps=steps, guidance_scale=guidance, eta=eta, batch_size=B, precision=dtype, seed=seed)
    return generate(model, image, cond_c2w, target_c2w, fov, scale=scale, cfg=cfg, progress=False)


# --------------------------------------------------------------------------- correctness


@torch.no_grad()
def agreement(steps: int = 3, eta: float = 0.0, guidance: float = 3.0, batch: int = 2, seed: int = 0,
              device="cpu", tolerance: float = 1e-4, scale: float = 0.7) -> dict[str, Any]:
    """The plain loop (fp32) against our sampler on the tiny preset at 32 px, from the same noise.

    Compares the images with ``generate``'s and the final latents with our ``sample_ddim`` on
    ``guided_denoiser`` (same conditioning, same per-view generators). ``passed``: both maximum
    absolute differences are at most ``tolerance``.
    """
    device = torch.device(device)
    if device.type == "cuda":  # exact fp32 on the GPU too: TF32 matmuls / convolutions differ by ~1e-3
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model("tiny", 32, device)
    image, cond, targets, fov = make_inputs(model, batch, seed)
    cfg = SamplingConfig(steps=steps, guidance_scale=guidance, eta=eta, batch_size=batch, precision="fp32", seed=seed,
                         vae_chunk=batch, cudnn_benchmark=False)
    ours_img = generate(model, image, cond, targets, fov, scale=scale, cfg=cfg, progress=False)
    theirs_z = diffusers_latents(model, image, cond, targets, fov, steps, guidance, eta, seed, scale)
    theirs_img = decode_latents(model, theirs_z)

    # our DDIM on the guided denoiser, conditioned as generate does
    emb, cond_latent = model.embed_image(image.to(device))
    cam = C.camera_embedding(model.config.camera_mode, cond.expand(batch, 4, 4), targets,
                             torch.full((batch,), scale, dtype=torch.float64), fov.double())
    ctx = model.context(emb, cam.to(device=device, dtype=emb.dtype))
    eps_fn = guided_denoiser(model, ctx, cond_latent, guidance)
    gens = make_generators(range(seed, seed + batch))
    shape = (batch, model.config.vae.latent_channels, model.config.latent_size, model.config.latent_size)
    x_T = randn_per_sample(shape, gens, device)
    ours_z = sample_ddim(eps_fn, x_T, schedule_alphas(model.config.schedule).to(device), steps, eta, gens)

    img_diff = float((ours_img - theirs_img).abs().max())
    lat_diff = float((ours_z - theirs_z).abs().max())
    return {"preset": "tiny", "size": 32, "dtype": "fp32", "steps": steps, "eta": eta, "guidance": guidance,
            "batch": batch, "seed": seed, "device": str(device), "tolerance": tolerance,
            "max_abs_diff_images": img_diff, "max_abs_diff_latents": lat_diff,
            "latent_abs_max": float(ours_z.abs().max()), "image_abs_mean": float(ours_img.abs().mean()),
            "timesteps_match_reference": scheduler_report(model.config.schedule, steps)["timesteps_match_reference"],
            "passed": img_diff <= tolerance and lat_diff <= tolerance}


# --------------------------------------------------------------------------- measuring


def run_config(model, loop_name: str, batch: int, args, device: torch.device, deadline: float) -> dict[str, Any]:
    """Prepare the model for one loop, warm up, time ``args.repeats`` runs, restore the model."""
    rec: dict[str, Any] = {"config": f"{loop_name}:{batch}", "loop": loop_name, "batch": batch}
    cuda = device.type == "cuda"
    timer = Timer(device)
    tuned: TunedLoop | None = None
    try:
        if cuda:
            torch.cuda.empty_cache()
        t = time.perf_counter()
        if loop_name == "tuned":
            tuned = TunedLoop(model, args.compile_mode, fullgraph=args.fullgraph)
            loop, autotune = tuned, True
            rec["applied"] = tuned.applied
        else:
            model.to(LOOP_DTYPES[loop_name])
            loop, autotune = (plain_loop, False) if loop_name == "plain" else (ours_loop, True)
        rec["dtype"] = str(model.unet.dtype).replace("torch.", "")
        rec["cudnn_benchmark"] = autotune
        rec["prepare_s"] = time.perf_counter() - t
        if cuda:
            rec["weights_gib"] = torch.cuda.memory_allocated(device) / 2**30
        image, cond, targets, fov = make_inputs(model, batch, args.seed)

        def once(steps: int) -> torch.Tensor:
            return loop(model, image, cond, targets, fov, steps, args.guidance, args.eta, args.seed, args.scale)

        flags: Any = contextlib.nullcontext()
        if loop_name == "tuned" and args.inductor_flags and args.compile_mode != "off":
            import torch._inductor.config as inductor_config

            flags = inductor_config.patch(INDUCTOR_FLAGS)
        rec["inductor_flags"] = None if isinstance(flags, contextlib.nullcontext) else INDUCTOR_FLAGS
        with flags, cudnn_benchmark(autotune), torch.no_grad():
            img = timed_runs(rec, lambda: once(max(1, min(args.warmup_steps, args.steps))),
                             lambda: once(args.steps), args.repeats, deadline, timer, device, batch)
        rec["ms_per_view"] = 1000 * rec["s_per_view"]
        rec["output_finite"] = bool(torch.isfinite(img).all())
        rec["output_shape"] = list(img.shape)
        if cuda:
            rec["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            rec["peak_reserved_gib"] = torch.cuda.max_memory_reserved(device) / 2**30
        fl = flops_per_batch(args.preset, model.config.image_size, model.config.latent_size, batch, args.steps,
                             args.guidance)
        if fl is not None:
            rec["tflop_per_view"] = fl["view_tflop"]
            rec["achieved_tflops"] = fl["batch_tflop"] / rec["latency_s"]
        rec["status"] = "ok"
    except Exception as e:  # noqa: BLE001 - one failing config must not lose the others
        record_failure(rec, e)
    finally:
        if tuned is not None:
            tuned.restore()
        if cuda:
            torch.cuda.empty_cache()
    return rec


# --------------------------------------------------------------------------- report


def table(results: list[dict]) -> str:
    """Fixed-width summary of the results."""
    fmt = _bench.fmt
    head = f"{'config':<14}{'status':<9}{'dtype':<10}{'ms/view':>9}{'batch s':>9}{'warm-up s':>11}{'peak GiB':>10}{'TFLOP/s':>9}"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r['config']:<14}{r.get('status', '?'):<9}{r.get('dtype', '-'):<10}"
                     f"{fmt(r.get('ms_per_view'), '9.1f')}{fmt(r.get('latency_s'), '9.3f')}"
                     f"{fmt(r.get('warmup_s'), '11.1f')}{fmt(r.get('peak_gib'), '10.2f')}"
                     f"{fmt(r.get('achieved_tflops'), '9.1f')}")
    return "\n".join(lines)


def default_out() -> Path | None:
    out = os.environ.get("OUT")
    return Path(out) / "diffusers_loops.json" if out else None


def parse_list(text: str, what: str, convert, allowed=None) -> list:
    """``"16,1"`` -> ``[16, 1]`` (raises SystemExit naming the fix on bad input)."""
    items = [s.strip() for s in text.split(",") if s.strip()]
    try:
        out = [convert(s) for s in items]
    except ValueError:
        raise SystemExit(f"--{what} {text!r}: write a comma-separated list, e.g. --{what} 16,1")
    if not out:
        raise SystemExit(f"--{what} is empty")
    bad = [v for v in out if (allowed is not None and v not in allowed) or (allowed is None and v < 1)]
    if bad:
        raise SystemExit(f"--{what}: {bad} not allowed; use " + (", ".join(allowed) if allowed else "integers >= 1"))
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="zeronvs", help="model preset (random weights); zeronvs = full size")
    p.add_argument("--size", type=int, default=256, help="image side in pixels")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps")
    p.add_argument("--guidance", type=float, default=3.0, help="CFG scale (1 = no unconditional branch)")
    p.add_argument("--eta", type=float, default=1.0, help="DDIM eta (reference: 1)")
    p.add_argument("--scale", type=float, default=0.7, help="scene scale of the camera embedding (as sampling.py)")
    p.add_argument("--batches", default="16,1", help="views per batch, comma-separated (default: %(default)s)")
    p.add_argument("--loops", default="plain,tuned", help=f"loops to time, from {', '.join(LOOPS)} (default: %(default)s)")
    p.add_argument("--compile-mode", "--compile", dest="compile_mode", default="default", choices=COMPILE_MODES,
                   help="torch.compile mode of the tuned loop; off = no compilation (default: %(default)s)")
    p.add_argument("--fullgraph", action="store_true", help="torch.compile(fullgraph=True) in the tuned loop")
    p.add_argument("--inductor-flags", action="store_true",
                   help="tuned loop: also the inductor settings of diffusers' inference tutorial " + str(INDUCTOR_FLAGS))
    p.add_argument("--compile-min-seconds", type=float, default=60.0,
                   help="skip a compiled config when less budget than this is left")
    p.add_argument("--repeats", type=int, default=3, help="timed full runs per config (median reported)")
    p.add_argument("--warmup-steps", type=int, default=5, help="DDIM steps of the warm-up run")
    p.add_argument("--budget-seconds", type=float, default=480.0, help="stop starting configs after this (from start)")
    p.add_argument("--check", default="on", choices=("on", "off"), help="fp32 tiny-model agreement with our sampler")
    p.add_argument("--check-tolerance", type=float, default=1e-3, help="max abs difference the check allows")
    p.add_argument("--device", default="auto", help="auto | cuda | cuda:N | cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="JSON output (default: $OUT/diffusers_loops.json if $OUT is set)")
    args = p.parse_args(argv)
    for name in ("steps", "repeats", "warmup_steps", "size"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1")
    if not 0.0 <= args.eta <= 1.0:
        raise SystemExit("--eta must be between 0 and 1")
    batches = parse_list(args.batches, "batches", int)
    loops = parse_list(args.loops, "loops", str, LOOPS)

    t0 = time.perf_counter()
    deadline = t0 + args.budget_seconds
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for but no CUDA GPU is available: use --device cpu")
    out = args.out or default_out()

    env = _bench.environment(device)
    env["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    report: dict[str, Any] = {
        "benchmark": "diffusers_loops",
        "command": " ".join(["python", "benchmarks/diffusers_loops.py", *(sys.argv[1:] if argv is None else argv)]),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "environment": env,
        "results": [],
    }

    def save() -> None:
        report["elapsed_s"] = time.perf_counter() - t0
        if out is not None:
            atomic_write_json(out, report)

    if args.check == "on":
        try:
            report["agreement"] = agreement(device=device, tolerance=args.check_tolerance, seed=args.seed)
        except Exception as e:  # noqa: BLE001 - still time the loops
            report["agreement"] = {"passed": False, "error": f"{type(e).__name__}: {str(e)[:300]}"}
        save()

    try:
        tb = time.perf_counter()
        model = build_model(args.preset, args.size, device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        report["build_s"] = time.perf_counter() - tb
        report["parameters"] = model.num_parameters()
        report["scheduler"] = scheduler_report(model.config.schedule, args.steps)
    except Exception as e:  # noqa: BLE001 - still write the JSON
        report["error"] = f"model build failed: {type(e).__name__}: {e}"
        save()
        print(report["error"], file=sys.stderr)
        return report
    save()

    for loop_name in loops:
        for batch in batches:
            left = deadline - time.perf_counter()
            compiled = loop_name == "tuned" and args.compile_mode != "off"
            if left <= 0 or (compiled and left < args.compile_min_seconds):
                report["results"].append({"config": f"{loop_name}:{batch}", "loop": loop_name, "batch": batch,
                                          "status": "skipped", "note": f"budget: {max(left, 0):.0f} s left"})
                save()
                continue
            print(f"[diffusers loops] {loop_name}:{batch} ({left:.0f} s of budget left)", file=sys.stderr, flush=True)
            rec = run_config(model, loop_name, batch, args, device, deadline)
            report["results"].append(rec)
            save()
            if rec["status"] != "ok":
                print(f"[diffusers loops] {loop_name}:{batch}: {rec['status']}: {rec.get('error')}", file=sys.stderr,
                      flush=True)
    save()
    agree = report.get("agreement")
    print(f"\n{env.get('gpu') or 'cpu'} | torch {env['torch']} | diffusers {env['diffusers']} | {args.preset} "
          f"{args.size}px, {args.steps} DDIM steps, eta {args.eta}, CFG {args.guidance} | build {report['build_s']:.1f} s, "
          f"total {report['elapsed_s']:.0f} s" + (f" | JSON: {out}" if out else ""))
    if agree is not None:
        print(f"fp32 agreement with our sampler (tiny, 32 px): {'passed' if agree.get('passed') else 'FAILED'} "
              f"(images {agree.get('max_abs_diff_images')}, latents {agree.get('max_abs_diff_latents')}, "
              f"tolerance {agree.get('tolerance')})")
    print(table(report["results"]))
    return report


if __name__ == "__main__":
    main()
