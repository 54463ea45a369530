"""Runtime helpers shared by every command: device selection, host-to-device copies, in-place torch.compile."""

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


def to_device(x: torch.Tensor, device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``x`` on ``device`` (and ``dtype``) without stalling the host on a CUDA device.

    A plain ``.to("cuda")`` of a CPU tensor in pageable memory waits for the GPU to finish all
    queued work: in a training step that drains the queue at every small copy (random numbers,
    rays, camera embeddings drawn on the CPU), and the GPU then idles while the host launches
    the next kernels. A CPU tensor bound for CUDA goes through pinned memory with a non-blocking
    copy instead (PyTorch's pinned-memory cache keeps the buffer alive until the copy has run).
    Anything else is a plain ``.to``."""
    dev = torch.device(device)
    if dtype is not None and x.dtype != dtype:
        x = x.to(dtype)
    if dev.type == "cuda" and x.device.type == "cpu":
        return x.pin_memory().to(dev, non_blocking=True)
    return x.to(dev)


def compile_in_place(module: torch.nn.Module, mode: str | None = None, backend: str = "inductor") -> bool:
    """``nn.Module.compile`` with static shapes, in place: parameters and state-dict keys stay as
    they are, so the module still saves, loads and averages (EMA) as before. A module already
    compiled is left as it is. Returns whether it was compiled now (sampling.compile,
    nvs train compile=true)."""
    if getattr(module, "_compiled_call_impl", None) is not None:
        return False
    module.compile(mode=mode, dynamic=False, backend=backend)
    return True
