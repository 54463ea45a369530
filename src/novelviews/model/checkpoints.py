"""Checkpoint formats: load, convert and export the view-conditioned LDM.

Supported inputs (:func:`load_model` dispatches on the path):

* a folder written by :meth:`ViewConditionedLDM.save_pretrained` (``novelviews.json`` +
  ``unet/`` + ``vae/`` + ``image_encoder/`` + ``cc_projection.safetensors``);
* a single ``.safetensors`` written by :meth:`ViewConditionedLDM.save_file` (config in
  its metadata), or a ``.safetensors`` holding an ldm-layout state dict;
* an official ZeroNVS / Zero-1-to-3 PyTorch-Lightning ``.ckpt`` / ``.pt`` (ldm layout,
  docs/REFERENCE.md), read with ``torch.load(weights_only=True)`` only: a pickle that
  needs code execution is refused, never unpickled.

Every load returns a :class:`LoadReport` that names each missing, unexpected and
mis-shaped key; missing or mis-shaped weights are a :class:`CheckpointError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping, Optional

import torch
from torch import nn

from ..errors import CheckpointError
from .configuration import ModelConfig
from .ldm import FORMAT_NAME, ViewConditionedLDM
from .ldm_keys import (
    CC_PREFIX,
    CLIP_PREFIX,
    CLIP_VISUAL_PREFIX,
    EMA_PREFIX,
    UNET_PREFIX,
    VAE_PREFIX,
    clip_text_leftovers,
    ema_key,
    ldm_schedule_buffers,
    transformers_to_clip_visual,
    unet_key_to_ldm,
    vae_key_to_ldm,
    vae_tensor_to_ldm,
)
from .ldm_format import infer_ldm_config, load_ldm_state
from .load_report import LoadReport, first_names
from .native_format import load_folder, load_novelviews_safetensors
from .weights_files import TORCH_SUFFIXES, resolve_config, safetensors_read, torch_load


# --------------------------------------------------------------------------- public API


def load_model(
    path: str | Path,
    *,
    use_ema: bool = True,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    config: ModelConfig | str | Path | None = None,
) -> tuple[ViewConditionedLDM, LoadReport]:
    """Load a :class:`ViewConditionedLDM` from any supported checkpoint (see module doc).

    ``use_ema``: for ldm checkpoints, take the UNet's EMA copy when present (the
    reference's inference does); ``False`` takes the raw weights. ``config``: a
    ModelConfig or preset name; the checkpoint must agree with it (camera mode,
    architecture) or a :class:`CheckpointError` says where they differ; ``None`` uses the
    checkpoint's own config (ldm: inferred from the tensor shapes, SD-1 defaults for what
    shapes cannot tell). Local files only; nothing is downloaded.
    """
    path = Path(path).expanduser()
    cfg = resolve_config(config)
    if not path.exists():
        raise CheckpointError(f"checkpoint '{path}' does not exist: check the path (a folder, .safetensors or .ckpt)")
    if path.is_dir():
        report = LoadReport(source=str(path), format="novelviews-folder")
        model = load_folder(path, cfg, report)
    elif path.suffix == ".safetensors":
        sd, meta = safetensors_read(path)
        if meta.get("format") == FORMAT_NAME:
            report = LoadReport(source=str(path), format="novelviews-safetensors")
            model = load_novelviews_safetensors(path, sd, meta, cfg, report)
        elif any(k.startswith(UNET_PREFIX) for k in sd):
            report = LoadReport(source=str(path), format="ldm-safetensors")
            model = load_ldm_state(sd, path, use_ema, cfg, report)
        else:
            raise CheckpointError(
                f"'{path}' is a safetensors file but neither a novelviews model nor an ldm "
                f"(ZeroNVS / Zero-1-to-3) state dict (first keys: {first_names(sorted(sd)[:5], 5)})"
            )
    else:
        if path.suffix not in TORCH_SUFFIXES:
            with open(path, "rb") as f:
                magic = f.read(4)
            if magic[:2] != b"PK":
                raise CheckpointError(
                    f"'{path}' is not a checkpoint novelviews reads: pass a model folder, a .safetensors "
                    "or an ldm .ckpt/.pt"
                )
        obj = torch_load(path)
        report = LoadReport(source=str(path), format="ldm-ckpt")
        if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            sd = obj["state_dict"]
            report.ignored += [k for k in obj if k != "state_dict"]
        elif isinstance(obj, dict) and any(isinstance(k, str) and k.startswith(UNET_PREFIX) for k in obj):
            sd = obj
        else:
            what = f"a {type(obj).__name__}" if not isinstance(obj, dict) else f"a dict with keys {first_names(sorted(map(str, obj)), 6)}"
            raise CheckpointError(
                f"'{path}' is not a ZeroNVS / Zero-1-to-3 checkpoint: it holds {what}, no 'state_dict' "
                "with model.diffusion_model.* weights"
            )
        model = load_ldm_state(sd, path, use_ema, cfg, report)
    model = model.to(device=device, dtype=dtype)
    model.eval()
    return model, report


def export_ldm_checkpoint(
    model: ViewConditionedLDM,
    path: str | Path,
    with_ema: bool = True,
    ema_unet: nn.Module | Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``model`` in the official ldm / Lightning layout (what the reference loads).

    ``model.diffusion_model.*`` (ldm UNet names), with ``with_ema`` a dotless
    ``model_ema.*`` copy (from ``ema_unet``, a UNet module or its state dict, else the
    model's own UNet) plus ``model_ema.decay``/``num_updates``; ``first_stage_model.*``
    (ldm VAE names, 1x1-conv attention); ``cond_stage_model.model.visual.*`` (OpenAI-CLIP
    names, stacked ``in_proj``, transposed ``proj``) and zero text-tower leftovers;
    ``cc_projection.*``; the 12 schedule buffers. Wrapped as ``{"state_dict": ...,
    "epoch": 0, "global_step": 0}``; written atomically with ``torch.save``.
    Only CLIP image encoders exist in that layout.
    """
    from ..io.runs import atomic_save

    cfg = model.config
    if cfg.image_encoder.kind != "clip":
        raise CheckpointError(
            f"the ldm checkpoint layout holds a CLIP image encoder; this model's is "
            f"'{cfg.image_encoder.kind}': save it with save_pretrained / save_file instead"
        )

    def t(v: torch.Tensor) -> torch.Tensor:
        return v.detach().to("cpu").contiguous().clone()

    sd: dict[str, torch.Tensor] = {}
    unet_sd = model.unet.state_dict()
    names = {k: UNET_PREFIX + unet_key_to_ldm(k, cfg.unet) for k in unet_sd}
    for k, v in unet_sd.items():
        sd[names[k]] = t(v)
    if with_ema:
        src = model.unet.state_dict() if ema_unet is None else (
            ema_unet.state_dict() if isinstance(ema_unet, nn.Module) else dict(ema_unet))
        missing = [k for k in unet_sd if k not in src]
        if missing:
            raise CheckpointError(f"ema_unet lacks UNet weights ({first_names(missing, 4)}): pass a UNet of the same architecture")
        for k in unet_sd:
            sd[ema_key(names[k])] = t(src[k])
        sd[EMA_PREFIX + "decay"] = torch.tensor(0.9999, dtype=torch.float32)
        sd[EMA_PREFIX + "num_updates"] = torch.tensor(0, dtype=torch.int32)
    n_vae = len(cfg.vae.block_out_channels)
    for k, v in model.vae.state_dict().items():
        lk = vae_key_to_ldm(k, n_vae)
        sd[VAE_PREFIX + lk] = t(vae_tensor_to_ldm(lk, v))
    for k, v in transformers_to_clip_visual(model.image_encoder.state_dict()).items():
        sd[CLIP_VISUAL_PREFIX + k] = t(v)
    for k, v in clip_text_leftovers(cfg.image_encoder.projection_dim).items():
        sd[CLIP_PREFIX + k] = v
    for k, v in model.cc_projection.state_dict().items():
        sd[CC_PREFIX + k] = t(v)
    sd.update(ldm_schedule_buffers(cfg.schedule))
    payload = {"state_dict": sd, "epoch": 0, "global_step": 0}
    return atomic_save(Path(path), lambda p: torch.save(payload, p))


@dataclass
class ConvertConfig:
    """``nvs convert``: which weights the folder gets, of which architecture, in which precision."""

    use_ema: bool = True  # the EMA copy of the weights (nvs convert --raw: the raw ones)
    arch: Optional[str] = None  # architecture preset / YAML; default: read from or inferred for the checkpoint
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"  # the written weights' precision (runtime.PRECISIONS)


def convert_checkpoint(
    src: str | Path,
    out_dir: str | Path,
    use_ema: bool = True,
    overwrite: bool = False,
    config: ModelConfig | str | Path | None = None,
    dtype: torch.dtype | None = None,
) -> LoadReport:
    """Any supported checkpoint -> a novelviews / diffusers-style folder (``save_pretrained``).

    Returns the :class:`LoadReport` (the CLI prints its summary). An existing non-empty
    ``out_dir`` is an error unless ``overwrite``. ``dtype`` casts the written weights.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise CheckpointError(
            f"output '{out}' already exists and is not empty: pass --overwrite or choose another folder"
        )
    model, report = load_model(src, use_ema=use_ema, config=config)
    model.save_pretrained(out, overwrite=overwrite, dtype=dtype)
    return report


__all__ = ["ConvertConfig", "LoadReport", "load_model", "export_ldm_checkpoint", "convert_checkpoint", "infer_ldm_config"]
