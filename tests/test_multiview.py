"""Nearest-anchor and multi-anchor generation (novelviews.multiview)."""

import math

import numpy as np
import pytest
import torch

from novelviews import cameras as C
from novelviews.config import from_dict
from novelviews.errors import ConfigError, DatasetError
from novelviews.io.datasets import MultiViewScene
from novelviews.multiview import (AnchorConfig, generate_multi_anchor, generate_nearest, multi_anchor_denoiser,
                                  prepare_views, select_anchors, view_scales)
from novelviews.sampling import SamplingConfig
from novelviews.views import generate


@pytest.fixture(scope="module")
def tiny():
    from novelviews.model.configuration import model_config
    from novelviews.model.ldm import ViewConditionedLDM

    torch.manual_seed(0)
    m = ViewConditionedLDM(model_config("tiny")).eval()
    with torch.no_grad():  # make the camera part of cc_projection matter (it is zero at init)
        m.cc_projection.weight[:, m.context_dim:].normal_(0, 0.5)
    return m


def ring(azimuths_deg, elevation=0.3, radius=2.0):
    return torch.stack([C.camera_on_sphere(elevation, math.radians(a), radius) for a in azimuths_deg])


def make_scene(n=4, h=40, w=56, depth=True, scale=None):
    rng = np.random.default_rng(0)
    imgs = [rng.random((h, w, 3)).astype(np.float32) for _ in range(n)]
    depths = [np.full((h, w), 1.5 + i, np.float32) for i in range(n)] if depth else None
    c2w = ring([360.0 * i / n for i in range(n)])
    K = C.intrinsics_from_fov(torch.full((n,), 0.8), w, h)
    return MultiViewScene("t", c2w, K, torch.tensor([[w, h]] * n), image_arrays=imgs, depth_arrays=depths,
                          scale=scale)


SAMPLING = SamplingConfig(steps=2, batch_size=2, guidance_scale=3.0)


def test_k1_multi_anchor_equals_single_anchor_exactly(tiny):
    torch.manual_seed(1)
    imgs = torch.rand(3, 3, 32, 32) * 2 - 1
    cond = ring([0, 100, 200])
    tgt = ring([20, 190, 330])
    scale = [1.0, 1.5, 2.0]
    a = generate(tiny, imgs, cond, tgt, 0.8, anchors=[0, 2, 0], scale=scale, cfg=SAMPLING, seeds=[5, 6, 7],
                 progress=False)
    b = generate_multi_anchor(tiny, imgs, cond, tgt, 0.8, anchors=[[0], [2], [0]], weights=[[1.0], [1.0], [1.0]],
                              scale=scale, cfg=SAMPLING, seeds=[5, 6, 7], progress=False)
    assert torch.equal(a, b)
    # the same with guidance 1 (no unconditional branch)
    cfg1 = SamplingConfig(steps=2, batch_size=2, guidance_scale=1.0)
    a1 = generate(tiny, imgs, cond, tgt, 0.8, anchors=[1, 1, 2], scale=scale, cfg=cfg1, seeds=[1, 2, 3],
                  progress=False)
    b1 = generate_multi_anchor(tiny, imgs, cond, tgt, 0.8, anchors=[[1], [1], [2]], weights=[[2.0]] * 3,
                               scale=scale, cfg=cfg1, seeds=[1, 2, 3], progress=False)
    assert torch.equal(a1, b1)
    # a duplicated anchor with any weights is the same conditioning (numerically, other batch layout)
    c = generate_multi_anchor(tiny, imgs, cond, tgt, 0.8, anchors=[[0, 0], [2, 2], [0, 0]],
                              weights=[[1.0, 3.0], [1.0, 1.0], [5.0, 1.0]], scale=scale, cfg=SAMPLING,
                              seeds=[5, 6, 7], progress=False)
    assert torch.allclose(a, c, atol=1e-4)
    # a genuinely different second anchor changes the result
    d = generate_multi_anchor(tiny, imgs, cond, tgt, 0.8, anchors=[[0, 1], [2, 1], [0, 1]],
                              weights=[[1.0, 1.0]] * 3, scale=scale, cfg=SAMPLING, seeds=[5, 6, 7], progress=False)
    assert (a - d).abs().max() > 1e-2


def test_generate_nearest_k1_is_views_generate_with_nearest_anchor(tiny):
    scene = make_scene(4)
    views = prepare_views(scene, 32)
    tgt = ring([10, 170, 265])
    res = generate_nearest(tiny, views, tgt, 0.7, k=1, cfg=SAMPLING, seeds=[3, 4, 5], progress=False)
    assert res.anchors[:, 0].tolist() == [0, 2, 3]  # inputs at 0, 90, 180, 270 degrees
    ref = generate(tiny, views.images, views.c2w, tgt, 0.7, anchors=[0, 2, 3], scale=res.scales, cfg=SAMPLING,
                   seeds=[3, 4, 5], progress=False)
    assert torch.equal(res.images, ref)
    assert res.scale_sources == ["depth (0.2-quantile)"] * 4
    assert res.scales.tolist() == pytest.approx([1.5, 2.5, 3.5, 4.5])
    # k = 2 picks the two nearest and weights them by inverse distance
    res2 = generate_nearest(tiny, views, tgt, 0.7, k=2, cfg=SAMPLING, seeds=[3, 4, 5], progress=False)
    assert res2.anchors[0].tolist() == [0, 1] and res2.weights[0, 0] > res2.weights[0, 1]
    assert torch.allclose(res2.weights.sum(1), torch.ones(3, dtype=torch.float64))
    assert res2.images.shape == (3, 3, 32, 32) and res2.images.abs().max() <= 1
    assert res2.summary()["anchors"][1] == [2, 1]


class LinearFake(torch.nn.Module):
    """predict_noise = x + mean(context) + mean(cond latent): every conditioning is visible."""

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))
        self.calls = []

    def predict_noise(self, x, t, ctx, lat):
        self.calls.append(x.shape[0])
        return x + ctx.mean(dim=(1, 2)).view(-1, 1, 1, 1) + lat.mean(dim=(1, 2, 3)).view(-1, 1, 1, 1) + t.view(-1, 1, 1, 1) * 0.001


def test_multi_anchor_denoiser_is_weighted_average_of_guided_predictions():
    torch.manual_seed(0)
    fake = LinearFake()
    B, k = 2, 3
    ctx = torch.randn(B, k, 1, 4)
    lat = torch.randn(B, k, 2, 3, 3)
    w = torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.4, 0.0]])
    x = torch.randn(B, 2, 3, 3)
    t = torch.tensor([500, 20])
    g = 3.0
    eps = multi_anchor_denoiser(fake, ctx, lat, w, g)(x, t)
    assert fake.calls == [B * k + B]  # one batched call, unconditional rows shared
    ref = torch.zeros_like(x)
    for j in range(k):  # the definition: average of the k guided predictions
        c = fake.predict_noise(x, t, ctx[:, j], lat[:, j])
        u = fake.predict_noise(x, t, torch.zeros_like(ctx[:, j]), torch.zeros_like(lat[:, j]))
        ref += w[:, j].view(-1, 1, 1, 1) * (u + g * (c - u))
    assert torch.allclose(eps, ref, atol=1e-5)
    eps1 = multi_anchor_denoiser(fake, ctx, lat, w, 1.0)(x, t)
    ref1 = sum(w[:, j].view(-1, 1, 1, 1) * fake.predict_noise(x, t, ctx[:, j], lat[:, j]) for j in range(k))
    assert torch.allclose(eps1, ref1, atol=1e-5)


def test_select_anchors_order_and_weights():
    inputs = ring([0, 90, 180, 270])
    tgt = ring([30])
    idx, d, w = select_anchors(tgt, inputs, k=3, translation_weight=0.0)
    assert idx[0].tolist() == [0, 1, 3]
    assert d[0].tolist() == pytest.approx([math.radians(30), math.radians(60), math.radians(120)], abs=1e-6)
    inv = 1 / (d[0] + 1e-3)
    assert w[0].tolist() == pytest.approx((inv / inv.sum()).tolist())
    _, _, w0 = select_anchors(tgt, inputs, k=3, power=0.0)
    assert w0[0].tolist() == pytest.approx([1 / 3] * 3)
    with pytest.raises(ConfigError):
        select_anchors(tgt, inputs, k=5)


def test_view_scales_sources():
    with_depth = prepare_views(make_scene(3), 16)
    s, src = view_scales(with_depth)
    assert s.tolist() == pytest.approx([1.5, 2.5, 3.5]) and set(src) == {"depth (0.2-quantile)"}
    no_depth = prepare_views(make_scene(3, depth=False), 16)
    s, src = view_scales(no_depth)
    assert s.tolist() == pytest.approx([C.scene_scale_from_cameras(no_depth.c2w)] * 3)
    assert s[0] == pytest.approx(2.0, rel=1e-6)  # cameras on a radius-2 ring looking at the origin
    assert src[0].startswith("camera layout")
    s, src = view_scales(prepare_views(make_scene(3, depth=False, scale=0.9), 16))
    assert s.tolist() == pytest.approx([0.9] * 3) and src[0].startswith("dataset")
    single = prepare_views(make_scene(1, depth=False), 16)
    s, src = view_scales(single, default=0.7)
    assert s.tolist() == [0.7] and src == ["config (scale)"]
    s, _ = view_scales(with_depth, mode="config", default=0.3)
    assert s.tolist() == [0.3] * 3
    with pytest.raises(ConfigError):
        view_scales(no_depth, mode="depth")
    with pytest.raises(ConfigError):
        view_scales(single, mode="cameras")


def test_prepare_views_crops_non_square_and_skips_unreadable(tmp_path):
    scene = make_scene(3, h=40, w=56)
    scene.image_arrays[1] = np.zeros((10, 10, 3), np.float32)  # wrong size for its camera
    v = prepare_views(scene, 20)
    assert v.indices == [0, 2] and v.skipped[0][0] == 1 and "10x10" in v.skipped[0][1]
    assert v.images.shape == (2, 3, 20, 20) and v.images.min() >= -1 and v.images.max() <= 1
    # 56x40 -> central 40x40 square -> 20 px: the vertical fov is unchanged, the principal point centred
    assert v.fov.tolist() == pytest.approx([0.8, 0.8])
    assert v.K[0, 0, 2].item() == pytest.approx(10.0) and v.K[0, 1, 2].item() == pytest.approx(10.0)
    x0 = (56 - 40) // 2
    ref = scene.image_arrays[0][:, x0:x0 + 40].reshape(20, 2, 20, 2, 3).mean((1, 3))
    assert np.abs(v.images[0].permute(1, 2, 0).numpy() * 0.5 + 0.5 - ref).mean() < 0.1
    assert v.depth[0].shape == (20, 20) and float(v.depth[1][0, 0]) == pytest.approx(3.5)
    sub = v.subset([1])
    assert sub.indices == [2] and len(sub) == 1
    bad = make_scene(1)
    bad.image_arrays[0] = np.zeros((3, 3, 3), np.float32)
    with pytest.raises(DatasetError):
        prepare_views(bad, 16)


def test_anchor_config_validation():
    assert from_dict(AnchorConfig, {"k": 3, "power": 2}).k == 3
    with pytest.raises(ConfigError):
        from_dict(AnchorConfig, {"k": 0})
    with pytest.raises(ConfigError):
        from_dict(AnchorConfig, {"rotation_weight": 0, "translation_weight": 0})


def test_model_k_averages_cfg_samples_per_view(tiny):
    """``nvs eval``'s model_k (k weighted anchors) honours ``sampling.samples``: with K = 2 each view
    is the mean of the K = 1 views drawn with seeds s and s + SAMPLE_SEED_STRIDE."""
    from dataclasses import replace

    from novelviews.sampling import SAMPLE_SEED_STRIDE

    scene = make_scene()
    tgt = ring([30, 150])
    one = replace(SAMPLING, samples=1)
    two = replace(SAMPLING, samples=2)
    res2 = generate_nearest(tiny, scene, tgt, 0.8, k=2, cfg=two, seeds=[3, 4], progress=False)
    a = generate_nearest(tiny, scene, tgt, 0.8, k=2, cfg=one, seeds=[3, 4], progress=False).images
    b = generate_nearest(tiny, scene, tgt, 0.8, k=2, cfg=one, seeds=[3 + SAMPLE_SEED_STRIDE, 4 + SAMPLE_SEED_STRIDE],
                         progress=False).images
    assert res2.k == 2 and res2.images.shape == a.shape
    torch.testing.assert_close(res2.images, (a + b) / 2, rtol=0, atol=1e-5)
    assert (a - b).abs().max() > 1e-3  # the two samples differ, so averaging them is visible


def test_generation_reports_progress_through_a_callback(tiny):
    steps = []
    imgs = torch.rand(2, 3, 32, 32) * 2 - 1
    generate(tiny, imgs, ring([0, 90]), ring([45, 135, 200]), 0.8, anchors=[[0, 1], [1, 0], [0, 1]],
             cfg=SAMPLING, progress=steps.append)
    # 3 targets at k = 2 go one per UNet batch (batch_size 2 // k), 2 sampler steps each
    assert sum(steps) == 3 * SAMPLING.steps
