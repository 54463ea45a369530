"""Runtime helpers shared by every command: device selection, in-place torch.compile."""

from __future__ import annotations

import torch

from .errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cpu``, ``cuda``, ``cuda:N`` as given (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a device: use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but no CUDA GPU is available: use device cpu")
    return dev


def compile_in_place(module: torch.nn.Module, mode: str | None = None, backend: str = "inductor") -> bool:
    """``nn.Module.compile`` with static shapes, in place: parameters and state-dict keys stay as
    they are, so the module still saves, loads and averages (EMA) as before. A module already
    compiled is left as it is. Returns whether it was compiled now (sampling.compile,
    nvs train compile=true)."""
    if getattr(module, "_compiled_call_impl", None) is not None:
        return False
    module.compile(mode=mode, dynamic=False, backend=backend)
    return True
