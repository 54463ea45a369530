"""Writing outputs safely: atomic files and run folders that never clobber a previous run."""

from __future__ import annotations

import contextlib
import glob
import json
import logging
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

log = logging.getLogger(__name__)  # notes for the user; the CLI prints them


def _resumable(folder: Path) -> bool:
    """Whether an unfinished run can be continued with ``--resume`` (it saved a checkpoint)."""
    ck = folder / "checkpoints"
    return ck.is_dir() and any(ck.iterdir())


def _writer_alive(folder: Path) -> int | None:
    """The pid of a live process still writing the unfinished run in ``folder`` (its mark names
    it), or None: the run was abandoned (the process ended or was killed)."""
    try:
        pid = int(json.loads((folder / INCOMPLETE).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def _kept_previous(out: Path) -> list[Path]:
    """The previous runs an ``--overwrite`` set aside next to ``out``, newest first."""
    found = out.parent.glob(glob.escape(f".{out.name}.previous-") + "*")
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def _restore_previous(out: Path) -> None:
    """After a run that was replacing a previous one was killed (nothing could clean up): the
    previous run goes back into ``out`` unless the unfinished one can be resumed."""
    kept = _kept_previous(out)
    if not kept or (out.exists() and not (out / INCOMPLETE).exists()):
        return  # nothing set aside, or a finished run is in place (it removes the set-aside ones)
    if out.exists():
        if _resumable(out):
            return  # --resume finishes it (and then drops the set-aside run) or --overwrite replaces it
        shutil.rmtree(out)
    kept[0].rename(out)
    log.info(f"note: put the previous run back into '{out}' (the command replacing it had stopped)")


def _check_replaceable(out: Path) -> None:
    cwd = Path.cwd().resolve()
    if out.resolve() == cwd or out.resolve() in cwd.parents:
        raise NovelViewsError(f"--overwrite cannot replace '{out}': it holds the current folder; choose another --out")


@contextlib.contextmanager
def run_folder(out: str | Path, overwrite: bool = False, resume: bool = False,
               finished: Callable[[], bool] | None = None) -> Iterator[Path]:
    """The output folder of a command, written so that no finished run is ever lost.

    * A missing or empty ``out`` is created. While the block runs it holds the :data:`INCOMPLETE`
      mark (naming the process); the mark goes when the block ends without an exception.
    * A finished run in ``out`` is an error unless ``overwrite``. With ``overwrite`` it is set aside
      (renamed next to ``out``) and deleted only when the new run has finished. If the new run fails
      or is interrupted, it is removed and the previous run put back - unless the new run saved a
      checkpoint (``checkpoints/``): then the new run stays for ``--resume`` and the previous one
      stays set aside (a note names it) until the resumed run finishes.
    * An unfinished run (the mark) whose process has ended is replaced without ``overwrite``, unless
      it saved a checkpoint: then it is an error that names ``--resume`` and ``--overwrite``. A run
      whose process is still alive is never touched.
    * ``resume``: ``out`` is used as it is.
    * ``finished`` (optional): asked when the block ends without an exception; False keeps the run
      marked unfinished (a command that stopped early on purpose, e.g. after a step budget, to be
      resumed), and a run it replaced stays set aside.
    A previous run set aside by a process that was killed is put back first.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NovelViewsError(f"output path '{out}' exists and is not a folder: choose another --out")
    if (out / INCOMPLETE).exists():
        pid = _writer_alive(out)
        if pid is not None:
            raise NovelViewsError(f"output folder '{out}' is being written by another command (pid {pid}): wait "
                                  "for it or choose another --out")
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
            _check_replaceable(out)
            previous = out.with_name(f".{out.name}.previous-{os.getpid()}-{time.time_ns()}")
            out.rename(previous)
    out.mkdir(parents=True, exist_ok=True)
    mark = out / INCOMPLETE
    atomic_write_text(mark, json.dumps({"pid": os.getpid(), "note": "a command is writing this run; it is "
                                        "unfinished until this file is gone"}) + "\n")
    try:
        yield out
    except BaseException:
        if previous is not None:
            if _resumable(out):
                log.info(f"note: the previous run stays in '{previous}' until this one is resumed and finishes")
            else:
                try:
                    shutil.rmtree(out)
                    previous.rename(out)
                except OSError as exc:  # never hide the command's own error behind the clean-up's
                    log.info(f"note: could not put the previous run back ({exc}); it is in '{previous}'")
        raise
    if finished is not None and not finished():
        return
    mark.unlink(missing_ok=True)
    for old in _kept_previous(out):  # the run is finished: what it replaced can go
        shutil.rmtree(old, ignore_errors=True)
