import json

import numpy as np
import pytest
import torch

from novelviews import cameras as C
from novelviews.config import from_dict
from novelviews.errors import ConfigError, DatasetError
from novelviews.model.configuration import model_config
from novelviews.model.ldm import ViewConditionedLDM
from novelviews.train.data import ViewPool
from novelviews.train.module import LDMModule, prepare_for_training
from novelviews.train.pairs import PairBatches, PairDataset
from novelviews.train.run import TrainConfig, parse_data_args, run_train


def make_pool(scenes=3, views=6, size=32, gap_scene=None):
    g = torch.Generator().manual_seed(0)
    n = scenes * views
    c2w = C.camera_on_sphere(torch.rand(n, generator=g) * 0.5 + 0.2, torch.rand(n, generator=g) * 6, torch.full((n,), 2.0))
    gaps = torch.zeros(scenes, dtype=torch.long)
    if gap_scene is not None:
        gaps[gap_scene] = 1
    return ViewPool(
        images=(torch.rand(n, 3, size, size, generator=g) * 255).to(torch.uint8),
        c2w=c2w, fov=torch.full((n,), 0.8, dtype=torch.float64), scale=torch.full((n,), 1.5, dtype=torch.float64),
        scene=torch.arange(scenes).repeat_interleave(views), frame=torch.arange(views).repeat(scenes),
        scene_gap=gaps,
    )


def test_pairs_same_scene_distinct_and_embedding():
    pool = make_pool()
    ds = PairDataset(pool, "6dof+1", length=50)
    for i in range(50):
        a, b = ds.pair(i)
        assert a != b and pool.scene[a] == pool.scene[b]
    item = ds[3]
    a, b = ds.pair(3)
    assert item["cond"].shape == (3, 32, 32) and item["cond"].min() >= -1 and item["cond"].max() <= 1
    assert torch.allclose(item["cond"], pool.images[a].float() / 127.5 - 1)
    assert torch.allclose(item["cam"], C.embed_6dof(pool.c2w[a], pool.c2w[b], 1.5, 0.8).float())


def test_vectorized_batches_valid_and_deterministic():
    pool = make_pool(scenes=4, views=8, gap_scene=2)
    ds = PairDataset(pool, "6dof+1")
    batches = PairBatches([ds], [1.0], batch_size=64, num_batches=5, seed=3)
    b0 = batches[0]
    assert b0["cond"].shape == (64, 3, 32, 32) and b0["cam"].shape == (64, 19)
    assert torch.equal(batches[0]["cam"], b0["cam"]) and not torch.equal(batches[1]["cam"], b0["cam"])
    rng = np.random.default_rng(0)
    from novelviews.train.pairs import pairs_vectorized

    a, b = pairs_vectorized(ds, rng, 2000)
    assert (a != b).all() and (pool.scene[a] == pool.scene[b]).all()
    in_gap_scene = (pool.scene[a] == 2).numpy()
    assert in_gap_scene.any()
    assert (np.abs(pool.frame[a] - pool.frame[b]).numpy()[in_gap_scene] == 1).all()  # gap 1 honoured
    assert (np.abs(pool.frame[a] - pool.frame[b]).numpy()[~in_gap_scene] > 1).any()  # others: any pair
    # every target view is reachable from every source in an any-pair scene
    pairs = set(zip(a[~in_gap_scene].tolist(), b[~in_gap_scene].tolist()))
    assert len(pairs) > 150


def test_split_scenes_holds_out_whole_scenes_and_build_pairs_validates_on_them(tmp_path):
    pool = make_pool(scenes=5, views=4, gap_scene=3)
    pool.names = [f"s{i}" for i in range(5)]
    pool.latent_mean = torch.arange(20, dtype=torch.float32).view(20, 1, 1, 1)
    train, held = pool.split_scenes(2)
    assert train.num_scenes == 3 and held.num_scenes == 2 and len(train) == 12 and len(held) == 8
    assert held.names == ["s3", "s4"] and held.gaps().tolist() == [1, 0]  # per-scene gap travels with it
    assert torch.equal(held.images, pool.images[12:]) and torch.equal(held.c2w, pool.c2w[12:])
    assert torch.equal(held.scene, torch.tensor([0] * 4 + [1] * 4))
    assert torch.equal(held.latent_mean.flatten(), torch.arange(12, 20, dtype=torch.float32))
    # views of a scene need not be contiguous: select by scene id, in the order asked
    mixed = ViewPool.cat([pool.select_scenes([1]), pool.select_scenes([0])])
    assert torch.equal(mixed.select_scenes([1]).images, pool.images[0:4])
    with pytest.raises(DatasetError, match="cannot hold out 5 of 5 scenes"):
        pool.split_scenes(5)
    with pytest.raises(DatasetError, match="distinct"):
        pool.select_scenes([0, 0])

    from novelviews.train.run import build_pairs

    pool.save(tmp_path / "pool.pt")
    model = ViewConditionedLDM(model_config("tiny"))
    cfg = from_dict(TrainConfig, {"arch": "tiny", "batch_size": 4, "val_batch": 6, "val_scenes": 2,
                                  "data": [{"path": str(tmp_path / "pool.pt")}]})
    tr, val = build_pairs(cfg, model, "cpu", progress=False)
    train_imgs = {bytes(x.numpy()) for x in tr.mixed.datasets[0].pool.images}
    for i in range(6):  # every validation image is from a held-out scene, none from training
        item = val[i]
        img = ((item["cond"] + 1) * 127.5).round().to(torch.uint8)
        assert bytes(img.numpy()) not in train_imgs
        assert any(torch.equal(img, x) for x in pool.images[12:])
    assert len(tr.mixed.datasets[0].pool) == 12
    cfg0 = from_dict(TrainConfig, {"arch": "tiny", "data": [{"path": str(tmp_path / "pool.pt")}]})
    tr0, val0 = build_pairs(cfg0, model, "cpu", progress=False)
    assert len(tr0.mixed.datasets[0].pool) == 20 and val0.datasets[0].pool is tr0.mixed.datasets[0].pool


def test_parse_data_args_and_validation(tmp_path):
    (tmp_path / "d1").mkdir()
    data, ov = parse_data_args([str(tmp_path / "d1"), f"{tmp_path / 'd2'}:0.3", "lr=1e-3"])
    assert data == [{"path": str(tmp_path / "d1"), "weight": 1.0}, {"path": str(tmp_path / "d2"), "weight": 0.3}]
    assert ov == ["lr=1e-3"]
    with pytest.raises(ConfigError, match="no training data"):
        from_dict(TrainConfig, {})
    with pytest.raises(ConfigError, match="must not exceed 1"):
        from_dict(TrainConfig, {"synth": {"scenes": 1}, "drop_context": 0.6, "drop_both": 0.6})


def test_lr_schedule_warmup_then_decay():
    from novelviews.train.module import lr_factor

    # hand values: warm-up 10, cosine to 0.1 at step 110 (halfway = 0.55), held after
    assert lr_factor(0, 10, 110, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_factor(9, 10, 110, "cosine", 0.1) == pytest.approx(1.0)
    assert lr_factor(60, 10, 110, "cosine", 0.1) == pytest.approx(0.55)
    assert lr_factor(110, 10, 110, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_factor(500, 10, 110, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_factor(35, 10, 110, "linear", 0.0) == pytest.approx(0.75)
    assert lr_factor(5000, 10, 110, "constant") == 1.0
    # the module's scheduler applies it to both parameter groups (cc_projection at cc_lr_mult x lr)
    cfg = from_dict(TrainConfig, {"arch": "tiny", "synth": {"scenes": 1}, "lr": 1e-3, "warmup_steps": 2,
                                  "max_steps": 12, "lr_schedule": "linear", "min_lr_ratio": 0.2})
    opt_sched = LDMModule(ViewConditionedLDM(model_config("tiny")), cfg).configure_optimizers()
    opt, sched = opt_sched["optimizer"], opt_sched["lr_scheduler"]["scheduler"]
    base = [g["lr"] / lr_factor(0, 2, 12, "linear", 0.2) for g in opt.param_groups]
    assert sorted(base) == pytest.approx([1e-3, 1e-2])
    for step in range(1, 15):
        opt.step()
        sched.step()
        want = lr_factor(step, 2, 12, "linear", 0.2)
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([b * want for b in base])
    assert opt.param_groups[0]["lr"] == pytest.approx(base[0] * 0.2)
    with pytest.raises(ConfigError, match="lr_schedule"):
        from_dict(TrainConfig, {"synth": {"scenes": 1}, "lr_schedule": "step"})
    with pytest.raises(ConfigError, match="min_lr_ratio"):
        from_dict(TrainConfig, {"synth": {"scenes": 1}, "min_lr_ratio": 1.5})


def test_tiny_model_loss_falls_on_fixed_batch():
    torch.manual_seed(0)
    model = ViewConditionedLDM(model_config("tiny"))
    cfg = from_dict(TrainConfig, {"arch": "tiny", "synth": {"scenes": 1}, "lr": 1e-3, "warmup_steps": 1,
                                  "drop_context": 0.0, "drop_both": 0.0, "drop_latent": 0.0})
    module = LDMModule(model, cfg)
    pool = make_pool()
    batch = PairBatches([PairDataset(pool, "6dof+1")], [1.0], 8, 1)[0]
    opt = module.configure_optimizers()["optimizer"]
    g = torch.Generator().manual_seed(1)

    def loss_at_fixed_noise():
        with torch.no_grad():
            return float(module.diffusion_loss(batch, generator=torch.Generator().manual_seed(123)))

    before = loss_at_fixed_noise()
    for _ in range(60):
        opt.zero_grad()
        loss = module.diffusion_loss(batch, generator=g)
        loss.backward()
        opt.step()
        module.ema.update(module.model)
    after = loss_at_fixed_noise()
    assert after < 0.7 * before, (before, after)
    # the VAE stays frozen in the diffusion stage
    assert all(not p.requires_grad for p in module.model.vae.parameters())
    # EMA moved towards the trained weights but is not equal to them
    w, e = module.model.cc_projection.weight, module.ema.shadow.cc_projection.weight
    assert not torch.equal(w, e)


def test_run_train_saves_resumes_and_exports(tmp_path):
    pool = make_pool(scenes=2, views=4)
    pool.save(tmp_path / "pool.pt")
    base = {"arch": "tiny", "batch_size": 2, "num_workers": 0, "val_every": 2, "ckpt_every": 2,
            "val_batch": 2, "val_steps": 2, "log_every": 1, "data": [{"path": str(tmp_path / "pool.pt")}]}
    cfg = from_dict(TrainConfig, base | {"max_steps": 2, "latent_scale": -1.0})
    info = run_train(cfg, tmp_path / "run", progress=False)
    assert info["steps"] == 2
    # throughput of the run (SpeedMonitor): samples/s = steps/s x batch x world size
    assert info["world_size"] == 1 and info["timed_steps"] == 1 and info["steps_per_s"] > 0
    assert info["samples_per_s"] == pytest.approx(2 * info["steps_per_s"], rel=1e-3)
    saved = json.loads((tmp_path / "run" / "model" / "novelviews.json").read_text())
    factor = saved["config"]["vae"]["scaling_factor"]
    assert factor != 0.18215 and factor > 0  # estimated from the data's latents
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()
    assert (tmp_path / "run" / "model" / "novelviews.json").exists()
    assert list((tmp_path / "run" / "previews").glob("*.png"))
    metrics = (tmp_path / "run" / "logs" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"val/camera_gain", "val/camera_gain_rel", "val/eps_mse"} <= set(metrics)
    cfg4 = from_dict(TrainConfig, base | {"max_steps": 4})
    info = run_train(cfg4, tmp_path / "run", resume=True, progress=False)
    assert info["steps"] == 4  # continued from step 2, not restarted
    from novelviews.model.checkpoints import load_model

    model, _ = load_model(tmp_path / "run" / "model")
    assert model.config.name == "tiny"
    from novelviews.errors import NovelViewsError

    with pytest.raises(NovelViewsError, match="already holds a previous run"):
        run_train(cfg, tmp_path / "run", progress=False)



def test_camera_use_is_zero_without_camera_columns_and_matches_direct_mse():
    """val/camera_gain: exactly 0 while cc_projection's camera columns are zero (init), not after."""
    import torch.nn.functional as F

    from novelviews.sampling import schedule_alphas
    from novelviews.train.module import camera_use

    torch.manual_seed(0)
    model = ViewConditionedLDM(model_config("tiny")).eval()
    S, c = model.config.image_size, model.context_dim
    cond, target = torch.rand(3, 3, S, S) * 2 - 1, torch.rand(3, 3, S, S) * 2 - 1
    cam = torch.randn(3, model.cc_projection.in_features - c)
    ac = schedule_alphas(model.config.schedule).float()
    with torch.no_grad():
        emb, lat = model.embed_image(cond)
        assert float(model.cc_projection.weight[:, c:].abs().max()) == 0.0
        use = camera_use(model, emb, lat, target, cam, ac)
        assert use["camera_gain"] == 0.0 and use["eps_mse"] > 0
        model.cc_projection.weight[:, c:].normal_(0, 1.0)
        use = camera_use(model, emb, lat, target, cam, ac)
        assert use["camera_gain"] != 0.0
        assert use["camera_gain_rel"] == pytest.approx(use["camera_gain"] / use["eps_mse"], rel=1e-5)
        # eps_mse is the plain epsilon MSE at the documented noise / timesteps
        z0 = model.encode(target)
        eps = torch.randn(z0.shape, generator=torch.Generator().manual_seed(0))
        t = torch.linspace(50, 950, 3).long()
        a = ac[t].view(-1, 1, 1, 1)
        pred = model.predict_noise(a.sqrt() * z0 + (1 - a).sqrt() * eps, t, model.context(emb, cam), lat)
        assert use["eps_mse"] == pytest.approx(float(F.mse_loss(pred, eps)), rel=1e-5)


def test_tiny_model_overfits_one_pair_and_samples_it():
    """The whole conditioning path end to end: after overfitting one (cond, target, camera) pair,
    DDIM samples from those conditions land close to the target latent: much closer than noise,
    than the best constant, and than the same sampler with the untrained model (same seeds)."""
    import copy

    from novelviews.sampling import SamplingConfig, guided_denoiser, sample

    torch.manual_seed(0)
    model = ViewConditionedLDM(model_config("tiny"))
    with torch.no_grad():
        # a trained VAE has a near-deterministic posterior (the demo VAE: log-variance ~ -5.5);
        # a random one has std ~1, which would make the target latent change every step
        lc = model.config.vae.latent_channels
        model.vae.quant_conv.weight[lc:] = 0.0
        model.vae.quant_conv.bias[lc:] = -20.0
    pool = make_pool(scenes=1, views=2)
    pair = PairDataset(pool, "6dof+1")[0]
    with torch.no_grad():  # unit-RMS latents, as train.run.set_latent_scale does
        z = model.vae.encode(pair["target"][None]).latent_dist.mean
        model.config.vae.scaling_factor = float(z.square().mean().rsqrt())
    untrained = copy.deepcopy(model).eval()
    cfg = from_dict(TrainConfig, {"arch": "tiny", "synth": {"scenes": 1}, "lr": 1e-3, "warmup_steps": 1,
                                  "drop_context": 0.0, "drop_both": 0.0, "drop_latent": 0.0, "weight_decay": 0.0})
    module = LDMModule(model, cfg)
    batch = {k: v[None].expand(8, *v.shape).contiguous() for k, v in pair.items()}
    opt = module.configure_optimizers()["optimizer"]
    g = torch.Generator().manual_seed(0)
    for _ in range(250):
        opt.zero_grad()
        module.diffusion_loss(batch, generator=g).backward()
        opt.step()

    def sample_error(m):
        with torch.no_grad():
            target = m.encode(pair["target"][None])
            emb, lat = m.embed_image(pair["cond"][None])
            ctx = m.context(emb, pair["cam"][None])
            scfg = SamplingConfig(steps=20, guidance_scale=1.0, eta=0.0)
            out = sample(guided_denoiser(m, ctx, lat, 1.0), (4, *target.shape[1:]), m.config.schedule, scfg,
                         seeds=range(4))
            return ((out - target) ** 2).mean().item(), target

    err_trained, target = sample_error(module.model.eval())
    err_untrained, _ = sample_error(untrained)
    err_noise = ((torch.randn(4, *target.shape[1:], generator=torch.Generator().manual_seed(5)) - target) ** 2).mean().item()
    err_const = ((target.mean() - target) ** 2).mean().item()
    print(f"sample error: trained {err_trained:.3f}, untrained {err_untrained:.3f}, noise {err_noise:.3f}, "
          f"constant {err_const:.3f}")
    # measured (CPU, seed 0): trained 0.59, untrained 134, noise 1.96, best constant 0.97
    assert err_trained < 0.4 * err_noise, (err_trained, err_noise)
    assert err_trained < 0.8 * err_const, (err_trained, err_const)
    assert err_trained < 0.05 * err_untrained, (err_trained, err_untrained)


def test_run_train_without_export_writes_summary_only(tmp_path):
    make_pool(scenes=2, views=4).save(tmp_path / "pool.pt")
    cfg = from_dict(TrainConfig, {"arch": "tiny", "batch_size": 2, "num_workers": 0, "val_every": 100,
                                  "ckpt_every": 100, "val_batch": 2, "val_steps": 1, "log_every": 1, "max_steps": 2,
                                  "export_model": False, "data": [{"path": str(tmp_path / "pool.pt")}]})
    info = run_train(cfg, tmp_path / "run", progress=False)
    assert info["steps"] == 2 and not (tmp_path / "run" / "model").exists()
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["steps"] == 2 and summary["world_size"] == 1


def test_diverged_training_stops_with_clear_error_and_keeps_finite_checkpoints(tmp_path, monkeypatch):
    """A NaN loss stops the run within log_every steps: TrainingError naming the fix, nothing
    exported, and the checkpoint on disk is the last one with finite weights."""
    from novelviews.errors import TrainingError
    from novelviews.train.module import LDMModule

    make_pool(scenes=2, views=4).save(tmp_path / "pool.pt")
    real = LDMModule.diffusion_loss

    def loss_nan_from_step_2(self, batch, generator=None):
        loss = real(self, batch, generator)
        return loss * float("nan") if self.global_step >= 2 else loss

    monkeypatch.setattr(LDMModule, "diffusion_loss", loss_nan_from_step_2)
    cfg = from_dict(TrainConfig, {"arch": "tiny", "batch_size": 2, "num_workers": 0, "val_every": 100,
                                  "ckpt_every": 1, "val_batch": 2, "val_steps": 1, "log_every": 4, "max_steps": 8,
                                  "data": [{"path": str(tmp_path / "pool.pt")}]})
    with pytest.raises(TrainingError, match=r"NaN/inf .* lower lr \(now 0.0001\)"):
        run_train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "model").exists()
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 2  # the step-3 checkpoint (NaN weights) was refused
    weights = [v for v in ckpt["state_dict"].values() if v.is_floating_point()]
    assert weights and all(torch.isfinite(v).all() for v in weights)


def test_prepare_for_training_compiles_in_place_with_the_same_loss_gradients_and_keys():
    """compile / channels_last of the training hot path: same loss and gradients as eager at the same draws,
    parameters and state-dict keys unchanged (checkpoints, EMA and export keep working)."""
    torch.manual_seed(0)
    cfg = from_dict(TrainConfig, {"arch": "tiny", "synth": {"scenes": 1}})
    eager = LDMModule(ViewConditionedLDM(model_config("tiny")), cfg)
    fast = LDMModule(ViewConditionedLDM(model_config("tiny")), cfg)
    fast.model.load_state_dict(eager.model.state_dict())
    keys = list(fast.state_dict())
    batch = PairBatches([PairDataset(make_pool(), "6dof+1")], [1.0], 4, 1)[0]
    torch._dynamo.reset()
    done = prepare_for_training(fast.model, compile=True, channels_last=True, backend="aot_eager")
    assert done == ["unet:channels_last", "unet:compile", "image_encoder:channels_last", "image_encoder:compile"]
    assert prepare_for_training(fast.model, compile=True) == []  # already compiled: left as it is
    assert fast.model.unet._compiled_call_impl is not None
    assert fast.model.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert list(fast.state_dict()) == keys
    # the EMA copy made before stays eager and contiguous (validation, export)
    assert fast.ema.shadow.unet._compiled_call_impl is None and fast.ema.shadow.unet.conv_in.weight.is_contiguous()
    losses = []
    for m in (eager, fast):
        loss = m.diffusion_loss(batch, generator=torch.Generator().manual_seed(5))
        loss.backward()
        losses.append(loss.detach())
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
    for (name, a), b in zip(eager.model.named_parameters(), fast.model.parameters()):
        if a.grad is not None:
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6, msg=name)
    # a frozen image encoder is neither compiled nor re-laid-out
    frozen = ViewConditionedLDM(model_config("tiny"))
    frozen.image_encoder.requires_grad_(False)
    assert prepare_for_training(frozen, compile=False, channels_last=True) == ["unet:channels_last"]


def test_run_train_compiled_channels_last_mirrored_bf16_trains_validates_and_exports(tmp_path):
    make_pool(scenes=3, views=4).save(tmp_path / "pool.pt")
    torch._dynamo.reset()
    cfg = from_dict(TrainConfig, {"arch": "tiny", "batch_size": 2, "num_workers": 0, "val_every": 2,
                                  "ckpt_every": 100, "val_batch": 3, "val_steps": 1, "log_every": 1, "max_steps": 3,
                                  "ema_decay": 0.0, "compile": True, "compile_backend": "aot_eager",
                                  "channels_last": True, "mirror": True, "val_scenes": 1, "grad_clip": 1.0,
                                  # the GPU rounds' precision: Lightning's mixed-precision plugin checks the
                                  # optimizer when clipping (a fused AdamW is refused there)
                                  "precision": "bf16", "data": [{"path": str(tmp_path / "pool.pt")}]})
    info = run_train(cfg, tmp_path / "run", progress=False)
    assert info["steps"] == 3 and np.isfinite(info["metrics"]["val/psnr"])
    from novelviews.model.checkpoints import load_model

    model, _ = load_model(tmp_path / "run" / "model")  # no EMA: the compiled channels-last model itself
    assert model.unet.conv_in.weight.is_contiguous()
    with pytest.raises(ConfigError, match="'fastest' is not a torch.compile backend: use one of .*inductor"):
        from_dict(TrainConfig, {"compile": True, "compile_backend": "fastest", "synth": {"scenes": 1}}).validate()
    with pytest.raises(ConfigError, match="ldm stage"):
        from_dict(TrainConfig, {"stage": "vae", "compile": True, "synth": {"scenes": 1}}).validate()


def test_mirrored_pool_is_what_the_mirror_world_looks_like():
    """ViewPool.mirrored: a scene symmetric under x -> -x, rendered from S c2w F, is the left-right flip of its
    render from c2w (the camera algebra is physical); embeddings transform as F E F (6dof+1) / -azimuth (3dof)."""
    from novelviews.synth.render import render
    from novelviews.synth.scenes import box, build_scene, sphere

    scene = build_scene([sphere((0.0, 0.4, 0.35), 0.35), box((0.0, -0.5, 0.25), (0.2, 0.3, 0.25))],
                        light_dir=(0.0, 0.3, 0.9))
    eye = torch.tensor([[2.2, 1.1, 1.3], [-0.7, -2.4, 0.9]], dtype=torch.float64)
    c2w = C.look_at(eye, torch.tensor([0.1, -0.05, 0.2], dtype=torch.float64))
    K = C.intrinsics_from_fov(torch.full((2,), 0.8, dtype=torch.float64), 24, 24)
    out = render(scene, c2w, K, 24, 24, shadows=False, ao=False)
    pool = ViewPool(images=(out["rgb"].clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 3, 1, 2),
                    c2w=c2w, fov=torch.full((2,), 0.8, dtype=torch.float64), scale=torch.tensor([1.2, 1.5]).double(),
                    scene=torch.zeros(2, dtype=torch.long), frame=torch.arange(2), names=["s"],
                    scene_gap=torch.tensor([1]))
    m = pool.mirrored()
    assert torch.equal(m.images, pool.images.flip(-1)) and m.names == ["s-mirror"] and torch.equal(m.scene_gap, pool.scene_gap)
    R = m.c2w[:, :3, :3]
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(m.c2w[:, :3, 3], eye * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    depth = render(scene, m.c2w, K, 24, 24, shadows=False, ao=False)["depth"]
    hit = torch.isfinite(out["depth"]) & (out["depth"] < 30)
    assert hit.float().mean() > 0.5
    torch.testing.assert_close(depth, out["depth"].flip(-1), atol=2e-3, rtol=1e-3)
    # a pair's camera embedding: F E F for 6dof+1 (same fov, same scale), the azimuth change negated for 3dof
    e, em = (PairDataset(p, "6dof+1").gather(torch.tensor([0]), torch.tensor([1]))["cam"][0] for p in (pool, m))
    sign = torch.tensor([1, -1, -1, -1, -1, 1, 1, 1, -1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], dtype=torch.float32)
    torch.testing.assert_close(em, e * sign, atol=1e-6, rtol=1e-6)
    assert e[[1, 2, 3, 4, 8]].abs().min() > 1e-3  # the flipped entries are not trivially zero
    d, dm = (PairDataset(p, "3dof").gather(torch.tensor([0]), torch.tensor([1]))["cam"][0] for p in (pool, m))
    torch.testing.assert_close(dm, d * torch.tensor([1.0, -1.0, 1.0, 1.0]), atol=1e-6, rtol=1e-6)
    back = m.mirrored()
    assert torch.equal(back.images, pool.images) and torch.equal(back.c2w, pool.c2w) and back.names == ["s"]


def test_mirror_option_doubles_training_scenes_but_not_validation(tmp_path):
    from novelviews.train.run import build_pairs

    cfg = from_dict(TrainConfig, {"arch": "tiny", "mirror": True, "val_scenes": 1, "batch_size": 2,
                                  "data": [{"path": str(tmp_path / "pool.pt")}]})
    make_pool(scenes=3, views=4).save(tmp_path / "pool.pt")
    train, val = build_pairs(cfg, ViewConditionedLDM(model_config("tiny")), "cpu", progress=False)
    tp, vp = train.mixed.datasets[0].pool, val.datasets[0].pool
    assert tp.num_scenes == 4 and vp.num_scenes == 1  # 2 training scenes + their mirrors; 1 held out, unmirrored
    torch.testing.assert_close(tp.images[8:], tp.images[:8].flip(-1), rtol=0, atol=0)


_KILLED_TRAINING = """
import json, os, signal, sys
from novelviews.config import from_dict
from novelviews.train import module
from novelviews.train.run import TrainConfig, run_train
real = module.LDMModule.training_step
def training_step(self, batch, batch_idx):
    if self.global_step == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # after the step-2 checkpoint, with no clean-up at all
    return real(self, batch, batch_idx)
module.LDMModule.training_step = training_step
run_train(from_dict(TrainConfig, json.loads(sys.argv[1])), sys.argv[2], progress=False)
"""


def _trained(run):
    """The final training state of a run: step, weights and EMA weights (the checkpoint's state dict),
    the exported model's tensors and the logged (step, loss) curve."""
    import csv

    from safetensors.torch import load_file

    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    exported = {f.name: load_file(f) for f in sorted((run / "model").glob("*.safetensors"))}
    with open(run / "logs" / "metrics.csv", newline="") as f:
        losses = [(int(r["step"]), float(r["train/loss"])) for r in csv.DictReader(f) if r["train/loss"]]
    return ckpt["global_step"], ckpt["state_dict"], exported, losses


def _assert_same_training(a, b):
    (step_a, sd_a, ex_a, loss_a), (step_b, sd_b, ex_b, loss_b) = a, b
    assert step_a == step_b
    assert sd_a.keys() == sd_b.keys() and any(k.startswith("ema.") for k in sd_a)
    for k, v in sd_a.items():  # bit-identical on the CPU: same batches, noise, dropout, optimizer and EMA state
        assert torch.equal(sd_b[k], v), k
    assert ex_a.keys() == ex_b.keys() and ex_a
    for name in ex_a:
        for k, v in ex_a[name].items():
            assert torch.equal(ex_b[name][k], v), (name, k)
    assert loss_b == loss_a and [s for s, _ in loss_a] == list(range(step_a))  # the whole curve, each step once


def test_batch_order_shares_batches_between_ranks_and_skips_consumed_ones():
    from novelviews.train.pairs import BatchOrder

    order = BatchOrder(3)
    assert len(order) == 3 and list(order) == [0, 1, 2]
    assert order.indices(0, 2) == [0, 2, 4] and order.indices(1, 2) == [1, 3, 5]  # a step of 2 ranks: 2 batches
    order.set_epoch(1)
    assert order.indices(1, 2) == [7, 9, 11]  # a later epoch: new batches, never a repeat
    resumed = BatchOrder(3, start=2)
    assert len(resumed) == 3 and list(resumed) == [2]  # the consumed batches are skipped, the length stays
    assert resumed.indices(1, 2) == [5]
    resumed.set_epoch(1)
    assert list(resumed) == [3, 4, 5]  # ... in the resumed epoch only
    assert list(BatchOrder(3, start=7)) == []
    with pytest.raises(DatasetError):
        BatchOrder(3, start=-1)


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    import random

    from novelviews.train.module import rng_states, set_rng_states

    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    state = rng_states()
    torch.save({"rng_states": state}, tmp_path / "s.pt")
    first = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)], np.random.randn(3))
    set_rng_states(torch.load(tmp_path / "s.pt", weights_only=True)["rng_states"])
    again = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)], np.random.randn(3))
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1]) and first[2] == again[2]
    assert np.array_equal(first[3], again[3])


def test_a_finished_run_resumed_to_more_steps_equals_a_run_of_those_steps(tmp_path, capsys):
    """2 steps, then `nvs train --resume --steps 4` = 4 steps at once: the resumed run takes the run's
    saved config (no data named again; a changed learning rate is ignored, with a note), continues the
    batch order (batches 2 and 3, not 0 and 1 again) and the random streams (noise, timesteps, dropout)."""
    from novelviews.cli import main
    from novelviews.train import pairs as D

    make_pool(scenes=2, views=4).save(tmp_path / "pool.pt")
    base = {"arch": "tiny", "batch_size": 2, "num_workers": 0, "val_every": 100, "ckpt_every": 2, "val_batch": 2,
            "val_steps": 1, "log_every": 1, "max_steps": 4, "lr": 1e-3, "warmup_steps": 1,
            "data": [{"path": str(tmp_path / "pool.pt")}]}
    seen = []
    real = D.PairBatches.__getitem__

    def recording(self, index):
        seen.append(index)
        return real(self, index)

    D.PairBatches.__getitem__ = recording
    try:
        run_train(from_dict(TrainConfig, base), tmp_path / "straight", progress=False)
        assert seen == [0, 1, 2, 3]
        seen.clear()
        run_train(from_dict(TrainConfig, base | {"max_steps": 2}), tmp_path / "resumed", progress=False)
        capsys.readouterr()
        assert main(["train", "--resume", "--out", str(tmp_path / "resumed"), "--steps", "4", "--quiet",
                     "lr=0.5"]) == 0
    finally:
        D.PairBatches.__getitem__ = real
    printed = capsys.readouterr().out
    assert "max_steps 2 -> 4" in printed and "ignored" in printed and "lr" in printed
    assert "trained 4 steps" in printed
    assert seen == [0, 1, 2, 3]
    _assert_same_training(_trained(tmp_path / "straight"), _trained(tmp_path / "resumed"))
    saved = (tmp_path / "resumed" / "config.yaml").read_text()
    assert "max_steps: 4" in saved and "lr: 0.001" in saved  # the run's own settings, the new step count
    from novelviews.errors import NovelViewsError

    with pytest.raises(NovelViewsError, match="no checkpoint"):
        from novelviews.train.run import resumed_config

        resumed_config(tmp_path / "nothing", {})
    with pytest.raises(ConfigError):  # the call's settings are still checked
        resumed_config(tmp_path / "resumed", {"max_stepz": 3})


def test_sigkill_during_training_then_resume(tmp_path):
    """SIGKILL during nvs train: the last checkpoint is intact, the run folder is marked unfinished,
    a plain rerun refuses it (naming --resume) and --resume gives the uninterrupted run's step count,
    weights, EMA weights, exported model and loss curve, bit for bit."""
    import subprocess
    import sys

    from novelviews.errors import NovelViewsError
    from novelviews.io.runs import INCOMPLETE

    pool = make_pool(scenes=2, views=4)
    pool.save(tmp_path / "pool.pt")
    base = {"arch": "tiny", "batch_size": 2, "num_workers": 0, "val_every": 2, "ckpt_every": 2, "val_batch": 2,
            "val_steps": 1, "log_every": 1, "max_steps": 4, "lr": 1e-3, "warmup_steps": 1,
            "data": [{"path": str(tmp_path / "pool.pt")}]}
    cfg = from_dict(TrainConfig, base)
    straight = run_train(cfg, tmp_path / "straight", progress=False)
    run = tmp_path / "run"
    r = subprocess.run([sys.executable, "-c", _KILLED_TRAINING, json.dumps(base), str(run)], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == -9, r.stderr[-2000:]
    assert (run / INCOMPLETE).is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 2
    with pytest.raises(NovelViewsError, match="continue it with --resume"):
        run_train(cfg, run, progress=False)
    info = run_train(cfg, run, resume=True, progress=False)
    assert info["steps"] == straight["steps"] == 4 and not (run / INCOMPLETE).exists()
    _assert_same_training(_trained(tmp_path / "straight"), _trained(run))
    assert info["metrics"]["val/psnr"] == straight["metrics"]["val/psnr"]
