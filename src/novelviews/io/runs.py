"""Writing outputs safely: atomic files and run folders that never clobber a previous run."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from ..errors import NovelViewsError


def _umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """Write through ``write(tmp)`` to a temp file next to ``path``, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix + ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600 files: give the umask's permissions
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    return _atomic(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: Path, text: str) -> Path:
    return _atomic(path, lambda p: p.write_text(text))


def atomic_write_json(path: Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def atomic_save(path: Path, save: Callable[[Path], None]) -> Path:
    """Atomic write for libraries that write to a path (PIL, imageio, torch.save...)."""
    return _atomic(path, save)


def prepare_run_dir(out: str | Path, overwrite: bool = False, resume: bool = False) -> Path:
    """Create the output folder of a command.

    A non-empty existing folder is an error unless ``overwrite`` (its contents are
    removed) or ``resume`` (kept as is) is set, so a previous run is never lost by
    accident.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NovelViewsError(f"output path '{out}' exists and is not a folder: choose another --out")
    if out.exists() and any(out.iterdir()) and not resume:
        if not overwrite:
            raise NovelViewsError(
                f"output folder '{out}' already holds a previous run: pass --overwrite to replace it "
                "or choose another --out"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out
