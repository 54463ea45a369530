"""Reading weight files safely (weights-only torch.load, safetensors) and filling a model from a
state dict, with the checks every format shares."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..config import to_dict
from ..errors import CheckpointError
from .configuration import ModelConfig, model_config
from .ldm import ViewConditionedLDM
from .ldm_keys import sorted_names
from .load_report import LoadReport, first_names


LIGHTNING_EXTRAS = ("optimizer_states", "callbacks", "lr_schedulers", "epoch", "global_step",
                    "pytorch-lightning_version", "loops", "hparams_name", "hyper_parameters",
                    "hparams", "state_dict_ema", "MixedPrecision", "NativeMixedPrecisionPlugin")
TORCH_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
_MAX_LISTED = 20


# --------------------------------------------------------------------------- reading files


def torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)``; every failure becomes a CheckpointError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        if "Unsupported global" in msg or "GLOBAL" in msg:
            import re

            m = re.search(r"GLOBAL (\S+)", msg)
            what = f" ({m[1]})" if m else ""
            raise CheckpointError(
                f"'{path}' is a pickle that needs code execution to load: it references a custom "
                f"class or function{what}, so it was refused. novelviews only reads checkpoints with "
                "torch.load(weights_only=True); if you trust the file, re-save just its tensors, e.g. "
                "torch.save({'state_dict': ckpt['state_dict']}, 'clean.ckpt'), or convert it to safetensors"
            ) from None
        if _plain_pickle_with_code(path):
            raise CheckpointError(
                f"'{path}' is a plain pickle that references classes or functions, i.e. needs code "
                "execution to load, so it was refused: novelviews only reads checkpoints with "
                "torch.load(weights_only=True); save tensors with torch.save or safetensors instead"
            ) from None
        raise CheckpointError(
            f"'{path}' is corrupt or not a PyTorch checkpoint (unreadable pickle data): download it "
            "again or check the path"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, AttributeError, KeyError) as exc:
        first = str(exc).splitlines()[0][:200] if str(exc) else exc.__class__.__name__
        raise CheckpointError(
            f"'{path}' is corrupt, truncated or not a PyTorch checkpoint ({first}): download it "
            "again or check the path"
        ) from None


def _plain_pickle_with_code(path: Path, limit: int = 64 * 2**20) -> bool:
    """True when ``path`` is a well-formed (non-torch) pickle whose opcodes import globals.

    Only parses opcodes (``pickletools``); nothing is executed."""
    import io
    import pickletools

    try:
        if path.stat().st_size > limit:
            return False
        data = path.read_bytes()
        ops = {op.name for op, _, _ in pickletools.genops(io.BytesIO(data))}
    except Exception:
        return False
    return bool(ops & {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE"})


def safetensors_read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            sd = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types
        first = str(exc).splitlines()[0][:200] if str(exc) else exc.__class__.__name__
        raise CheckpointError(
            f"'{path}' is corrupt, truncated or not a safetensors file ({first}): download it again "
            "or check the path"
        ) from None
    return sd, meta


def resolve_config(config: ModelConfig | str | Path | None) -> ModelConfig | None:
    if config is None or isinstance(config, ModelConfig):
        return config
    return model_config(config)


def config_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys where two config dicts differ (``name`` ignored)."""
    out = []
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k == "name" and not prefix:
                continue
            key = f"{prefix}.{k}" if prefix else k
            out += config_diff(a.get(k), b.get(k), key)
    elif a != b:
        out.append(f"{prefix}: checkpoint {a!r} vs config {b!r}")
    return out


def check_against(found: ModelConfig, wanted: ModelConfig | None, source: Path) -> ModelConfig:
    """Use ``found`` unless a ``wanted`` config disagrees, which is a CheckpointError."""
    if wanted is None:
        return found
    if found.camera_mode != wanted.camera_mode:
        raise CheckpointError(
            f"'{source}' is a {found.camera_mode} checkpoint (camera embedding of "
            f"{found.camera_dim} values) but the config asks for camera mode {wanted.camera_mode}: "
            f"use a {found.camera_mode} config (e.g. preset "
            f"{'zeronvs' if found.camera_mode == '6dof+1' else 'zero123'}) or another checkpoint"
        )
    diff = [d for d in config_diff(to_dict(found), to_dict(wanted)) if not d.startswith("schedule.")]
    if diff:
        raise CheckpointError(
            f"'{source}' holds a model of another architecture than the config: {first_names(diff, 6)}; "
            "load it without a config (its own is used) or pick the matching preset"
        )
    return wanted


def empty_model(cfg: ModelConfig) -> ViewConditionedLDM:
    """A model with uninitialised CPU weights (built on the meta device: no random init, which
    takes ~30 s for the full-size model). Every persistent tensor must then be loaded
    (:func:`load_into` guarantees it); the only non-persistent buffers, CLIP's
    ``position_ids``, are filled here. Unknown non-persistent buffers: a normal init."""
    with torch.device("meta"):
        model = ViewConditionedLDM(cfg)
    persistent = set(model.state_dict())
    extra = [n for n, _ in model.named_buffers() if n not in persistent]
    if any(not n.endswith("embeddings.position_ids") for n in extra):
        return ViewConditionedLDM(cfg)
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for n in extra:
            buf = model.get_buffer(n)
            buf.copy_(torch.arange(buf.shape[-1], dtype=buf.dtype).expand_as(buf))
    return model


def load_into(model: nn.Module, sd: Mapping[str, torch.Tensor], report: LoadReport) -> None:
    """Strictly load ``sd`` into ``model``, filling the report; missing/mis-shaped -> error."""
    expected = model.state_dict()
    for k in sorted_names([k for k in expected if k not in sd]):
        report.missing.append(k)
    for k in sorted_names([k for k in sd if k not in expected]):
        report.unexpected.append(k)
    good = {}
    for k, v in sd.items():
        if k not in expected:
            continue
        if tuple(v.shape) != tuple(expected[k].shape):
            report.mismatched.append(f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}")
        else:
            good[k] = v
    if report.mismatched:
        raise CheckpointError(
            f"'{report.source}' does not fit the model: {len(report.mismatched)} mis-shaped weights "
            f"({first_names(report.mismatched, 4)}): it is a checkpoint of another architecture; load it "
            "without a config or with the matching preset"
        )
    if report.missing:
        raise CheckpointError(
            f"'{report.source}' lacks {len(report.missing)} weights the model needs "
            f"({first_names(report.missing, 6)}): the file is incomplete or of another kind"
        )
    model.load_state_dict(good, strict=False)
    report.loaded = len(good)
