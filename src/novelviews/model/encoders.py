"""Image encoders and their preprocessing.

Images entering the model are ``torch float BxCxHxW in [-1, 1]`` (docs/ARCHITECTURE.md).

* :func:`clip_preprocess` is the reference's CLIP preprocessing, step by step:
  bicubic resize to ``size`` x ``size`` with ``align_corners=True`` and **no**
  antialiasing, no crop; map [-1, 1] -> [0, 1]; normalise with CLIP mean/std.
* :class:`ConvImageEncoder` is the small trainable CNN of the ``demo`` preset.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..runtime import to_device
from .configuration import ImageEncoderConfig

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def resize_bicubic(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bicubic resize to ``size`` x ``size``, ``align_corners=True``, no antialiasing.

    This is what the reference does (kornia resize with ``antialias=False``); an
    antialiased resize changes CLIP embeddings measurably, so it is *not* used here.
    A no-op when the images already have that size.
    """
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bicubic", align_corners=True, antialias=False)


def clip_preprocess(images: torch.Tensor, size: int = 224) -> torch.Tensor:
    """[-1, 1] images (BxCxHxW) -> CLIP ``pixel_values`` (resized, mean/std normalised)."""
    x = resize_bicubic(images, size)
    x = (x + 1.0) / 2.0
    # built on the CPU and copied without waiting for the device (torch.tensor(..., device=cuda) syncs)
    mean = to_device(torch.tensor(CLIP_MEAN, dtype=x.dtype), x.device).view(1, 3, 1, 1)
    std = to_device(torch.tensor(CLIP_STD, dtype=x.dtype), x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def _groups(channels: int) -> int:
    for g in (8, 4, 2):
        if channels % g == 0:
            return g
    return 1


class ConvImageEncoder(nn.Module):
    """Small CNN: stride-2 3x3 convs (GroupNorm + SiLU) -> global average pool -> Linear.

    Input: BxCxHxW images in [-1, 1] (already resized to ``image_size``); output:
    ``[B, context_dim]`` global image embedding.
    """

    def __init__(self, cfg: ImageEncoderConfig, context_dim: int, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for c in cfg.channels:
            layers += [nn.Conv2d(prev, c, 3, stride=2, padding=1), nn.GroupNorm(_groups(c), c), nn.SiLU()]
            prev = c
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(prev, context_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = self.features(images)
        return self.proj(h.mean(dim=(2, 3)))


def build_clip_vision(cfg: ImageEncoderConfig):
    """A randomly initialised transformers ``CLIPVisionModelWithProjection`` (QuickGELU)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    vcfg = CLIPVisionConfig(
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
        projection_dim=cfg.projection_dim,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        num_channels=3,
    )
    return CLIPVisionModelWithProjection(vcfg)


__all__ = ["CLIP_MEAN", "CLIP_STD", "resize_bicubic", "clip_preprocess", "ConvImageEncoder", "build_clip_vision"]
