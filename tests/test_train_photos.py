"""Training on real-photo statistics: photo-plane pools, identity pairs, the VAE's latent anchor."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from novelviews import cameras as C
from novelviews.config import from_dict
from novelviews.errors import ConfigError, DatasetError
from novelviews.model.configuration import model_config
from novelviews.model.ldm import ViewConditionedLDM
from novelviews.synth.photo_planes import random_card_scene, render_photo_planes
from novelviews.train.data import photo_plane_offsets, pool_from_photo_planes
from novelviews.train.module import VAEModule
from novelviews.train.pairs import PairBatches, PairDataset, pairs_vectorized
from novelviews.train.run import TrainConfig


def _photos(n=4, size=48):
    g = torch.Generator().manual_seed(5)
    return [F.interpolate(torch.rand(1, 3, 6, 6, generator=g), size=(size, size), mode="bilinear")[0]
            .permute(1, 2, 0).contiguous() for _ in range(n)]


def test_orbit_about_vertical_keeps_distance_look_at_and_gives_the_input_back():
    c = C.camera_on_sphere(math.radians(20), 0.4, 3.0)
    same = C.orbit_about_vertical(c, [0.0])[0]
    assert torch.allclose(same, c, atol=1e-12)
    out = C.orbit_about_vertical(c, [math.radians(30), -math.radians(10)], [math.radians(5), 0.0])
    el, az, r = C.cartesian_to_spherical(out[:, :3, 3])
    assert torch.allclose(r, torch.full((2,), 3.0, dtype=torch.float64))
    assert torch.allclose(az, torch.tensor([0.4 + math.radians(30), 0.4 - math.radians(10)], dtype=torch.float64))
    assert torch.allclose(el, torch.tensor([math.radians(25), math.radians(20)], dtype=torch.float64))
    fwd = -out[:, :3, 2]  # still looking at the origin
    assert torch.allclose(torch.linalg.cross(fwd, -out[:, :3, 3]).norm(dim=-1), torch.zeros(2, dtype=torch.float64),
                          atol=1e-9)
    clipped = C.orbit_about_vertical(c, [0.0], [math.radians(50)], max_elevation=math.radians(60))
    assert torch.allclose(C.cartesian_to_spherical(clipped[0, :3, 3])[0], torch.tensor(math.radians(60),
                          dtype=torch.float64))
    with pytest.raises(Exception, match="elevation offsets"):
        C.orbit_about_vertical(c, [0.0, 1.0], [0.0])


def test_photo_plane_offsets_near_share_and_bounds():
    az, el = photo_plane_offsets(4001, torch.Generator().manual_seed(0), near_fraction=0.25, near_deg=10,
                                 max_deg=40, elevation_deg=8)
    assert az[0] == 0 and el[0] == 0
    a, e = torch.rad2deg(az[1:]).abs(), torch.rad2deg(el[1:]).abs()
    near = a <= 10
    assert abs(near.double().mean().item() - 0.25) < 0.03
    assert (a <= 40 + 1e-9).all() and (e <= 8 + 1e-9).all()
    assert (e[near] <= torch.clamp(a[near], min=1.0) + 1e-9).all()  # a near view stays near
    assert (az[1:] > 0).any() and (az[1:] < 0).any()
    with pytest.raises(DatasetError):
        photo_plane_offsets(3, torch.Generator(), near_deg=50, max_deg=40)


def test_photo_plane_pool_views_are_exact_renders_and_cover_the_image():
    photos = _photos()
    pool = pool_from_photo_planes(photos, 3, 4, 24, seed=7, spp=1, max_deg=40, progress=False)
    assert pool.images.shape == (12, 3, 24, 24) and pool.num_scenes == 3
    assert pool.scene.tolist() == [0] * 4 + [1] * 4 + [2] * 4 and pool.frame.tolist() == [0, 1, 2, 3] * 3
    again = pool_from_photo_planes(photos, 3, 4, 24, seed=7, spp=1, progress=False)
    assert torch.equal(again.images, pool.images) and torch.equal(again.c2w, pool.c2w)
    # scene 1 is scene 0 of seed 8; its view 0 is the input camera, rendered exactly
    g = torch.Generator().manual_seed(8)
    scene = random_card_scene(photos, g, n_cards=(0, 3), background_margin=2.5 + 4.0 * math.sin(math.radians(40)))
    assert torch.allclose(pool.c2w[4], scene.input_c2w.double(), atol=1e-12)
    ref = render_photo_planes(scene, scene.input_c2w[None], scene.input_intrinsics(24, 24), 24, 24)
    img = (ref["rgb"].clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 3, 1, 2)[0]
    assert torch.equal(pool.images[4], img)
    assert math.isclose(pool.scale[4].item(), C.depth_quantile_scale(ref["depth"].double())[0].item(), rel_tol=1e-9)
    # the widest orbit still sees a surface in every pixel (no black border from a missed background)
    wide = pool_from_photo_planes(photos, 6, 3, 24, seed=0, spp=1, near_fraction=0.0, near_deg=35, max_deg=40,
                                  progress=False)
    assert (wide.images.float().sum(1) > 0).float().mean() > 0.999


def _pool():
    return pool_from_photo_planes(_photos(), 4, 5, 16, seed=0, spp=1, progress=False)


def test_identity_pairs_share_and_zero_offset_embedding():
    pool = _pool()
    ds = PairDataset(pool, "6dof+1", identity_fraction=0.3)
    ds.prepare_vectorized()
    a, b = pairs_vectorized(ds, np.random.default_rng(0), 4000)
    same = a == b
    assert abs(same.mean() - 0.3) < 0.03 and (pool.scene[a] == pool.scene[b]).all()
    batch = ds.gather(torch.from_numpy(a[same][:8]), torch.from_numpy(b[same][:8]))
    assert torch.equal(batch["cond"], batch["target"])
    pose = batch["cam"][:, :16].reshape(8, 4, 4)  # 6DoF+1: the relative pose first, then fov and scale terms
    assert torch.allclose(pose, torch.eye(4).expand(8, 4, 4), atol=1e-6)
    assert sum(ds.pair(i)[0] == ds.pair(i)[1] for i in range(400)) in range(80, 161)
    # without identity pairs the draws are those of before (same stream), and never a == b
    plain = PairDataset(pool, "6dof+1")
    plain.prepare_vectorized()
    a0, b0 = pairs_vectorized(plain, np.random.default_rng(0), 4000)
    assert (a0 != b0).all() and np.array_equal(a0, a)
    assert PairBatches([plain], [1.0], 16, 2, seed=1)[0]["cam"].shape == (16, 19)
    with pytest.raises(DatasetError):
        PairDataset(pool, "6dof+1", identity_fraction=1.5)
    with pytest.raises(ConfigError, match="identity_pairs"):
        from_dict(TrainConfig, {"identity_pairs": -0.1, "synth": {"scenes": 1}}).validate()


def test_vae_anchor_is_zero_at_the_start_and_holds_the_latents_while_the_vae_learns():
    torch.manual_seed(0)
    x = _pool().images[:8].float() / 127.5 - 1

    def run(anchor: float):
        torch.manual_seed(0)
        model = ViewConditionedLDM(model_config("tiny"))
        cfg = from_dict(TrainConfig, {"stage": "vae", "vae_anchor": anchor, "ema_decay": 0})
        m = VAEModule(model, cfg)
        before = model.vae.encode(x).latent_dist.mean.detach()
        loss, parts = m.vae_loss(x)
        if anchor:
            assert parts["anchor"].item() < 1e-12  # the anchor is the initial VAE
            assert not any(p.requires_grad for p in m.anchor_vae.parameters())
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
        first = None
        for _ in range(40):
            loss, parts = m.vae_loss(x)
            first = parts["mse"].item() if first is None else first
            opt.zero_grad()
            loss.backward()
            opt.step()
        drift = (model.vae.encode(x).latent_dist.mean - before).square().mean().item()
        return drift, first, parts["mse"].item()

    free, mse0, mse_free = run(0.0)
    held, _, mse_held = run(10.0)
    assert mse_free < 0.8 * mse0 and mse_held < 0.9 * mse0  # both learn to reconstruct
    assert held < 0.5 * free  # the anchor keeps the latents near their start


def test_latent_noise_has_the_drawn_std_per_image_in_scaled_units():
    from novelviews.train.module import latent_noise

    z = torch.zeros(64, 4, 16, 16)
    g = torch.Generator().manual_seed(0)
    n = latent_noise(z, 0.5, scaling_factor=0.25, generator=g)
    std = (n * 0.25).flatten(1).std(1)  # in scaled units
    assert std.max() <= 0.5 * 1.1 and std.min() < 0.05  # stds spread over [0, 0.5]
    assert 0.2 < std.mean() < 0.3  # uniform in [0, 0.5]: mean 0.25
    g = torch.Generator().manual_seed(0)
    assert torch.equal(n, latent_noise(z, 0.5, 0.25, generator=g))


def test_decoder_trained_with_latent_noise_decodes_noisy_latents_better():
    x = _pool().images[:8].float() / 127.5 - 1

    def run(noise: float):
        torch.manual_seed(0)
        model = ViewConditionedLDM(model_config("tiny"))
        with torch.no_grad():  # a near-deterministic posterior and unit-RMS latents, as a trained VAE has
            lc = model.config.vae.latent_channels
            model.vae.quant_conv.weight[lc:] = 0.0
            model.vae.quant_conv.bias[lc:] = -20.0
            z = model.vae.encode(x).latent_dist.mean
            model.config.vae.scaling_factor = float(z.square().mean().rsqrt())
        cfg = from_dict(TrainConfig, {"stage": "vae", "vae_train": "decoder", "vae_latent_noise": noise,
                                      "ema_decay": 0})
        m = VAEModule(model, cfg)
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
        for _ in range(60):
            loss, _ = m.vae_loss(x)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            z = model.vae.encode(x).latent_dist.mean
            g = torch.Generator().manual_seed(1)
            sf = float(model.config.vae.scaling_factor)
            noisy = z + torch.randn(z.shape, generator=g) * (0.5 / sf)
            return F.mse_loss(model.vae.decode(noisy).sample, x).item()

    assert run(1.0) < 0.95 * run(0.0)
    with pytest.raises(ConfigError, match="vae_latent_noise"):
        from_dict(TrainConfig, {"vae_latent_noise": -1.0, "synth": {"scenes": 1}}).validate()
