"""A persistent compile cache: what ``torch.compile`` built in one process, reused by the next.

``sampling.compile`` compiles the UNet and VAE decoder on first use (about a minute for the
ZeroNVS UNet on a GPU). Inductor keeps its own on-disk caches in a temporary folder, which a
reboot, a cleaned ``/tmp`` or a fresh machine loses; this module keeps the compiled artifacts
(inductor's FX graphs and kernels, AOT autograd graphs, autotuning results) in the user's cache
folder through PyTorch's portable cache artifacts (``torch.compiler.save_cache_artifacts`` /
``load_cache_artifacts``), one file per key (:func:`cache_key`: torch / triton versions, device,
model config, compile options, batch shapes). Dynamo's tracing is not cached (torch has no
portable form of it in every supported version), and neither are CUDA graphs (captured per run)
nor, on a CPU, inductor's C++ kernel builds (they live in inductor's own folder); on a GPU the
cached graphs carry their Triton kernels.

The folder: ``$NOVELVIEWS_CACHE_DIR``, else ``$XDG_CACHE_HOME/novelviews``, else
``~/.cache/novelviews``; compiled artifacts live under its ``compile/``. ``nvs cache info`` lists
them, ``nvs cache clear`` deletes them (deleting the folder by hand is just as safe).

A file that is unreadable, truncated, corrupt or written for other settings never stops a run:
a warning goes to this module's logger (the commands print it) and the model compiles as if
there were no file, which is then rewritten.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import platform
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

log = logging.getLogger(__name__)

#: first line of every cache file; the second is a JSON header, the rest the artifacts
MAGIC = b"novelviews compile cache v1\n"
SUFFIX = ".bin"


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """The user's novelviews cache folder: ``$NOVELVIEWS_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/novelviews``, else ``~/.cache/novelviews`` (not created here)."""
    env = os.environ if environ is None else environ
    if env.get("NOVELVIEWS_CACHE_DIR"):
        return Path(env["NOVELVIEWS_CACHE_DIR"]).expanduser()
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]).expanduser() / "novelviews"
    home = env.get("HOME")
    return (Path(home) if home else Path.home()) / ".cache" / "novelviews"


def compile_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where the compiled artifacts live: ``cache_root()/compile``."""
    return cache_root(environ) / "compile"


def device_name(device: torch.device | str) -> str:
    """The device as the compiled code depends on it: the GPU's name and compute capability, or
    the CPU's architecture."""
    dev = torch.device(device)
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(index)
        return f"cuda:{torch.cuda.get_device_name(index)}:sm{major}{minor}"
    return f"{dev.type}:{platform.machine() or 'unknown'}"


def _versions() -> dict[str, str]:
    out = {"torch": torch.__version__}
    try:
        import triton  # noqa: F401 - only its version matters (GPU kernels)

        out["triton"] = getattr(triton, "__version__", "unknown")
    except ImportError:
        out["triton"] = "none"
    return out


def key_fields(model_config: Any, device: torch.device | str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Everything a compiled artifact of the model depends on, as plain JSON values: versions,
    device, the model's config (a dataclass or a dict) and ``options`` (compile mode, precision,
    memory format, batch shapes...)."""
    cfg = dataclasses.asdict(model_config) if dataclasses.is_dataclass(model_config) else dict(model_config)
    return json.loads(json.dumps({**_versions(), "device": device_name(device), "model": cfg,
                                  "options": dict(options)}, sort_keys=True, default=str))


def cache_key(fields: Mapping[str, Any]) -> str:
    """A file name for ``fields``: the first 32 hex digits of the SHA-256 of their sorted JSON."""
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def cache_file(fields: Mapping[str, Any], folder: Path | None = None) -> Path:
    return Path(folder if folder is not None else compile_dir()) / f"{cache_key(fields)}{SUFFIX}"


# --------------------------------------------------------------------------- the file format


def encode(fields: Mapping[str, Any], payload: bytes) -> bytes:
    """A cache file: :data:`MAGIC`, a JSON header line (the key fields, the payload's size and
    SHA-256), the payload."""
    header = {"fields": fields, "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    return MAGIC + json.dumps(header, sort_keys=True, default=str).encode() + b"\n" + payload


class CacheFileError(ValueError):
    """A cache file that cannot be used (its message says why)."""


def decode(data: bytes, fields: Mapping[str, Any] | None = None) -> bytes:
    """The payload of a cache file, checked: the format, the size and checksum of the payload and,
    when ``fields`` is given, that the file was written for them. Raises :class:`CacheFileError`."""
    if not data.startswith(MAGIC):
        raise CacheFileError("it is not a novelviews compile cache file")
    line_end = data.find(b"\n", len(MAGIC))
    if line_end < 0:
        raise CacheFileError("its header is cut off")
    try:
        header = json.loads(data[len(MAGIC):line_end])
        size, digest, written_for = int(header["size"]), str(header["sha256"]), header["fields"]
    except (ValueError, KeyError, TypeError):
        raise CacheFileError("its header is not valid") from None
    payload = data[line_end + 1:]
    if len(payload) != size or hashlib.sha256(payload).hexdigest() != digest:
        raise CacheFileError(f"it is truncated or corrupt ({len(payload)} of {size} bytes, checksum differs)")
    if fields is not None and json.loads(json.dumps(fields, sort_keys=True, default=str)) != written_for:
        changed = sorted(k for k in set(written_for) | set(fields) if written_for.get(k) != fields.get(k))
        raise CacheFileError(f"it was written for other settings ({', '.join(changed) or 'unknown'} differ)")
    return payload


# --------------------------------------------------------------------------- load / save


def load(path: Path, fields: Mapping[str, Any]) -> bool:
    """Hot-load the artifacts of ``path`` into torch's compile caches. Returns whether it did; a
    missing file is False quietly, an unusable one False with a warning (the run compiles)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning("warning: compile cache %s cannot be read (%s): compiling instead", path, exc.strerror or exc)
        return False
    try:
        payload = decode(data, fields)
        info = torch.compiler.load_cache_artifacts(payload)
    except CacheFileError as exc:
        log.warning("warning: compile cache %s is not usable: %s; compiling instead and rewriting it "
                    "(`nvs cache clear` deletes every cache file)", path, exc)
        return False
    except Exception as exc:  # torch's own checks of the artifacts  # noqa: BLE001
        log.warning("warning: compile cache %s could not be loaded by torch (%s: %s); compiling instead",
                    path, type(exc).__name__, exc)
        return False
    if info is None:
        log.warning("warning: compile cache %s holds no artifacts torch can read; compiling instead", path)
        return False
    return True


def save(path: Path, fields: Mapping[str, Any]) -> bool:
    """Write what this process has compiled so far to ``path`` (atomically), unless nothing was
    compiled or the file already holds exactly that. Returns whether it wrote; a failure to write
    is a warning, never an error."""
    from .io.runs import atomic_write_bytes

    try:
        result = torch.compiler.save_cache_artifacts()
    except Exception as exc:  # noqa: BLE001 - a cache must not fail a run
        log.warning("warning: the compiled artifacts could not be collected for the compile cache (%s: %s)",
                    type(exc).__name__, exc)
        return False
    if result is None:
        return False
    data = encode(fields, result[0])
    path = Path(path)
    try:
        if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
        atomic_write_bytes(path, data)
    except OSError as exc:
        log.warning("warning: compile cache %s could not be written (%s); the next run compiles again",
                    path, exc.strerror or exc)
        return False
    return True


@contextlib.contextmanager
def cached_compilation(fields: Mapping[str, Any], enabled: bool = True, folder: Path | None = None,
                       seen: set | None = None) -> Iterator[Path | None]:
    """Around code that compiles: load the artifacts for ``fields`` before it, save them after it
    (only when the block succeeds). ``seen``: keys this caller has already loaded (a model
    compiled in this process loads its file once); the key is added to it. A caller that has seen
    the key saves again only when the block compiled new graphs: collecting the artifacts costs
    about half a second for the ZeroNVS UNet, too much to pay on every call. Yields the file, or
    None when disabled."""
    if not enabled:
        yield None
        return
    path = cache_file(fields, folder)
    key = path.name
    first = seen is None or key not in seen
    if first:
        load(path, fields)
    graphs = compiled_graphs()
    yield path
    if first or compiled_graphs() != graphs:
        save(path, fields)
    if seen is not None:  # only after a block that succeeded: a failed first block saves next time
        seen.add(key)


def compiled_graphs() -> int:
    """How many graphs dynamo has compiled in this process (its ``unique_graphs`` counter)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


# --------------------------------------------------------------------------- nvs cache


def cache_info(folder: Path | None = None) -> dict[str, Any]:
    """The compile cache's folder, its files (name, bytes, what they were written for) and total size."""
    folder = Path(folder if folder is not None else compile_dir())
    files = []
    for path in sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []:
        entry: dict[str, Any] = {"file": path.name, "bytes": path.stat().st_size}
        try:
            with path.open("rb") as fh:
                head = fh.read(len(MAGIC))
                header = json.loads(fh.readline()) if head == MAGIC else None
            fields = header["fields"] if header else {}
            entry.update(torch=fields.get("torch"), device=fields.get("device"),
                         options=fields.get("options", {}))
            if header is None:
                entry["problem"] = "not a compile cache file"
        except (OSError, ValueError, KeyError, TypeError):
            entry["problem"] = "unreadable header"
        files.append(entry)
    return {"folder": str(folder), "files": files, "bytes": sum(f["bytes"] for f in files)}


def clear_cache(folder: Path | None = None) -> dict[str, Any]:
    """Delete the compile cache's files (only ``*.bin`` files of its folder). Returns what went."""
    info = cache_info(folder)
    for entry in info["files"]:
        (Path(info["folder"]) / entry["file"]).unlink(missing_ok=True)
    return {"folder": info["folder"], "removed": len(info["files"]), "bytes": info["bytes"]}
