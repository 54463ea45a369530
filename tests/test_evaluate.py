"""Metrics, holdout splits, baselines, reports and `run_eval` (novelviews.evaluate)."""

import json
import math
import sys
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
import yaml

from novelviews import cameras as C
from novelviews import evaluate as E
from novelviews.config import from_dict
from novelviews.errors import ConfigError, DatasetError, NovelViewsError


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def synth_scene(tmp_path_factory):
    """One procedural orbit scene: 6 views at 32 px with depth (rendered once per module)."""
    from novelviews.synth.generate import SynthConfig, generate

    out = tmp_path_factory.mktemp("synth")
    cfg = SynthConfig(scenes=1, views=6, size=32, family="orbit", orbit_path="ordered", seed=0, spp=1, sheet=False)
    return generate(cfg, out, progress=False)[0]


@pytest.fixture(scope="module")
def tiny():
    from novelviews.model.configuration import model_config
    from novelviews.model.ldm import ViewConditionedLDM

    torch.manual_seed(0)
    return ViewConditionedLDM(model_config("tiny")).eval()


def eval_cfg(**kw):
    base = {"sampling": {"steps": 2, "batch_size": 4}, "lpips": "off"}
    base.update(kw)
    return from_dict(E.EvalConfig, base)


# --------------------------------------------------------------------------- metrics


def test_psnr_hand_computed_and_ssim_matches_skimage():
    from skimage.metrics import structural_similarity

    a = torch.zeros(1, 3, 8, 8)
    b = torch.full((1, 3, 8, 8), 0.1)
    assert E.psnr(a, b).item() == pytest.approx(20.0, abs=1e-4)  # MSE 0.01
    assert math.isinf(E.psnr(a, a).item()) or E.psnr(a, a).item() > 100
    assert E.ssim(a + 0.3, a + 0.3).item() == pytest.approx(1.0)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 20, 24, generator=g)
    y = (x + 0.15 * torch.randn(2, 3, 20, 24, generator=g)).clamp(0, 1)
    for i in range(2):
        xi, yi = x[i].permute(1, 2, 0).double().numpy(), y[i].permute(1, 2, 0).double().numpy()
        ref = structural_similarity(xi, yi, channel_axis=-1, data_range=1.0)
        assert E.ssim(x[i], y[i]).item() == pytest.approx(ref, abs=1e-5)
        refg = structural_similarity(xi, yi, channel_axis=-1, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)
        assert E.ssim(x[i], y[i], gaussian=True).item() == pytest.approx(refg, abs=1e-5)
    rows = E.score(x, y, "both", None, lpips_on=True)
    assert set(rows[0]) == {"psnr", "ssim", "ssim_gaussian", "lpips"} and rows[0]["lpips"] is None
    assert rows[1]["psnr"] == pytest.approx(E.psnr(x[1], y[1]).item(), abs=1e-5)


def test_gaussian_blur_matches_a_dense_reference():
    from novelviews.evaluate import gaussian_blur

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 17, 13, generator=g, dtype=torch.float64)
    sigma = 1.7
    # slow reference: every output pixel is the normalised 2-D Gaussian sum over the edge-replicated image
    r = math.ceil(3 * sigma)
    xp = torch.nn.functional.pad(x, (r, r, r, r), mode="replicate")
    ax = torch.arange(-r, r + 1, dtype=torch.float64)
    w = torch.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma**2))
    w = w / w.sum()
    ref = torch.zeros_like(x)
    for i in range(17):
        for j in range(13):
            ref[:, :, i, j] = (xp[:, :, i : i + 2 * r + 1, j : j + 2 * r + 1] * w).sum((-1, -2))
    torch.testing.assert_close(gaussian_blur(x, sigma), ref)
    torch.testing.assert_close(gaussian_blur(x[0], sigma), ref[0])  # [C, H, W] in, [C, H, W] out
    const = torch.full((1, 3, 9, 9), 0.3, dtype=torch.float64)
    torch.testing.assert_close(gaussian_blur(const, 4.0), const)  # replicated edges keep a flat image flat
    assert torch.equal(gaussian_blur(x, 0.0), x)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_blur(x, -1.0)


def test_lpips_unavailable_is_a_message_not_a_crash(monkeypatch):
    monkeypatch.setitem(sys.modules, "lpips", None)  # import lpips -> ImportError
    metric, msg = E.load_lpips("vgg", None)
    assert metric is None and "lpips" in msg and "null" in msg and "\n" not in msg
    with pytest.raises(ConfigError):
        E.load_lpips("squeeze")


def test_lpips_backbone_key_mapping():
    """torchvision `features.N.*` keys land in lpips' slices, which keep the layer numbers."""
    net = torch.nn.Module()
    s1, s2 = torch.nn.Sequential(), torch.nn.Sequential()
    s1.add_module("0", torch.nn.Conv2d(3, 4, 3))
    s1.add_module("1", torch.nn.ReLU())
    s2.add_module("2", torch.nn.Conv2d(4, 5, 3))
    net.add_module("slice1", s1)
    net.add_module("slice2", s2)
    tv = {"features.0.weight": torch.ones(4, 3, 3, 3), "features.0.bias": torch.ones(4),
          "features.2.weight": torch.full((5, 4, 3, 3), 2.0), "features.2.bias": torch.ones(5),
          "classifier.0.weight": torch.ones(2, 2)}
    sd = E.lpips_backbone_state(net, tv)
    net.load_state_dict(sd)
    assert torch.equal(net.slice2[0].weight, tv["features.2.weight"])
    assert set(sd) == {"slice1.0.weight", "slice1.0.bias", "slice2.2.weight", "slice2.2.bias"}
    with pytest.raises(NovelViewsError):
        E.lpips_backbone_state(net, {"features.0.weight": torch.ones(4, 3, 3, 3)})


# --------------------------------------------------------------------------- holdout


def test_parse_holdout_never_leaks():
    g = E.parse_holdout("every:4", 10)
    assert len(g) == 1 and g[0].targets == [0, 4, 8] and g[0].inputs == [1, 2, 3, 5, 6, 7, 9]
    g = E.parse_holdout("list:0,5,-1", 10)
    assert g[0].targets == [0, 5, 9] and 9 not in g[0].inputs and len(g[0].inputs) == 7
    g = E.parse_holdout("loo", 5)
    assert [x.targets for x in g] == [[0], [1], [2], [3], [4]]
    for spec, n in [("every:2", 7), ("list:1,3", 6), ("loo", 6)]:
        for grp in E.parse_holdout(spec, n):
            assert not set(grp.targets) & set(grp.inputs)
            assert sorted(grp.targets + grp.inputs) == list(range(n))
    for bad in ["every:1", "every:x", "list:", "list:0,99", "sometimes", "list:0,1,2"]:
        with pytest.raises(ConfigError):
            E.parse_holdout(bad, 3)
    with pytest.raises(DatasetError):
        E.parse_holdout("loo", 1)


def test_run_eval_generates_from_the_other_views_only(synth_scene, tiny, tmp_path, monkeypatch):
    import novelviews.multiview as MV

    seen = []
    real = MV.generate_nearest

    def spy(model, scene, target_c2w, *a, **kw):
        seen.append((list(scene.indices), target_c2w.clone()))
        return real(model, scene, target_c2w, *a, **kw)

    monkeypatch.setattr(MV, "generate_nearest", spy)
    cfg = eval_cfg(holdout="loo", methods=["nearest", "model"], max_views=3, sampling={"steps": 1})
    info = E.run_eval(synth_scene, tmp_path / "loo", cfg, progress=False, model=tiny)
    assert info["views"] == 3 and len(seen) == 3
    from novelviews.io.datasets import load_scene

    scene = load_scene(synth_scene)
    for inputs, tgt in seen:
        (t,) = [i for i in range(6) if torch.allclose(scene.c2w[i], tgt[0])]
        assert t not in inputs and sorted(inputs + [t]) == list(range(6))
    m = json.loads((tmp_path / "loo" / "metrics.json").read_text())
    for v in m["views"]:
        assert v["nearest"] != v["index"] and v["index"] not in v["details"]["model"]["anchors"]
        assert v["metrics"]["nearest"]["psnr"] < 60  # a copy of itself would be exact


# --------------------------------------------------------------------------- reprojection


def test_reproject_identity_and_known_shift():
    rng = np.random.default_rng(0)
    S = 16
    img = rng.random((S, S, 3)).astype(np.float32)
    depth = np.full((S, S), 2.0, np.float32)
    K = C.intrinsics_from_focal(16.0, 16.0, 8.0, 8.0)
    cam = C.look_at([0.0, -3.0, 0.5], [0.0, 0.0, 0.5])
    out, cov = E.reproject(img, depth, K, cam, K, cam, S)
    assert cov == 1.0 and np.allclose(out, img, atol=1e-6)
    # move the camera 0.25 along its own x axis: a plane at z-depth 2 slides by fx * 0.25 / 2 = 2 px
    moved = cam.clone()
    moved[:3, 3] += 0.25 * cam[:3, 0]
    for ss in (1, 3):
        out, cov = E.reproject(img, depth, K, cam, K, moved, S, supersample=ss)
        assert np.array_equal(out[:, : S - 2], img[:, 2:])
        assert cov == pytest.approx((S - 2) / S)
    # occlusion: a near patch wins over the far plane where both land
    d2 = depth.copy()
    d2[:, 8:10] = 1.0  # columns 8, 9 at depth 1 slide by 4 px, onto columns 4, 5 (far ones slide 2)
    out, _ = E.reproject(img, d2, K, cam, K, moved, S, supersample=1)
    assert np.array_equal(out[:, 4:6], img[:, 8:10])
    # pixels without depth are at infinity: a pure translation leaves them in place
    sky = np.zeros((S, S), np.float32)
    out, cov = E.reproject(img, sky, K, cam, K, moved, S, supersample=1)
    assert cov == 1.0 and np.array_equal(out, img)
    out, cov = E.reproject(img, sky, K, cam, K, moved, S, sky=False, fill=(0.5, 0.5, 0.5))
    assert cov == 0.0 and np.allclose(out, 0.5)


def test_reprojection_beats_nearest_copy_on_synth(synth_scene, tmp_path):
    cfg = eval_cfg(holdout="every:2", methods=["nearest", "reproject"], size=32)
    info = E.run_eval(synth_scene, tmp_path / "geo", cfg, progress=False)
    mean = info["mean"]
    assert info["views"] == 3 and mean["reproject"]["count"] == 3
    assert mean["reproject"]["psnr"] > mean["nearest"]["psnr"] + 1.0
    assert mean["reproject"]["ssim"] > mean["nearest"]["ssim"] + 0.1
    assert info["scale_sources"] == ["depth (0.2-quantile)"]


# --------------------------------------------------------------------------- reports


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.imgs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(dict(attrs)["src"])


def test_report_files_written_and_parse(synth_scene, tiny, tmp_path):
    import base64
    import io

    from PIL import Image

    out = tmp_path / "run"
    cfg = eval_cfg(holdout="list:1,4", ssim="both", lpips="vgg")
    info = E.run_eval(synth_scene, out, cfg, progress=False, model=tiny)
    assert info["views"] == 2
    m = json.loads((out / "metrics.json").read_text())
    assert m["methods"] == ["nearest", "reproject", "model", "model_k"]
    assert [v["index"] for v in m["views"]] == [1, 4] and m["holdout"]["targets"] == [1, 4]
    assert m["seed"] == 0 and m["model"]["camera_mode"] == "6dof+1" and m["model"]["parameters"] > 0
    assert m["config"]["holdout"] == "list:1,4" and m["lpips"]["available"] is False
    for v in m["views"]:
        assert v["num_inputs"] == 4 and v["seed"] == v["index"]
        assert len(v["details"]["model_k"]["anchors"]) == 2
        for meth in m["methods"]:
            r = v["metrics"][meth]
            assert set(r) == {"psnr", "ssim", "ssim_gaussian", "lpips"} and r["lpips"] is None
            assert 0 < r["psnr"] < 60 and -1 <= r["ssim"] <= 1
            assert (out / v["images"][meth]).is_file()
    for meth in m["methods"]:
        vals = [v["metrics"][meth]["psnr"] for v in m["views"]]
        assert m["mean"][meth]["psnr"] == pytest.approx(np.mean(vals), abs=1e-5)
        assert m["mean"][meth]["lpips"] is None and m["mean"][meth]["count"] == 2
    # report.html: self-contained (data URIs only), 2 rows x (gt, nearest input, 3 methods) images, SVG chart
    text = (out / "report.html").read_text()
    p = _Collect()
    p.feed(text)
    assert len(p.imgs) == 2 * 5 and all(s.startswith("data:image/png;base64,") for s in p.imgs)
    im = Image.open(io.BytesIO(base64.b64decode(p.imgs[0].split(",", 1)[1])))
    assert im.size == (32, 32)
    assert "svg" in p.tags and "rect" in p.tags and "table" in p.tags
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    sheet = Image.open(out / "sheet.png")
    assert sheet.size[0] > 5 * 128 and sheet.size[1] > 2 * 128
    cfg2 = from_dict(E.EvalConfig, yaml.safe_load((out / "config.yaml").read_text()))
    assert cfg2 == cfg
    with pytest.raises(NovelViewsError):  # never overwrites a previous run by accident
        E.run_eval(synth_scene, out, cfg, progress=False, model=tiny)


def test_non_square_transforms_with_missing_files(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    w, h, n = 48, 32, 6
    frames = []
    (tmp_path / "images").mkdir()
    for i in range(n):
        c2w = C.camera_on_sphere(0.3, 2 * math.pi * i / n, 3.0)
        frames.append({"file_path": f"images/{i}.png", "transform_matrix": c2w.tolist()})
        if i == 2:
            continue  # missing file: the reader skips it
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(tmp_path / "images" / f"{i}.png")
        if i == 3:  # its depth file is missing: the view is reported and skipped when loading
            frames[-1]["depth_file_path"] = "depth/3.npy"
    meta = {"fl_x": 40.0, "fl_y": 40.0, "cx": w / 2, "cy": h / 2, "w": w, "h": h, "k1": 0.01, "frames": frames}
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning):
        info = E.run_eval(tmp_path, tmp_path / "out", eval_cfg(holdout="every:2", size=16,
                                                               methods=["nearest", "reproject"]), progress=False)
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert info["skipped"] == 1 and m["skipped"][0]["index"] == 2 and "3.npy" in m["skipped"][0]["reason"]
    assert info["views"] == 2 and info["size"] == 16
    for v in m["views"]:
        assert v["metrics"]["reproject"] is None  # no depth in this capture
        assert v["fov_deg"] == pytest.approx(math.degrees(2 * math.atan(16 / 40)), abs=1e-3)
    assert m["mean"]["reproject"]["count"] == 0
    assert "report.html" in {p.name for p in (tmp_path / "out").iterdir()}


def test_eval_config_validation():
    with pytest.raises(ConfigError):
        from_dict(E.EvalConfig, {"methods": ["nearest", "magic"]})
    with pytest.raises(ConfigError):
        from_dict(E.EvalConfig, {"methods": ["model_k"], "anchor": {"k": 1}})
    with pytest.raises(ConfigError):
        from_dict(E.EvalConfig, {"methods": []})
    with pytest.raises(ConfigError):
        from_dict(E.EvalConfig, {"scale_mode": "guess"})
    with pytest.raises(ConfigError):  # checked before any dataset or model is loaded
        from_dict(E.EvalConfig, {"holdout": "every:1"})
    assert from_dict(E.EvalConfig, {}).anchor.k == 2
    assert from_dict(E.EvalConfig, {"anchor": {"power": 2.0}}).anchor.k == 2
