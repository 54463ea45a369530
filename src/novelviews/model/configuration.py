"""Typed configuration of the view-conditioned latent diffusion model.

The dataclass defaults describe the reference ZeroNVS model (docs/REFERENCE.md):
an SD-1.x UNet (8 input channels = 4 noisy latent + 4 conditioning latent), the SD
KL-f8 VAE, a CLIP ViT-L/14 image encoder with a 768-d projection, and a 6DoF+1
camera embedding (19 numbers) concatenated to the image embedding and projected back
to ``context_dim`` by ``cc_projection``.

Presets (``zeronvs``, ``zero123``, ``demo``, ``tiny``) are partial YAML dicts over
these defaults, in ``src/novelviews/configs/``; load them with :func:`model_config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..cameras import embedding_dim
from ..config import check_range, from_dict, load, read_yaml
from ..errors import ConfigError

ImageEncoderKind = Literal["clip", "conv", "none"]
CameraModeName = Literal["3dof", "6dof+1"]


@dataclass
class UNetConfig:
    """diffusers ``UNet2DConditionModel`` hyper-parameters (SD-1.x layout by default).

    ``attention_head_dim`` has diffusers' SD-1 meaning: it is the *number of heads*
    (8) of every attention layer, not the width of a head.
    """

    in_channels: int = 8  # 4 noisy latent + 4 conditioning-image latent
    out_channels: int = 4
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    layers_per_block: int = 2
    down_block_types: tuple[str, ...] = (
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    )
    up_block_types: tuple[str, ...] = (
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    )
    attention_head_dim: int = 8  # number of heads (diffusers SD-1 naming)
    cross_attention_dim: int = 768
    norm_num_groups: int = 32

    def validate(self) -> None:
        n = len(self.block_out_channels)
        if n < 1:
            raise ConfigError("config key 'unet.block_out_channels' must list at least one width")
        if len(self.down_block_types) != n or len(self.up_block_types) != n:
            raise ConfigError(
                f"config keys 'unet.down_block_types' ({len(self.down_block_types)}) and "
                f"'unet.up_block_types' ({len(self.up_block_types)}) must have one entry per "
                f"'unet.block_out_channels' entry ({n})"
            )
        for t in self.down_block_types:
            if t not in ("CrossAttnDownBlock2D", "DownBlock2D"):
                raise ConfigError(
                    f"config key 'unet.down_block_types': '{t}' is not supported "
                    "(use CrossAttnDownBlock2D or DownBlock2D)"
                )
        for t in self.up_block_types:
            if t not in ("CrossAttnUpBlock2D", "UpBlock2D"):
                raise ConfigError(
                    f"config key 'unet.up_block_types': '{t}' is not supported "
                    "(use CrossAttnUpBlock2D or UpBlock2D)"
                )
        check_range("unet.layers_per_block", self.layers_per_block, 1)
        check_range("unet.attention_head_dim", self.attention_head_dim, 1)
        check_range("unet.norm_num_groups", self.norm_num_groups, 1)
        for c in self.block_out_channels:
            if c % self.norm_num_groups:
                raise ConfigError(
                    f"config key 'unet.block_out_channels': {c} is not divisible by "
                    f"unet.norm_num_groups={self.norm_num_groups}"
                )
            if c % self.attention_head_dim:
                raise ConfigError(
                    f"config key 'unet.block_out_channels': {c} is not divisible by the number "
                    f"of heads unet.attention_head_dim={self.attention_head_dim}"
                )


@dataclass
class VAEConfig:
    """diffusers ``AutoencoderKL`` hyper-parameters (SD-1.x KL-f8 by default).

    The downsampling factor is ``2 ** (len(block_out_channels) - 1)``; latents are
    multiplied by ``scaling_factor`` before entering the UNet.
    """

    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    latent_channels: int = 4
    norm_num_groups: int = 32
    scaling_factor: float = 0.18215

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)

    def validate(self) -> None:
        if not self.block_out_channels:
            raise ConfigError("config key 'vae.block_out_channels' must list at least one width")
        check_range("vae.layers_per_block", self.layers_per_block, 1)
        check_range("vae.latent_channels", self.latent_channels, 1)
        check_range("vae.scaling_factor", self.scaling_factor, 0.0, lo_open=True)
        for c in self.block_out_channels:
            if c % self.norm_num_groups:
                raise ConfigError(
                    f"config key 'vae.block_out_channels': {c} is not divisible by "
                    f"vae.norm_num_groups={self.norm_num_groups}"
                )


@dataclass
class ImageEncoderConfig:
    """The image encoder that produces the global image embedding (``context_dim`` wide).

    * ``clip``: transformers ``CLIPVisionModelWithProjection`` (QuickGELU), input
      resized to ``image_size`` (bicubic, align_corners, no antialias) and normalised
      with CLIP mean/std; the projected (not L2-normalised) embedding is used.
      Defaults: CLIP ViT-L/14.
    * ``conv``: a small trainable CNN (stride-2 convs with ``channels`` widths) ->
      global average pool -> Linear to ``context_dim``; input resized to ``image_size``
      and kept in [-1, 1].
    * ``none``: no image embedding (zeros).
    """

    kind: ImageEncoderKind = "clip"
    hidden_size: int = 1024
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    intermediate_size: int = 4096
    patch_size: int = 14
    image_size: int = 224
    projection_dim: int = 768
    channels: tuple[int, ...] = (32, 64, 128, 256)

    def validate(self) -> None:
        check_range("image_encoder.image_size", self.image_size, 1)
        if self.kind == "clip":
            if self.hidden_size % self.num_attention_heads:
                raise ConfigError(
                    f"config key 'image_encoder.hidden_size' = {self.hidden_size} is not divisible "
                    f"by image_encoder.num_attention_heads = {self.num_attention_heads}"
                )
            if self.image_size % self.patch_size:
                raise ConfigError(
                    f"config key 'image_encoder.image_size' = {self.image_size} is not divisible by "
                    f"image_encoder.patch_size = {self.patch_size}"
                )
        if self.kind == "conv" and not self.channels:
            raise ConfigError("config key 'image_encoder.channels' must list at least one width")


@dataclass
class ScheduleConfig:
    """The DDPM training noise schedule (ldm / diffusers naming)."""

    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: Literal["scaled_linear", "linear"] = "scaled_linear"
    prediction_type: Literal["epsilon", "v_prediction"] = "epsilon"

    def validate(self) -> None:
        check_range("schedule.num_train_timesteps", self.num_train_timesteps, 2)
        check_range("schedule.beta_start", self.beta_start, 0.0, 1.0, lo_open=True)
        check_range("schedule.beta_end", self.beta_end, self.beta_start, 1.0)


@dataclass
class ModelConfig:
    """The whole view-conditioned LDM.

    ``image_size`` is the side (pixels) of the square images the model generates and
    conditions on; latents are ``image_size / vae.downsample_factor`` wide.
    ``context_dim`` is the width of the single cross-attention context token, i.e. of
    the image embedding and of ``cc_projection``'s output.
    """

    name: str = "zeronvs"
    camera_mode: CameraModeName = "6dof+1"
    image_size: int = 256
    context_dim: int = 768
    unet: UNetConfig = field(default_factory=UNetConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    image_encoder: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    @property
    def camera_dim(self) -> int:
        """Camera embedding size: 4 (3dof) or 19 (6dof+1)."""
        return embedding_dim(self.camera_mode)

    @property
    def latent_size(self) -> int:
        return self.image_size // self.vae.downsample_factor

    def validate(self) -> None:
        for sub in (self.unet, self.vae, self.image_encoder, self.schedule):
            sub.validate()
        lc = self.vae.latent_channels
        if self.unet.in_channels != 2 * lc:
            raise ConfigError(
                f"config key 'unet.in_channels' = {self.unet.in_channels} must be twice "
                f"vae.latent_channels = {lc} (noisy latent + conditioning latent)"
            )
        if self.unet.out_channels != lc:
            raise ConfigError(
                f"config key 'unet.out_channels' = {self.unet.out_channels} must equal "
                f"vae.latent_channels = {lc}"
            )
        if self.unet.cross_attention_dim != self.context_dim:
            raise ConfigError(
                f"config key 'unet.cross_attention_dim' = {self.unet.cross_attention_dim} must equal "
                f"context_dim = {self.context_dim}"
            )
        if self.image_encoder.kind == "clip" and self.image_encoder.projection_dim != self.context_dim:
            raise ConfigError(
                f"config key 'image_encoder.projection_dim' = {self.image_encoder.projection_dim} "
                f"must equal context_dim = {self.context_dim}"
            )
        check_range("image_size", self.image_size, 1)
        check_range("context_dim", self.context_dim, 1)
        # The latent must survive every UNet downsampling step.
        f = self.vae.downsample_factor * 2 ** (len(self.unet.block_out_channels) - 1)
        if self.image_size % f:
            raise ConfigError(
                f"config key 'image_size' = {self.image_size} must be divisible by {f} "
                f"(VAE factor {self.vae.downsample_factor} x UNet factor "
                f"{2 ** (len(self.unet.block_out_channels) - 1)})"
            )


PRESETS = ("zeronvs", "zero123", "demo", "tiny")


def model_config(
    preset: str | Path | None = "zeronvs",
    overrides: list[str] | None = None,
    base: dict[str, Any] | None = None,
) -> ModelConfig:
    """A :class:`ModelConfig` from a preset name / YAML path plus dotted overrides.

    A preset YAML may hold the model config at the top level or under a ``model:`` key.
    """
    data: dict[str, Any] = dict(base or {})
    if preset is not None:
        from ..config import merge, preset_path

        raw = read_yaml(preset_path(preset))
        if "model" in raw and isinstance(raw["model"], dict) and "unet" not in raw:
            raw = raw["model"]
        data = merge(data, raw)
    return load(ModelConfig, base=data, overrides=overrides)


def config_from_dict(data: dict[str, Any]) -> ModelConfig:
    """Strict :class:`ModelConfig` from plain data (e.g. ``novelviews.json``)."""
    return from_dict(ModelConfig, data)


__all__ = [
    "UNetConfig",
    "VAEConfig",
    "ImageEncoderConfig",
    "ScheduleConfig",
    "ModelConfig",
    "PRESETS",
    "model_config",
    "config_from_dict",
]
