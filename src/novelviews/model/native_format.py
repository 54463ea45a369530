"""novelviews' own formats: a single .safetensors file and a model folder (diffusers-style parts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..config import from_dict
from ..errors import CheckpointError, ConfigError
from .configuration import ModelConfig
from .ldm import CONFIG_FILE, FORMAT_NAME, FORMAT_VERSION, ViewConditionedLDM
from .weights_files import check_against, empty_model, load_into, safetensors_read


# --------------------------------------------------------------------------- our formats


def load_novelviews_safetensors(path: Path, sd, meta, config, report) -> ViewConditionedLDM:
    try:
        found = from_dict(ModelConfig, json.loads(meta["config"]))
    except (KeyError, json.JSONDecodeError, ConfigError) as exc:
        raise CheckpointError(f"'{path}' has a broken novelviews config in its metadata ({exc})") from None
    _check_version(meta.get("format_version", "1"), path)
    cfg = check_against(found, config, path)
    report.camera_mode = cfg.camera_mode
    model = empty_model(cfg)
    load_into(model, sd, report)
    return model


def _check_version(version: Any, path: Path) -> None:
    try:
        v = int(version)
    except (TypeError, ValueError):
        raise CheckpointError(f"'{path}' has an unreadable format version {version!r}") from None
    if v > FORMAT_VERSION:
        raise CheckpointError(
            f"'{path}' was written by a newer novelviews (format {v}, this one reads up to "
            f"{FORMAT_VERSION}): upgrade novelviews"
        )


def _read_component(folder: Path, preferred: tuple[str, ...]) -> dict[str, torch.Tensor]:
    for name in preferred:
        if (folder / name).is_file():
            return safetensors_read(folder / name)[0]
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    if not files:
        raise CheckpointError(
            f"'{folder}' has no weights ({' or '.join(preferred)} expected): the model folder is incomplete"
        )
    sd: dict[str, torch.Tensor] = {}
    for f in files:  # sharded
        sd.update(safetensors_read(f)[0])
    return sd


def load_folder(path: Path, config, report) -> ViewConditionedLDM:
    cfg_file = path / CONFIG_FILE
    if not cfg_file.is_file():
        what = "a diffusers folder" if (path / "unet").is_dir() or (path / "model_index.json").exists() else "a folder"
        raise CheckpointError(
            f"'{path}' is {what} without {CONFIG_FILE}, not a novelviews model folder: pass a folder "
            "written by novelviews (nvs convert / save_pretrained), a .safetensors or an ldm .ckpt"
        )
    try:
        meta = json.loads(cfg_file.read_text())
        if meta.get("format") != FORMAT_NAME:
            raise CheckpointError(f"'{cfg_file}' is not a novelviews model description (format {meta.get('format')!r})")
        _check_version(meta.get("format_version", 1), cfg_file)
        found = from_dict(ModelConfig, meta["config"])
    except (json.JSONDecodeError, KeyError, ConfigError, AttributeError) as exc:
        raise CheckpointError(f"'{cfg_file}' is broken ({exc}): write the folder again") from None
    cfg = check_against(found, config, path)
    report.camera_mode = cfg.camera_mode
    sd: dict[str, torch.Tensor] = {}
    for k, v in _read_component(path / "unet", ("diffusion_pytorch_model.safetensors",)).items():
        sd["unet." + k] = v
    for k, v in _read_component(path / "vae", ("diffusion_pytorch_model.safetensors",)).items():
        sd["vae." + k] = v
    kind = cfg.image_encoder.kind
    if kind == "clip":
        for k, v in _read_component(path / "image_encoder", ("model.safetensors",)).items():
            sd["image_encoder." + k] = v
    elif kind == "conv":
        if not (path / "image_encoder.safetensors").is_file():
            raise CheckpointError(f"'{path}' lacks image_encoder.safetensors: the model folder is incomplete")
        for k, v in safetensors_read(path / "image_encoder.safetensors")[0].items():
            sd["image_encoder." + k] = v
    if not (path / "cc_projection.safetensors").is_file():
        raise CheckpointError(f"'{path}' lacks cc_projection.safetensors: the model folder is incomplete")
    for k, v in safetensors_read(path / "cc_projection.safetensors")[0].items():
        sd["cc_projection." + k] = v
    model = empty_model(cfg)
    load_into(model, sd, report)
    return model
