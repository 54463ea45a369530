"""``nvs ui``: the handlers called directly (no browser), the camera drawing, and one
end-to-end run in a real headless browser (Debian chromium + playwright; skipped when
either is missing).

Screenshot for the docs: ``NVS_UI_SCREENSHOT=1 python -m pytest tests/test_ui.py -k browser``
writes ``docs/images/ui.png`` (``NVS_UI_MODEL=demo NVS_UI_STEPS=20`` for real-looking views).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from novelviews.errors import ConfigError, NovelViewsError
from novelviews.ui import (
    INPUT_COLOR,
    TARGET_COLOR,
    UIHandlers,
    UISettings,
    camera_figure,
    example_image_path,
    launch,
    path_cameras,
)

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TINY_DISTILL = {"phases.batch_sizes": "[2,1]", "field.grid.n_levels": 4, "field.grid.log2_hashmap_size": 10,
                "field.grid.base_resolution": 4, "field.grid.per_level_scale": 1.5, "field.mlp_width": 16,
                "sampler.kind": "uniform", "sampler.num_samples": 12, "output.video_frames": 2,
                "occupancy.resolution": 16}


@pytest.fixture()
def handlers(tiny_model_dir, tmp_path):
    return UIHandlers(model=str(tiny_model_dir), output_root=tmp_path / "ui", device="cpu",
                      distill_overrides=TINY_DISTILL)


# --------------------------------------------------------------------------- uploads


def test_example_is_bundled_and_copied_per_request(handlers):
    src = example_image_path()
    assert src.is_file() and src.stat().st_size < 100_000
    a, b = handlers.load_example(), handlers.load_example()
    assert a != b and Path(a).parent.parent == handlers.output_root
    assert Path(a).read_bytes() == src.read_bytes()


def test_check_image_accepts_the_example_and_shows_the_crop(handlers):
    from novelviews.io.images import center_crop_resize, load_image

    img, msg = handlers.check_image(handlers.load_example())
    assert msg.startswith("Image OK")
    want, _ = center_crop_resize(load_image(example_image_path()), None, 256)
    np.testing.assert_allclose(img, want, atol=1e-6)


def test_bad_uploads_become_messages(handlers, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    huge = tmp_path / "huge.png"
    Image.new("L", (12_000, 1)).save(huge)
    cases = {text: "not an image", gif: "animated", huge: "larger than", tmp_path / "gone.png": "does not exist"}
    for path, words in cases.items():
        img, msg = handlers.check_image(str(path))
        assert img is None and msg.startswith("Error:") and words in msg, (path, msg)
        assert str(tmp_path) not in msg and path.name in msg  # the file by name, not the server's folders
    assert handlers.check_image(None) == (None, "Upload an image or click *Use the example*.")
    # generating from a bad upload: one error message, no run folder, no exception
    results = list(handlers.generate(str(gif), UISettings(num_views=2, steps=1)))
    assert len(results) == 1 and "animated" in results[0].status and results[0].gallery == []
    assert results[0].run_dir is None
    assert not list(handlers.output_root.glob("views-*"))
    results = list(handlers.generate(None, UISettings()))
    assert results[0].status.startswith("Error: no input image")


def test_settings_are_validated(handlers):
    cfg = UISettings(fov_deg=40, elevation_deg=10, scale=1.5, path="spiral", num_views=5, steps=3,
                     seed=7).views_config("demo", "cpu")
    assert (cfg.camera.fov_deg, cfg.camera.elevation_deg, cfg.camera.scale) == (40, 10, 1.5)
    assert (cfg.path.kind, cfg.path.num_views, cfg.sampling.steps, cfg.sampling.seed) == ("spiral", 5, 3, 7)
    with pytest.raises(ConfigError, match="fov_deg"):
        UISettings(fov_deg=179).views_config()
    with pytest.raises(ConfigError, match="orbit"):
        UISettings(path="helix").views_config()
    img, msg = handlers.preview_cameras(UISettings(path="helix"))
    assert img is None and msg.startswith("Error:") and "helix" in msg
    img, msg = handlers.preview_cameras(UISettings(num_views=6))
    assert img.shape == (320, 640, 3) and msg == "6 cameras on a orbit path"


# --------------------------------------------------------------------------- camera drawing


def _near(img: np.ndarray, uv, color, radius=3) -> bool:
    u, v = int(round(uv[0])), int(round(uv[1]))
    patch = img[v - radius: v + radius + 1, u - radius: u + radius + 1].reshape(-1, 3).astype(int)
    return bool((np.abs(patch - np.array(color)).sum(1) < 30).any())


def test_camera_figure_draws_cameras_where_they_are():
    cfg = UISettings(num_views=4, elevation_deg=30).views_config()
    c2w_in, targets, fovs, fov_in = path_cameras(cfg)
    # the orbit's view 0 is the input camera; views sit 90 degrees apart at elevation 30 deg
    torch.testing.assert_close(targets[0], c2w_in)
    az = torch.rad2deg(torch.atan2(targets[:, 1, 3], targets[:, 0, 3])) % 360
    torch.testing.assert_close(az, torch.tensor([0.0, 90.0, 180.0, 270.0], dtype=torch.float64), atol=1e-6,
                               rtol=0)
    img, maps = camera_figure(c2w_in, targets, fovs, fov_in, size=200)
    assert img.shape == (200, 400, 3) and img.dtype == np.uint8
    top, side = maps["top"], maps["side"]
    centre = c2w_in[:3, 3]
    assert _near(img, top(centre), INPUT_COLOR) and _near(img, side(centre), INPUT_COLOR)
    for i in (1, 2, 3):
        assert _near(img, top(targets[i, :3, 3]), TARGET_COLOR), i
    # top view: +x right, +y up in the image; the input (azimuth 0) is right of the origin
    ox, oy = top(np.zeros(3))
    u1, v1 = top(targets[1, :3, 3])  # azimuth 90: +y
    assert top(centre)[0] > ox + 40 and v1 < oy - 40 and abs(u1 - ox) < 1
    # side view: the cameras are above the origin (elevation 30 deg -> z > 0)
    assert side(centre)[1] < side(np.zeros(3))[1] - 20
    # nothing drawn where no camera is: the bottom-left corner of the top panel is background
    assert (img[185:195, 5:15] == 250).all()
    with pytest.raises(NovelViewsError):
        camera_figure(torch.full((4, 4), float("nan")), targets, fovs, fov_in)


# --------------------------------------------------------------------------- generation


def test_generate_matches_nvs_views_and_runs_are_isolated(handlers, tiny_model_dir, tmp_path):
    from novelviews.views import run_views

    settings = UISettings(num_views=3, steps=2, seed=5, path="orbit")
    calls = []
    results = list(handlers.generate(handlers.load_example(), settings, progress=lambda f, d: calls.append(f)))
    assert [len(r.gallery) for r in results] == [3, 3]
    final = results[-1]
    assert final.status.startswith("Done: 3 views") and calls[0] == 0.0 and calls[-1] == 1.0
    run = Path(final.run_dir)
    assert run.parent == handlers.output_root
    names = sorted(Path(f).name for f in final.files)
    assert names == ["cameras.json", "sheet.png", "video.mp4", "views.zip"]
    assert final.plot.shape == (320, 640, 3)

    # same outputs as the CLI pipeline (same model, seeds and cameras)
    ref = Path(run_views(example_image_path(), tmp_path / "ref", settings.views_config(str(tiny_model_dir), "cpu"),
                         progress=False)["out"])
    for i in range(3):
        a = np.asarray(Image.open(run / "views" / f"{i:03d}.png"), dtype=int)
        b = np.asarray(Image.open(ref / "views" / f"{i:03d}.png"), dtype=int)
        assert np.abs(a - b).max() <= 1, i
    ja, jb = json.loads((run / "cameras.json").read_text()), json.loads((ref / "cameras.json").read_text())
    assert ja == jb

    import zipfile

    with zipfile.ZipFile(run / "views.zip") as zf:
        assert sorted(zf.namelist()) == ["views/000.png", "views/001.png", "views/002.png"]
        assert zf.read("views/001.png") == (run / "views" / "001.png").read_bytes()

    # a second request (another tab) gets its own folder and leaves the first untouched
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    other = list(handlers.generate(handlers.load_example(), UISettings(num_views=2, steps=1, seed=9)))[-1]
    assert Path(other.run_dir) != run and len(other.gallery) == 2
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_closing_the_generator_cancels_between_batches(handlers):
    # 9 views with the default batch of 8: cancel after the first batch
    gen = handlers.generate(handlers.load_example(), UISettings(num_views=9, steps=1))
    first = next(gen)
    assert len(first.gallery) == 8 and first.video is None
    gen.close()
    run = Path(first.run_dir)
    assert len(list((run / "views").glob("*.png"))) == 8
    assert not (run / "video.mp4").exists() and not (run / "cameras.json").exists()


def test_distill_streams_previews_and_exports(handlers):
    import trimesh

    results = list(handlers.distill(handlers.load_example(), UISettings(), steps=4, preview_every=2,
                                    mesh_resolution=24))
    assert len(results) == 2 and results[0].status == "Distilling: step 2 / 4"
    assert results[-1].status.startswith("Distilled 4 steps")
    assert [Path(p).name for p in results[0].previews] == ["step_000002.png"]
    assert [Path(p).name for p in results[-1].previews] == ["step_000002.png", "step_000004.png"]
    prev = np.asarray(Image.open(results[-1].previews[-1]))
    assert prev.shape[1] == 4 * prev.shape[0]  # input view + three azimuths side by side
    files = {Path(f).name: f for f in results[-1].files}
    assert set(files) >= {"mesh.glb", "metrics.csv"}
    rows = Path(files["metrics.csv"]).read_text().strip().splitlines()
    assert len(rows) == 5
    mesh = trimesh.load(files["mesh.glb"], force="mesh")
    assert len(mesh.faces) > 0
    bad = list(handlers.distill(None, UISettings()))
    assert len(bad) == 1 and bad[0].status.startswith("Error: no input image")


def test_launch_rejects_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="port"):
        launch(port=70000, output_root=tmp_path)
    with pytest.raises(NovelViewsError, match="--model"):
        launch(model=str(tmp_path / "nope"), output_root=tmp_path)


def test_build_app_wires_the_page(handlers):
    gr = pytest.importorskip("gradio")
    from novelviews.ui import build_app

    demo = build_app(handlers)
    assert isinstance(demo, gr.Blocks)
    ids = {b.elem_id for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    assert {"upload", "gallery", "video", "cameras-plot", "downloads", "generate-btn", "cancel-btn",
            "distill-btn", "status"} <= ids


# --------------------------------------------------------------------------- real browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_browser_upload_generate_gallery(tiny_model_dir, tmp_path):
    pytest.importorskip("gradio")
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    model = os.environ.get("NVS_UI_MODEL", str(tiny_model_dir))
    steps = os.environ.get("NVS_UI_STEPS", "2")
    shot = ROOT / "docs" / "images" / "ui.png" if os.environ.get("NVS_UI_SCREENSHOT") else tmp_path / "ui.png"
    port = _free_port()
    demo = launch(model=model, port=port, output_root=tmp_path / "ui", device="cpu", block=False)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.set_default_timeout(30_000)
                page.goto(f"http://127.0.0.1:{port}/")
                page.wait_for_selector("#generate-btn")
                page.set_input_files("#upload input[type=file]", str(ROOT / "examples" / "scene.png"))
                page.wait_for_selector("#status:has-text('Image OK')")
                page.wait_for_selector("#input-preview img")
                for sel, value in (("#num-views", "3"), ("#steps", steps)):
                    box = page.locator(f"{sel} input[type=number]")
                    box.fill(value)
                    box.press("Enter")
                page.click("#generate-btn")
                page.wait_for_selector("#status:has-text('Done: 3 views')", timeout=45_000)
                page.wait_for_selector("#downloads :text('cameras.json')")
                assert page.locator("#gallery img").count() == 3
                assert page.locator("#video video").count() == 1
                shot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shot), full_page=True)
            finally:
                browser.close()
    finally:
        demo.close()
    assert Image.open(shot).size[0] == 1280
    runs = list((tmp_path / "ui").glob("views-*"))
    assert len(runs) == 1 and len(list((runs[0] / "views").glob("*.png"))) == 3


def test_two_requests_at_once_get_separate_run_folders(handlers):
    """Two tabs generating at the same time (their batches interleaved): each request writes its own
    folder, complete, and neither sees the other's views."""
    a = handlers.generate(handlers.load_example(), UISettings(num_views=2, steps=1, seed=1))
    b = handlers.generate(handlers.load_example(), UISettings(num_views=3, steps=1, seed=2))
    last = {}
    for name, gen in [("a", a), ("b", b)] * 6:  # one batch of each in turn, until both are done
        res = next(gen, None)
        if res is not None:
            last[name] = res
    ra, rb = last["a"], last["b"]
    assert ra.status.startswith("Done: 2 views") and rb.status.startswith("Done: 3 views")
    assert ra.run_dir != rb.run_dir
    assert sorted(p.name for p in (Path(ra.run_dir) / "views").iterdir()) == ["000.png", "001.png"]
    assert sorted(p.name for p in (Path(rb.run_dir) / "views").iterdir()) == ["000.png", "001.png", "002.png"]
