import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from novelviews.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("cmd", ["views", "eval", "distill", "export", "synth", "train", "convert", "ui"])
def test_help_has_examples(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"nvs {cmd}" in out


def test_top_level_help_lists_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for cmd in ("views", "eval", "synth", "train", "convert"):
        assert cmd in out


def test_views_end_to_end_tiny(tmp_path, tiny_model_dir, capsys):
    img = (np.random.default_rng(0).random((40, 60, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "in.png")
    out = tmp_path / "run"
    args = ["views", str(tmp_path / "in.png"), "--out", str(out), "--model", str(tiny_model_dir), "--num-views", "3",
            "--steps", "2", "--quiet", "--path", "spiral", "sampling.guidance_scale=2.0"]
    assert main(args) == 0
    for name in ("views/000.png", "views/002.png", "cameras.json", "video.mp4", "sheet.png", "config.yaml", "input.png"):
        assert (out / name).exists(), name
    cams = json.loads((out / "cameras.json").read_text())
    assert len(cams["cameras"]) == 3 and cams["convention"] == "opengl"
    assert np.allclose(cams["cameras"][0]["c2w"], cams["input"]["c2w"])  # view 0 is the input camera
    assert Image.open(out / "views" / "001.png").size == (32, 32)
    import yaml

    assert yaml.safe_load((out / "config.yaml").read_text())["sampling"]["guidance_scale"] == 2.0
    from novelviews.model.checkpoints import load_model
    from novelviews.sampling import SamplingConfig
    from novelviews.views import generate

    model, _ = load_model(tiny_model_dir)
    x = torch.zeros(1, 3, 32, 32)
    generate(model, x, torch.eye(4), torch.eye(4)[None], [0.8], cfg=SamplingConfig(steps=1, vae_tiling=True), progress=False)
    assert model.vae.use_tiling  # the knob reaches the VAE
    # same seed -> identical images; the run refuses to overwrite without --overwrite
    first = np.asarray(Image.open(out / "views" / "001.png"))
    assert main(args) == 2
    assert "already holds a previous run" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0
    assert np.array_equal(first, np.asarray(Image.open(out / "views" / "001.png")))


@pytest.mark.parametrize(
    "args,message",
    [
        (["views", "missing.png", "--out", "X"], "does not exist"),
        (["views", "NOTIMG", "--out", "X"], "not an image"),
        (["views", "IMG", "--out", "X", "sampling.stepz=3"], "unknown config key 'sampling.stepz'"),
        (["views", "IMG", "--out", "X", "sampling.eta=5"], "out of range"),
        (["views", "IMG", "--out", "X", "--path", "circle"], "path.kind"),
        (["views", "IMG", "--out", "X", "--model", "nope.ckpt"], "nope.ckpt"),
        (["synth", "X", "--size", "-3"], "size"),
        # the photo is read before any model loads: a bad photo is named even when the model is bad too
        (["views", "missing.png", "--out", "X", "--model", "nope.ckpt"], "does not exist"),
        (["distill", "NOTIMG", "--out", "X", "--model", "nope.ckpt"], "not an image"),
        (["views", "IMG", "--out", "X", "path.kind=PATHJSON"], "camera 0"),
    ],
)
def test_bad_input_one_line_error(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    Path("NOTIMG").write_text("hello")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save("IMG", format="PNG")
    Path("path.json").write_text('[{"c2w": "abc"}]')  # strings where the camera matrix belongs
    code = main([a.replace("X", str(tmp_path / "out")).replace("PATHJSON", "path.json") for a in args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_synth_and_eval_cli(tmp_path, tiny_model_dir):
    assert main(["synth", str(tmp_path / "s"), "--scenes", "1", "--views", "6", "--size", "32", "--quiet",
                 "--device", "cpu", "spp=1"]) == 0
    scene = tmp_path / "s" / "scene_0000"
    assert (scene / "transforms.json").exists() and (tmp_path / "s" / "sheet.png").exists()
    assert main(["eval", str(scene), "--out", str(tmp_path / "e"), "--model", str(tiny_model_dir), "--steps", "2",
                 "--holdout", "every:3", "--quiet", "lpips=off"]) == 0
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert set(metrics["mean"]) >= {"nearest", "reproject", "model"}


def test_demo_model_is_bundled_and_runs(tmp_path):
    """The README's main command path: the shipped model loads from package data and samples."""
    out = tmp_path / "demo"
    code = main(["views", str(ROOT / "examples" / "scene.png"), "--out", str(out), "--num-views", "2",
                 "--steps", "2", "--quiet"])
    assert code == 0
    assert Image.open(out / "views" / "001.png").size == (128, 128)


def test_python_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "novelviews", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and "novelviews" in r.stdout


def test_distill_and_export_cli(tmp_path, tiny_model_dir, capsys):
    img = (np.random.default_rng(1).random((32, 32, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "in.png")
    run = tmp_path / "nerf"
    assert main(["distill", str(tmp_path / "in.png"), "--out", str(run), "--model", str(tiny_model_dir),
                 "--steps", "2", "--device", "cpu", "--quiet", "output.video_frames=4", "occupancy.resolution=16"]) == 0
    assert (run / "checkpoints" / "last.pt").exists() and (run / "config.yaml").exists()
    assert main(["export", str(run), "--what", "mesh", "--format", "ply", "--resolution", "24", "--quiet",
                 "--threshold", "0.5"]) == 0
    assert "vertices" in capsys.readouterr().out
    # the same export as a --config file and key=value overrides, into another folder: the same mesh
    (tmp_path / "export.yaml").write_text("format: ply\nresolution: 24\n")
    assert main(["export", str(run), "--out", str(tmp_path / "again"), "--config", str(tmp_path / "export.yaml"),
                 "--quiet", "threshold=0.5", "device=cpu"]) == 0
    assert (tmp_path / "again" / "mesh.ply").read_bytes() == (run / "export" / "mesh.ply").read_bytes()
    capsys.readouterr()
    assert main(["distill", str(tmp_path / "in.png"), "--out", str(run), "--fov", "500"]) == 2
    assert "fov" in capsys.readouterr().err


def test_distill_low_memory_preset_and_overrides_win(tmp_path, capsys):
    import yaml

    from novelviews.nerf.distill import LOW_MEMORY_PRESET, preset_settings

    img = tmp_path / "in.png"
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(img)
    main(["distill", str(img), "--out", str(tmp_path / "r"), "--show-config"])
    default = yaml.safe_load(capsys.readouterr().out)
    main(["distill", str(img), "--out", str(tmp_path / "r"), "--low-memory", "--show-config", "render.chunk=1000"])
    low = yaml.safe_load(capsys.readouterr().out)
    assert default["phases"]["batch_sizes"] == [6, 1] and default["sampler"]["num_samples"] == 64
    assert low["phases"]["batch_sizes"] == [3, 1] and low["sampler"]["num_samples"] == 48
    assert low["render"]["chunk"] == 1000 != preset_settings(LOW_MEMORY_PRESET)["render.chunk"]  # the override wins
    main(["distill", str(img), "--out", str(tmp_path / "r"), "--config", "distill-low-memory", "--show-config"])
    assert yaml.safe_load(capsys.readouterr().out) == {**low, "render": {**low["render"], "chunk": 4096}}
    assert not (tmp_path / "r").exists()  # --show-config writes nothing


def test_unusual_photos_get_a_note():
    from novelviews.views import unusual_image_note

    assert unusual_image_note("a.png", 480, 640, 128, "crop") is None
    tiny = unusual_image_note("a.png", 8, 8, 128, "crop")
    assert "only 8 x 8 pixels" in tiny and "\n" not in tiny
    wide = unusual_image_note("a.png", 50, 4000, 128, "crop")
    assert "keeps 1.2 %" in wide and "image.mode=pad" in wide
    assert unusual_image_note("a.png", 50, 4000, 128, "pad") is None  # padding keeps it all


def test_cpu_preset_is_valid_and_in_the_help(capsys):
    from novelviews.config import load
    from novelviews.nerf.distill import CPU_PRESET, DistillConfig, cpu_note

    cfg = load(DistillConfig, files=[CPU_PRESET])
    cfg.validate()
    assert cfg.phases.steps == 200 and cfg.phases.batch_sizes == (1, 1) and cfg.sampler.num_samples == 32
    with pytest.raises(SystemExit):
        main(["distill", "--help"])
    assert f"--config {CPU_PRESET}" in capsys.readouterr().out
    assert f"--config {CPU_PRESET}" in cpu_note(DistillConfig())
    assert cpu_note(cfg) is None  # the CPU preset itself gets no note


def test_export_convert_and_ui_take_config_overrides(tmp_path, tiny_model_dir, capsys, monkeypatch):
    import yaml

    def shown(args):
        assert main(args + ["--show-config"]) == 0
        return yaml.safe_load(capsys.readouterr().out)

    assert shown(["export", "RUN", "--format", "glb", "resolution=64", "what=video", "frames=12"]) == \
        {"what": "video", "format": "glb", "resolution": 64, "threshold": None, "frames": 12, "size": 0,
         "cameras": None, "device": "auto"}
    ui = shown(["ui", "--port", "8080", "host=0.0.0.0", "distill.phases.steps=50", "distill.sampler.num_samples=16"])
    assert (ui["port"], ui["host"], ui["model"]) == (8080, "0.0.0.0", "demo")
    assert ui["distill"] == {"phases": {"steps": 50}, "sampler": {"num_samples": 16}}
    assert shown(["convert", "CKPT", "OUT", "--raw", "precision=bf16"]) == \
        {"use_ema": False, "arch": None, "precision": "bf16"}
    # bad values are one line and exit status 2, before anything starts
    for args, message in [(["export", "RUN", "resolution=abc"], "'resolution': expected an integer"),
                          (["ui", "port=70000"], "port 70000 is not a TCP port"),
                          (["ui", "distill.phases.stepz=5"], "unknown config key 'distill.phases.stepz'"),
                          (["convert", "CKPT", "OUT", "precision=fp64"], "'precision'")]:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1, err
    # the UI's distillation overrides reach launch() as checked dotted keys (old names renamed)
    import novelviews.ui as ui_mod

    seen = {}
    monkeypatch.setattr(ui_mod, "launch", lambda **kw: seen.update(kw))
    assert main(["ui", "--device", "cpu", "distill.schedule.steps=7", "open_browser=true"]) == 0
    assert seen["distill_overrides"] == {"phases.steps": 7} and seen["open_browser"] is True
    assert "warning: config key 'distill.schedule' is now 'distill.phases'" in capsys.readouterr().err
    # a real conversion with overrides: the written weights are bf16
    from safetensors import safe_open

    out = tmp_path / "converted"
    assert main(["convert", str(tiny_model_dir), str(out), "precision=bf16"]) == 0
    with safe_open(str(out / "cc_projection.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}


def test_old_names_on_the_command_line_warn_in_one_line(tmp_path, capsys):
    import yaml

    def shown(args):
        assert main(args + ["--show-config"]) == 0
        captured = capsys.readouterr()
        return yaml.safe_load(captured.out), captured.err

    new, err = shown(["train", "--synth", "1", "--out", str(tmp_path / "t"), "--arch", "tiny", "precision=bf16"])
    assert new["arch"] == "tiny" and err == ""
    old, err = shown(["train", "--synth", "1", "--out", str(tmp_path / "t"), "--model", "tiny", "precision=bf16-mixed"])
    assert old == new
    assert err.splitlines() == ["warning: nvs train --model is now --arch (the old name still works)",
                                "warning: config value precision=bf16-mixed is now precision=bf16 (the old value still works)"]
    assert main(["train", "--synth", "1", "--out", str(tmp_path / "t"), "--model", "tiny", "--arch", "demo"]) == 2
    assert "keep only --arch" in capsys.readouterr().err
    img = tmp_path / "in.png"
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(img)
    new, _ = shown(["distill", str(img), "--out", str(tmp_path / "r"), "phases.render_scales=[0.25,0.5]"])
    old, err = shown(["distill", str(img), "--out", str(tmp_path / "r"), "schedule.render_scales=[0.25,0.5]"])
    assert old == new and new["phases"]["render_scales"] == [0.25, 0.5] and "schedule" not in new
    assert err == "warning: config key 'schedule' is now 'phases' (the old name still works)\n"
    # --steps (a shortcut for the new key) and an old-name override are one setting: the override wins
    both, _ = shown(["distill", str(img), "--out", str(tmp_path / "r"), "--steps", "5", "schedule.steps=6"])
    assert both["phases"]["steps"] == 6
