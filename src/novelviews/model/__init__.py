"""The view-conditioned latent diffusion model (ZeroNVS / Zero-1-to-3), presets and checkpoints.

* :class:`ModelConfig` (+ ``UNetConfig``, ``VAEConfig``, ``ImageEncoderConfig``,
  ``ScheduleConfig``) and :func:`model_config` (presets ``zeronvs``, ``zero123``, ``demo``,
  ``tiny``).
* :class:`ViewConditionedLDM`: diffusers UNet + VAE, CLIP / conv image encoder,
  ``cc_projection``; embedding, context token, eps prediction with batched CFG, VAE
  encode/decode, saving.
* :func:`load_model`, :func:`export_ldm_checkpoint`, :func:`convert_checkpoint` and
  :class:`LoadReport`: folders, safetensors and official ldm ``.ckpt`` files.

Heavy libraries (diffusers, transformers) are imported when a model is built.
"""

from .checkpoints import LoadReport, convert_checkpoint, export_ldm_checkpoint, load_model
from .configuration import (
    PRESETS,
    ImageEncoderConfig,
    ModelConfig,
    ScheduleConfig,
    UNetConfig,
    VAEConfig,
    model_config,
)
from .ldm import ViewConditionedLDM

__all__ = [
    "ModelConfig",
    "UNetConfig",
    "VAEConfig",
    "ImageEncoderConfig",
    "ScheduleConfig",
    "PRESETS",
    "model_config",
    "ViewConditionedLDM",
    "LoadReport",
    "load_model",
    "export_ldm_checkpoint",
    "convert_checkpoint",
]
