"""Score distillation sampling (SDS) with the view-conditioned LDM.

One SDS step on a batch of renders (DreamFusion; ZeroNVS's threestudio settings):

1. renders ``[B, 3, r, r]`` in ``[0, 1]`` are resized (bilinear) to the model's image size,
   mapped to ``[-1, 1]`` and VAE-encoded: ``latents = posterior sample * scaling_factor``,
   with gradients flowing through the encoder into the renders;
2. a timestep ``t ~ U{t_min, ..., t_max}`` per image, the range annealed over training
   (:func:`timestep_range`: key frames in fractions of the run and of the model's
   ``num_train_timesteps``; the reference's, for 4000 steps and T = 1000, are
   ``[750, 980]`` at step 0, ``[20, 980]`` at 1000, ``[20, 343]`` at 2000, ``[20, 25]``
   from 2500, linearly interpolated in between);
3. ``x_t = sqrt(a_t) latents + sqrt(1 - a_t) eps`` with ``eps ~ N(0, I)`` and
   ``a_t = alphas_cumprod[t]``; ``eps_hat`` = classifier-free-guided prediction (zero
   context token and zero concat latent as the unconditional branch), without gradients;
4. ``grad = w(t) (eps_hat - eps)``, ``w(t) = 1 - a_t`` (``weighting="sds"``) or 1
   (``"uniform"``); NaN / inf -> 0; optional clipping of each element to
   ``[-grad_clip, grad_clip]``;
5. ``loss = 0.5 * sum((latents - (latents - grad).detach())^2) / B``, whose gradient with
   respect to each image's ``latents`` is ``grad / B`` (exactly ``grad`` for one image).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Literal, Optional

import torch
from torch.nn import functional as F

from ..config import check_range
from ..errors import ConfigError

# The reference's timestep annealing: (fraction of the run, t_min, t_max), t as a fraction
# of num_train_timesteps. 4000 steps -> steps 0, 1000, 2000, 2500.
REFERENCE_T_KEYFRAMES = ((0.0, 0.75, 0.98), (0.25, 0.02, 0.98), (0.5, 0.02, 0.343), (0.625, 0.02, 0.025))


@dataclass
class GuidanceConfig:
    """SDS settings; defaults are the reference's (ZeroNVS threestudio config)."""

    guidance_scale: float = 7.5
    """classifier-free guidance scale (reference config 7.5, its launch scripts 9.5)"""
    t_keyframes: tuple[tuple[float, float, float], ...] = REFERENCE_T_KEYFRAMES
    """(fraction of the run in [0, 1], t_min, t_max) with t as a fraction of the training
    timesteps; linear in between, constant after the last key frame"""
    weighting: Literal["sds", "uniform"] = "sds"
    """w(t) = 1 - alphas_cumprod[t] ("sds") or 1 ("uniform")"""
    grad_clip: Optional[float] = None
    """clip every element of the SDS gradient to [-grad_clip, grad_clip]; null = no clipping"""
    sample_posterior: bool = True
    """encode renders with a posterior sample (reference) instead of the mode"""
    encoder_chunk: int = 0
    """renders per checkpointed VAE-encoder call: the encoder's activations (at the model's image
    size, for every render of the step) are recomputed in the backward instead of kept (--low-memory:
    1); 0 = one call for the whole batch, everything kept (fewer kernel launches)"""
    cuda_graph: bool = True
    """on a GPU, the guided UNet call is captured once per batch size in a CUDA graph and replayed
    (a ZeroNVS-size UNet call is ~1500 kernel launches; the step is bound by the host launching them),
    and so are the VAE encoder's forward and backward per render shape (with encoder_chunk 0)"""

    def validate(self) -> None:
        check_range("guidance.encoder_chunk", self.encoder_chunk, 0, None)
        check_range("guidance.guidance_scale", self.guidance_scale, 0.0, 100.0)
        if self.grad_clip is not None:
            check_range("guidance.grad_clip", self.grad_clip, 0.0, None, lo_open=True)
        if not self.t_keyframes:
            raise ConfigError("config key 'guidance.t_keyframes' needs at least one [fraction, t_min, t_max]")
        last = -1.0
        for i, (f, lo, hi) in enumerate(self.t_keyframes):
            check_range(f"guidance.t_keyframes[{i}][0]", f, 0.0, 1.0)
            check_range(f"guidance.t_keyframes[{i}][1]", lo, 0.0, 1.0)
            check_range(f"guidance.t_keyframes[{i}][2]", hi, lo, 1.0)
            if f < last:
                raise ConfigError(f"config key 'guidance.t_keyframes': fractions must increase (entry {i})")
            last = f


def timestep_range(step: int, total_steps: int, keyframes, num_train_timesteps: int = 1000) -> tuple[int, int]:
    """Integer ``(t_min, t_max)`` at ``step`` of a ``total_steps`` run (inclusive bounds).

    Key frames ``(fraction, t_min, t_max)`` are linearly interpolated; before the first and
    after the last they are held. ``t`` fractions are scaled by ``num_train_timesteps``
    and rounded; ``t_max`` is kept ``< num_train_timesteps`` and ``>= t_min``.
    """
    frac = step / max(int(total_steps), 1)
    kf = [tuple(map(float, k)) for k in keyframes]
    if frac <= kf[0][0]:
        lo, hi = kf[0][1], kf[0][2]
    elif frac >= kf[-1][0]:
        lo, hi = kf[-1][1], kf[-1][2]
    else:
        for (f0, l0, h0), (f1, l1, h1) in zip(kf[:-1], kf[1:]):
            if f0 <= frac <= f1:
                a = 0.0 if f1 == f0 else (frac - f0) / (f1 - f0)
                lo, hi = l0 + a * (l1 - l0), h0 + a * (h1 - h0)
                break
    T = int(num_train_timesteps)
    t_min = min(max(int(round(lo * T)), 0), T - 1)
    t_max = min(max(int(round(hi * T)), t_min), T - 1)
    return t_min, t_max


def sds_weight(alphas_cumprod: torch.Tensor, t: torch.Tensor, weighting: str = "sds") -> torch.Tensor:
    """``w(t)`` per batch element, ``[B]`` float32: ``1 - alphas_cumprod[t]`` or ones."""
    if weighting == "uniform":
        return torch.ones(t.shape, dtype=torch.float32, device=t.device)
    if weighting != "sds":
        raise ConfigError(f"unknown SDS weighting '{weighting}': use sds or uniform")
    return (1.0 - alphas_cumprod.to(t.device)[t]).float()


def sds_gradient(latents: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                 eps_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], alphas_cumprod: torch.Tensor,
                 weighting: str = "sds", grad_clip: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The SDS gradient ``w(t) (eps_hat - eps)`` (detached, float32) and ``eps_hat``.

    ``latents``: scaled diffusion latents ``[B, C, h, w]``; ``t``: long ``[B]``; ``noise``:
    ``eps`` of the same shape as ``latents``; ``eps_fn(x_t, t) -> eps_hat`` (guidance closed
    over, see :func:`novelviews.sampling.guided_denoiser`), called without autograd.
    """
    a = alphas_cumprod.to(device=latents.device, dtype=torch.float32)[t].view(-1, 1, 1, 1)
    with torch.no_grad():
        lat = latents.detach().float()
        x_t = a.sqrt() * lat + (1.0 - a).sqrt() * noise.float()
        eps_hat = eps_fn(x_t, t).float()
        w = sds_weight(alphas_cumprod, t, weighting).view(-1, 1, 1, 1)
        grad = torch.nan_to_num(w * (eps_hat - noise.float()), nan=0.0, posinf=0.0, neginf=0.0)
        if grad_clip is not None:
            grad = grad.clamp(-grad_clip, grad_clip)
    return grad, eps_hat


def sds_loss_from_grad(latents: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``0.5 * sum((latents - (latents - grad).detach())^2) / B``: a surrogate whose gradient
    with respect to ``latents`` is ``grad / B`` (so exactly ``grad`` for one image)."""
    target = (latents.float() - grad).detach()
    return 0.5 * F.mse_loss(latents.float(), target, reduction="sum") / latents.shape[0]


class SDSDenoiser:
    """``denoiser(context, cond_latent) -> eps_fn(x_t, t)``: the classifier-free-guided prediction of
    :func:`novelviews.sampling.guided_denoiser` for one step's conditioning.

    With ``cuda_graph`` (CUDA only) the call is captured in a CUDA graph the first time a batch size
    is seen (:func:`novelviews.cuda_graphs.graphed_denoiser`) over static copies of the conditioning;
    later steps copy their context and conditioning latent into those buffers and replay it. The
    same kernels run on the same values, so the prediction equals the plain call's (a CUDA test
    compares them). A returned ``eps_fn`` is valid until the next call of the denoiser.
    """

    def __init__(self, model, guidance_scale: float, dtype: torch.dtype = torch.float32, cuda_graph: bool = False):
        from ..cuda_graphs import DenoiserGraphs

        self.model, self.guidance_scale, self.dtype = model, float(guidance_scale), dtype
        self.cuda_graph = bool(cuda_graph) and model.device.type == "cuda"
        self._graphs = DenoiserGraphs(limit=8)  # one per batch size of the run's phases
        #: with cuda_graph: the VAE encoder's forward + backward graphs (encode_renders ``graphs``)
        self.encoder_graphs: dict | None = {} if self.cuda_graph else None

    def _make(self, context: torch.Tensor, cond_latent: torch.Tensor):
        from ..sampling import guided_denoiser

        return guided_denoiser(self.model, context, cond_latent, self.guidance_scale, self.dtype)

    def __call__(self, context: torch.Tensor, cond_latent: torch.Tensor):
        if not self.cuda_graph:
            return self._make(context, cond_latent)
        return self._graphs(self._make, (context, cond_latent), tuple(cond_latent.shape), cond_latent.device)


def encode_renders(model, rgb: torch.Tensor, sample: bool = True, generator: torch.Generator | None = None,
                   autocast_dtype: torch.dtype | None = None, chunk: int = 0, graphs: dict | None = None
                   ) -> torch.Tensor:
    """Renders ``[B, 3, r, r]`` in ``[0, 1]`` -> diffusion latents (scaled), differentiable.

    Bilinear resize to ``model.config.image_size``; ``[-1, 1]``; VAE posterior sample (or
    mode) times the scaling factor. ``autocast_dtype`` (fp16 / bf16) on GPU. ``chunk > 0``
    (with autograd on): the encoder runs on ``chunk`` renders at a time under activation
    checkpointing, so the backward keeps only its inputs and the posterior's mean / std and
    recomputes the rest; the posterior noise is drawn after the encoder, once for the batch, in
    the posterior's dtype as diffusers draws it, so the latents are those of the unchunked call.

    ``graphs`` (a dict the caller keeps across calls; CUDA, ``chunk`` 0, autograd on): the encoder's
    forward and backward are captured in CUDA graphs (``torch.cuda.make_graphed_callables``) the
    first time an input shape is seen and replayed after that, hundreds of launches each as one;
    only the latest shape's graphs are kept (a run's phases come one after the other). The same
    computation as the eager call (cuDNN may choose other convolution algorithms for the capture:
    round-off differences; a CUDA test compares them).
    """
    from diffusers.utils.torch_utils import randn_tensor

    size = model.config.image_size
    x = rgb
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = (x * 2.0 - 1.0).to(model.dtype)
    graphed = graphs is not None and chunk <= 0 and torch.is_grad_enabled() and x.device.type == "cuda"

    def moments(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # autocast's weight cache would hold tensors made outside a graph capture: off when graphed
        ctx = (torch.autocast(x.device.type, dtype=autocast_dtype, cache_enabled=not graphed)
               if autocast_dtype is not None else contextlib.nullcontext())
        with ctx:
            dist = model.vae.encode(images).latent_dist
            return dist.mean, dist.std

    if graphed:
        key = (tuple(x.shape), x.dtype)
        if key not in graphs:
            graphs.clear()  # the previous phase's graphs (and their memory pool) go
            graphs[key] = torch.cuda.make_graphed_callables(moments, (x.detach().clone().requires_grad_(True),))
        mean, std = graphs[key](x)
    elif chunk > 0 and torch.is_grad_enabled():
        from torch.utils.checkpoint import checkpoint

        parts = [checkpoint(moments, c, use_reentrant=False) for c in x.split(int(chunk))]
        mean, std = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    else:
        mean, std = moments(x)
    z = mean
    if sample:
        z = mean + std * randn_tensor(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return z.float() * model.scaling_factor


__all__ = ["GuidanceConfig", "SDSDenoiser", "REFERENCE_T_KEYFRAMES", "timestep_range", "sds_weight", "sds_gradient",
           "sds_loss_from_grad", "encode_renders"]
