"""The bad-input table (docs/BAD_INPUTS.md): each row is a command a user might run with a mistake in
it. Every one exits with status 2 and one line ``error: ...`` that names the problem (the words
checked here), without a traceback, and leaves what was already written as it was."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from novelviews.cli import main

ROOT = Path(__file__).resolve().parents[1]

# (what is wrong, the command line (IMG, TXT, RUN, OUT... are files made by _workspace), words of the message)
ROWS = [
    # photos
    ("photo file missing", "views missing.png --out OUT", "does not exist"),
    ("photo is a text file", "views TXT --out OUT", "not an image"),
    ("photo is a text file (distill)", "distill TXT --out OUT", "not an image"),
    ("photo is an animated GIF", "views ANIM --out OUT", "animated"),
    ("photo is 12000 x 1 pixels", "views HUGE --out OUT", "larger than"),
    ("photo missing and model missing: the photo is named first", "views missing.png --out OUT --model nope.ckpt",
     "does not exist"),
    # camera paths
    ("camera path file missing", "views IMG --out OUT path.kind=missing.json", "does not exist"),
    ("camera path not JSON", "views IMG --out OUT path.kind=TXT.json", "not valid JSON"),
    ("camera path holds no cameras", "views IMG --out OUT path.kind=EMPTY.json", "holds no cameras"),
    ("camera path of strings", "views IMG --out OUT path.kind=STRINGS.json", "camera 0"),
    ("camera path matrix of 9 numbers", "views IMG --out OUT path.kind=SHORT.json", "4x4"),
    ("camera path matrix not a rotation", "views IMG --out OUT path.kind=SKEW.json", "rotation"),
    ("camera path matrix with NaN", "views IMG --out OUT path.kind=NAN.json", "NaN"),
    ("camera path fov of 200 degrees", "views IMG --out OUT path.kind=FOV.json", "fov"),
    ("unknown path name", "views IMG --out OUT --path circle", "path.kind"),
    # config keys and values
    ("unknown config key", "views IMG --out OUT sampling.stepz=3", "unknown config key 'sampling.stepz'"),
    ("value out of range", "views IMG --out OUT sampling.eta=5", "out of range"),
    ("value of the wrong type", "views IMG --out OUT sampling.steps=many", "sampling.steps"),
    ("batch size 0", "views IMG --out OUT sampling.batch_size=0", "batch_size"),
    ("config file missing", "views IMG --out OUT --config missing.yaml", "missing.yaml"),
    ("config file not YAML", "views IMG --out OUT --config BADYAML", "BADYAML"),
    ("distill phases do not match", "distill IMG --out OUT phases.batch_sizes=[6]", "one entry per"),
    ("distill render.compile unknown", "distill IMG --out OUT render.compile=auto", "render.compile"),
    ("distill steps 0", "distill IMG --out OUT --steps 0", "steps"),
    ("negative anchors", "distill IMG --out OUT --anchors -1", "anchors"),
    ("fov of 500 degrees", "distill IMG --out OUT --fov 500", "fov"),
    ("views camera fov of 0 degrees", "views IMG --out OUT camera.fov_deg=0", "fov"),
    ("synth size -3", "synth OUT --size -3", "size"),
    ("synth 0 scenes", "synth OUT --scenes 0", "scenes"),
    # models and checkpoints
    ("model file missing", "views IMG --out OUT --model nope.ckpt", "nope.ckpt"),
    ("model file of random bytes", "views IMG --out OUT --model JUNK.ckpt", "JUNK.ckpt"),
    ("model folder without a model", "views IMG --out OUT --model EMPTYDIR", "EMPTYDIR"),
    ("safetensors file that is text", "views IMG --out OUT --model TXT.safetensors", "TXT.safetensors"),
    ("convert a missing checkpoint", "convert nope.ckpt OUT", "nope.ckpt"),
    # devices
    ("CUDA asked for on a machine without it", "views IMG --out OUT --device cuda", "no CUDA GPU"),
    ("a device that is not one", "views IMG --out OUT --device gpu0", "is not a device"),
    # datasets
    ("eval on a folder that is no scene", "eval EMPTYDIR --out OUT", "cannot tell the dataset layout"),
    ("eval with an unknown layout", "eval EMPTYDIR --out OUT format=xyz", "format"),
    ("eval on a missing folder", "eval missing_scene --out OUT", "missing_scene"),
    ("transforms.json that is not JSON", "eval BADSCENE --out OUT", "transforms.json"),
    # run folders
    ("--out is a file", "views IMG --out TXT", "not a folder"),
    ("--out holds a previous run", "views IMG --out RUN", "already holds a previous run"),
    ("--resume with nothing to resume", "distill IMG --out OUT --resume", "cannot resume"),
    ("export of a folder that is no run", "export EMPTYDIR", "EMPTYDIR"),
]


def _workspace(tmp_path: Path) -> None:
    """The files the rows name, in the current folder."""
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save("IMG", format="PNG")
    Path("TXT").write_text("hello")
    Path("TXT.json").write_text("this is not json")
    Path("TXT.safetensors").write_text("hello")
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save("ANIM", format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    Image.new("L", (12_000, 1)).save("HUGE", format="PNG")
    eye = np.eye(4).tolist()
    Path("EMPTY.json").write_text("[]")
    Path("STRINGS.json").write_text(json.dumps([{"c2w": "abc"}]))
    Path("SHORT.json").write_text(json.dumps([{"c2w": [1.0] * 9, "fov_deg": 50}]))
    skew = np.eye(4)
    skew[0, 1] = 0.7
    Path("SKEW.json").write_text(json.dumps([{"c2w": skew.tolist(), "fov_deg": 50}]))
    Path("NAN.json").write_text(json.dumps([{"c2w": [[math.nan] * 4] * 4, "fov_deg": 50}]))
    Path("FOV.json").write_text(json.dumps([{"c2w": eye, "fov_deg": 200}]))
    Path("BADYAML").write_text("a: [unclosed\n")
    Path("JUNK.ckpt").write_bytes(np.random.default_rng(0).bytes(4096))
    Path("EMPTYDIR").mkdir()
    Path("BADSCENE").mkdir()
    Path("BADSCENE/transforms.json").write_text("{ not json")
    Path("RUN").mkdir()
    Path("RUN/config.yaml").write_text("x: 1\n")


@pytest.mark.parametrize("what,line,words", ROWS, ids=[r[0] for r in ROWS])
def test_bad_input_gives_one_line_and_status_2(tmp_path, monkeypatch, capsys, what, line, words):
    monkeypatch.chdir(tmp_path)
    _workspace(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    code = main([a.replace("OUT", str(tmp_path / "out")) for a in line.split()])
    err = capsys.readouterr().err
    assert code == 2, (what, err[-1500:])
    assert err.startswith("error: ") and words in err and "Traceback" not in err, (what, err)
    assert len(err.strip().splitlines()) == 1, (what, err)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p in before}
    assert after == before  # nothing already written was changed


def test_the_table_is_in_the_docs():
    doc = (ROOT / "docs" / "BAD_INPUTS.md").read_text()
    assert len(ROWS) >= 40
    for what, line, words in ROWS:
        assert f"| {what} | `nvs {line}` |" in doc, what


def test_error_messages_stay_on_one_line_whatever_the_names(tmp_path, capsys):
    import pickle

    from novelviews.errors import DatasetError

    err = DatasetError("frames 'a\nb' and 'c\rd\te' are missing")
    assert str(err) == "frames 'a\\nb' and 'c\\rd\\te' are missing"
    assert str(pickle.loads(pickle.dumps(err))) == str(err)  # escaping is idempotent
    # a dataset whose image file name holds a line break: the CLI still prints one line, status 2
    (tmp_path / "transforms.json").write_text(json.dumps(
        {"camera_angle_x": 0.8, "frames": [{"file_path": "img\nname.png", "transform_matrix": np.eye(4).tolist()}]}))
    assert main(["eval", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    out = capsys.readouterr()
    lines = [ln for ln in (out.err + out.out).splitlines() if ln.strip()]
    assert len(lines) == 1 and "img\\nname" in lines[0], lines
