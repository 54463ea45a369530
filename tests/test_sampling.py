from types import SimpleNamespace

import pytest
import torch

from novelviews import cuda_graphs as CG
from novelviews import sampling as S
from novelviews.errors import ConfigError

SCHED = SimpleNamespace(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                        beta_schedule="scaled_linear", prediction_type="epsilon")


def test_schedule_matches_reference_formula():
    ac = S.make_alphas_cumprod()
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    assert ac.shape == (1000,)
    assert float(ac[0]) == pytest.approx(1 - 0.00085)
    assert float(ac[-1]) == pytest.approx(float(torch.prod(1 - betas)))
    assert (ac[1:] < ac[:-1]).all()


def test_ddim_timesteps_ldm_uniform():
    ts = S.ddim_timesteps(1000, 50)
    assert ts[0] == 981 and ts[-1] == 1 and len(ts) == 50 and ts[0] - ts[1] == 20
    with pytest.raises(ConfigError):
        S.ddim_timesteps(1000, 2000)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_with_true_noise_recovers_x0(eta):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 4, 8, 8, generator=g)
    ac = S.make_alphas_cumprod()

    def oracle(x_t, t):  # the exact noise that maps x0 to the current x_t
        a = ac[t].float().view(-1, 1, 1, 1)
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    x_T = torch.randn(3, 4, 8, 8, generator=g)
    out = S.sample_ddim(oracle, x_T, ac, steps=20, eta=eta)
    # the reference ends at alpha_prev = alphas_cumprod[0] (not 1): a residual of
    # sqrt(1 - 0.99915) ~ 0.03 noise is left, exactly as ldm's DDIM does
    assert (out - x0).abs().mean() < 0.05
    assert (x_T - x0).abs().mean() > 0.5
    if eta == 0.0:  # deterministic: exactly sqrt(a0) x0 + sqrt(1 - a0) eps of the last step
        a1 = ac[1].float()
        # x at t=1 is sqrt(a1) x0 + sqrt(1 - a1) e  ->  the update keeps e
        e = (out - ac[0].float().sqrt() * x0) / (1 - ac[0].float()).sqrt()
        assert e.std() == pytest.approx(1.0, abs=0.25)
        assert a1 < ac[0]


def test_ddim_matches_diffusers_ddim_scheduler():
    """Our written-out DDIM equals diffusers' DDIMScheduler configured like the reference."""
    torch.manual_seed(0)
    w = torch.randn(4, 4)

    def eps_fn(x, t):  # a smooth, t-dependent fake model
        return torch.tanh(torch.einsum("ij,bjhw->bihw", w, x)) * (t.float().view(-1, 1, 1, 1) / 1000 + 0.5)

    x_T = torch.randn(2, 4, 6, 6)
    ours = S.sample_ddim(eps_fn, x_T.clone(), S.make_alphas_cumprod(), steps=25, eta=0.0)
    sched = S.make_diffusers_scheduler("DDIMScheduler", SCHED)
    theirs = S.sample_diffusers(eps_fn, x_T.clone(), sched, steps=25, eta=0.0)
    assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()


def test_per_sample_seeds_independent_of_batch():
    ac = S.make_alphas_cumprod()
    eps_fn = lambda x, t: 0.1 * x  # noqa: E731
    cfg = S.SamplingConfig(steps=5, eta=1.0)
    both = S.sample(eps_fn, (2, 4, 4, 4), SCHED, cfg, seeds=[7, 8])
    alone = S.sample(eps_fn, (1, 4, 4, 4), SCHED, cfg, seeds=[8])
    assert torch.equal(both[1:], alone)
    again = S.sample(eps_fn, (2, 4, 4, 4), SCHED, cfg, seeds=[7, 8])
    assert torch.equal(both, again)
    assert not torch.allclose(both[0], both[1])
    assert ac is not None


def test_other_diffusers_scheduler_runs_and_denoises_oracle():
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(2, 4, 4, 4, generator=g)
    sched = S.make_diffusers_scheduler("DPMSolverMultistepScheduler", SCHED)
    ac = S.make_alphas_cumprod()

    def oracle(x_t, t):
        a = ac[t].float().view(-1, 1, 1, 1)
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    out = S.sample_diffusers(oracle, torch.randn(2, 4, 4, 4, generator=g), sched, steps=10)
    assert torch.allclose(out, x0, atol=1e-3)
    with pytest.raises(ConfigError, match="not a diffusers scheduler"):
        S.make_diffusers_scheduler("Nope", SCHED)


def test_samples_average_equals_mean_of_single_sample_calls():
    """sampling.samples = K: each view is the mean of K samples drawn together in batches; the slow
    reference draws them one call per sample with the documented seeds and averages them."""
    from novelviews import cameras as C
    from novelviews.errors import NovelViewsError
    from novelviews.model import ViewConditionedLDM
    from novelviews.model.configuration import model_config
    from novelviews.views import generate

    torch.manual_seed(0)
    model = ViewConditionedLDM(model_config("tiny")).eval()
    s = model.config.image_size
    image = torch.rand(1, 3, s, s, generator=torch.Generator().manual_seed(1)) * 2 - 1
    cond = C.camera_on_sphere(0.3, 0.0, 2.0)[None]
    targets = torch.stack([C.camera_on_sphere(0.3, a, 2.0) for a in (0.4, -0.6, 1.0)])
    seeds = [7, 11, 40]
    with torch.no_grad():
        mean = generate(model, image, cond, targets, 0.8, seeds=seeds, progress=False,
                        cfg=S.SamplingConfig(steps=3, batch_size=4, samples=3))
        singles = [generate(model, image, cond, targets, 0.8, progress=False, cfg=S.SamplingConfig(steps=3),
                            seeds=[x + k * S.SAMPLE_SEED_STRIDE for x in seeds]) for k in range(3)]
    assert mean.shape == (3, 3, s, s)
    torch.testing.assert_close(mean, torch.stack(singles).mean(0), atol=1e-5, rtol=1e-5)
    assert (singles[0] - singles[1]).abs().mean() > 1e-3  # the samples differ, so the mean is not one of them
    with torch.no_grad():  # samples = 1 is the single sample of each view's own seed
        one = generate(model, image, cond, targets, 0.8, seeds=seeds, progress=False, cfg=S.SamplingConfig(steps=3))
    torch.testing.assert_close(one, singles[0], atol=1e-5, rtol=1e-5)
    with pytest.raises(NovelViewsError, match="one seed per target"):
        generate(model, image, cond, targets, 0.8, seeds=[1, 2], progress=False, cfg=S.SamplingConfig(steps=1))


def test_config_validation():
    from novelviews.config import from_dict

    with pytest.raises(ConfigError, match="sampling.samples"):
        from_dict(S.SamplingConfig, {"samples": 0})

    with pytest.raises(ConfigError, match="sampling.eta"):
        from_dict(S.SamplingConfig, {"eta": 2.0})
    assert from_dict(S.SamplingConfig, {"steps": 10}).steps == 10


def test_predrawn_noise_gives_the_same_samples_bit_for_bit():
    ac = S.make_alphas_cumprod()
    w = torch.randn(4, 4, generator=torch.Generator().manual_seed(3))

    def eps_fn(x, t):
        return torch.tanh(torch.einsum("ij,bjhw->bihw", w, x)) * (t.float().view(-1, 1, 1, 1) / 1000 + 0.5)

    x_T = torch.randn(3, 4, 5, 5, generator=torch.Generator().manual_seed(4))
    runs = [S.sample_ddim(eps_fn, x_T.clone(), ac, steps=12, eta=1.0, generators=S.make_generators([7, 8, 9]),
                          predraw=flag) for flag in (False, True)]
    assert torch.equal(runs[0], runs[1])
    # the block holds each generator's draws in step order, i.e. per-step randn_per_sample calls
    gens_a, gens_b = S.make_generators([1, 2]), S.make_generators([1, 2])
    block = S.predraw_noise((2, 3), gens_a, 4, "cpu")
    steps = torch.stack([S.randn_per_sample((2, 3), gens_b, "cpu") for _ in range(4)])
    assert block.shape == (4, 2, 3) and torch.equal(block, steps)
    # eta = 0 draws nothing: the generators are untouched
    g = S.make_generators([5])
    S.sample_ddim(eps_fn, x_T[:1].clone(), ac, steps=3, eta=0.0, generators=g, predraw=True)
    assert torch.equal(torch.randn(2, generator=g[0]), torch.randn(2, generator=torch.Generator().manual_seed(5)))


def test_cuda_graph_option_is_ignored_on_cpu_and_refused_by_the_wrapper():
    cfg = S.SamplingConfig(steps=3, cuda_graph=True)
    out = S.sample(lambda x, t: 0.1 * x, (2, 4, 4, 4), SCHED, cfg, seeds=[0, 1], device="cpu")
    ref = S.sample(lambda x, t: 0.1 * x, (2, 4, 4, 4), SCHED, S.SamplingConfig(steps=3), seeds=[0, 1], device="cpu")
    assert torch.equal(out, ref)
    with pytest.raises(ValueError, match="CUDA"):
        S.graphed_denoiser(lambda x, t: x, (1, 4, 4, 4), "cpu")


def test_denoiser_graphs_capture_once_per_shape_and_replay_on_new_conditioning(monkeypatch):
    """cuda_graphs.DenoiserGraphs on this CPU, with graphed_denoiser standing in as the plain call
    over the static buffers (what a replay computes): a later batch of the same shapes reuses the
    capture and sees its own conditioning, also through the k-anchor blend; a new shape, moved
    weights or other settings capture anew; the oldest graph goes past the limit."""
    from novelviews.generation import multi_anchor_denoiser

    captured = []
    monkeypatch.setattr(CG, "graphed_denoiser", lambda eps_fn, shape, device: captured.append(shape) or eps_fn)
    model, image, cond, targets = _tiny_model_and_orbit((0.4, -0.6))
    g = torch.Generator().manual_seed(0)
    ls, ch = model.config.latent_size, model.config.vae.latent_channels
    ctx_dim = model.config.unet.cross_attention_dim
    x = torch.randn(2, ch, ls, ls, generator=g)
    t = torch.tensor([600, 300])

    def conditioning():
        return torch.randn(2, 1, ctx_dim, generator=g), torch.randn(2, ch, ls, ls, generator=g)

    def guided(c, lat):
        return S.guided_denoiser(model, c, lat, 3.0)

    graphs = CG.DenoiserGraphs(model, limit=2)
    with torch.no_grad():
        first, second = conditioning(), conditioning()
        out1 = graphs(guided, first, x.shape, "cpu")(x, t)
        out2 = graphs(guided, second, x.shape, "cpu")(x, t)
        assert graphs.captures == 1 and len(captured) == 1
        torch.testing.assert_close(out1, guided(*first)(x, t))
        torch.testing.assert_close(out2, guided(*second)(x, t))  # the replay read the new values
        assert not torch.allclose(out1, out2)
        # k = 2 anchors with weights: the blend also reads its conditioning at each call
        def blended(c, lat, w):
            return multi_anchor_denoiser(model, c, lat, w, 3.0)

        def anchors2():
            c, lat = conditioning()
            return (c.repeat(1, 2, 1).reshape(2, 2, 1, ctx_dim), lat[:, None].repeat(1, 2, 1, 1, 1),
                    torch.rand(2, 2, generator=g).softmax(1))

        a, b = anchors2(), anchors2()
        graphs(blended, a, x.shape, "cpu")
        out_b = graphs(blended, b, x.shape, "cpu")(x, t)
        torch.testing.assert_close(out_b, blended(*b)(x, t))
        assert graphs.captures == 2
        graphs(guided, first, x[:1].shape, "cpu")  # another shape: evicts the least recently used
        assert graphs.captures == 3 and len(graphs) == 2
        graphs(guided, first, x.shape, "cpu", extra=(7.5,))  # other settings: a new graph
        assert graphs.captures == 4
        model.unet.to(memory_format=torch.channels_last)  # the conv weights move: new graphs
        graphs(guided, first, x.shape, "cpu", extra=(7.5,))
        assert graphs.captures == 5
    assert CG.denoiser_graphs(model) is CG.denoiser_graphs(model)  # one per model, kept with it
    import copy

    CG.denoiser_graphs(model)(guided, first, x.shape, "cpu")
    twin = copy.deepcopy(model)  # e.g. an EMA copy: no graphs of the original's memory come along
    assert len(CG.denoiser_graphs(twin)) == 0 and CG.denoiser_graphs(twin).model is twin
    import pickle

    assert len(pickle.loads(pickle.dumps(CG.denoiser_graphs(model)))) == 0  # pickled: no graphs either
    import threading

    before = graphs.captures
    worker = threading.Thread(target=lambda: graphs(guided, first, x.shape, "cpu", extra=(7.5,)))
    worker.start()
    worker.join()
    assert graphs.captures == before + 1  # another thread never shares this thread's buffers
    graphs.clear()
    assert len(graphs) == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs: run on a GPU machine")
def test_generate_replays_one_graph_across_calls_and_equals_eager_on_gpu():
    from novelviews.views import generate

    model, image, cond, targets = _tiny_model_and_orbit((0.4, -0.6, 1.0, -1.2))
    model = model.cuda()
    with torch.no_grad():
        eager = generate(model, image, cond, targets, 0.8, cfg=S.SamplingConfig(steps=4, batch_size=2), progress=False)
        graph_cfg = S.SamplingConfig(steps=4, batch_size=2, cuda_graph=True)
        first = generate(model, image, cond, targets, 0.8, cfg=graph_cfg, progress=False)
        again = generate(model, image, cond, targets, 0.8, cfg=graph_cfg, progress=False)
    assert CG.denoiser_graphs(model).captures == 1  # 2 batches x 2 calls, one shape: one capture
    torch.testing.assert_close(first, eager, atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(again, first)


def _tiny_cuda_denoiser(dtype):
    """A random tiny model on the GPU and its guided denoiser (CFG 3) over a batch of 2 latents."""
    from novelviews.model import ViewConditionedLDM
    from novelviews.model.configuration import model_config

    torch.manual_seed(0)
    model = ViewConditionedLDM(model_config("tiny")).cuda().eval()
    S_ = model.config.latent_size
    ctx = torch.randn(2, 1, model.config.context_dim, device="cuda")
    lat = torch.randn(2, model.config.vae.latent_channels, S_, S_, device="cuda")
    return model, S.guided_denoiser(model, ctx, lat, 3.0, dtype), (2, model.config.vae.latent_channels, S_, S_)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU (run on a GPU machine)")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_graph_denoiser_equals_eager_on_gpu(dtype):
    model, eps_fn, shape = _tiny_cuda_denoiser(dtype)  # bf16: autocast inside the captured graph
    cfg = S.SamplingConfig(steps=6)
    with torch.no_grad():
        eager = S.sample(eps_fn, shape, model.config.schedule, cfg, seeds=[0, 1], device="cuda")
        graphed = S.sample(eps_fn, shape, model.config.schedule, S.SamplingConfig(steps=6, cuda_graph=True),
                           seeds=[0, 1], device="cuda")
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(graphed, eager, atol=tol, rtol=tol)


def test_cudnn_benchmark_is_set_for_the_block_and_restored():
    before = torch.backends.cudnn.benchmark
    try:
        for start in (False, True):
            torch.backends.cudnn.benchmark = start
            with S.cudnn_benchmark(not start):
                assert torch.backends.cudnn.benchmark is (not start)
            assert torch.backends.cudnn.benchmark is start
            with pytest.raises(RuntimeError), S.cudnn_benchmark(not start):
                raise RuntimeError("restored on error too")
            assert torch.backends.cudnn.benchmark is start
    finally:
        torch.backends.cudnn.benchmark = before


def _tiny_model_and_orbit(azimuths):
    """A tiny random model (eval), one input image in [-1, 1], its camera and targets at ``azimuths``."""
    from novelviews import cameras as C
    from novelviews.model import ViewConditionedLDM
    from novelviews.model.configuration import model_config

    torch.manual_seed(0)
    model = ViewConditionedLDM(model_config("tiny")).eval()
    s = model.config.image_size
    image = torch.rand(1, 3, s, s, generator=torch.Generator().manual_seed(1)) * 2 - 1
    cond = C.camera_on_sphere(0.3, 0.0, 2.0)[None]
    targets = torch.stack([C.camera_on_sphere(0.3, a, 2.0) for a in azimuths])
    return model, image, cond, targets


def test_channels_last_conversion_runs_only_while_a_weight_is_not_channels_last():
    """sampling.channels_last converts the UNet and VAE on the first call; later calls find every
    4-D weight with the strides that conversion gives and skip it (a module.to walks every tensor,
    milliseconds of host time per generate call on a full-size model); weights put back in the
    contiguous format are converted again."""
    model, *_ = _tiny_model_and_orbit((0.4,))
    cfg = S.SamplingConfig(channels_last=True)
    assert not S.is_channels_last(model.unet)
    S.prepare_for_sampling(model, cfg)
    assert S.is_channels_last(model.unet) and S.is_channels_last(model.vae)
    assert model.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    calls = []
    for part in (model.unet, model.vae):
        part.to = lambda *a, **k: calls.append(k)  # noqa: B023 - a stand-in that records the call
    S.prepare_for_sampling(model, cfg)
    assert calls == []
    for part in (model.unet, model.vae):
        del part.to
        part.to(memory_format=torch.contiguous_format)
    assert not S.is_channels_last(model.unet)
    S.prepare_for_sampling(model, cfg)
    assert S.is_channels_last(model.unet) and S.is_channels_last(model.vae)
    # a 1x1 convolution's contiguous weight is also channels-last contiguous (size-1 strides are
    # free), but .to() still gives it other strides: it counts as not converted, as .to() sees it
    conv = torch.nn.Conv2d(4, 8, 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not S.is_channels_last(conv)
    assert S.is_channels_last(conv.to(memory_format=torch.channels_last))


def test_compile_option_compiles_unet_and_decoder_in_place_and_keeps_samples_and_keys():
    """sampling.compile: views.generate compiles the UNet and VAE decoder once, in place (state dict keys unchanged),
    and the samples equal the eager ones. The graph-capturing "aot_eager" backend stands in for
    inductor on this CPU (same dynamo tracing, no C++ compilation); GPU timings: docs/BENCHMARKS.md."""
    from novelviews.config import from_dict
    from novelviews.model import ViewConditionedLDM
    from novelviews.model.configuration import model_config
    from novelviews.views import generate

    # two full batches: aot_eager (not inductor) on this CPU fails to decode a batch of 1 after a
    # batch of 2 (a stride guard of its own; inductor runs it)
    model, image, cond, targets = _tiny_model_and_orbit((0.4, -0.6, 1.0, -1.2))
    keys = list(model.state_dict())
    cfg = S.SamplingConfig(steps=3, batch_size=2, compile="default")
    with torch.no_grad():
        eager = generate(model, image, cond, targets, 0.8, cfg=S.SamplingConfig(steps=3, batch_size=2), progress=False)
        assert S.compile_model(model, "default", backend="aot_eager") is True
        assert S.compile_model(model, "default") is False  # already compiled: left as it is
        assert model.vae.decoder._compiled_call_impl is not None
        compiled = generate(model, image, cond, targets, 0.8, cfg=cfg, progress=False)
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)
    assert list(model.state_dict()) == keys
    # sampling.channels_last: the weights change memory format in place, the samples stay the same
    with torch.no_grad():
        cl = generate(model, image, cond, targets, 0.8, progress=False,
                      cfg=S.SamplingConfig(steps=3, batch_size=2, compile="default", channels_last=True))
    assert model.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert model.vae.decoder.conv_out.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(cl, eager, atol=1e-4, rtol=1e-4)
    assert S.compile_model(model, "off") is False
    with pytest.raises(ConfigError, match="'compile': 'fast' is not one of"):
        from_dict(S.SamplingConfig, {"compile": "fast"})
    with pytest.raises(ConfigError, match="sampling.compile"):
        S.compile_model(ViewConditionedLDM(model_config("tiny")), "fast")
    S.uncompile_model(model)
    assert model.unet._compiled_call_impl is None and model.vae.decoder._compiled_call_impl is None
    torch._dynamo.reset()


def test_fuse_qkv_keeps_the_samples_and_fuses_once():
    """sampling.fuse_qkv: every attention of the UNet and the VAE runs one fused QKV matmul; the views
    equal the unfused ones up to float rounding, and a second call leaves the model as it is."""
    from novelviews.views import generate

    model, image, cond, targets = _tiny_model_and_orbit((0.4, -0.6))
    keys = list(model.state_dict())
    with torch.no_grad():
        plain = generate(model, image, cond, targets, 0.8, cfg=S.SamplingConfig(steps=2, batch_size=2), progress=False)
        fused = generate(model, image, cond, targets, 0.8, progress=False,
                         cfg=S.SamplingConfig(steps=2, batch_size=2, fuse_qkv=True))
    n = S.fuse_qkv(model)
    from diffusers.models.attention_processor import Attention

    total = sum(isinstance(m, Attention) for part in (model.unet, model.vae) for m in part.modules())
    assert n == total > 0
    assert not torch.equal(fused, torch.zeros_like(fused))
    torch.testing.assert_close(fused, plain, atol=1e-4, rtol=1e-4)
    S.unfuse_qkv(model)  # the fused copies go, the state dict is the model's own again
    assert list(model.state_dict()) == keys


@pytest.mark.skipif(not torch.cuda.is_available(), reason="inductor on CUDA: run on a GPU machine")
def test_inductor_compiled_graphed_sampling_matches_eager_on_gpu():
    """Compiled and eager differ by the rounding of TF32 convolutions (cuDNN's default; the two
    paths may pick other algorithms) and of fused, reordered reductions: measured 2026-11-26 on an H100
    measured 1.4e-3 relative in one denoiser call and 6.2e-4 after six DDIM steps (up to 0.026
    absolute on unit-scale latents), so both are compared by relative norm."""
    model, eps_fn, shape = _tiny_cuda_denoiser(torch.float32)
    x = torch.randn(shape, device="cuda")
    t = torch.tensor([500, 20], device="cuda")
    with torch.no_grad():
        eps_eager = eps_fn(x, t)
        eager = S.sample(eps_fn, shape, model.config.schedule, S.SamplingConfig(steps=6), seeds=[0, 1], device="cuda")
        assert S.compile_model(model, "default")
        eps_fast = eps_fn(x, t)
        fast = S.sample(eps_fn, shape, model.config.schedule, S.SamplingConfig(steps=6, cuda_graph=True),
                        seeds=[0, 1], device="cuda")
    rel = lambda a, b: float((a - b).norm() / b.norm())  # noqa: E731
    print(f"compiled vs eager: one call {rel(eps_fast, eps_eager):.2e}, 6 DDIM steps {rel(fast, eager):.2e}")
    assert rel(eps_fast, eps_eager) < 5e-3
    assert rel(fast, eager) < 2e-2
    S.uncompile_model(model)
    torch._dynamo.reset()


def test_reference_preset_and_the_measured_default():
    """The default sampler is DDIM eta 1 at 10 steps (chosen by benchmarks/sampler_choice.py);
    sampling.preset=reference restores the published DDIM-50, eta 1, CFG 3 through the config system."""
    from novelviews import config as cfgmod
    from novelviews.sampling import REFERENCE_SAMPLER, SamplingConfig

    d = SamplingConfig()
    assert (d.scheduler, d.steps, d.eta, d.guidance_scale) == ("ddim", 10, 1.0, 3.0)
    r = cfgmod.from_dict(SamplingConfig, {"preset": "reference", "steps": 12, "eta": 0.0})
    assert (r.scheduler, r.steps, r.eta, r.guidance_scale) == REFERENCE_SAMPLER == ("ddim", 50, 1.0, 3.0)
    assert cfgmod.replace(SamplingConfig(), ["preset=reference"]).steps == 50
    with pytest.raises(Exception, match="preset"):
        cfgmod.from_dict(SamplingConfig, {"preset": "fast"})


def test_scheduler_aliases_build_the_named_diffusers_schedulers():
    pytest.importorskip("diffusers")
    for alias, (cls_name, options) in S.SCHEDULER_ALIASES.items():
        sch = S.make_diffusers_scheduler(alias, SCHED)
        assert type(sch).__name__ == cls_name
        for k, v in options.items():
            assert sch.config[k] == v
    with pytest.raises(ConfigError, match="euler-a"):
        S.make_diffusers_scheduler("dpm3000", SCHED)
