"""Depth-estimator hook: a tiny random Depth Anything model saved locally, loaded by path."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from novelviews.cameras import depth_quantile_scale
from novelviews.depth import DepthEstimator, detect_depth_type, estimate_depth, estimated_scale
from novelviews.errors import CheckpointError, ConfigError, ImageError, NovelViewsError


def _save_tiny(path, depth_type="metric", seed=0):
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessorPil

    bb = Dinov2Config(image_size=28, patch_size=14, hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
                      intermediate_size=32, out_indices=[1, 2, 3, 4], reshape_hidden_states=False)
    cfg = DepthAnythingConfig(backbone_config=bb, reassemble_hidden_size=16, neck_hidden_sizes=[8, 8, 16, 16],
                              fusion_hidden_size=8, head_hidden_size=8, depth_estimation_type=depth_type,
                              max_depth=20)
    torch.manual_seed(seed)
    model = DepthAnythingForDepthEstimation(cfg).eval()
    with torch.no_grad():  # random init gives a flat map: perturb so the depth varies over the image
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    proc = DPTImageProcessorPil(size={"height": 28, "width": 28}, keep_aspect_ratio=False, ensure_multiple_of=14)
    model.save_pretrained(path)
    proc.save_pretrained(path)
    return model, proc


@pytest.fixture(scope="module")
def metric_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("depth_metric")
    model, proc = _save_tiny(path, "metric")
    return path, model, proc


def _image(h=40, w=52, seed=1):
    rng = np.random.default_rng(seed)
    return rng.random((h, w, 3), dtype=np.float32)


def test_estimate_depth_matches_reference(metric_dir):
    path, model, proc = metric_dir
    img = _image()
    depth = estimate_depth(img, path)
    assert depth.shape == (40, 52) and depth.dtype == np.float32
    assert np.isfinite(depth).all()
    # metric Depth Anything head: sigmoid * max_depth -> (0, 20) metres
    assert depth.min() > 0 and depth.max() <= 20 + 1e-3
    assert depth.std() > 1e-4  # not a flat map
    # slow reference: processor + model by hand, bilinear resize back to the image size
    inputs = proc(images=img, return_tensors="pt", do_rescale=False)
    with torch.no_grad():
        pred = model(**inputs).predicted_depth
    ref = torch.nn.functional.interpolate(pred[:, None], size=(40, 52), mode="bilinear", align_corners=False)[0, 0]
    np.testing.assert_allclose(depth, ref.numpy(), rtol=1e-5, atol=1e-5)
    # the scene scale from it is the 0.2-quantile of every 4th pixel, positive
    scale = float(depth_quantile_scale(torch.as_tensor(depth)))
    assert scale > 0
    assert scale == pytest.approx(float(np.quantile(depth[::4, ::4], 0.2)), rel=1e-5)


def test_units_relative_override_and_lists(metric_dir):
    path, _, _ = metric_dir
    imgs = [_image(seed=2), _image(32, 30, seed=3)]
    est = DepthEstimator.load(path)
    assert est.depth_type == "metric" and est.model_type == "depth_anything"
    base = [est(im) for im in imgs]
    # one load for a list of images, same numbers
    both = estimate_depth(imgs, path)
    assert [d.shape for d in both] == [(40, 52), (32, 30)]
    for a, b in zip(base, both):
        np.testing.assert_array_equal(a, b)
    # units multiply the depth
    np.testing.assert_allclose(dataclasses.replace(est, units=2.5)(imgs[0]), 2.5 * base[0], rtol=1e-6)
    # forcing "relative" treats the prediction as disparity: depth = 1 / prediction
    rel = estimate_depth(imgs[0], path, depth_type="relative", allow_relative=True)
    np.testing.assert_allclose(rel, 1.0 / base[0], rtol=1e-5)
    # estimated_scale = depth_quantile_scale of the estimate, and says where it came from
    s, src = estimated_scale(imgs[0], path, units=2.0)
    assert s == pytest.approx(2.0 * float(depth_quantile_scale(torch.as_tensor(base[0]))), rel=1e-5)
    assert "metric" in src and "0.2-quantile" in src


def test_relative_model_refused_unless_allowed(tmp_path):
    path = tmp_path / "rel"
    _save_tiny(path, "relative")
    with pytest.raises(CheckpointError, match="relative.*allow_relative"):
        estimate_depth(_image(), path)
    depth = estimate_depth(_image(), path, allow_relative=True)
    assert depth.shape == (40, 52) and np.isfinite(depth).all() and (depth >= 0).all()


def test_missing_and_incomplete_folders(tmp_path, metric_dir):
    with pytest.raises(CheckpointError, match="does not exist.*metric model"):
        estimate_depth(_image(), tmp_path / "nope")
    # a hub-style name is never downloaded: it is just a missing folder
    with pytest.raises(CheckpointError, match="never downloaded"):
        DepthEstimator.load("depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf")
    part = tmp_path / "part"
    part.mkdir()
    (part / "config.json").write_text(json.dumps({"model_type": "depth_anything", "depth_estimation_type": "metric"}))
    with pytest.raises(CheckpointError, match="preprocessor_config.json, model.safetensors"):
        estimate_depth(_image(), part)
    f = tmp_path / "file.bin"
    f.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="not a folder"):
        estimate_depth(_image(), f)
    # a folder of unknown type must be told what it is
    unk = tmp_path / "unk"
    unk.mkdir()
    for n in ("preprocessor_config.json", "model.safetensors"):
        (unk / n).write_text("{}")
    (unk / "config.json").write_text(json.dumps({"model_type": "mystery"}))
    with pytest.raises(CheckpointError, match="depth_type"):
        estimate_depth(_image(), unk)
    path, _, _ = metric_dir
    with pytest.raises(ConfigError):
        estimate_depth(_image(), path, units=0.0)
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        estimate_depth(_image() * 255, path)
    with pytest.raises(ImageError, match="HxWx3"):
        estimate_depth(np.zeros((8, 8), np.float32)[..., None], path)
    assert issubclass(CheckpointError, NovelViewsError)


def test_detect_depth_type():
    assert detect_depth_type({"model_type": "depth_anything", "depth_estimation_type": "metric"}) == "metric"
    assert detect_depth_type({"model_type": "depth_anything", "depth_estimation_type": "relative"}) == "relative"
    assert detect_depth_type({"model_type": "zoedepth"}) == "metric"
    assert detect_depth_type({"model_type": "depth_pro"}) == "metric"
    assert detect_depth_type({"model_type": "dpt"}) == "relative"
    assert detect_depth_type({"model_type": "mystery"}) is None
