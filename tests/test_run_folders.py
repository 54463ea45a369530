"""Run folders that cannot lose a run (io.runs.run_folder)."""

from __future__ import annotations

import pytest

from novelviews.errors import NovelViewsError
from novelviews.io.runs import INCOMPLETE, run_folder


def _write_run(out, text: str) -> None:
    with run_folder(out, overwrite=True) as d:
        (d / "result.txt").write_text(text)


def test_a_finished_run_is_kept_unless_overwrite(tmp_path):
    out = tmp_path / "run"
    with run_folder(out) as d:
        assert (d / INCOMPLETE).is_file()  # marked while the command runs
        (d / "result.txt").write_text("one")
    assert not (out / INCOMPLETE).exists() and (out / "result.txt").read_text() == "one"
    with pytest.raises(NovelViewsError, match="previous run: pass --overwrite"):
        with run_folder(out):
            pass
    _write_run(out, "two")
    assert sorted(p.name for p in out.iterdir()) == ["result.txt"] and (out / "result.txt").read_text() == "two"
    assert list(tmp_path.iterdir()) == [out]  # the set-aside previous run is gone


def test_overwrite_keeps_the_previous_run_until_the_new_one_finishes(tmp_path):
    out = tmp_path / "run"
    _write_run(out, "old")
    with pytest.raises(KeyboardInterrupt):
        with run_folder(out, overwrite=True) as d:
            (d / "result.txt").write_text("half")
            assert sorted(p.name for p in d.iterdir()) == [INCOMPLETE, "result.txt"]
            raise KeyboardInterrupt
    assert (out / "result.txt").read_text() == "old" and not (out / INCOMPLETE).exists()
    assert list(tmp_path.iterdir()) == [out]


def test_a_new_run_with_a_checkpoint_stays_for_resume(tmp_path):
    out = tmp_path / "run"
    _write_run(out, "old")
    with pytest.raises(KeyboardInterrupt):
        with run_folder(out, overwrite=True) as d:
            (d / "checkpoints").mkdir()
            (d / "checkpoints" / "last.pt").write_text("state")
            raise KeyboardInterrupt
    assert (out / "checkpoints" / "last.pt").is_file() and (out / INCOMPLETE).is_file()
    aside = [p for p in tmp_path.iterdir() if p != out]
    assert len(aside) == 1 and (aside[0] / "result.txt").read_text() == "old"  # kept until the new one ends
    with pytest.raises(NovelViewsError, match="interrupted run: continue it with --resume"):
        with run_folder(out):
            pass
    with run_folder(out, resume=True) as d:  # --resume finishes it
        (d / "result.txt").write_text("resumed")
    assert not (out / INCOMPLETE).exists() and (out / "checkpoints" / "last.pt").is_file()
    assert list(tmp_path.iterdir()) == [out]  # and only then the previous run goes


def test_an_unfinished_run_without_checkpoint_is_replaced(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        with run_folder(out) as d:
            (d / "half.txt").write_text("x")
            raise RuntimeError("the command failed")
    assert (out / INCOMPLETE).is_file()
    with run_folder(out) as d:  # no --overwrite needed: nothing finished is lost
        assert not (d / "half.txt").exists()
        (d / "result.txt").write_text("ok")
    assert sorted(p.name for p in out.iterdir()) == ["result.txt"]


def test_a_killed_overwrite_puts_the_previous_run_back(tmp_path):
    """A process killed while replacing a run leaves the previous one set aside; the next command
    on that folder puts it back before anything else."""
    out = tmp_path / "run"
    _write_run(out, "old")
    aside = tmp_path / ".run.previous-1-1"
    out.rename(aside)  # what run_folder(overwrite=True) had done when the process was killed
    out.mkdir()
    (out / INCOMPLETE).write_text("x")
    (out / "half.txt").write_text("x")
    with pytest.raises(NovelViewsError, match="previous run"):
        with run_folder(out):
            pass
    assert (out / "result.txt").read_text() == "old" and not aside.exists()


def test_a_file_in_the_way_is_an_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NovelViewsError, match="not a folder"):
        with run_folder(tmp_path / "f"):
            pass


def test_a_run_another_live_command_is_writing_is_left_alone(tmp_path):
    import json
    import os

    out = tmp_path / "run"
    out.mkdir()
    (out / "half.txt").write_text("x")
    (out / INCOMPLETE).write_text(json.dumps({"pid": os.getppid()}))  # a live process (our parent)
    for kw in ({}, {"overwrite": True}):
        with pytest.raises(NovelViewsError, match="being written by another command"):
            with run_folder(out, **kw):
                pass
    assert (out / "half.txt").is_file()


def test_overwrite_cannot_replace_the_current_folder(tmp_path, monkeypatch):
    out = tmp_path / "run"
    _write_run(out, "old")
    monkeypatch.chdir(out)
    with pytest.raises(NovelViewsError, match="current folder"):
        with run_folder(".", overwrite=True):
            pass
    assert (out / "result.txt").read_text() == "old"
