"""The original ldm / Lightning .ckpt layout of ZeroNVS and Zero-1-to-3: its architecture read
from the weights, its keys mapped to ours (EMA or raw UNet)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import torch

from ..config import to_dict
from ..errors import CheckpointError, ConfigError
from .configuration import ModelConfig, model_config
from .ldm import ViewConditionedLDM
from .ldm_keys import (
    CC_PREFIX,
    CLIP_VISUAL_PREFIX,
    EMA_PREFIX,
    SCHEDULE_BUFFERS,
    UNET_PREFIX,
    VAE_PREFIX,
    clip_visual_to_transformers,
    compare_schedule,
    ema_key,
    sorted_names,
    unet_diffusers_config,
    unet_key_to_ldm,
    vae_diffusers_config,
    vae_key_to_ldm,
)
from .load_report import LoadReport, first_names
from .weights_files import check_against, config_diff, empty_model, load_into


# --------------------------------------------------------------------------- ldm layout


def _camera_mode_from_cc(weight: torch.Tensor, source: Path) -> str:
    out_f, in_f = weight.shape
    d = in_f - out_f
    if d == 19:
        return "6dof+1"
    if d == 4:
        return "3dof"
    raise CheckpointError(
        f"'{source}': cc_projection maps {in_f} -> {out_f} values, i.e. a camera embedding of {d} "
        "values; novelviews knows 4 (3dof, Zero-1-to-3) and 19 (6dof+1, ZeroNVS)"
    )


def _count(prefix_re: str, keys) -> list[int]:
    import re

    pat = re.compile(prefix_re)
    return sorted({int(m[1]) for k in keys if (m := pat.match(k))})


def _fit_divisor(preferred: int, widths) -> int:
    """``preferred`` if it divides every width, else the largest power of two <= it that does."""
    d = preferred
    while d > 1 and any(w % d for w in widths):
        d //= 2
    return max(d, 1)


def infer_ldm_config(sd: Mapping[str, torch.Tensor], base: ModelConfig, camera_mode: str) -> ModelConfig:
    """Architecture of an ldm-layout state dict, from tensor shapes.

    Widths, depths, block types, cross-attention, VAE and CLIP sizes come from the
    shapes; what shapes cannot tell (attention heads, GroupNorm groups, image size,
    schedule) comes from ``base`` (heads / groups halved until they divide every width).
    Raises KeyError when an essential key is missing.
    """
    u = {k[len(UNET_PREFIX):]: v for k, v in sd.items() if k.startswith(UNET_PREFIX)}
    conv_in = u["input_blocks.0.0.weight"]
    n_in = max(_count(r"input_blocks\.(\d+)\.", u)) + 1
    ops = _count(r"input_blocks\.(\d+)\.0\.op\.weight", u)
    L = ops[0] - 1 if ops else n_in - 1
    levels = n_in // (L + 1) if ops else 1
    widths, down, up = [], [], []
    for b in range(levels):
        i = 1 + b * (L + 1)
        widths.append(int(u[f"input_blocks.{i}.0.out_layers.3.weight"].shape[0]))
        down.append("CrossAttnDownBlock2D" if f"input_blocks.{i}.1.proj_in.weight" in u else "DownBlock2D")
    for b in range(levels):
        up.append("CrossAttnUpBlock2D" if f"output_blocks.{b * (L + 1)}.1.proj_in.weight" in u else "UpBlock2D")
    ctx_keys = [k for k in u if k.endswith("attn2.to_k.weight")]
    cross = int(u[ctx_keys[0]].shape[1]) if ctx_keys else base.unet.cross_attention_dim
    unet = dataclasses.replace(
        base.unet,
        in_channels=int(conv_in.shape[1]),
        out_channels=int(u["out.2.weight"].shape[0]),
        block_out_channels=tuple(widths),
        layers_per_block=L,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        cross_attention_dim=cross,
        norm_num_groups=_fit_divisor(base.unet.norm_num_groups, widths),
        attention_head_dim=_fit_divisor(base.unet.attention_head_dim, widths),
    )
    v = {k[len(VAE_PREFIX):]: t for k, t in sd.items() if k.startswith(VAE_PREFIX)}
    vlevels = _count(r"encoder\.down\.(\d+)\.", v)
    vwidths = tuple(int(v[f"encoder.down.{i}.block.0.conv2.weight"].shape[0]) for i in vlevels)
    vae = dataclasses.replace(
        base.vae,
        block_out_channels=vwidths,
        norm_num_groups=_fit_divisor(base.vae.norm_num_groups, vwidths),
        layers_per_block=len(_count(r"encoder\.down\.0\.block\.(\d+)\.conv1\.weight", v)),
        latent_channels=int(v["decoder.conv_in.weight"].shape[1]),
    )
    c = {k[len(CLIP_VISUAL_PREFIX):]: t for k, t in sd.items() if k.startswith(CLIP_VISUAL_PREFIX)}
    width = int(c["conv1.weight"].shape[0])
    patch = int(c["conv1.weight"].shape[-1])
    grid = int(round((c["positional_embedding"].shape[0] - 1) ** 0.5))
    heads = base.image_encoder.num_attention_heads if base.image_encoder.hidden_size == width else max(1, width // 64)
    enc = dataclasses.replace(
        base.image_encoder,
        kind="clip",
        hidden_size=width,
        num_hidden_layers=len(_count(r"transformer\.resblocks\.(\d+)\.", c)),
        num_attention_heads=heads,
        intermediate_size=int(c["transformer.resblocks.0.mlp.c_fc.weight"].shape[0]),
        patch_size=patch,
        image_size=grid * patch,
        projection_dim=int(c["proj"].shape[1]),
    )
    context = int(sd[CC_PREFIX + "weight"].shape[0])
    return dataclasses.replace(base, camera_mode=camera_mode, context_dim=context, unet=unet, vae=vae, image_encoder=enc)


def load_ldm_state(sd: dict[str, Any], source: Path, use_ema: bool, config: ModelConfig | None,
                    report: LoadReport) -> ViewConditionedLDM:
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    sd = {k: v for k, v in sd.items() if torch.is_tensor(v)}
    raw = {k: v for k, v in sd.items() if k.startswith(UNET_PREFIX)}
    ema_meta = {EMA_PREFIX + "decay", EMA_PREFIX + "num_updates"}
    ema = {k: v for k, v in sd.items() if k.startswith(EMA_PREFIX) and k not in ema_meta}
    if not raw:
        hint = first_names(sorted(sd)[:5], 5) if sd else "no tensors at all"
        raise CheckpointError(
            f"'{source}' is not a ZeroNVS / Zero-1-to-3 checkpoint: it has no "
            f"'{UNET_PREFIX}*' weights (first keys: {hint})"
        )
    if CC_PREFIX + "weight" not in sd:
        raise CheckpointError(
            f"'{source}' has no cc_projection weights: it is not a view-conditioned model (a plain "
            "Stable Diffusion checkpoint?); pass a ZeroNVS or Zero-1-to-3 checkpoint"
        )
    mode = _camera_mode_from_cc(sd[CC_PREFIX + "weight"], source)
    report.camera_mode = mode
    if config is not None and config.camera_mode != mode:
        raise CheckpointError(
            f"'{source}' is a {mode} checkpoint (cc_projection takes {sd[CC_PREFIX + 'weight'].shape[1]} "
            f"inputs) but the config asks for camera mode {config.camera_mode}: use a {mode} config "
            f"(preset {'zeronvs' if mode == '6dof+1' else 'zero123'}) or another checkpoint"
        )
    if config is not None and config.image_encoder.kind != "clip":
        raise CheckpointError(
            f"'{source}' holds a CLIP image encoder but the config's image_encoder.kind is "
            f"'{config.image_encoder.kind}': use a config with image_encoder.kind clip"
        )

    # --- UNet weights: EMA (default, when present) or raw; completeness checked below
    if use_ema and ema:
        unet_ldm = {k: ema[ema_key(k)] for k in raw if ema_key(k) in ema}
        report.used_ema = True
        report.ignored.append(f"{UNET_PREFIX}* ({len(raw)} raw UNet tensors; the EMA copy was used)")
    else:
        unet_ldm = dict(raw)
        report.used_ema = False
        if ema:
            report.ignored.append(f"{EMA_PREFIX}* ({len(ema)} EMA UNet tensors; raw weights requested)")
        elif use_ema:
            report.warnings.append("the checkpoint has no EMA weights; the raw UNet weights were used")
    known_ema = {ema_key(k) for k in raw}
    report.unexpected += sorted_names([k for k in ema if k not in known_ema])
    report.ignored += [k for k in sorted(ema_meta) if k in sd]

    # --- classify the rest
    for k in sorted_names(list(sd)):
        if k.startswith((UNET_PREFIX, EMA_PREFIX, VAE_PREFIX, CLIP_VISUAL_PREFIX, CC_PREFIX)):
            continue
        if k.startswith("cond_stage_model."):
            report.ignored.append(k)  # CLIP text-tower leftovers, preprocessing buffers
        elif k in SCHEDULE_BUFFERS or k in ("scale_factor", "logvar"):
            report.ignored.append(k)
        else:
            report.unexpected.append(k)
    report.unexpected += sorted_names([k for k in sd if k.startswith(CC_PREFIX) and k[len(CC_PREFIX):] not in ("weight", "bias")])

    # --- architecture
    inferred_base = config if config is not None else model_config("zeronvs" if mode == "6dof+1" else "zero123")
    try:
        found = infer_ldm_config(sd, inferred_base, mode)
    except (KeyError, IndexError, ValueError) as exc:
        raise CheckpointError(
            f"'{source}' lacks an essential weight ({exc}): the checkpoint is incomplete or of another architecture"
        ) from None
    if config is None:
        presets = {p: model_config(p) for p in ("zeronvs", "zero123")}
        name = next((p for p, c in presets.items() if not config_diff(to_dict(c), to_dict(found))), "converted")
        try:
            found = dataclasses.replace(found, name=name)
            found.validate()
        except ConfigError as exc:
            raise CheckpointError(f"'{source}': the inferred architecture is not usable ({exc})") from None
        if name == "converted":
            report.warnings.append(
                "architecture inferred from the tensor shapes; not stored in the checkpoint and assumed: "
                f"unet.attention_head_dim={found.unet.attention_head_dim} (heads), "
                f"unet.norm_num_groups={found.unet.norm_num_groups}, vae.norm_num_groups={found.vae.norm_num_groups}, "
                f"image_encoder.num_attention_heads={found.image_encoder.num_attention_heads}, "
                f"image_size={found.image_size}; pass a config if they differ"
            )
        cfg = found
    else:
        cfg = check_against(found, config, source)

    schedule = {k: sd[k] for k in SCHEDULE_BUFFERS if k in sd}
    if not schedule:
        report.warnings.append("no schedule buffers in the checkpoint; the config's schedule is assumed")
    for problem in compare_schedule(schedule, cfg.schedule):
        report.warnings.append(f"schedule buffer {problem}")
    if "scale_factor" in sd and abs(float(sd["scale_factor"]) - cfg.vae.scaling_factor) > 1e-6:
        report.warnings.append(
            f"stored scale_factor {float(sd['scale_factor']):g} differs from vae.scaling_factor "
            f"{cfg.vae.scaling_factor:g} (the config's value is used)"
        )

    model = empty_model(cfg)

    # --- keys the converters will not consume, reported by name
    n_vae = len(cfg.vae.block_out_channels)
    want_unet = {UNET_PREFIX + unet_key_to_ldm(k, cfg.unet) for k in model.unet.state_dict()}
    want_vae = {VAE_PREFIX + vae_key_to_ldm(k, n_vae) for k in model.vae.state_dict()}
    if report.used_ema:
        absent = sorted_names([ema_key(k) for k in want_unet if k in raw and k not in unet_ldm])
        if absent:
            raise CheckpointError(
                f"'{source}' has an incomplete EMA copy of the UNet ({len(absent)} missing, e.g. "
                f"{first_names(absent, 3)}): load the raw weights instead (use_ema=False / --no-ema)"
            )
    report.unexpected += sorted_names([k for k in raw if k not in want_unet])
    report.unexpected += sorted_names([k for k in sd if k.startswith(VAE_PREFIX) and k not in want_vae])

    # --- convert with diffusers (UNet, VAE) and our CLIP mapping
    unet_sd = convert_ldm_unet_checkpoint({k: v for k, v in unet_ldm.items() if k in want_unet},
                                          unet_diffusers_config(cfg.unet), extract_ema=False)
    vae_in = {k: v for k, v in sd.items() if k in want_vae}
    vae_sd = convert_ldm_vae_checkpoint(vae_in, vae_diffusers_config(n_vae)) if vae_in else {}
    visual = {k[len(CLIP_VISUAL_PREFIX):]: v for k, v in sd.items() if k.startswith(CLIP_VISUAL_PREFIX)}
    clip_sd, unused = clip_visual_to_transformers(visual)
    report.unexpected += [CLIP_VISUAL_PREFIX + k for k in unused]
    full: dict[str, torch.Tensor] = {}
    full.update({"unet." + k: v for k, v in unet_sd.items() if v is not None})
    full.update({"vae." + k: v for k, v in vae_sd.items() if v is not None})
    full.update({"image_encoder." + k: v for k, v in clip_sd.items()})
    full.update({k: sd[k] for k in (CC_PREFIX + "weight", CC_PREFIX + "bias") if k in sd})
    load_into(model, full, report)
    # Anything left in ``report.unexpected`` from load_into has our names; keep them too.
    return model
