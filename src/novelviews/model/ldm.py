"""The view-conditioned latent diffusion model (Zero-1-to-3 / ZeroNVS).

Conventions
-----------
* Images: ``torch float BxCxHxW in [-1, 1]`` (C = 3), square, ``config.image_size``
  pixels (any size divisible by the VAE factor works for the VAE paths).
* ``cond_latent``: the VAE posterior *mode* of the conditioning image, **not** scaled
  by ``scaling_factor`` (as the reference feeds it to the UNet by concatenation).
* Latents of the diffusion process (``x_t``): VAE latents *times* ``scaling_factor``
  (what :meth:`ViewConditionedLDM.encode` returns and :meth:`decode` takes).
* Camera embeddings: ``[B, d]`` from :func:`novelviews.cameras.camera_embedding`
  (d = 4 for ``3dof``, 19 for ``6dof+1``), computed from OpenGL cam2world poses.
* Context: a single cross-attention token ``[B, 1, context_dim]`` =
  ``cc_projection(cat(image_emb, cam_emb))``.
* Timesteps: integer DDPM steps in ``[0, num_train_timesteps)``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import to_dict
from ..errors import CheckpointError, ImageError
from .configuration import ModelConfig
from .encoders import ConvImageEncoder, build_clip_vision, clip_preprocess, resize_bicubic

FORMAT_NAME = "novelviews-ldm"
FORMAT_VERSION = 1
CONFIG_FILE = "novelviews.json"


def build_unet(cfg: ModelConfig):
    """diffusers ``UNet2DConditionModel`` for ``cfg`` (random init)."""
    from diffusers import UNet2DConditionModel

    u = cfg.unet
    return UNet2DConditionModel(
        sample_size=cfg.latent_size,
        in_channels=u.in_channels,
        out_channels=u.out_channels,
        down_block_types=tuple(u.down_block_types),
        up_block_types=tuple(u.up_block_types),
        block_out_channels=tuple(u.block_out_channels),
        layers_per_block=u.layers_per_block,
        attention_head_dim=u.attention_head_dim,
        cross_attention_dim=u.cross_attention_dim,
        norm_num_groups=u.norm_num_groups,
    )


def build_vae(cfg: ModelConfig):
    """diffusers ``AutoencoderKL`` for ``cfg`` (random init)."""
    from diffusers import AutoencoderKL

    v = cfg.vae
    n = len(v.block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(v.block_out_channels),
        layers_per_block=v.layers_per_block,
        latent_channels=v.latent_channels,
        norm_num_groups=v.norm_num_groups,
        sample_size=cfg.image_size,
        scaling_factor=v.scaling_factor,
    )


def build_image_encoder(cfg: ModelConfig) -> nn.Module | None:
    kind = cfg.image_encoder.kind
    if kind == "clip":
        return build_clip_vision(cfg.image_encoder)
    if kind == "conv":
        return ConvImageEncoder(cfg.image_encoder, cfg.context_dim)
    return None


class ViewConditionedLDM(nn.Module):
    """UNet + VAE + image encoder + ``cc_projection``, built from a :class:`ModelConfig`.

    Submodules: ``unet`` (diffusers ``UNet2DConditionModel``), ``vae`` (diffusers
    ``AutoencoderKL``), ``image_encoder`` (transformers ``CLIPVisionModelWithProjection``,
    :class:`ConvImageEncoder` or ``None``), ``cc_projection`` (``nn.Linear(context_dim +
    d, context_dim)``, initialised as identity on the image part, zero on the camera
    part, zero bias, as the reference).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.unet = build_unet(config)
        self.vae = build_vae(config)
        self.image_encoder = build_image_encoder(config)
        c, d = config.context_dim, config.camera_dim
        self.cc_projection = nn.Linear(c + d, c)
        with torch.no_grad():
            self.cc_projection.weight.zero_()
            self.cc_projection.weight[:, :c].copy_(torch.eye(c))
            self.cc_projection.bias.zero_()

    # ------------------------------------------------------------------ properties

    @property
    def dtype(self) -> torch.dtype:
        return self.cc_projection.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.cc_projection.weight.device

    @property
    def camera_dim(self) -> int:
        return self.config.camera_dim

    @property
    def context_dim(self) -> int:
        return self.config.context_dim

    @property
    def latent_channels(self) -> int:
        return self.config.vae.latent_channels

    @property
    def vae_scale_factor(self) -> int:
        return self.config.vae.downsample_factor

    @property
    def scaling_factor(self) -> float:
        return self.config.vae.scaling_factor

    def num_parameters(self) -> dict[str, int]:
        """Parameter counts per component and in total."""
        out = {}
        for name in ("unet", "vae", "image_encoder", "cc_projection"):
            mod = getattr(self, name)
            out[name] = 0 if mod is None else sum(p.numel() for p in mod.parameters())
        out["total"] = sum(out.values())
        return out

    # ------------------------------------------------------------------ conditioning

    def _check_images(self, images: torch.Tensor, what: str = "images") -> torch.Tensor:
        if not torch.is_tensor(images) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
            raise ImageError(f"{what} must be a float tensor Bx3xHxW in [-1, 1], got {shape}")
        f = self.vae_scale_factor
        if images.shape[-1] % f or images.shape[-2] % f:
            raise ImageError(
                f"{what} of size {tuple(images.shape[-2:])} must have sides divisible by the VAE "
                f"factor {f}: resize to {self.config.image_size}x{self.config.image_size}"
            )
        return images.to(device=self.device, dtype=self.dtype)

    def preprocess_for_encoder(self, images: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images -> the image encoder's input (CLIP: resized + mean/std normalised)."""
        ie = self.config.image_encoder
        if ie.kind == "clip":
            return clip_preprocess(images, ie.image_size)
        return resize_bicubic(images, ie.image_size)

    def image_embedding(self, images: torch.Tensor) -> torch.Tensor:
        """Global image embedding ``[B, context_dim]`` (CLIP: projected, not L2-normalised)."""
        images = self._check_images(images)
        kind = self.config.image_encoder.kind
        if kind == "none":
            return torch.zeros(images.shape[0], self.context_dim, device=self.device, dtype=self.dtype)
        x = self.preprocess_for_encoder(images)
        if kind == "clip":
            return self.image_encoder(pixel_values=x).image_embeds
        return self.image_encoder(x)

    def embed_image(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Conditioning of a [-1, 1] image batch: ``(image_emb [B, context_dim], cond_latent [B, 4, h, w])``.

        ``cond_latent`` is the VAE posterior mode, NOT multiplied by the scaling factor.
        """
        images = self._check_images(images)
        emb = self.image_embedding(images)
        cond_latent = self.vae.encode(images).latent_dist.mode()
        return emb, cond_latent

    def context(self, image_emb: torch.Tensor, cam_emb: torch.Tensor) -> torch.Tensor:
        """The cross-attention context token ``[B, 1, context_dim]``.

        ``cc_projection(cat([image_emb, cam_emb], -1))``; ``cam_emb`` is ``[B, d]`` (d = 4 or
        19); a single ``image_emb`` row is broadcast over a batch of cameras.
        """
        cam_emb = torch.as_tensor(cam_emb).to(device=image_emb.device, dtype=image_emb.dtype)
        if cam_emb.ndim == 1:
            cam_emb = cam_emb[None]
        if cam_emb.shape[-1] != self.camera_dim:
            raise ValueError(
                f"camera embedding has {cam_emb.shape[-1]} values but the model's camera mode "
                f"'{self.config.camera_mode}' needs {self.camera_dim}"
            )
        if image_emb.shape[0] == 1 and cam_emb.shape[0] > 1:
            image_emb = image_emb.expand(cam_emb.shape[0], -1)
        return self.cc_projection(torch.cat([image_emb, cam_emb], dim=-1))[:, None, :]

    # ------------------------------------------------------------------ denoiser

    def predict_noise(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor | int,
        context: torch.Tensor,
        cond_latent: torch.Tensor,
    ) -> torch.Tensor:
        """eps prediction: UNet on ``cat([x_t, cond_latent], dim=1)`` with the context token.

        ``x_t``: scaled noisy latents ``[B, 4, h, w]``; ``t``: int, scalar or ``[B]`` tensor;
        ``context``: ``[B, 1, context_dim]``; ``cond_latent``: unscaled ``[B, 4, h, w]``.
        """
        if cond_latent.shape[0] != x_t.shape[0]:
            cond_latent = cond_latent.expand(x_t.shape[0], *cond_latent.shape[1:])
        if context.shape[0] != x_t.shape[0]:
            context = context.expand(x_t.shape[0], *context.shape[1:])
        t = torch.as_tensor(t, device=x_t.device)
        h = torch.cat([x_t, cond_latent.to(x_t.dtype)], dim=1)
        return self.unet(h, t, encoder_hidden_states=context.to(x_t.dtype)).sample

    def predict_noise_cfg(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor | int,
        context: torch.Tensor,
        cond_latent: torch.Tensor,
        guidance_scale: float,
    ) -> torch.Tensor:
        """Classifier-free guidance as the reference: ``eps_u + s * (eps_c - eps_u)``.

        The unconditional branch uses a zero context token (zeros *after*
        ``cc_projection``) and a zero conditioning latent; both branches run in one
        batched UNet call. ``guidance_scale == 1`` skips the unconditional branch and
        returns :meth:`predict_noise` exactly.
        """
        if guidance_scale == 1.0:
            return self.predict_noise(x_t, t, context, cond_latent)
        b = x_t.shape[0]
        if cond_latent.shape[0] != b:
            cond_latent = cond_latent.expand(b, *cond_latent.shape[1:])
        if context.shape[0] != b:
            context = context.expand(b, *context.shape[1:])
        t = torch.as_tensor(t, device=x_t.device)
        if t.numel() == 1:
            t = t.reshape(()).expand(b)
        eps = self.predict_noise(
            torch.cat([x_t, x_t]),
            torch.cat([t, t]),
            torch.cat([context, torch.zeros_like(context)]),
            torch.cat([cond_latent, torch.zeros_like(cond_latent)]),
        )
        eps_c, eps_u = eps.chunk(2)
        return eps_u + guidance_scale * (eps_c - eps_u)

    # ------------------------------------------------------------------ VAE

    def encode(
        self, images: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """[-1, 1] images -> diffusion latents (posterior mode, or a sample) * scaling_factor.

        Differentiable (used by SDS with gradients through the encoder).
        """
        images = self._check_images(images)
        dist = self.vae.encode(images).latent_dist
        z = dist.sample(generator=generator) if sample else dist.mode()
        return z * self.scaling_factor

    def decode(self, latents: torch.Tensor, chunk: int | None = None, clamp: bool = False) -> torch.Tensor:
        """Diffusion latents (scaled) -> images, nominally in [-1, 1] (clamped only if ``clamp``).

        ``chunk`` decodes at most that many latents at a time (VAE slicing, saves memory).
        """
        latents = latents.to(device=self.device, dtype=self.dtype) / self.scaling_factor
        if chunk is None or chunk >= latents.shape[0]:
            out = self.vae.decode(latents).sample
        else:
            out = torch.cat([self.vae.decode(z).sample for z in latents.split(max(1, int(chunk)))])
        return out.clamp(-1.0, 1.0) if clamp else out

    # ------------------------------------------------------------------ saving / loading

    def format_metadata(self) -> dict[str, Any]:
        return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "config": to_dict(self.config)}

    def save_pretrained(self, directory: str | Path, overwrite: bool = False, dtype: torch.dtype | None = None) -> Path:
        """Write a diffusers-style folder (atomically: built beside it, then renamed).

        ``unet/`` and ``vae/`` (diffusers ``save_pretrained``, safetensors), ``image_encoder/``
        (transformers ``save_pretrained``; only for CLIP, a conv encoder goes to
        ``image_encoder.safetensors``), ``cc_projection.safetensors`` and ``novelviews.json``
        (the ModelConfig + format version). ``dtype`` casts the saved weights (e.g. fp16).
        """
        from safetensors.torch import save_file

        directory = Path(directory)
        if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
            if not overwrite:
                raise CheckpointError(
                    f"'{directory}' already exists and is not empty: pass overwrite=True (--overwrite) "
                    "or choose another output folder"
                )
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
        try:
            src = self if dtype is None else _cast_copy(self, dtype)
            src.unet.save_pretrained(tmp / "unet", safe_serialization=True)
            src.vae.save_pretrained(tmp / "vae", safe_serialization=True)
            if self.config.image_encoder.kind == "clip":
                src.image_encoder.save_pretrained(tmp / "image_encoder", safe_serialization=True)
            elif self.config.image_encoder.kind == "conv":
                save_file(_contig(src.image_encoder.state_dict()), str(tmp / "image_encoder.safetensors"))
            save_file(_contig(src.cc_projection.state_dict()), str(tmp / "cc_projection.safetensors"))
            (tmp / CONFIG_FILE).write_text(json.dumps(self.format_metadata(), indent=2) + "\n")
            if directory.exists():
                old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
                if directory.is_dir():
                    os.replace(directory, old)
                    os.replace(tmp, directory)
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    directory.unlink()
                    os.replace(tmp, directory)
            else:
                os.replace(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return directory

    def save_file(self, path: str | Path, dtype: torch.dtype | None = None) -> Path:
        """One ``.safetensors`` with every weight under our module names (``unet.*``, ``vae.*``,
        ``image_encoder.*``, ``cc_projection.*``) and the config JSON in its metadata.
        ``dtype=torch.float16`` for shipping. Written atomically."""
        from safetensors.torch import save_file

        from ..io.runs import atomic_save

        sd = self.state_dict()
        if dtype is not None:
            sd = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in sd.items()}
        meta = {
            "format": FORMAT_NAME,
            "format_version": str(FORMAT_VERSION),
            "config": json.dumps(to_dict(self.config)),
        }
        sd = _contig(sd)
        return atomic_save(Path(path), lambda p: save_file(sd, str(p), metadata=meta))


def _contig(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous() for k, v in sd.items()}


def _cast_copy(model: ViewConditionedLDM, dtype: torch.dtype) -> ViewConditionedLDM:
    import copy

    return copy.deepcopy(model).to(dtype)


__all__ = ["ViewConditionedLDM", "build_unet", "build_vae", "build_image_encoder", "FORMAT_NAME", "FORMAT_VERSION"]
