"""Cached VAE posterior of the training pool (TrainConfig.cache_latents): same loss, no encoder per step."""

import json

import pytest
import torch

from novelviews import cameras as C
from novelviews.config import from_dict
from novelviews.model.configuration import model_config
from novelviews.model.ldm import ViewConditionedLDM
from novelviews.train.data import ViewPool, cache_pool_latents, images_to_float
from novelviews.train.pairs import PairBatches, PairDataset
from novelviews.train.module import LDMModule
from novelviews.train.run import TrainConfig, run_train


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    yield


def make_pool(scenes=2, views=4, size=32):
    g = torch.Generator().manual_seed(0)
    n = scenes * views
    c2w = C.camera_on_sphere(torch.rand(n, generator=g) * 0.5 + 0.2, torch.rand(n, generator=g) * 6,
                             torch.full((n,), 2.0))
    return ViewPool(
        images=(torch.rand(n, 3, size, size, generator=g) * 255).to(torch.uint8),
        c2w=c2w, fov=torch.full((n,), 0.8, dtype=torch.float64), scale=torch.full((n,), 1.5, dtype=torch.float64),
        scene=torch.arange(scenes).repeat_interleave(views), frame=torch.arange(views).repeat(scenes),
    )


def tiny_module(freeze_vae=True):
    torch.manual_seed(0)
    model = ViewConditionedLDM(model_config("tiny"))
    cfg = from_dict(TrainConfig, {"arch": "tiny", "synth": {"scenes": 1}, "freeze_vae": freeze_vae,
                                  "drop_context": 0.3, "drop_both": 0.2, "drop_latent": 0.2, "ema_decay": 0})
    return LDMModule(model, cfg)


def test_cache_matches_encoder_posterior():
    module = tiny_module()
    m = module.model
    pool = make_pool()
    cache_pool_latents(pool, m.vae, "cpu", chunk=3)  # chunks of 3 over 8 views: a ragged last chunk
    assert pool.latent_mean.shape == (8, m.latent_channels, m.config.latent_size, m.config.latent_size) and pool.latent_mean.dtype == torch.float32
    with torch.no_grad():
        dist = m.vae.encode(pool.images.float() / 127.5 - 1).latent_dist
        _, mode = m.embed_image(pool.images.float() / 127.5 - 1)
    assert torch.allclose(pool.latent_mean, dist.mean, atol=1e-5)
    assert torch.allclose(pool.latent_mean, mode, atol=1e-5)  # the unscaled conditioning latent
    assert torch.allclose(pool.latent_std, dist.std, atol=1e-6)
    assert (pool.latent_std > 0).all() and pool.latent_std.std() > 0
    # gather carries the cond view's mean and the target view's posterior
    ds = PairDataset(pool, "6dof+1")
    a, b = torch.tensor([0, 5]), torch.tensor([2, 7])
    batch = ds.gather(a, b, uint8=True)
    assert torch.equal(batch["cond_latent"], pool.latent_mean[a])
    assert torch.equal(batch["target_mean"], pool.latent_mean[b])
    assert torch.equal(batch["target_std"], pool.latent_std[b])
    assert torch.equal(batch["cond"], pool.images[a])
    # the cache is model-specific: never saved with the pool
    assert ViewPool(**{k: getattr(pool, k) for k in ("images", "c2w", "fov", "scale", "scene", "frame")}).latent_mean is None


def _batches(pool, cached):
    if cached:
        cache_pool_latents(pool, tiny_module().model.vae, "cpu")
    ds = PairDataset(pool, "6dof+1")
    return images_to_float(PairBatches([ds], [1.0], batch_size=6, num_batches=2, seed=1, uint8=True)[0])


def test_cached_loss_equals_uncached_loss_without_the_encoder(monkeypatch):
    module = tiny_module()
    plain = _batches(make_pool(), cached=False)
    cached = _batches(make_pool(), cached=True)
    assert "target_mean" not in plain and module.uses_cached_latents(cached)
    for seed in (0, 1, 2):
        ref = module.diffusion_loss(plain, generator=torch.Generator().manual_seed(seed))
        calls = {"n": 0}
        encode = module.model.vae.encode

        def counting(*args, **kwargs):
            calls["n"] += 1
            return encode(*args, **kwargs)

        monkeypatch.setattr(module.model.vae, "encode", counting)
        got = module.diffusion_loss(cached, generator=torch.Generator().manual_seed(seed))
        monkeypatch.setattr(module.model.vae, "encode", encode)
        assert calls["n"] == 0  # no VAE encode in the cached path
        assert torch.allclose(got, ref, rtol=1e-5, atol=1e-7), (seed, float(got), float(ref))
    # different generators give different losses (the comparison above is not vacuous)
    l0 = module.diffusion_loss(cached, generator=torch.Generator().manual_seed(0))
    l1 = module.diffusion_loss(cached, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(l0, l1)
    # gradients reach the UNet, cc_projection and the image encoder through the cached path
    module.zero_grad()
    module.diffusion_loss(cached, generator=torch.Generator().manual_seed(0)).backward()
    assert module.model.cc_projection.weight.grad.abs().sum() > 0
    if module.model.image_encoder is not None:
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.model.image_encoder.parameters())


def test_trained_vae_ignores_the_cache():
    module = tiny_module(freeze_vae=False)
    plain = _batches(make_pool(), cached=False)
    cached = _batches(make_pool(), cached=True)
    assert not module.uses_cached_latents(cached)
    ref = module.diffusion_loss(plain, generator=torch.Generator().manual_seed(3))
    got = module.diffusion_loss(cached, generator=torch.Generator().manual_seed(3))
    assert torch.equal(got, ref)
    got.backward()  # the encoder is trained: its gradients exist
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.model.vae.encoder.parameters())


def test_run_train_with_cache_two_steps(tmp_path, monkeypatch):
    seen = []
    original = LDMModule.uses_cached_latents

    def record(self, batch):
        seen.append(original(self, batch))
        return seen[-1]

    monkeypatch.setattr(LDMModule, "uses_cached_latents", record)
    pool = make_pool(scenes=2, views=4)
    pool.save(tmp_path / "pool.pt")
    cfg = from_dict(TrainConfig, {"arch": "tiny", "batch_size": 2, "num_workers": 0, "val_every": 2,
                                  "ckpt_every": 2, "val_batch": 2, "val_steps": 2, "log_every": 1,
                                  "max_steps": 2, "cache_latents": True, "accelerator": "cpu",
                                  "data": [{"path": str(tmp_path / "pool.pt")}]})
    assert TrainConfig().cache_latents is True  # the default
    info = run_train(cfg, tmp_path / "run", progress=False)
    assert info["steps"] == 2 and "cache_seconds" in info
    assert seen == [True, True]  # both training steps took the cached path
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["steps"] == 2 and torch.isfinite(torch.tensor(summary["metrics"]["train/loss"]))
    assert (tmp_path / "run" / "model" / "novelviews.json").exists()
