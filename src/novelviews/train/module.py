"""LightningModules: the view-conditioned LDM (epsilon loss) and its VAE stage.

``LDMModule`` (stage ``ldm``): target latents = VAE posterior *sample* x scaling factor,
``t ~ U{0, T-1}``, ``x_t = sqrt(a_t) z + sqrt(1 - a_t) eps``, loss = MSE(eps_hat, eps).
Conditioning dropout for classifier-free guidance, per sample (the reference's 5 / 5 / 5 %):
the context token zeroed (after cc_projection), the conditioning latent zeroed, or both -
exactly the unconditional branch used at sampling time. EMA of all trainable weights (updated
after each optimizer step); the global random states are saved in every checkpoint and restored
when a resumed run starts training, so it draws what the uninterrupted run would have;
AdamW with ``cc_projection`` at ``cc_lr_mult`` x the learning rate; linear warm-up.
With a frozen VAE, batches may carry the pool's cached VAE posterior (``cache_latents``):
the loss then draws the target latent from it instead of running the encoder.

``VAEModule`` (stage ``vae``): L1 + MSE reconstruction + a small KL term, for training a
VAE of our own (the demo model) before the diffusion stage.
"""

from __future__ import annotations

import copy
import math

import lightning as L
import torch
import torch.nn.functional as F

from ..errors import TrainingError
from ..runtime import compile_in_place
from ..sampling import schedule_alphas
from .data import images_to_float


class EMA(torch.nn.Module):
    """Exponential moving average of a module's floating-point parameters (a frozen copy).

    ``update`` lerps every trainable parameter's shadow with one ``torch._foreach_lerp_``
    per dtype group (one fused kernel launch per group instead of one per parameter) and
    copies frozen parameters and buffers as they are. The update count lives in the
    ``num_updates`` buffer (checkpointed) and is mirrored in a Python int, so the decay is
    computed without reading the buffer back from the GPU (no device sync per step).
    """

    def __init__(self, model: torch.nn.Module, decay: float = 0.999):
        super().__init__()
        self.decay = decay
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self._count: int | None = None  # Python mirror of num_updates; None = read it once

    def _load_from_state_dict(self, *args, **kwargs):  # resume: the mirror must be re-read
        self._count = None
        super()._load_from_state_dict(*args, **kwargs)

    def current_decay(self) -> float:
        """The decay the next update uses: ``min(decay, (1 + n) / (10 + n))``, n = updates so far + 1."""
        if self._count is None:
            self._count = int(self.num_updates)
        n = self._count + 1
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        # warm-up of the decay (as ldm's LitEma): early averages are not dominated by init
        d = self.current_decay()
        self._count += 1
        self.num_updates += 1
        lerp: dict[tuple, tuple[list, list]] = {}
        copy_s, copy_p = [], []
        for s, p in zip(self.shadow.parameters(), model.parameters()):
            if p.requires_grad:
                group = lerp.setdefault((s.dtype, s.device), ([], []))
                group[0].append(s)
                group[1].append(p.detach() if p.dtype == s.dtype else p.detach().to(s.dtype))
            else:
                copy_s.append(s)
                copy_p.append(p.detach())
        for shadows, params in lerp.values():
            torch._foreach_lerp_(shadows, params, 1 - d)
        copy_s += list(self.shadow.buffers())
        copy_p += list(model.buffers())
        if copy_s:
            torch._foreach_copy_(copy_s, copy_p)

    @torch.no_grad()
    def update_reference(self, model: torch.nn.Module) -> None:
        """The per-parameter loop ``update`` replaces (kept as the test's reference)."""
        d = self.current_decay()
        self._count += 1
        self.num_updates += 1
        for s, p in zip(self.shadow.parameters(), model.parameters()):
            if p.requires_grad:
                s.lerp_(p.detach().to(s.dtype), 1 - d)
            else:
                s.copy_(p.detach())
        for s, b in zip(self.shadow.buffers(), model.buffers()):
            s.copy_(b)


@torch.no_grad()
def camera_use(model, image_emb: torch.Tensor, cond_latent: torch.Tensor, target: torch.Tensor, cam: torch.Tensor,
               alphas_cumprod: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """How much the model's noise prediction relies on the camera, on one batch of pairs.

    The epsilon MSE of the target at fixed noise and timesteps spread over the schedule, with
    the true camera embedding and with it zeroed: ``camera_gain`` = MSE(zero camera) - MSE(true
    camera), ``camera_gain_rel`` the same over MSE(true). A model that ignores the camera
    (e.g. its ``cc_projection`` camera columns still zero) scores 0 - then no sampler setting can
    make it turn the view. ``target``: ``[B, 3, S, S]`` in [-1, 1]; ``cam``: ``[B, d]``.
    """
    z0 = model.encode(target, sample=False)
    b, n = z0.shape[0], len(alphas_cumprod)
    g = torch.Generator(device="cpu").manual_seed(seed)
    eps = torch.randn(z0.shape, generator=g).to(device=z0.device, dtype=z0.dtype)
    t = torch.linspace(0.05 * n, 0.95 * n, b).long().clamp(0, n - 1).to(z0.device)
    a = alphas_cumprod.to(z0.device)[t].to(z0.dtype).view(-1, 1, 1, 1)
    x_t = a.sqrt() * z0 + (1 - a).sqrt() * eps

    def mse(c: torch.Tensor) -> torch.Tensor:
        pred = model.predict_noise(x_t, t, model.context(image_emb, c), cond_latent)
        return F.mse_loss(pred.float(), eps.float())

    cam = torch.as_tensor(cam).to(device=image_emb.device, dtype=image_emb.dtype)
    true, zero = mse(cam), mse(torch.zeros_like(cam))
    return {"eps_mse": float(true), "camera_gain": float(zero - true),
            "camera_gain_rel": float((zero - true) / true.clamp_min(1e-12))}


def prepare_for_training(model, compile: bool = False, channels_last: bool = False,
                         backend: str = "inductor") -> list[str]:
    """Make the trainable hot path of ``model`` faster, in place; returns what was changed.

    ``channels_last``: the UNet's and image encoder's 4-D weights in channels-last format.
    ``compile``: ``nn.Module.compile`` of the UNet and of a trainable image encoder
    (``dynamic=False``: a training run has one batch shape; the first step pays the
    compilation). Both keep parameters and state-dict keys, so checkpoints, EMA and export
    are unchanged. Call it after the training module (and its EMA copy, which stays eager
    and contiguous for validation and export) exists.
    """
    parts = [("unet", model.unet)]
    enc = getattr(model, "image_encoder", None)
    if enc is not None and any(p.requires_grad for p in enc.parameters()):
        parts.append(("image_encoder", enc))
    done = []
    for name, module in parts:
        if channels_last:
            module.to(memory_format=torch.channels_last)
            done.append(f"{name}:channels_last")
        if compile and compile_in_place(module, backend=backend):
            done.append(f"{name}:compile")
    return done


def lr_factor(step: int, warmup: int, total: int = 0, schedule: str = "constant", min_ratio: float = 0.0) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (0-based): a linear warm-up
    over ``warmup`` steps, then ``constant``, or a ``cosine`` / ``linear`` decay from 1 at the end
    of the warm-up to ``min_ratio`` at step ``total`` (held there after)."""
    w = min(1.0, (step + 1) / max(1, warmup))
    if schedule == "constant":
        return w
    p = min(1.0, max(0.0, (step - warmup) / max(1, total - warmup)))
    shape = 0.5 * (1 + math.cos(math.pi * p)) if schedule == "cosine" else 1 - p
    return w * (min_ratio + (1 - min_ratio) * shape)


def rng_states() -> dict:
    """The global random states training draws from - torch (CPU and every CUDA device), NumPy and
    Python - as plain tensors, lists and numbers (loadable with ``torch.load(weights_only=True)``)."""
    import random

    import numpy as np

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "python": [int(version), list(internal), gauss_next]}


def set_rng_states(state: dict) -> None:
    """Restore what :func:`rng_states` returned. CUDA states are restored when the number of
    devices matches (a checkpoint of a CPU run resumed on a GPU draws fresh CUDA numbers)."""
    import random

    import numpy as np

    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


class _EMATrainModule(L.LightningModule):
    """What both stages share: uint8 batches made float on the device, an EMA of the trainable
    weights (created by :meth:`_init_ema` once the subclass has chosen what trains), the EMA
    weights for evaluation and export, and AdamW with a linear warm-up (then constant or decaying,
    ``lr_schedule``)."""

    def __init__(self, model, cfg):
        super().__init__()
        self.model = model
        self.cfg = cfg
        self._nonfinite: torch.Tensor | None = None  # device flag: a non-finite loss since the start
        self._resumed_rng: dict | None = None  # the checkpoint's random states, until training starts

    def _init_ema(self) -> None:
        self.ema = EMA(self.model, self.cfg.ema_decay) if self.cfg.ema_decay > 0 else None

    def on_after_batch_transfer(self, batch, dataloader_idx):
        # uint8 images (PairBatches(uint8=True)) -> [-1, 1] float, on the device
        return images_to_float(batch)

    def on_before_backward(self, loss):
        # before the optimizer step and before any checkpoint of this step (callbacks run first)
        bad = ~torch.isfinite(loss.detach())  # stays on the device: no host sync per step
        self._nonfinite = bad if self._nonfinite is None else self._nonfinite | bad

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.global_step % max(1, int(self.cfg.log_every)) == 0:  # one sync every log_every steps
            self.check_finite()

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None):
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        # the EMA follows each optimizer step here, not in on_train_batch_end: the checkpoint callback's
        # on_train_batch_end runs before the module's, so a checkpoint would miss the step's update
        if self.ema is not None:
            self.ema.update(self.model)

    def check_finite(self) -> None:
        """Raise :class:`TrainingError` if any training loss so far was NaN or infinite.

        Called every ``log_every`` steps and before every checkpoint is written, so a diverged
        run stops within ``log_every`` steps, exports nothing and never overwrites a checkpoint
        with non-finite weights (checkpoints written before the divergence are kept).
        """
        if self._nonfinite is not None and bool(self._nonfinite):
            c = self.cfg
            raise TrainingError(
                f"the training loss became NaN/inf at or before step {self.global_step}: the weights diverged. "
                f"Nothing was exported; checkpoints written before that are kept. Fix: lower lr (now {c.lr:g}), "
                f"raise warmup_steps (now {c.warmup_steps}), keep grad_clip > 0 (now {c.grad_clip:g}), "
                f"or try precision=fp32 (now {c.precision}) to rule out an overflow; then --resume or start again")

    def on_save_checkpoint(self, checkpoint):
        self.check_finite()
        checkpoint["rng_states"] = rng_states()

    def on_load_checkpoint(self, checkpoint):
        # applied when training starts, after Lightning has set up (and started iterating) the loaders
        self._resumed_rng = checkpoint.get("rng_states")

    def on_train_start(self):
        # a resumed run draws the same noise, timesteps and dropout as the uninterrupted run from here on
        state, self._resumed_rng = self._resumed_rng, None
        if state is not None:
            set_rng_states(state)

    def eval_model(self):
        return self.ema.shadow if self.ema is not None else self.model

    def _with_warmup(self, opt: torch.optim.Optimizer) -> dict:
        c = self.cfg
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: lr_factor(s, c.warmup_steps, c.max_steps, c.lr_schedule, c.min_lr_ratio))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class LDMModule(_EMATrainModule):
    def __init__(self, model, cfg):
        super().__init__(model, cfg)
        if cfg.freeze_vae:
            self.model.vae.requires_grad_(False)
        if cfg.freeze_image_encoder and self.model.image_encoder is not None:
            self.model.image_encoder.requires_grad_(False)
        self._init_ema()
        self.register_buffer("alphas_cumprod", schedule_alphas(model.config.schedule).float(), persistent=False)

    # -------------------------------------------------------------- loss
    def uses_cached_latents(self, batch: dict) -> bool:
        """True when ``batch`` carries the cached VAE posterior and the VAE is frozen."""
        return bool(self.cfg.freeze_vae) and all(k in batch for k in ("cond_latent", "target_mean", "target_std"))

    def diffusion_loss(self, batch: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        """Epsilon-prediction MSE of one batch (random draws from ``generator`` when given).

        Uncached: ``z0`` = VAE posterior sample of ``target`` x scaling factor, the conditioning
        latent = posterior mode of ``cond``. Cached (frozen VAE and the batch has ``cond_latent``,
        ``target_mean``, ``target_std`` from :func:`~novelviews.train.data.cache_pool_latents`):
        ``z0 = (mean + std * noise) * scaling_factor`` without the encoder - the noise is drawn
        first, with the same shape / device / dtype, so both paths consume ``generator`` alike
        and give the same loss. The image encoder sees ``cond`` either way.
        """
        m, cfg = self.model, self.cfg
        cond, target, cam = batch["cond"], batch["target"], batch["cam"]
        b = target.shape[0]
        if self.uses_cached_latents(batch):
            from diffusers.utils.torch_utils import randn_tensor  # as the posterior's own sample()

            mean = batch["target_mean"].to(device=m.device, dtype=m.dtype)
            std = batch["target_std"].to(device=m.device, dtype=m.dtype)
            noise = randn_tensor(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            z0 = (mean + std * noise) * m.scaling_factor
            image_emb = m.image_embedding(cond)
            cond_latent = batch["cond_latent"].to(device=m.device, dtype=m.dtype)
        else:
            with torch.no_grad() if cfg.freeze_vae else torch.enable_grad():
                z0 = m.encode(target, sample=True, generator=generator)
            image_emb, cond_latent = m.embed_image(cond)
            if cfg.freeze_vae:
                cond_latent = cond_latent.detach()
        ctx = m.context(image_emb, cam)
        # conditioning dropout: 0 keep, 1 drop context, 2 drop both, 3 drop latent
        u = torch.rand(b, device=z0.device, generator=generator)
        p1, p2, p3 = cfg.drop_context, cfg.drop_both, cfg.drop_latent
        drop_ctx = (u < p1 + p2)
        drop_lat = (u >= p1) & (u < p1 + p2 + p3)
        ctx = ctx * (~drop_ctx).to(ctx.dtype)[:, None, None]
        cond_latent = cond_latent * (~drop_lat).to(cond_latent.dtype)[:, None, None, None]
        t = torch.randint(0, len(self.alphas_cumprod), (b,), device=z0.device, generator=generator)
        eps = torch.randn(z0.shape, device=z0.device, generator=generator, dtype=z0.dtype)
        a = self.alphas_cumprod[t].to(z0.dtype).view(-1, 1, 1, 1)
        x_t = a.sqrt() * z0 + (1 - a).sqrt() * eps
        eps_hat = m.predict_noise(x_t, t, ctx, cond_latent)
        return F.mse_loss(eps_hat.float(), eps.float())

    def training_step(self, batch, batch_idx):
        loss = self.diffusion_loss(batch)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=batch["target"].shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        with torch.compiler.set_stance("force_eager"):  # no recompilation for the validation shapes
            return self._validate(batch)

    def _validate(self, batch):
        from ..evaluate import psnr
        from ..sampling import SamplingConfig, guided_denoiser, sample

        m = self.eval_model()
        scfg = SamplingConfig(steps=self.cfg.val_steps, guidance_scale=self.cfg.val_guidance, eta=1.0)
        emb, lat = m.embed_image(batch["cond"])
        use = camera_use(m, emb, lat, batch["target"], batch["cam"], self.alphas_cumprod)
        self.log_dict({f"val/{k}": v for k, v in use.items()}, batch_size=emb.shape[0], sync_dist=True)
        ctx = m.context(emb, batch["cam"])
        eps_fn = guided_denoiser(m, ctx, lat, scfg.guidance_scale)
        shape = (batch["cond"].shape[0], m.config.vae.latent_channels, m.config.latent_size, m.config.latent_size)
        z = sample(eps_fn, shape, m.config.schedule, scfg, seeds=range(shape[0]), device=lat.device)
        pred = m.decode(z).clamp(-1, 1)
        val = psnr((pred + 1) / 2, (batch["target"] + 1) / 2).mean()
        base = psnr((batch["cond"] + 1) / 2, (batch["target"] + 1) / 2).mean()
        self.log_dict({"val/psnr": val, "val/psnr_copy_input": base}, prog_bar=True, batch_size=shape[0], sync_dist=True)
        self.val_images = (batch["cond"][:8].cpu(), pred[:8].cpu(), batch["target"][:8].cpu())
        return val

    # -------------------------------------------------------------- optimiser
    def configure_optimizers(self):
        cc, rest = [], []
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                (cc if name.startswith("cc_projection") else rest).append(p)
        opt = torch.optim.AdamW(
            [{"params": rest, "lr": self.cfg.lr}, {"params": cc, "lr": self.cfg.lr * self.cfg.cc_lr_mult}],
            weight_decay=self.cfg.weight_decay,
            # not fused: Lightning's mixed-precision plugin refuses gradient clipping with a fused optimizer
        )
        return self._with_warmup(opt)


def latent_noise(z: torch.Tensor, max_std: float, scaling_factor: float,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Gaussian noise for latents ``z [B, ...]`` (unscaled): image ``b`` gets std ``s_b / scaling_factor``
    with ``s_b`` uniform in ``[0, max_std]`` (``max_std`` in the LDM's scaled latent units); a
    ``generator`` must live on ``z``'s device."""
    s = torch.rand(z.shape[0], generator=generator, device=z.device, dtype=torch.float32) * max_std
    noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=torch.float32)
    return (noise * (s / scaling_factor).view(-1, *([1] * (z.dim() - 1)))).to(z.dtype)


class VAEModule(_EMATrainModule):
    """Autoencoder stage: reconstruct target images; only the VAE is trained."""

    def __init__(self, model, cfg):
        super().__init__(model, cfg)
        prefixes = ("vae.",) if cfg.vae_train == "all" else ("vae.decoder.", "vae.post_quant_conv.")
        for name, p in self.model.named_parameters():
            p.requires_grad_(name.startswith(prefixes))
        self._init_ema()
        # latent anchor: a frozen copy of the initial VAE, whose posterior means the trained encoder is
        # pulled towards, so the latent space an LDM was trained on stays (nearly) where it was
        self.anchor_vae = None
        if cfg.vae_anchor > 0 and cfg.vae_train == "all":
            self.anchor_vae = copy.deepcopy(self.model.vae).requires_grad_(False).eval()

    def vae_loss(self, images: torch.Tensor) -> tuple[torch.Tensor, dict]:
        with torch.enable_grad() if self.cfg.vae_train == "all" else torch.no_grad():
            post = self.model.vae.encode(images).latent_dist
        z = post.sample()
        if self.cfg.vae_latent_noise > 0:
            z = z + latent_noise(z, self.cfg.vae_latent_noise, float(self.model.config.vae.scaling_factor))
        rec = self.model.vae.decode(z).sample
        l1 = (rec.float() - images.float()).abs().mean()
        mse = F.mse_loss(rec.float(), images.float())
        kl = post.kl().mean() / math.prod(images.shape[1:])
        loss = l1 + mse + self.cfg.kl_weight * kl
        parts = {"l1": l1.detach(), "mse": mse.detach(), "kl": kl.detach()}
        if self.anchor_vae is not None:
            with torch.no_grad():
                ref = self.anchor_vae.encode(images).latent_dist.mean
            sf = float(self.model.config.vae.scaling_factor)  # in the LDM's (scaled) latent units
            anchor = F.mse_loss(post.mean.float() * sf, ref.float() * sf)
            loss = loss + self.cfg.vae_anchor * anchor
            parts["anchor"] = anchor.detach()
        return loss, parts

    def training_step(self, batch, batch_idx):
        loss, parts = self.vae_loss(torch.cat([batch["cond"], batch["target"]]))
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["target"].shape[0])
        self.log_dict({f"train/{k}": v for k, v in parts.items()}, batch_size=batch["target"].shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        from ..evaluate import psnr

        m = self.eval_model()
        x = batch["target"]
        rec = m.decode(m.encode(x)).clamp(-1, 1)
        val = psnr((rec + 1) / 2, (x + 1) / 2).mean()
        self.log("val/psnr", val, prog_bar=True, batch_size=x.shape[0], sync_dist=True)
        self.val_images = (x[:8].cpu(), rec[:8].cpu(), x[:8].cpu())
        return val

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        return self._with_warmup(torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay))
