"""Noise schedule, DDIM, diffusers schedulers, classifier-free guidance: one denoiser interface.

A *denoiser* is any callable ``eps_fn(x_t, t) -> eps`` where ``x_t`` is ``[B, C, h, w]``
and ``t`` an integer tensor ``[B]`` of training timesteps; guidance and conditioning are
closed over by the caller (see :func:`guided_denoiser`). Samplers are plain functions.

DDIM follows the latent-diffusion reference exactly: timesteps ``1, 1 + c, 1 + 2c, ...``
with ``c = T // steps`` ("uniform" discretisation), ``alpha_prev`` of the last step is
``alphas_cumprod[0]``, and ``sigma_t = eta * sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))``.

Per-view seeds: every sample in a batch draws its noise from its own generator, so a
view's result does not depend on the batch it was generated in.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from dataclasses import dataclass
from typing import Callable, ClassVar, Literal, Sequence

import torch

from .config import check_range
from .cuda_graphs import graphed_denoiser
from .errors import ConfigError
from .runtime import PRECISION_DTYPES, Precision, compile_in_place, to_device

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
DTYPES = PRECISION_DTYPES  # the precision words of runtime.PRECISIONS that name one dtype
COMPILE_MODES = ("off", "default", "max-autotune-no-cudagraphs")


@dataclass
class SamplingConfig:
    """How views are sampled from the diffusion model."""

    scheduler: str = "ddim"  # "ddim" (ours, the reference's), an alias (SCHEDULER_ALIASES) or a diffusers class name
    # denoising steps: 10 by default, chosen by a paired benchmark (benchmarks/sampler_choice.py:
    # DDIM eta 1 at 10 steps is within 0.1 dB / 0.005 SSIM of the reference's 50 steps on the
    # demo model's held-out scenes, docs/RESULTS.md); preset "reference" restores 50
    steps: int = 10
    guidance_scale: float = 3.0  # classifier-free guidance (reference: 3.0 for direct views)
    eta: float = 1.0  # DDIM stochasticity (reference: 1.0)
    batch_size: int = 8  # views per UNet batch (CFG doubles it); lower it to fit small GPUs
    # the UNet / VAE weights' precision on a GPU (runtime.PRECISIONS; auto: bf16 where supported, else
    # fp16); the CPU always samples in fp32. Old name: dtype
    precision: Precision = "fp32"
    seed: int = 0  # view i uses seed + i
    # samples per view, averaged in pixel space: the Monte-Carlo posterior mean E[view | input],
    # the estimate with the least expected squared error (best PSNR), blurrier where the model is
    # unsure; 1 = one sharp sample. Sample k of view i uses seed (seed + i) + k * SAMPLE_SEED_STRIDE
    samples: int = 1
    vae_chunk: int = 8  # decode this many latents at a time (VAE slicing)
    vae_tiling: bool = False  # decode large images tile by tile (diffusers VAE tiling) to save memory
    # CUDA only (ignored on CPU): capture the guided UNet call once per batch in a CUDA graph and
    # replay it every step (no per-op Python / launch cost); same maths, see graphed_denoiser
    cuda_graph: bool = False
    # torch.compile the UNet and VAE decoder (in place, state dict unchanged) on first use: "off",
    # "default" or "max-autotune-no-cudagraphs" (longer compilation, tuned kernels); the first call
    # of a new batch shape compiles (about a minute for the ZeroNVS UNet), later calls reuse it
    compile: Literal["off", "default", "max-autotune-no-cudagraphs"] = "off"
    # keep what compile built in the user's cache folder (novelviews.compile_cache: one file per
    # torch version, device, model, compile options and batch shapes) and load it in later
    # processes, so they skip inductor's code generation; `nvs cache clear` deletes it
    compile_cache: bool = True
    # CUDA only: let cuDNN time its convolution algorithms for the fixed shapes of a run (restored after)
    cudnn_benchmark: bool = True
    # UNet and VAE weights in channels-last memory format (in place): faster convolutions on
    # tensor cores together with compile (docs/BENCHMARKS.md); same maths
    channels_last: bool = False
    # fuse each attention's Q, K and V projections into one matmul (diffusers fuse_qkv_projections,
    # UNet and VAE, in place; the models gain fused copies of those weights); same maths
    fuse_qkv: bool = False
    # "reference": the published method's sampler (DDIM, 50 steps, eta 1, CFG 3), which sets those
    # four keys whatever they say; "none": the keys as given
    preset: Literal["none", "reference"] = "none"

    def __post_init__(self) -> None:
        if self.preset == "reference":
            self.scheduler, self.steps, self.eta, self.guidance_scale = REFERENCE_SAMPLER

    #: old key names, still read (README.md, "Renamed config keys")
    RENAMED: ClassVar[dict[str, str]] = {"dtype": "precision"}

    def validate(self) -> None:
        check_range("sampling.steps", self.steps, 1, 1000)
        check_range("sampling.guidance_scale", self.guidance_scale, 0.0, 100.0)
        check_range("sampling.eta", self.eta, 0.0, 1.0)
        check_range("sampling.batch_size", self.batch_size, 1, 4096)
        check_range("sampling.vae_chunk", self.vae_chunk, 1, 4096)
        check_range("sampling.samples", self.samples, 1, 1024)


REFERENCE_SAMPLER = ("ddim", 50, 1.0, 3.0)  # scheduler, steps, eta, guidance of the published method
SAMPLE_SEED_STRIDE = 1_000_003  # seed offset between the samples of one view (SamplingConfig.samples)


# --------------------------------------------------------------------------- schedule


def make_alphas_cumprod(num_train_timesteps: int = 1000, beta_start: float = 0.00085,
                        beta_end: float = 0.012, beta_schedule: str = "scaled_linear") -> torch.Tensor:
    """``alphas_cumprod`` (float64, ``[T]``) of the DDPM schedule.

    ``scaled_linear`` (the reference): betas linear in sqrt space; ``linear``: linear.
    """
    if beta_schedule == "scaled_linear":
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float64) ** 2
    elif beta_schedule == "linear":
        betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
    else:
        raise ConfigError(f"unknown beta_schedule '{beta_schedule}' (scaled_linear or linear)")
    return torch.cumprod(1.0 - betas, dim=0)


def schedule_alphas(schedule) -> torch.Tensor:
    """``alphas_cumprod`` from an object with the ScheduleConfig fields."""
    return make_alphas_cumprod(schedule.num_train_timesteps, schedule.beta_start, schedule.beta_end,
                               schedule.beta_schedule)


def ddim_timesteps(num_train_timesteps: int, steps: int) -> list[int]:
    """Descending DDIM timesteps, ldm "uniform" discretisation: ``range(0, T, T // steps) + 1``."""
    if steps > num_train_timesteps:
        raise ConfigError(f"sampling.steps={steps} exceeds the {num_train_timesteps} training timesteps")
    c = num_train_timesteps // steps
    return [i + 1 for i in range(0, num_train_timesteps, c)][:steps][::-1]


# --------------------------------------------------------------------------- noise


def make_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


def randn_per_sample(shape: Sequence[int], generators: list[torch.Generator], device, dtype=torch.float32) -> torch.Tensor:
    """Gaussian noise ``[B, ...]`` where row i comes from ``generators[i]`` (drawn on CPU)."""
    if len(generators) != shape[0]:
        raise ValueError(f"need one generator per sample ({shape[0]}), got {len(generators)}")
    rows = [torch.randn(tuple(shape[1:]), generator=g, dtype=torch.float32) for g in generators]
    return to_device(torch.stack(rows), device, dtype)  # a non-blocking copy: no sync with the GPU


# --------------------------------------------------------------------------- samplers


def ddim_step(x: torch.Tensor, eps: torch.Tensor, a_t: float, a_prev: float, eta: float,
              noise: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM update; returns ``(x_prev, pred_x0)``. All maths in float32 or higher."""
    sigma = eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
    pred_x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
    dir_xt = math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps
    x_prev = math.sqrt(a_prev) * pred_x0 + dir_xt
    if sigma > 0 and noise is not None:
        x_prev = x_prev + sigma * noise
    return x_prev, pred_x0


PREDRAW_BYTES = 256 * 2**20  # pre-draw a run's DDIM noise when it is at most this big


def predraw_noise(shape: Sequence[int], generators: list[torch.Generator], steps: int, device) -> torch.Tensor:
    """``[steps, B, ...]``: the noise of ``steps`` calls of :func:`randn_per_sample`, drawn now.

    Each generator yields exactly the numbers it would give one step at a time (the views'
    generators are independent, so only each one's own order matters), and the whole block
    crosses to the device in one pinned, non-blocking copy instead of a synchronising copy
    of pageable memory per step, so the host can queue the next steps while the GPU works.
    """
    rows = torch.stack([torch.stack([torch.randn(tuple(shape[1:]), generator=g, dtype=torch.float32)
                                     for g in generators]) for _ in range(steps)])
    return to_device(rows, device)


def sample_ddim(eps_fn: EpsFn, x_T: torch.Tensor, alphas_cumprod: torch.Tensor, steps: int,
                eta: float = 1.0, generators: list[torch.Generator] | None = None,
                progress: Callable[[int], None] | None = None, predraw: bool | None = None) -> torch.Tensor:
    """DDIM from ``x_T`` (pure noise) to ``x_0``; the reference sampler, written out.

    ``predraw`` (default: on for a non-CPU device when the noise is at most ``PREDRAW_BYTES``)
    draws every step's noise in one block (:func:`predraw_noise`), right after the first
    denoiser call is queued, so the host draws while the device runs it; the result is
    bit-identical. ``alphas_cumprod`` is read on the CPU (pass a CPU tensor: no device round trip).
    """
    ac = alphas_cumprod.double().cpu()
    ts = ddim_timesteps(len(ac), steps)
    x = x_T.float()
    if generators is None:
        generators = make_generators(range(x.shape[0]))
    if predraw is None:
        predraw = x.device.type != "cpu" and len(ts) * x.numel() * 4 <= PREDRAW_BYTES
    noises = None
    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < len(ts) else None
        a_t = float(ac[t])
        a_prev = float(ac[t_prev]) if t_prev is not None else float(ac[0])
        tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        eps = eps_fn(x, tt).float()
        if predraw and eta > 0 and noises is None:  # the first call is queued: draw while it runs
            noises = predraw_noise(x.shape, generators, len(ts), x.device)
        if eta > 0:
            noise = noises[i] if noises is not None else randn_per_sample(x.shape, generators, x.device)
        else:
            noise = None
        x, _ = ddim_step(x, eps, a_t, a_prev, eta, noise)
        if progress is not None:
            progress(1)
    return x


#: Short names of the samplers compared in ``benchmarks/sampler_choice.py`` (diffusers classes and
#: their options); ``sampling.scheduler`` takes these, ``ddim`` (ours) or any diffusers class name.
SCHEDULER_ALIASES: dict[str, tuple[str, dict]] = {
    "dpm++2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpm++2m-sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
}


def make_diffusers_scheduler(name: str, schedule):
    """A diffusers scheduler by class name (or a :data:`SCHEDULER_ALIASES` short name), configured
    with the model's training schedule."""
    import diffusers

    name, options = SCHEDULER_ALIASES.get(name, (name, {}))
    cls = getattr(diffusers, name, None)
    if cls is None or not name.endswith("Scheduler"):
        raise ConfigError(
            f"sampling.scheduler '{name}' is not a diffusers scheduler class "
            "(e.g. DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler), nor 'ddim' or one of "
            + ", ".join(SCHEDULER_ALIASES)
        )
    import inspect

    # the training schedule, plus the reference's DDIM conventions where the class takes them
    kwargs = dict(num_train_timesteps=schedule.num_train_timesteps, beta_start=schedule.beta_start,
                  beta_end=schedule.beta_end, beta_schedule=schedule.beta_schedule,
                  prediction_type=getattr(schedule, "prediction_type", "epsilon"),
                  clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading")
    accepted = set(inspect.signature(cls.__init__).parameters)
    return cls(**{k: v for k, v in kwargs.items() if k in accepted}, **options)


def sample_diffusers(eps_fn: EpsFn, x_T: torch.Tensor, scheduler, steps: int, eta: float = 1.0,
                     generators: list[torch.Generator] | None = None,
                     progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """Any diffusers scheduler through the same denoiser interface."""
    import inspect

    scheduler.set_timesteps(steps)
    x = x_T.float() * float(scheduler.init_noise_sigma)
    step_params = inspect.signature(scheduler.step).parameters
    for t in scheduler.timesteps:
        x_in = scheduler.scale_model_input(x, t)
        tt = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
        eps = eps_fn(x_in, tt).float()
        kwargs = {}
        if "eta" in step_params:
            kwargs["eta"] = eta
        if "generator" in step_params and generators is not None:
            kwargs["generator"] = generators
        x = scheduler.step(eps, t, x, **kwargs).prev_sample.float()
        if progress is not None:
            progress(1)
    return x


def sample(eps_fn: EpsFn, shape: Sequence[int], schedule, cfg: SamplingConfig, seeds: Sequence[int],
           device="cpu", progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """Sample latents ``[B, ...]``: initial noise from per-sample seeds, then the chosen sampler."""
    gens = make_generators(seeds)
    x_T = randn_per_sample(shape, gens, device)
    cuda = torch.device(device).type == "cuda"
    with cudnn_benchmark(cfg.cudnn_benchmark) if cuda else contextlib.nullcontext():
        if cfg.cuda_graph and cuda:
            eps_fn = graphed_denoiser(eps_fn, tuple(shape), device)
        if cfg.scheduler == "ddim":
            return sample_ddim(eps_fn, x_T, schedule_alphas(schedule), cfg.steps, cfg.eta, gens, progress)
        sched = make_diffusers_scheduler(cfg.scheduler, schedule)
        return sample_diffusers(eps_fn, x_T, sched, cfg.steps, cfg.eta, gens, progress)


def compile_model(model, mode: str, backend: str = "inductor") -> bool:
    """``torch.compile`` the model's UNet and VAE decoder in place (``nn.Module.compile``:
    parameters and state-dict keys unchanged, so the model still saves and loads as before).
    ``mode`` "off" does nothing; a module already compiled is left as it is. Returns whether
    anything was compiled now."""
    if mode == "off":
        return False
    if mode not in COMPILE_MODES:
        raise ConfigError(f"sampling.compile = {mode!r}: use one of {', '.join(COMPILE_MODES)}")
    done = [compile_in_place(m, None if mode == "default" else mode, backend) for m in _compiled_parts(model)]
    return any(done)


def prepare_for_sampling(model, cfg: SamplingConfig) -> None:
    """What ``cfg`` asks of the model itself before sampling: channels-last weights
    (``cfg.channels_last``), then ``torch.compile`` (``cfg.compile``); both in place, both kept
    for later calls (compilation is paid once per process and shape)."""
    if cfg.channels_last:
        for part in (model.unet, model.vae):
            if not is_channels_last(part):  # a module.to() walks every tensor: ms of host time per call
                part.to(memory_format=torch.channels_last)
    if cfg.fuse_qkv:
        fuse_qkv(model)
    compile_model(model, cfg.compile)


def is_channels_last(module: torch.nn.Module) -> bool:
    """Whether every 4-D parameter and buffer of ``module`` has the strides that
    ``module.to(memory_format=torch.channels_last)`` gives (so that call would change nothing)."""
    for m in module.modules():
        for t in itertools.chain(m._parameters.values(), m._buffers.values()):
            if t is not None and t.dim() == 4:
                _, c, h, w = t.shape
                if t.stride() != (h * w * c, 1, w * c, c):
                    return False
    return True


FUSED_NAMES = ("to_qkv", "to_kv", "to_added_qkv")  # the layers diffusers' fuse_qkv_projections adds


def _attention_parts(model):
    """``(part, its diffusers Attention layers)`` for the UNet and the VAE (where there is one)."""
    from diffusers.models.attention_processor import Attention

    parts = [p for p in (model.unet, getattr(model, "vae", None)) if p is not None]
    return [(p, [m for m in p.modules() if isinstance(m, Attention)]) for p in parts]


def fuse_qkv(model) -> int:
    """Fuse the Q/K/V projections of the UNet's and the VAE's attention layers (diffusers
    ``fuse_qkv_projections``) unless they are fused already. Returns how many attention layers
    run fused now. The fused weights are copies, also in the state dicts, and do not follow later
    changes of the originals: fuse a model that only samples."""
    for part, layers in _attention_parts(model):
        fuse = getattr(part, "fuse_qkv_projections", None)
        if fuse is not None and getattr(part, "original_attn_processors", None) is None:
            fuse()
            for m in layers:  # the fused copies train only if the originals do
                for name in FUSED_NAMES:
                    if hasattr(m, name):
                        getattr(m, name).requires_grad_(m.to_q.weight.requires_grad)
    return sum(getattr(m, "fused_projections", False) for _, layers in _attention_parts(model) for m in layers)


def unfuse_qkv(model) -> None:
    """Undo :func:`fuse_qkv` (or a plain ``fuse_qkv_projections``): the attention layers run their
    separate projections again and the fused copies of the weights are dropped."""
    for part, layers in _attention_parts(model):
        if getattr(part, "original_attn_processors", None) is not None:
            part.unfuse_qkv_projections()
            part.original_attn_processors = None
        for m in layers:
            m.fused_projections = False
            for name in FUSED_NAMES:
                if hasattr(m, name):
                    delattr(m, name)


def compiled_sampling(model, cfg: SamplingConfig, device, dtype: torch.dtype, batches: Sequence[int], anchors: int = 1):
    """The persistent compile cache (:mod:`novelviews.compile_cache`) around sampling that compiles
    (``cfg.compile`` on and ``cfg.compile_cache``), else a context that does nothing. Its key holds
    what the compiled UNet and decoder depend on: the model's config, the compile mode, precision,
    memory format and the shapes (``batches``: the targets per UNet call; ``anchors`` per target;
    guidance on or off; the decoder's chunk and tiling). Each model loads a file once."""
    if cfg.compile == "off" or not cfg.compile_cache:
        return contextlib.nullcontext()
    from .compile_cache import cached_compilation, key_fields

    options = {"compile": cfg.compile, "precision": str(dtype).removeprefix("torch."),
               "channels_last": cfg.channels_last, "fuse_qkv": cfg.fuse_qkv, "batches": list(batches), "anchors": anchors,
               "guided": cfg.guidance_scale != 1.0, "vae_chunk": cfg.vae_chunk, "vae_tiling": cfg.vae_tiling}
    seen = model.__dict__.setdefault("_compile_cache_loaded", set())
    return cached_compilation(key_fields(model.config, device, options), seen=seen)


def uncompile_model(model) -> None:
    """Undo :func:`compile_model` (the modules run eagerly again; compiled code is dropped)."""
    for module in _compiled_parts(model):
        module._compiled_call_impl = None


def _compiled_parts(model) -> list[torch.nn.Module]:
    """The modules ``sampling.compile`` compiles: the UNet, and the VAE decoder where there is one."""
    decoder = getattr(getattr(model, "vae", None), "decoder", None)
    return [model.unet] + ([decoder] if decoder is not None else [])


@contextlib.contextmanager
def cudnn_benchmark(enabled: bool):
    """``torch.backends.cudnn.benchmark`` set for the duration of a block, then restored.

    cuDNN times its convolution algorithms once per new shape and keeps the fastest; sampling
    runs the same shapes every step, so the timing pays for itself after the first step."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = bool(enabled)
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def denoiser_autocast(device_type: str, dtype: torch.dtype):
    """The autocast context of one denoiser call (every denoiser uses this one).

    fp32 opens none of its own, so an enclosing one (Lightning's) still applies.
    ``cache_enabled=False``: cached weight casts must not outlive a CUDA-graph capture (PyTorch's
    CUDA-graph notes); each weight is used once per UNet call, so the cache saves nothing here.
    """
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=dtype, cache_enabled=False)


def guided_denoiser(model, context: torch.Tensor, cond_latent: torch.Tensor, guidance_scale: float,
                    dtype: torch.dtype = torch.float32) -> EpsFn:
    """Close a ViewConditionedLDM over its conditioning: ``eps_fn(x_t, t)`` with batched CFG."""

    param_dtype = next(model.parameters()).dtype

    def eps_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with denoiser_autocast(x_t.device.type, dtype):
            return model.predict_noise_cfg(x_t.to(param_dtype), t, context.to(param_dtype),
                                           cond_latent.to(param_dtype), guidance_scale)

    return eps_fn
