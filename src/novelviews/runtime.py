"""Runtime helpers shared by every command: device selection, the precision vocabulary, host-to-device
copies, in-place torch.compile, compiled pure functions (Fusion)."""

from __future__ import annotations

from typing import Literal

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


#: The one precision vocabulary of sampling (``sampling.precision``), distillation (``precision``) and
#: training (``precision``): ``auto`` = bf16 on a GPU that supports it (else fp16 for sampling and
#: distillation, fp32 for training), ``fp32``, ``fp16``, ``bf16``. On the CPU every command runs in fp32.
Precision = Literal["auto", "fp32", "fp16", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16")
#: the torch dtype of each fixed word
PRECISION_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def precision_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The torch dtype of a precision word on ``device`` (float32 on the CPU, whatever the word)."""
    if device.type != "cuda" or precision == "fp32":
        return torch.float32
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    try:
        return PRECISION_DTYPES[precision]
    except KeyError:
        raise ConfigError(f"precision {precision!r} is unknown: use one of {', '.join(PRECISIONS)}") from None


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


class Fusion:
    """Pure tensor functions through ``torch.compile`` (dynamic shapes, one graph each), or as they are.

    ``fusion(fn)`` returns the function to call: ``fn`` itself when the fusion is off or autograd is
    off (evaluation renders stay eager: no second compile for inference graphs), else ``fn``
    compiled once for every input size, so a chain of elementwise ops runs as a few fused kernels
    instead of one launch per op (a NeRF training step is bound by the host's launches). Inputs
    whose leading dimension is below 2 run eagerly (such sizes would each get their own graph).
    ``fn`` must draw no random numbers (pass them in: the compiled random stream differs from
    eager's) and must not change Python state. The compiled function computes what ``fn`` does;
    its values differ only by floating-point reassociation (the tests compare them).
    """

    def __init__(self, enabled: bool = False, backend: str = "inductor"):
        self.enabled, self.backend = bool(enabled), backend
        self._compiled: dict = {}

    def __call__(self, fn):
        if not (self.enabled and torch.is_grad_enabled()):
            return fn
        fast = self._compiled.get(fn)
        if fast is None:
            compiled = torch.compile(fn, dynamic=True, fullgraph=True, backend=self.backend)

            def fast(*args, **kwargs):
                lead = [a.shape[0] for a in args if isinstance(a, torch.Tensor) and a.dim() > 0]
                return (compiled if lead and min(lead) >= 2 else fn)(*args, **kwargs)

            self._compiled[fn] = fast
        return fast

    @property
    def compiled_functions(self) -> int:
        """How many distinct functions have been compiled (used) so far."""
        return len(self._compiled)


#: The eager :class:`Fusion` (every function as it is): the default of modules that take one.
EAGER = Fusion(False)


def time_calls_ms(fn, device: torch.device, warmup: int = 1, repeats: int = 3) -> list[float]:
    """Milliseconds of each of ``repeats`` calls of ``fn()`` after ``warmup`` untimed ones: CUDA
    events on a CUDA device (the GPU time of the queued work, synchronised after each call), wall
    time elsewhere. For benchmarks."""
    import time

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append(1e3 * (time.perf_counter() - t0))
    return times
