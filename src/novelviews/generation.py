"""The one generation core: target views from conditioning views through the diffusion model.

Every command that samples images calls :func:`generate`: ``nvs views`` (one input view), ``nvs
eval``'s ``model`` (nearest anchor) and ``model_k`` (k weighted anchors), the SDS anchors of ``nvs
distill`` and the UI. One loop covers all of them:

* each target ``i`` is conditioned on ``k >= 1`` of the conditioning views, ``anchors[i]``, with
  weights ``weights[i]`` (normalised): ``k = 1`` is the classifier-free-guided prediction of
  :func:`novelviews.sampling.guided_denoiser`; ``k > 1`` blends the k conditional predictions with
  the weights before guidance (:func:`multi_anchor_denoiser`, one batched UNet call);
* ``cfg.samples > 1``: each view is the pixel-space mean of that many samples, sample ``j`` of view
  ``i`` drawn with seed ``seeds[i] + j * SAMPLE_SEED_STRIDE``, all samples x N in the same batches;
* targets go ``max(1, cfg.batch_size // k)`` per UNet call (about ``batch_size`` conditional rows).

Progress is reported through a callback (``progress(n)`` after every ``n`` sampler steps);
``progress=True`` draws a terminal bar (:func:`progress_bar`, what the commands use), ``False``
nothing.
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Optional, Sequence, Union

import torch

from . import cameras as C
from .errors import NovelViewsError
from .runtime import precision_dtype, to_device
from .cuda_graphs import denoiser_graphs
from .sampling import (SAMPLE_SEED_STRIDE, EpsFn, SamplingConfig, compiled_sampling, cudnn_benchmark,
                       denoiser_autocast, guided_denoiser, prepare_for_sampling, sample)

#: ``progress`` of the generators: a callback taking the number of sampler steps just done, or a
#: bool (True: a terminal progress bar, :func:`progress_bar`; False: nothing).
Progress = Union[bool, Callable[[int], None], None]


def progress_bar(total: int, desc: str, enabled: bool = True):
    """A terminal progress bar (tqdm) of ``total`` steps; ``.update(n)`` / ``.close()``."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, unit="step", leave=False)


class _Reporter:
    """``progress`` as a callable with ``close()``: a bar for True, the caller's callback, or nothing."""

    def __init__(self, progress: Progress, total: int, desc: str):
        self._bar = progress_bar(total, desc) if progress is True else None
        self._fn = progress if callable(progress) else None

    def __call__(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)
        elif self._fn is not None:
            self._fn(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def check_generation_inputs(model, cfg: SamplingConfig, cond_images: torch.Tensor, cond_c2w, target_c2w):
    """Shared checks of the generators: ``(device, dtype, cond_c2w [M,4,4], target_c2w [N,4,4])``."""
    cond_c2w = C.validate_poses(cond_c2w, "input camera")
    target_c2w = C.validate_poses(target_c2w, "target camera")
    M = cond_c2w.shape[0]
    if cond_images.ndim != 4 or cond_images.shape[0] != M:
        raise NovelViewsError(f"expected {M} conditioning images [M, 3, H, W], got {tuple(cond_images.shape)}")
    device = next(model.parameters()).device
    return device, precision_dtype(cfg.precision, device), cond_c2w, target_c2w


def decode_chunked(model, latents: torch.Tensor, chunk: int, dtype: torch.dtype, tiling: bool = False) -> torch.Tensor:
    """Decode ``chunk`` latents at a time (VAE slicing) -> float32 images in [-1, 1] on the CPU;
    ``tiling``: tile by tile within each image (diffusers VAE tiling), else whole images.

    The chunks' images stay on the device until all are decoded and cross in one copy: a copy
    per chunk would wait for the device each time (the next chunk's kernels are queued only
    after it). Slicing bounds the decoder's activations; the images themselves are small."""
    if hasattr(model.vae, "enable_tiling"):
        model.vae.enable_tiling() if tiling else model.vae.disable_tiling()
    return torch.cat([model.decode(z.to(dtype)).float().clamp(-1, 1) for z in latents.split(chunk)]).cpu()


def multi_anchor_denoiser(model, contexts: torch.Tensor, cond_latents: torch.Tensor, weights: torch.Tensor,
                          guidance_scale: float, dtype: torch.dtype = torch.float32) -> EpsFn:
    """``eps_fn(x_t, t)`` blending k conditionings per sample, one batched UNet call.

    ``contexts``: ``[B, k, 1, C]`` context tokens; ``cond_latents``: ``[B, k, c, h, w]``
    (unscaled VAE modes); ``weights``: ``[B, k]`` summing to 1 per row. Returns
    ``u + g * (sum_j w_j c_j - u)`` with ``c_j`` the conditional prediction of anchor j and
    ``u`` the unconditional one (zero context, zero latent) computed once per sample; with
    ``g == 1`` the unconditional branch is skipped (as ``predict_noise_cfg``). The row
    layout ``[B*k conditional, B unconditional]`` makes ``k = 1`` the same computation as
    :func:`sampling.guided_denoiser`.
    """

    B, k = weights.shape
    param_dtype = next(model.parameters()).dtype

    def blend(eps_c: torch.Tensor) -> torch.Tensor:  # weighted sum over each view's k anchors
        w = weights.to(device=eps_c.device, dtype=eps_c.dtype)
        return (eps_c.reshape(B, k, *eps_c.shape[1:]) * w.reshape(B, k, 1, 1, 1)).sum(1)

    def eps_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # the conditioning is read here, at each call (a CUDA graph of eps_fn replays on new values)
        ctx = contexts.reshape(B * k, *contexts.shape[2:]).to(param_dtype)
        lat = cond_latents.reshape(B * k, *cond_latents.shape[2:]).to(param_dtype)
        with denoiser_autocast(x_t.device.type, dtype):
            x = x_t.to(param_dtype)
            xr = x.repeat_interleave(k, dim=0)
            t = torch.as_tensor(t, device=x.device)
            t = t.reshape(()).expand(B) if t.numel() == 1 else t
            tr = t.repeat_interleave(k, dim=0)
            if guidance_scale == 1.0:
                return blend(model.predict_noise(xr, tr, ctx, lat))
            eps = model.predict_noise(
                torch.cat([xr, x]),
                torch.cat([tr, t]),
                torch.cat([ctx, torch.zeros_like(ctx[:B])]),
                torch.cat([lat, torch.zeros_like(lat[:B])]),
            )
            eps_c, eps_u = blend(eps[: B * k]), eps[B * k:]
            return eps_u + guidance_scale * (eps_c - eps_u)

    return eps_fn


def _anchor_table(anchors, weights, N: int, M: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``anchors`` (None, ``[N]`` or ``[N, k]``) and ``weights`` (None or ``[N, k]``) checked:
    ``(anchors [N, k] long, weights [N, k] float64 rows summing to 1)``."""
    anchors = torch.zeros(N, dtype=torch.long) if anchors is None else torch.as_tensor(anchors, dtype=torch.long)
    if anchors.ndim == 1:
        anchors = anchors[:, None]
    k = anchors.shape[1] if anchors.ndim == 2 else 0
    if anchors.shape != (N, k) or k < 1 or (anchors < 0).any() or (anchors >= M).any():
        raise NovelViewsError(f"anchors must be {N} indices (or [{N}, k] rows of indices) into the {M} "
                              "conditioning views")
    if weights is None:
        return anchors, torch.full((N, k), 1.0 / k, dtype=torch.float64)
    weights = torch.as_tensor(weights, dtype=torch.float64)
    if weights.numel() != N * k:
        raise NovelViewsError(f"anchor weights must be [{N}, {k}] (one per anchor), got {tuple(weights.shape)}")
    weights = weights.reshape(N, k)
    if not torch.isfinite(weights).all() or (weights < 0).any() or (weights.sum(1) <= 0).any():
        raise NovelViewsError("anchor weights must be finite, non-negative and not all zero per target")
    return anchors, weights / weights.sum(1, keepdim=True)


def _denoiser(model, conditioning: tuple[torch.Tensor, ...], shape: tuple[int, ...], cfg: SamplingConfig,
              dtype: torch.dtype, device: torch.device) -> tuple[EpsFn, SamplingConfig]:
    """One batch's guided denoiser (one anchor: ``(context, cond_latent)``; k anchors: ``(contexts,
    cond_latents, weights)``) and the sampling settings to run it with. With ``cfg.cuda_graph`` on
    CUDA it is the model's CUDA graph for this shape (``cuda_graphs.denoiser_graphs``: captured once,
    replayed for every batch and call after), and ``sample`` is told not to capture again."""
    def make(*cond: torch.Tensor) -> EpsFn:
        if len(cond) == 2:
            return guided_denoiser(model, cond[0], cond[1], cfg.guidance_scale, dtype)
        return multi_anchor_denoiser(model, *cond, cfg.guidance_scale, dtype)

    if not (cfg.cuda_graph and device.type == "cuda"):
        return make(*conditioning), cfg
    # what the captured kernels depend on beyond shapes and weights (fused QKV adds weights, so
    # the weights' addresses already tell it): the UNet's compiled call (None when eager)
    extra = (cfg.guidance_scale, str(dtype), getattr(model.unet, "_compiled_call_impl", None), cfg.cudnn_benchmark,
             torch.is_autocast_enabled("cuda"))
    with cudnn_benchmark(cfg.cudnn_benchmark):
        eps_fn = denoiser_graphs(model)(make, conditioning, shape, device, extra)
    batch_cfg = copy.copy(cfg)  # not dataclasses.replace: __post_init__ would apply the preset again
    batch_cfg.cuda_graph = False
    return eps_fn, batch_cfg


@torch.no_grad()
def generate(
    model,
    cond_images: torch.Tensor,
    cond_c2w,
    target_c2w,
    target_fov,
    anchors: Sequence[int] | torch.Tensor | None = None,
    scale=1.0,
    cfg: SamplingConfig | None = None,
    seeds: Sequence[int] | None = None,
    progress: Progress = True,
    weights: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Generate one image per target camera, conditioned on its anchor view(s).

    ``cond_images``: ``[M, 3, S, S]`` in ``[-1, 1]`` at the model's resolution;
    ``cond_c2w``: ``[M, 4, 4]`` OpenGL; ``target_c2w``: ``[N, 4, 4]`` OpenGL;
    ``target_fov``: ``[N]`` (or scalar) vertical fov, radians; ``anchors``: ``[N]`` index of the
    conditioning view of each target (default all 0) or ``[N, k]`` indices blended with
    ``weights [N, k]`` (default equal; normalised here); ``scale``: scene scale per
    conditioning view (scalar or ``[M]``) for 6DoF+1; ``seeds``: one per target (default
    ``cfg.seed + i``); ``progress``: see :data:`Progress`. Returns ``[N, 3, S, S]`` in
    ``[-1, 1]`` on the CPU (float32). ``cfg.samples > 1`` averages that many samples per view (see
    the module docstring). With ``k = 1`` the targets use :func:`sampling.guided_denoiser`.
    """
    cfg = cfg or SamplingConfig()
    device, dtype, cond_c2w, target_c2w = check_generation_inputs(model, cfg, cond_images, cond_c2w, target_c2w)
    M, N = cond_c2w.shape[0], target_c2w.shape[0]
    anchors, weights = _anchor_table(anchors, weights, N, M)
    k = anchors.shape[1]
    fov = torch.as_tensor(target_fov, dtype=torch.float64).expand(N)
    scale_t = torch.as_tensor(scale, dtype=torch.float64).expand(M)
    seeds = list(range(cfg.seed, cfg.seed + N)) if seeds is None else list(seeds)
    if len(seeds) != N:
        raise NovelViewsError(f"seeds must give one seed per target view ({N}), got {len(seeds)}")
    n_samples = cfg.samples
    if n_samples > 1:  # the samples of every view as n_samples x N targets, averaged at the end
        target_c2w, fov = target_c2w.repeat(n_samples, 1, 1), fov.repeat(n_samples)
        anchors, weights = anchors.repeat(n_samples, 1), weights.repeat(n_samples, 1)
        seeds = [s + j * SAMPLE_SEED_STRIDE for j in range(n_samples) for s in seeds]
    T = n_samples * N

    flat = anchors.reshape(-1)
    cam = C.camera_embedding(model.config.camera_mode, cond_c2w[flat], target_c2w.repeat_interleave(k, 0),
                             scale_t[flat], fov.repeat_interleave(k, 0))
    image_emb, cond_latent = model.embed_image(cond_images.to(device))
    latent_shape = (model.config.vae.latent_channels, model.config.latent_size, model.config.latent_size)
    per_batch = max(1, cfg.batch_size // k)

    # the small per-target tables go to the device once, without waiting for it (a blocking copy
    # per batch would drain the queue of the image encoders' kernels first)
    anchors_dev, cam_dev = to_device(anchors, device), to_device(cam, device, image_emb.dtype)
    weights_dev = to_device(weights, device) if k > 1 else None

    out = []
    prepare_for_sampling(model, cfg)
    report = _Reporter(progress, math.ceil(T / per_batch) * cfg.steps, "sampling")
    batches = sorted({min(per_batch, T - start) for start in range(0, T, per_batch)})  # the shapes compiled
    try:
        with compiled_sampling(model, cfg, device, dtype, batches, k):
            for start in range(0, T, per_batch):
                a = anchors_dev[start:start + per_batch].reshape(-1)
                b = a.shape[0] // k
                ctx = model.context(image_emb[a], cam_dev[start * k:(start + b) * k])
                if k == 1:
                    conditioning = (ctx, cond_latent[a])
                else:
                    conditioning = (ctx.reshape(b, k, *ctx.shape[1:]),
                                    cond_latent[a].reshape(b, k, *cond_latent.shape[1:]),
                                    weights_dev[start:start + b])
                eps_fn, batch_cfg = _denoiser(model, conditioning, (b, *latent_shape), cfg, dtype, device)
                z = sample(eps_fn, (b, *latent_shape), model.config.schedule, batch_cfg, seeds[start:start + b],
                           device, progress=report)
                out.append(decode_chunked(model, z, cfg.vae_chunk, image_emb.dtype, cfg.vae_tiling))
    finally:
        report.close()
    images = out[0] if len(out) == 1 else torch.cat(out)  # one batch: no copy of all the images
    return images.view(n_samples, N, *images.shape[1:]).mean(0) if n_samples > 1 else images


__all__ = ["Progress", "progress_bar", "check_generation_inputs", "decode_chunked", "multi_anchor_denoiser",
           "generate"]
