"""Writing outputs safely: atomic files and run folders that never clobber a previous run."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

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


#: The file that marks a run folder whose command has not finished (removed when it has).
INCOMPLETE = ".incomplete"


def _resumable(folder: Path) -> bool:
    """Whether an unfinished run can be continued with ``--resume`` (it saved a checkpoint)."""
    ck = folder / "checkpoints"
    return ck.is_dir() and any(ck.iterdir())


def _kept_previous(out: Path) -> list[Path]:
    """The previous runs an ``--overwrite`` set aside next to ``out``, newest first."""
    return sorted(out.parent.glob(f".{out.name}.previous-*"), key=lambda p: p.stat().st_mtime, reverse=True)


def _restore_previous(out: Path) -> None:
    """After a run that was replacing a previous one was killed (nothing could clean up): the
    previous run goes back into ``out`` unless the unfinished one can be resumed."""
    kept = _kept_previous(out)
    if not kept:
        return
    if out.exists() and not (out / INCOMPLETE).exists():
        return  # a finished run is in place; the set-aside folder is left for the user
    if out.exists():
        if _resumable(out):
            return
        shutil.rmtree(out)
    kept[0].rename(out)


@contextlib.contextmanager
def run_folder(out: str | Path, overwrite: bool = False, resume: bool = False) -> Iterator[Path]:
    """The output folder of a command, written so that no finished run is ever lost.

    * A missing or empty ``out`` is created. While the block runs it holds the :data:`INCOMPLETE`
      mark; the mark goes when the block ends without an exception.
    * A finished run in ``out`` is an error unless ``overwrite``. With ``overwrite`` it is set aside
      (renamed next to ``out``) and deleted only when the new run has finished; if the new run
      fails or is interrupted, it is removed and the previous run put back - unless the new run
      saved a checkpoint (``checkpoints/``), then the new run stays for ``--resume``.
    * An unfinished run (the mark) is replaced without ``overwrite``, unless it saved a checkpoint:
      then it is an error that names ``--resume`` and ``--overwrite``.
    * ``resume``: ``out`` is used as it is.
    A previous run set aside by a process that was killed is put back first.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NovelViewsError(f"output path '{out}' exists and is not a folder: choose another --out")
    _restore_previous(out)
    previous = None
    if out.exists() and any(out.iterdir()) and not resume:
        unfinished = (out / INCOMPLETE).exists()
        if unfinished and not _resumable(out):
            shutil.rmtree(out)  # an unfinished run that cannot be continued: nothing to lose
        elif not overwrite:
            what = ("an interrupted run: continue it with --resume, pass --overwrite to replace it"
                    if unfinished else "a previous run: pass --overwrite to replace it")
            raise NovelViewsError(f"output folder '{out}' already holds {what} or choose another --out")
        else:
            previous = out.with_name(f".{out.name}.previous-{os.getpid()}-{time.time_ns()}")
            out.rename(previous)
    out.mkdir(parents=True, exist_ok=True)
    mark = out / INCOMPLETE
    if not mark.exists():
        atomic_write_text(mark, f"a command is writing this run (pid {os.getpid()}); it is unfinished until this "
                                "file is gone\n")
    try:
        yield out
    except BaseException:
        if previous is not None:
            if _resumable(out):
                shutil.rmtree(previous, ignore_errors=True)  # the new run continues with --resume
            else:
                shutil.rmtree(out, ignore_errors=True)
                previous.rename(out)
        raise
    mark.unlink(missing_ok=True)
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)
