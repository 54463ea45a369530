"""The persistent compile cache: folder and key, the file format and its checks, the fallback of a
bad file, the wiring into generate (which settings write and read which file), nvs cache.

torch's own save / load of compiled artifacts stands in as a recorder where a real inductor
compile would be needed (minutes on this CPU); benchmarks/compile_cache.py runs the real thing
in fresh processes (docs/BENCHMARKS.md)."""

import json
import logging

import pytest
import torch

from novelviews import compile_cache as CC
from novelviews import sampling as S


def test_cache_root_precedence(tmp_path):
    assert CC.cache_root({"NOVELVIEWS_CACHE_DIR": str(tmp_path / "a"), "XDG_CACHE_HOME": "/x",
                          "HOME": "/h"}) == tmp_path / "a"
    assert CC.cache_root({"XDG_CACHE_HOME": str(tmp_path), "HOME": "/h"}) == tmp_path / "novelviews"
    assert CC.cache_root({"HOME": str(tmp_path)}) == tmp_path / ".cache" / "novelviews"
    assert CC.cache_root({"NOVELVIEWS_CACHE_DIR": "", "HOME": str(tmp_path)}) == tmp_path / ".cache" / "novelviews"
    assert CC.compile_dir({"HOME": str(tmp_path)}) == tmp_path / ".cache" / "novelviews" / "compile"


def test_key_changes_with_everything_the_compiled_code_depends_on(monkeypatch):
    from novelviews.model.configuration import model_config

    tiny = model_config("tiny")
    base = CC.key_fields(tiny, "cpu", {"compile": "default", "batches": [8]})
    key = CC.cache_key(base)
    assert len(key) == 32 and int(key, 16) >= 0
    assert CC.cache_key(CC.key_fields(model_config("tiny"), torch.device("cpu"), {"batches": [8], "compile": "default"})) == key
    assert base["torch"] == torch.__version__ and base["device"].startswith("cpu:")
    others = [CC.key_fields(tiny, "cpu", {"compile": "max-autotune-no-cudagraphs", "batches": [8]}),
              CC.key_fields(tiny, "cpu", {"compile": "default", "batches": [4, 8]}),
              CC.key_fields(model_config("demo"), "cpu", {"compile": "default", "batches": [8]})]
    monkeypatch.setattr(torch, "__version__", "0.0.1")
    others.append(CC.key_fields(tiny, "cpu", {"compile": "default", "batches": [8]}))
    assert len({key} | {CC.cache_key(f) for f in others}) == 5


def test_file_round_trip_and_every_kind_of_bad_file():
    fields = {"torch": "x", "options": {"batches": [2]}}
    payload = bytes(range(256)) * 3 + b"\n\n"
    data = CC.encode(fields, payload)
    assert CC.decode(data, fields) == payload and CC.decode(data) == payload
    bad = {"not one of ours": (b"PK\x03\x04" + data, "not a novelviews compile cache"),
           "cut in the header": (data[: len(CC.MAGIC) + 5], "header is cut off"),
           "truncated": (data[:-7], "truncated or corrupt"),
           "flipped byte": (data[:-1] + bytes([data[-1] ^ 1]), "truncated or corrupt"),
           "bad header": (CC.MAGIC + b"{nope\n" + payload, "header is not valid")}
    for what, (blob, message) in bad.items():
        with pytest.raises(CC.CacheFileError, match=message):
            CC.decode(blob, fields)
    with pytest.raises(CC.CacheFileError, match=r"other settings \(options differ\)"):
        CC.decode(data, {"torch": "x", "options": {"batches": [4]}})


class FakeTorchCache:
    """torch.compiler's save / load of compiled artifacts, recorded."""

    def __init__(self, payload: bytes | None = b"artifacts-1"):
        self.payload, self.loaded = payload, []

    saves = 0

    def save(self):
        self.saves += 1
        return None if self.payload is None else (self.payload, torch.compiler.CacheInfo())

    def load(self, data: bytes):
        self.loaded.append(data)
        info = torch.compiler.CacheInfo()
        info.artifacts["inductor"].append("k")
        return info

    def install(self, monkeypatch):
        monkeypatch.setattr(torch.compiler, "save_cache_artifacts", self.save)
        monkeypatch.setattr(torch.compiler, "load_cache_artifacts", self.load)
        return self


def test_save_then_load_and_a_corrupt_file_is_a_warning_then_rewritten(tmp_path, monkeypatch, caplog):
    fake = FakeTorchCache().install(monkeypatch)
    fields = {"torch": "t", "options": {"batches": [1]}}
    path = CC.cache_file(fields, tmp_path)
    assert CC.load(path, fields) is False and not caplog.records  # no file yet: quietly compile
    assert CC.save(path, fields) is True and CC.decode(path.read_bytes(), fields) == b"artifacts-1"
    stamp = path.stat().st_mtime_ns
    assert CC.save(path, fields) is False and path.stat().st_mtime_ns == stamp  # same artifacts: not rewritten
    fake.payload = None
    assert CC.save(path, fields) is False  # nothing compiled in this process: the file stays
    assert CC.load(path, fields) is True and fake.loaded == [b"artifacts-1"]

    path.write_bytes(path.read_bytes()[:-3])  # truncated, e.g. by a full disk
    fake.payload = b"artifacts-2"
    with caplog.at_level(logging.WARNING, logger="novelviews.compile_cache"):
        with CC.cached_compilation(fields, folder=tmp_path) as used:
            assert used == path
    assert len(fake.loaded) == 1  # the bad file never reached torch
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "truncated or corrupt" in warning and str(path) in warning and "compiling instead" in warning
    assert CC.decode(path.read_bytes(), fields) == b"artifacts-2"  # rewritten after the run

    caplog.clear()  # a file of other settings under this name (copied by hand): a warning, not used
    path.write_bytes(CC.encode({"torch": "other"}, b"x"))
    with caplog.at_level(logging.WARNING, logger="novelviews.compile_cache"):
        assert CC.load(path, fields) is False
    assert "other settings" in caplog.records[0].getMessage()


def test_a_payload_torch_cannot_read_is_a_warning(tmp_path, caplog):
    """Real torch.compiler.load_cache_artifacts on artifacts it cannot parse (e.g. of another torch)."""
    fields = {"torch": torch.__version__}
    path = CC.cache_file(fields, tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(CC.encode(fields, b"\x00\x01 not torch artifacts"))
    with caplog.at_level(logging.WARNING):
        assert CC.load(path, fields) is False
    assert any("compiling instead" in r.getMessage() for r in caplog.records if r.name == "novelviews.compile_cache")


def test_unwritable_cache_folder_is_a_warning(tmp_path, monkeypatch, caplog):
    FakeTorchCache().install(monkeypatch)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="novelviews.compile_cache"):
        assert CC.save(blocker / "compile" / "k.bin", {}) is False
    assert "could not be written" in caplog.records[0].getMessage()


def _tiny_inputs():
    from novelviews import cameras as C
    from novelviews.model import ViewConditionedLDM
    from novelviews.model.configuration import model_config

    torch.manual_seed(0)
    model = ViewConditionedLDM(model_config("tiny")).eval()
    s = model.config.image_size
    image = torch.zeros(1, 3, s, s)
    cond = C.camera_on_sphere(0.3, 0.0, 2.0)[None]
    targets = torch.stack([C.camera_on_sphere(0.3, a, 2.0) for a in (0.4, -0.6, 1.0)])
    return model, image, cond, targets


def test_generate_writes_and_reads_the_file_of_its_settings(tmp_path, monkeypatch, one_thread):
    """Compiled sampling saves after the views and loads (once per model) before them; the key
    holds the batch shapes; compile off or compile_cache=false touch no file."""
    from novelviews.generation import generate

    monkeypatch.setenv("NOVELVIEWS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(S, "compile_model", lambda model, mode, backend="inductor": False)  # eager stands in
    fake = FakeTorchCache().install(monkeypatch)
    model, image, cond, targets = _tiny_inputs()
    folder = tmp_path / "compile"

    def run(m, **kw):
        cfg = S.SamplingConfig(steps=1, batch_size=2, **kw)
        return generate(m, image, cond, targets, 0.8, cfg=cfg, progress=False)

    eager = run(model)
    off = run(model, compile="default", compile_cache=False)
    assert not folder.exists() and fake.loaded == []
    torch.testing.assert_close(run(model, compile="default"), eager)
    (file,) = folder.glob("*.bin")
    header = json.loads(file.read_bytes().split(b"\n")[1])
    assert header["fields"]["options"]["batches"] == [1, 2]  # 3 targets at batch 2: shapes 2 and 1
    assert header["fields"]["options"]["compile"] == "default" and header["fields"]["model"]["image_size"] == 32
    assert fake.loaded == []  # the file did not exist before the first compiled run
    saves = fake.saves
    run(model, compile="default")
    assert fake.loaded == []  # this model already went through it: not loaded again
    assert fake.saves == saves  # nothing new was compiled: the artifacts are not collected again
    from torch._dynamo.utils import counters

    def compiles(module, args):  # the UNet call counts a new graph, as a recompilation would
        counters["stats"]["unique_graphs"] += 1

    hook = model.unet.register_forward_pre_hook(compiles)
    run(model, compile="default")
    hook.remove()
    assert fake.saves == saves + 1
    fresh, *_ = _tiny_inputs()
    run(fresh, compile="default")
    assert fake.loaded == [b"artifacts-1"]  # a new model (a new process) loads it
    run(fresh, compile="default", guidance_scale=1.0)
    assert len(list(folder.glob("*.bin"))) == 2  # no unconditional branch: other UNet shapes, another file
    torch.testing.assert_close(off, eager)


def test_nvs_cache_info_and_clear(tmp_path, monkeypatch, capsys):
    from novelviews.cli import main

    monkeypatch.setenv("NOVELVIEWS_CACHE_DIR", str(tmp_path))
    folder = tmp_path / "compile"
    folder.mkdir()
    fields = CC.key_fields({"image_size": 32}, "cpu", {"compile": "default", "precision": "float32", "batches": [8]})
    CC.cache_file(fields, folder).write_bytes(CC.encode(fields, b"z" * 1000))
    (folder / "junk.bin").write_bytes(b"garbage")
    (folder / "notes.txt").write_text("kept")
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert f"{folder} (2 files" in out and "compile=default, float32, batches [8]" in out
    assert "junk.bin" in out and "not a compile cache file" in out
    assert main(["cache", "clear"]) == 0
    assert "removed 2 compile cache files" in capsys.readouterr().out
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    assert main(["cache", "info"]) == 0 and "(0 files" in capsys.readouterr().out


@pytest.fixture(scope="module")
def bench():
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "compile_cache.py"
    spec = importlib.util.spec_from_file_location("bench_compile_cache", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop(spec.name, None)


def test_benchmark_break_even_and_settings(bench):
    eager = {"status": "ok", "process_s": 12.0, "steady_s": 8.0}  # fixed 4 s, 0.5 s/view at 16 views
    cold = {"status": "ok", "process_s": 64.0, "steady_s": 4.0}  # fixed 60 s, 0.25 s/view
    assert bench.break_even(eager, cold, 16) == pytest.approx((60 - 4) / (0.5 - 0.25))
    assert bench.break_even(eager, {"status": "ok", "process_s": 6.0, "steady_s": 4.0}, 16) == 0.0
    assert bench.break_even(eager, {"status": "ok", "process_s": 20.0, "steady_s": 9.0}, 16) is None  # slower steps
    assert bench.break_even(eager, {"status": "timeout"}, 16) is None
    assert bench.split_settings("a.b=1, c=[1,2],d=x") == ["a.b=1", "c=[1,2]", "d=x"]
    with pytest.raises(SystemExit, match="unknown hot"):
        bench.parse_args(["--variants", "eager,hot"])


def test_benchmark_runs_variants_in_processes_and_records_failures(bench, tmp_path):
    """The eager variant for real (a fresh process, tiny model on the CPU); a variant with a bad
    setting and one past its timeout are recorded, not raised."""
    out = tmp_path / "cc.json"
    args = ["--preset", "tiny", "--views", "2", "--steps", "1", "--batch-size", "2", "--device", "cpu",
            "--threads", "1", "--timeout", "120", "--cache-root", str(tmp_path / "caches"), "--out", str(out)]
    rep = bench.main(args + ["--variants", "eager,cold", "--fast", "sampling.compile=default,sampling.stepz=1"])
    data = json.loads(out.read_text())
    eager, cold = data["results"]
    assert eager["status"] == "ok" and rep["results"][0]["variant"] == "eager"
    assert eager["process_s"] > eager["generate_s"] > 0 and eager["steady_s"] > 0
    assert eager["sampling"]["compile"] == "off" and eager["sampling"]["steps"] == 1
    assert cold["status"] == "error" and "sampling.stepz" in cold["stderr_tail"] and cold["break_even_views"] is None
    assert data["markdown_rows"].splitlines()[1] == "| cold | error | | | |"
    late = bench.run_variant("eager", "", {}, bench.parse_args(args), timeout=0.01)
    assert late["status"] == "timeout" and "0 s" in late["error"]


def test_a_first_block_that_fails_saves_on_the_next_call(tmp_path, monkeypatch):
    """cached_compilation with ``seen``: a key counts as seen only after a block that succeeded, so
    when the compiling call fails (e.g. out of memory after compilation) the next call saves."""
    fake = FakeTorchCache().install(monkeypatch)
    fields = {"torch": "t", "options": {"batches": [2]}}
    seen: set = set()
    with pytest.raises(RuntimeError, match="out of memory"):
        with CC.cached_compilation(fields, folder=tmp_path, seen=seen):
            raise RuntimeError("CUDA out of memory")
    assert fake.saves == 0 and not seen
    with CC.cached_compilation(fields, folder=tmp_path, seen=seen):
        pass
    assert fake.saves == 1 and len(seen) == 1 and len(list(tmp_path.glob("*.bin"))) == 1
    with CC.cached_compilation(fields, folder=tmp_path, seen=seen):
        pass
    assert fake.saves == 1  # seen, nothing new compiled: not collected again
