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

import dataclasses
import json
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..config import from_dict, to_dict
from ..errors import CheckpointError, ConfigError
from .configuration import ModelConfig, model_config
from .ldm import CONFIG_FILE, FORMAT_NAME, FORMAT_VERSION, ViewConditionedLDM
from .ldm_keys import (
    CC_PREFIX,
    CLIP_PREFIX,
    CLIP_VISUAL_PREFIX,
    EMA_PREFIX,
    SCHEDULE_BUFFERS,
    UNET_PREFIX,
    VAE_PREFIX,
    clip_text_leftovers,
    clip_visual_to_transformers,
    compare_schedule,
    ema_key,
    ldm_schedule_buffers,
    sorted_names,
    transformers_to_clip_visual,
    unet_diffusers_config,
    unet_key_to_ldm,
    vae_diffusers_config,
    vae_key_to_ldm,
    vae_tensor_to_ldm,
)

LIGHTNING_EXTRAS = ("optimizer_states", "callbacks", "lr_schedulers", "epoch", "global_step",
                    "pytorch-lightning_version", "loops", "hparams_name", "hyper_parameters",
                    "hparams", "state_dict_ema", "MixedPrecision", "NativeMixedPrecisionPlugin")
_TORCH_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
_MAX_LISTED = 20


# --------------------------------------------------------------------------- report


@dataclass
class LoadReport:
    """What a load did, key by key.

    ``missing``: weights the model needs that the checkpoint lacks; ``unexpected``:
    checkpoint weights nothing consumed; ``mismatched``: ``"name: checkpoint (shape) vs
    model (shape)"``; ``ignored``: known non-weights skipped on purpose (optimizer state,
    CLIP text-tower leftovers, schedule buffers...); ``warnings``: things to know.
    """

    source: str
    format: str
    camera_mode: str = ""
    used_ema: bool | None = None
    loaded: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.mismatched

    def summary(self, max_names: int | None = None) -> str:
        """Human-readable report; every key is listed unless ``max_names`` caps each list."""
        lines = [f"loaded {self.loaded} tensors from {self.source} ({self.format})"]
        if self.camera_mode:
            lines.append(f"camera mode: {self.camera_mode}")
        if self.used_ema is not None:
            lines.append("UNet weights: " + ("EMA" if self.used_ema else "raw (non-EMA)"))
        for title, names in (
            ("missing", self.missing),
            ("mis-shaped", self.mismatched),
            ("unexpected (not used)", self.unexpected),
            ("ignored", self.ignored),
        ):
            if not names:
                continue
            lines.append(f"{title}: {len(names)}")
            shown = names if max_names is None else names[:max_names]
            lines += [f"  {n}" for n in shown]
            if len(shown) < len(names):
                lines.append(f"  ... and {len(names) - len(shown)} more")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _names(names: list[str], n: int = 8) -> str:
    s = ", ".join(names[:n])
    return s + (f" (and {len(names) - n} more)" if len(names) > n else "")


# --------------------------------------------------------------------------- reading files


def _torch_load(path: Path) -> Any:
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


def _safetensors_read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
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


def _resolve_config(config: ModelConfig | str | Path | None) -> ModelConfig | None:
    if config is None or isinstance(config, ModelConfig):
        return config
    return model_config(config)


def _config_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys where two config dicts differ (``name`` ignored)."""
    out = []
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k == "name" and not prefix:
                continue
            key = f"{prefix}.{k}" if prefix else k
            out += _config_diff(a.get(k), b.get(k), key)
    elif a != b:
        out.append(f"{prefix}: checkpoint {a!r} vs config {b!r}")
    return out


def _check_against(found: ModelConfig, wanted: ModelConfig | None, source: Path) -> ModelConfig:
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
    diff = [d for d in _config_diff(to_dict(found), to_dict(wanted)) if not d.startswith("schedule.")]
    if diff:
        raise CheckpointError(
            f"'{source}' holds a model of another architecture than the config: {_names(diff, 6)}; "
            "load it without a config (its own is used) or pick the matching preset"
        )
    return wanted


def _empty_model(cfg: ModelConfig) -> ViewConditionedLDM:
    """A model with uninitialised CPU weights (built on the meta device: no random init, which
    takes ~30 s for the full-size model). Every persistent tensor must then be loaded
    (:func:`_load_into` guarantees it); the only non-persistent buffers, CLIP's
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


def _load_into(model: nn.Module, sd: Mapping[str, torch.Tensor], report: LoadReport) -> None:
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
            f"({_names(report.mismatched, 4)}): it is a checkpoint of another architecture; load it "
            "without a config or with the matching preset"
        )
    if report.missing:
        raise CheckpointError(
            f"'{report.source}' lacks {len(report.missing)} weights the model needs "
            f"({_names(report.missing, 6)}): the file is incomplete or of another kind"
        )
    model.load_state_dict(good, strict=False)
    report.loaded = len(good)


# --------------------------------------------------------------------------- our formats


def _load_novelviews_safetensors(path: Path, sd, meta, config, report) -> ViewConditionedLDM:
    try:
        found = from_dict(ModelConfig, json.loads(meta["config"]))
    except (KeyError, json.JSONDecodeError, ConfigError) as exc:
        raise CheckpointError(f"'{path}' has a broken novelviews config in its metadata ({exc})") from None
    _check_version(meta.get("format_version", "1"), path)
    cfg = _check_against(found, config, path)
    report.camera_mode = cfg.camera_mode
    model = _empty_model(cfg)
    _load_into(model, sd, report)
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
            return _safetensors_read(folder / name)[0]
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    if not files:
        raise CheckpointError(
            f"'{folder}' has no weights ({' or '.join(preferred)} expected): the model folder is incomplete"
        )
    sd: dict[str, torch.Tensor] = {}
    for f in files:  # sharded
        sd.update(_safetensors_read(f)[0])
    return sd


def _load_folder(path: Path, config, report) -> ViewConditionedLDM:
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
    cfg = _check_against(found, config, path)
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
        for k, v in _safetensors_read(path / "image_encoder.safetensors")[0].items():
            sd["image_encoder." + k] = v
    if not (path / "cc_projection.safetensors").is_file():
        raise CheckpointError(f"'{path}' lacks cc_projection.safetensors: the model folder is incomplete")
    for k, v in _safetensors_read(path / "cc_projection.safetensors")[0].items():
        sd["cc_projection." + k] = v
    model = _empty_model(cfg)
    _load_into(model, sd, report)
    return model


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


def _load_ldm_state(sd: dict[str, Any], source: Path, use_ema: bool, config: ModelConfig | None,
                    report: LoadReport) -> ViewConditionedLDM:
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    sd = {k: v for k, v in sd.items() if torch.is_tensor(v)}
    raw = {k: v for k, v in sd.items() if k.startswith(UNET_PREFIX)}
    ema_meta = {EMA_PREFIX + "decay", EMA_PREFIX + "num_updates"}
    ema = {k: v for k, v in sd.items() if k.startswith(EMA_PREFIX) and k not in ema_meta}
    if not raw:
        hint = _names(sorted(sd)[:5], 5) if sd else "no tensors at all"
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
        name = next((p for p, c in presets.items() if not _config_diff(to_dict(c), to_dict(found))), "converted")
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
        cfg = _check_against(found, config, source)

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

    model = _empty_model(cfg)

    # --- keys the converters will not consume, reported by name
    n_vae = len(cfg.vae.block_out_channels)
    want_unet = {UNET_PREFIX + unet_key_to_ldm(k, cfg.unet) for k in model.unet.state_dict()}
    want_vae = {VAE_PREFIX + vae_key_to_ldm(k, n_vae) for k in model.vae.state_dict()}
    if report.used_ema:
        absent = sorted_names([ema_key(k) for k in want_unet if k in raw and k not in unet_ldm])
        if absent:
            raise CheckpointError(
                f"'{source}' has an incomplete EMA copy of the UNet ({len(absent)} missing, e.g. "
                f"{_names(absent, 3)}): load the raw weights instead (use_ema=False / --no-ema)"
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
    _load_into(model, full, report)
    # Anything left in ``report.unexpected`` from _load_into has our names; keep them too.
    return model


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
    cfg = _resolve_config(config)
    if not path.exists():
        raise CheckpointError(f"checkpoint '{path}' does not exist: check the path (a folder, .safetensors or .ckpt)")
    if path.is_dir():
        report = LoadReport(source=str(path), format="novelviews-folder")
        model = _load_folder(path, cfg, report)
    elif path.suffix == ".safetensors":
        sd, meta = _safetensors_read(path)
        if meta.get("format") == FORMAT_NAME:
            report = LoadReport(source=str(path), format="novelviews-safetensors")
            model = _load_novelviews_safetensors(path, sd, meta, cfg, report)
        elif any(k.startswith(UNET_PREFIX) for k in sd):
            report = LoadReport(source=str(path), format="ldm-safetensors")
            model = _load_ldm_state(sd, path, use_ema, cfg, report)
        else:
            raise CheckpointError(
                f"'{path}' is a safetensors file but neither a novelviews model nor an ldm "
                f"(ZeroNVS / Zero-1-to-3) state dict (first keys: {_names(sorted(sd)[:5], 5)})"
            )
    else:
        if path.suffix not in _TORCH_SUFFIXES:
            with open(path, "rb") as f:
                magic = f.read(4)
            if magic[:2] != b"PK":
                raise CheckpointError(
                    f"'{path}' is not a checkpoint novelviews reads: pass a model folder, a .safetensors "
                    "or an ldm .ckpt/.pt"
                )
        obj = _torch_load(path)
        report = LoadReport(source=str(path), format="ldm-ckpt")
        if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            sd = obj["state_dict"]
            report.ignored += [k for k in obj if k != "state_dict"]
        elif isinstance(obj, dict) and any(isinstance(k, str) and k.startswith(UNET_PREFIX) for k in obj):
            sd = obj
        else:
            what = f"a {type(obj).__name__}" if not isinstance(obj, dict) else f"a dict with keys {_names(sorted(map(str, obj)), 6)}"
            raise CheckpointError(
                f"'{path}' is not a ZeroNVS / Zero-1-to-3 checkpoint: it holds {what}, no 'state_dict' "
                "with model.diffusion_model.* weights"
            )
        model = _load_ldm_state(sd, path, use_ema, cfg, report)
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
            raise CheckpointError(f"ema_unet lacks UNet weights ({_names(missing, 4)}): pass a UNet of the same architecture")
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


__all__ = ["LoadReport", "load_model", "export_ldm_checkpoint", "convert_checkpoint", "infer_ldm_config"]
