"""Name mappings between our modules and the original ldm / OpenAI-CLIP checkpoint layout.

* diffusers UNet / VAE -> ldm names: generated from the block structure (the inverse of
  diffusers' ``convert_ldm_unet_checkpoint`` / ``convert_ldm_vae_checkpoint``, which we use
  for the forward direction). Used to export official-layout checkpoints and to know
  which ldm keys a loader should consume.
* OpenAI-CLIP visual tower <-> transformers ``CLIPVisionModelWithProjection``: both
  directions are ours (``in_proj`` q/k/v stacking, transposed ``proj``...).
* The ldm DDPM schedule buffers (``betas``, ``alphas_cumprod``... 12 of them).

All functions are pure (dicts in, dicts out); keys carry no ``model.diffusion_model.`` /
``first_stage_model.`` / ``cond_stage_model.model.visual.`` prefixes.
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Sequence

import numpy as np
import torch

from .configuration import ScheduleConfig, UNetConfig

UNET_PREFIX = "model.diffusion_model."
EMA_PREFIX = "model_ema."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.model."
CLIP_VISUAL_PREFIX = CLIP_PREFIX + "visual."
CC_PREFIX = "cc_projection."

SCHEDULE_BUFFERS = (
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
)

# The text tower of the reference's CLIP is deleted, but these stay in its checkpoints.
CLIP_TEXT_LEFTOVERS = ("token_embedding.weight", "positional_embedding", "ln_final.weight",
                       "ln_final.bias", "text_projection", "logit_scale")


def ema_key(ldm_unet_key: str) -> str:
    """``model.diffusion_model.a.b.c`` -> ``model_ema.diffusion_modelabc`` (dots removed)."""
    assert ldm_unet_key.startswith(UNET_PREFIX)
    return EMA_PREFIX + "".join(ldm_unet_key.split(".")[1:])


# --------------------------------------------------------------------------- UNet

_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}


def _resnet_rest(rest: str) -> str:
    head, _, tail = rest.partition(".")
    if head not in _RESNET:
        raise KeyError(rest)
    return f"{_RESNET[head]}.{tail}"


def unet_key_to_ldm(key: str, cfg: UNetConfig) -> str:
    """One diffusers ``UNet2DConditionModel`` parameter name -> its ldm ``UNetModel`` name.

    ldm layout: ``input_blocks.0`` = conv_in; level ``b``, layer ``j`` ->
    ``input_blocks.{1 + b (L+1) + j}`` with ``.0`` the ResBlock and ``.1`` the
    SpatialTransformer; the downsampler of level ``b`` is ``input_blocks.{(b+1)(L+1)}.0.op``;
    ``middle_block.{0,1,2}`` = resnet, attention, resnet; up level ``b``, layer ``j`` ->
    ``output_blocks.{b (L+1) + j}``, its upsampler at index ``.2`` (after an attention) or
    ``.1``. Raises ``KeyError`` for a name outside that layout.
    """
    L = cfg.layers_per_block
    for d, l in _UNET_TOP.items():
        if key.startswith(d + "."):
            return l + key[len(d):]
    m = re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions|downsamplers)\.(\d+)\.(.+)", key)
    if m:
        b, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        if kind == "resnets":
            return f"input_blocks.{1 + b * (L + 1) + j}.0.{_resnet_rest(rest)}"
        if kind == "attentions":
            return f"input_blocks.{1 + b * (L + 1) + j}.1.{rest}"
        if rest.startswith("conv."):
            return f"input_blocks.{(b + 1) * (L + 1)}.0.op.{rest[5:]}"
        raise KeyError(key)
    m = re.fullmatch(r"mid_block\.(resnets|attentions)\.(\d+)\.(.+)", key)
    if m:
        kind, j, rest = m[1], int(m[2]), m[3]
        if kind == "resnets":
            return f"middle_block.{2 * j}.{_resnet_rest(rest)}"
        return f"middle_block.1.{rest}"
    m = re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions|upsamplers)\.(\d+)\.(.+)", key)
    if m:
        b, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        if kind == "resnets":
            return f"output_blocks.{b * (L + 1) + j}.0.{_resnet_rest(rest)}"
        if kind == "attentions":
            return f"output_blocks.{b * (L + 1) + j}.1.{rest}"
        if rest.startswith("conv."):
            has_attn = cfg.up_block_types[b].startswith("CrossAttn")
            return f"output_blocks.{b * (L + 1) + L}.{2 if has_attn else 1}.conv.{rest[5:]}"
        raise KeyError(key)
    raise KeyError(key)


def unet_ldm_names(keys: Iterable[str], cfg: UNetConfig) -> dict[str, str]:
    """diffusers UNet key -> ldm key (no prefix) for every key in ``keys``."""
    return {k: unet_key_to_ldm(k, cfg) for k in keys}


def unet_diffusers_config(cfg: UNetConfig) -> dict:
    """The config dict diffusers' ``convert_ldm_unet_checkpoint`` needs."""
    return {
        "layers_per_block": cfg.layers_per_block,
        "block_out_channels": list(cfg.block_out_channels),
        "down_block_types": list(cfg.down_block_types),
        "up_block_types": list(cfg.up_block_types),
        "in_channels": cfg.in_channels,
        "out_channels": cfg.out_channels,
        "cross_attention_dim": cfg.cross_attention_dim,
        "attention_head_dim": cfg.attention_head_dim,
    }


# --------------------------------------------------------------------------- VAE

_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_VAE_TOP = {
    "encoder.conv_in": "encoder.conv_in",
    "encoder.conv_out": "encoder.conv_out",
    "encoder.conv_norm_out": "encoder.norm_out",
    "decoder.conv_in": "decoder.conv_in",
    "decoder.conv_out": "decoder.conv_out",
    "decoder.conv_norm_out": "decoder.norm_out",
    "quant_conv": "quant_conv",
    "post_quant_conv": "post_quant_conv",
}


def _vae_resnet_rest(rest: str) -> str:
    return rest.replace("conv_shortcut", "nin_shortcut")


def vae_key_to_ldm(key: str, num_blocks: int) -> str:
    """One diffusers ``AutoencoderKL`` parameter name -> its ldm ``AutoencoderKL`` name.

    Encoder level ``i`` -> ``encoder.down.{i}``; decoder ``up_blocks.{i}`` ->
    ``decoder.up.{num_blocks - 1 - i}`` (ldm numbers decoder levels from the bottom);
    ``mid_block.resnets.{k}`` -> ``mid.block_{k+1}``; mid attention -> ``mid.attn_1`` with
    ``norm``/``q``/``k``/``v``/``proj_out``.
    """
    for d, l in _VAE_TOP.items():
        if key.startswith(d + "."):
            return l + key[len(d):]
    m = re.fullmatch(r"encoder\.down_blocks\.(\d+)\.(resnets\.(\d+)|downsamplers\.0)\.(.+)", key)
    if m:
        i, rest = int(m[1]), m[4]
        if m[3] is not None:
            return f"encoder.down.{i}.block.{m[3]}.{_vae_resnet_rest(rest)}"
        return f"encoder.down.{i}.downsample.{rest}"
    m = re.fullmatch(r"decoder\.up_blocks\.(\d+)\.(resnets\.(\d+)|upsamplers\.0)\.(.+)", key)
    if m:
        i, rest = num_blocks - 1 - int(m[1]), m[4]
        if m[3] is not None:
            return f"decoder.up.{i}.block.{m[3]}.{_vae_resnet_rest(rest)}"
        return f"decoder.up.{i}.upsample.{rest}"
    m = re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key)
    if m:
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{_vae_resnet_rest(m[3])}"
    m = re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", key)
    if m and m[2] in _VAE_ATTN:
        return f"{m[1]}.mid.attn_1.{_VAE_ATTN[m[2]]}.{m[3]}"
    raise KeyError(key)


def vae_tensor_to_ldm(ldm_key: str, tensor: torch.Tensor) -> torch.Tensor:
    """ldm's VAE attention uses 1x1 convs: Linear weights [C, C] become [C, C, 1, 1]."""
    if ".mid.attn_1." in ldm_key and ldm_key.endswith(".weight") and tensor.ndim == 2:
        return tensor[:, :, None, None]
    return tensor


def vae_diffusers_config(num_blocks: int) -> dict:
    """The config dict diffusers' ``convert_ldm_vae_checkpoint`` needs."""
    return {
        "down_block_types": ["DownEncoderBlock2D"] * num_blocks,
        "up_block_types": ["UpDecoderBlock2D"] * num_blocks,
    }


# --------------------------------------------------------------------------- CLIP vision

_CLIP_LAYER = {
    "attn.out_proj": "self_attn.out_proj",
    "ln_1": "layer_norm1",
    "ln_2": "layer_norm2",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
}


def clip_visual_to_transformers(visual: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """OpenAI-CLIP ``visual.*`` state dict (no prefix) -> transformers
    ``CLIPVisionModelWithProjection`` state dict. Returns ``(converted, unused_keys)``.

    ``in_proj_weight``/``in_proj_bias`` are split in q, k, v thirds; ``proj`` ([width,
    proj_dim], used as ``x @ proj``) becomes ``visual_projection.weight`` transposed.
    """
    out: dict[str, torch.Tensor] = {}
    unused: list[str] = []
    vm = "vision_model."
    for k, v in visual.items():
        if k == "class_embedding":
            out[vm + "embeddings.class_embedding"] = v
        elif k == "positional_embedding":
            out[vm + "embeddings.position_embedding.weight"] = v
        elif k == "conv1.weight":
            out[vm + "embeddings.patch_embedding.weight"] = v
        elif k.startswith("ln_pre."):
            out[vm + "pre_layrnorm." + k[7:]] = v
        elif k.startswith("ln_post."):
            out[vm + "post_layernorm." + k[8:]] = v
        elif k == "proj":
            out["visual_projection.weight"] = v.t().contiguous()
        else:
            m = re.fullmatch(r"transformer\.resblocks\.(\d+)\.(.+)\.(weight|bias)", k)
            if not m:
                m2 = re.fullmatch(r"transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)", k)
                if m2:
                    layer = f"{vm}encoder.layers.{m2[1]}.self_attn."
                    q, kk, vv = v.chunk(3, dim=0)
                    out[layer + f"q_proj.{m2[2]}"] = q.contiguous()
                    out[layer + f"k_proj.{m2[2]}"] = kk.contiguous()
                    out[layer + f"v_proj.{m2[2]}"] = vv.contiguous()
                    continue
                unused.append(k)
                continue
            n, mod, p = m[1], m[2], m[3]
            if mod in _CLIP_LAYER:
                out[f"{vm}encoder.layers.{n}.{_CLIP_LAYER[mod]}.{p}"] = v
            else:
                unused.append(k)
    return out, unused


def transformers_to_clip_visual(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`clip_visual_to_transformers` (stacks q, k, v; transposes the projection)."""
    out: dict[str, torch.Tensor] = {}
    vm = "vision_model."
    inv_layer = {v: k for k, v in _CLIP_LAYER.items()}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for k, v in sd.items():
        if k == vm + "embeddings.class_embedding":
            out["class_embedding"] = v
        elif k == vm + "embeddings.position_embedding.weight":
            out["positional_embedding"] = v
        elif k == vm + "embeddings.patch_embedding.weight":
            out["conv1.weight"] = v
        elif k.startswith(vm + "pre_layrnorm."):
            out["ln_pre." + k.rsplit(".", 1)[1]] = v
        elif k.startswith(vm + "post_layernorm."):
            out["ln_post." + k.rsplit(".", 1)[1]] = v
        elif k == "visual_projection.weight":
            out["proj"] = v.t().contiguous()
        elif k.endswith("position_ids"):
            continue
        else:
            m = re.fullmatch(r"vision_model\.encoder\.layers\.(\d+)\.(.+)\.(weight|bias)", k)
            if not m:
                raise KeyError(k)
            n, mod, p = m[1], m[2], m[3]
            if mod in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
                qkv.setdefault((n, p), {})[mod[-6]] = v
            elif mod in inv_layer:
                out[f"transformer.resblocks.{n}.{inv_layer[mod]}.{p}"] = v
            else:
                raise KeyError(k)
    for (n, p), parts in qkv.items():
        out[f"transformer.resblocks.{n}.attn.in_proj_{p}"] = torch.cat([parts["q"], parts["k"], parts["v"]], 0)
    return out


def clip_text_leftovers(embed_dim: int, vocab_size: int = 49408, context_length: int = 77) -> dict[str, torch.Tensor]:
    """Placeholder text-tower leftovers as the reference's checkpoints hold them (zeros;
    the text tower is never used). Text width = ``embed_dim`` as in CLIP ViT-L/14."""
    w = embed_dim
    return {
        "token_embedding.weight": torch.zeros(vocab_size, w),
        "positional_embedding": torch.zeros(context_length, w),
        "ln_final.weight": torch.ones(w),
        "ln_final.bias": torch.zeros(w),
        "text_projection": torch.zeros(w, embed_dim),
        "logit_scale": torch.tensor(math.log(1 / 0.07)),
    }


# --------------------------------------------------------------------------- schedule


def ldm_schedule_buffers(schedule: ScheduleConfig) -> dict[str, torch.Tensor]:
    """The 12 DDPM buffers ldm's ``DDPM.register_schedule`` stores (float32, v_posterior 0)."""
    n = schedule.num_train_timesteps
    if schedule.beta_schedule == "scaled_linear":
        betas = np.linspace(schedule.beta_start**0.5, schedule.beta_end**0.5, n, dtype=np.float64) ** 2
    else:
        betas = np.linspace(schedule.beta_start, schedule.beta_end, n, dtype=np.float64)
    alphas = 1.0 - betas
    ac = np.cumprod(alphas, axis=0)
    ac_prev = np.append(1.0, ac[:-1])
    post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
    vals = {
        "betas": betas,
        "alphas_cumprod": ac,
        "alphas_cumprod_prev": ac_prev,
        "sqrt_alphas_cumprod": np.sqrt(ac),
        "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - ac),
        "log_one_minus_alphas_cumprod": np.log(1.0 - ac),
        "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / ac),
        "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / ac - 1),
        "posterior_variance": post_var,
        "posterior_log_variance_clipped": np.log(np.maximum(post_var, 1e-20)),
        "posterior_mean_coef1": betas * np.sqrt(ac_prev) / (1.0 - ac),
        "posterior_mean_coef2": (1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac),
    }
    return {k: torch.tensor(vals[k], dtype=torch.float32) for k in SCHEDULE_BUFFERS}


def compare_schedule(found: dict[str, torch.Tensor], schedule: ScheduleConfig) -> list[str]:
    """Differences between stored schedule buffers and ``schedule`` (empty list: they agree)."""
    ref = ldm_schedule_buffers(schedule)
    problems = []
    for name in ("betas", "alphas_cumprod"):
        if name not in found:
            continue
        v = found[name].detach().double().flatten()
        r = ref[name].double()
        if v.shape != r.shape:
            problems.append(f"'{name}' has {v.numel()} steps, the config {r.numel()}")
        elif not torch.allclose(v, r, rtol=1e-4, atol=1e-7):
            problems.append(f"'{name}' differs from the config's schedule (max abs diff {(v - r).abs().max():.3g})")
    return problems


def sorted_names(names: Sequence[str]) -> list[str]:
    return sorted(names, key=lambda s: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)])


__all__ = [
    "UNET_PREFIX", "EMA_PREFIX", "VAE_PREFIX", "CLIP_PREFIX", "CLIP_VISUAL_PREFIX", "CC_PREFIX",
    "SCHEDULE_BUFFERS", "CLIP_TEXT_LEFTOVERS", "ema_key", "unet_key_to_ldm", "unet_ldm_names",
    "unet_diffusers_config", "vae_key_to_ldm", "vae_tensor_to_ldm", "vae_diffusers_config",
    "clip_visual_to_transformers", "transformers_to_clip_visual", "clip_text_leftovers",
    "ldm_schedule_buffers", "compare_schedule", "sorted_names",
]
