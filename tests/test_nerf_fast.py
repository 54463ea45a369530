"""The distillation's fast, memory-bounded paths against their plain references.

* the fused Triton hash-grid encoding vs the PyTorch encoding (values and table gradients; on
  CUDA, or on the CPU under Triton's interpreter with ``TRITON_INTERPRET=1``; skipped otherwise,
  as in CI);
* activation-checkpointed field chunks vs one plain call (values and every gradient);
* the checkpointed, chunked VAE encoding of renders vs one plain call (latents and gradients);
* the training render's pure functions through a compiling Fusion vs eager (values, gradients);
* backend selection and its errors; configs of older runs; random-weight model presets.
"""

from __future__ import annotations

import os

import pytest
import torch

from novelviews.config import from_dict
from novelviews.errors import ConfigError, MissingDependencyError, NovelViewsError
from novelviews.nerf import HashGridConfig, HashGridEncoding, NeRFField, NeRFFieldConfig, SamplerConfig, make_sampler
from novelviews.nerf.field import checkpointed, normalize_points
from novelviews.nerf.guidance import encode_renders

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


def _triton_device(interpreter: bool = True) -> str:
    try:
        import triton  # noqa: F401
    except ImportError:
        pytest.skip("triton is not installed")
    if torch.cuda.is_available():
        return "cuda"
    if INTERPRET and interpreter:
        return "cpu"
    pytest.skip("the fused hash grid needs CUDA (or TRITON_INTERPRET=1 for Triton's CPU interpreter)")


GRIDS = [
    # dense and hashed levels, the reference's F = 2
    HashGridConfig(n_levels=6, n_features_per_level=2, log2_hashmap_size=12, base_resolution=4, per_level_scale=2.0),
    # F = 3 (padded to 4 in the kernel), a coarse all-hashed grid with heavy collisions
    HashGridConfig(n_levels=3, n_features_per_level=3, log2_hashmap_size=6, base_resolution=8, per_level_scale=3.0),
]


@pytest.mark.parametrize("cfg", GRIDS)
def test_triton_hash_grid_matches_the_torch_encoding(cfg):
    """Same values to float32 rounding and the same table gradient up to the reordering of atomic
    adds. Values: the compiled kernel may fuse ``u * N_l - c`` into one FMA (no rounding of the
    grid coordinate), so a weight can differ by one ulp of ``u * N_l``: the absolute tolerance is
    8 ulp(max N_l) x max |table|. Gradients (sums of hundreds of such terms per row, in another
    order): 1e-5 relative + 1e-5 x max |gradient| absolute."""
    from novelviews.nerf.hashgrid_triton import hash_encode_triton

    dev = _triton_device()
    g = torch.Generator().manual_seed(0)
    enc = HashGridEncoding(HashGridConfig(**{**cfg.__dict__, "backend": "torch"})).to(dev)
    with torch.no_grad():
        enc.table.copy_((torch.rand(enc.table.shape, generator=g) * 2 - 1).to(dev))
    n = 4000 if dev == "cuda" else 300
    u = (torch.rand(n, 3, generator=g) * 1.2 - 0.1).to(dev)  # some outside [0, 1]: clamped
    u[:4] = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.5], [0.5, 1.0, 0.0]])
    grad_out = torch.randn(n, cfg.output_dim, generator=g).to(dev)
    ref = enc(u)
    (ref * grad_out).sum().backward()
    ref_grad, enc.table.grad = enc.table.grad.clone(), None
    poison = torch.full_like(ref, float("nan"))  # freed, so the kernel's output block likely reuses it:
    del poison  # every element must be written
    out = hash_encode_triton(u, enc.table, enc._res, enc._size, enc._offset, enc._dense)
    assert torch.isfinite(out).all()
    atol = 8 * max(enc.resolutions) * 2.0**-24 * float(enc.table.abs().max())
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=atol)
    (out * grad_out).sum().backward()
    torch.testing.assert_close(enc.table.grad, ref_grad, rtol=1e-5, atol=1e-5 * float(ref_grad.abs().max()))
    assert ref_grad.abs().sum() > 0


@pytest.mark.parametrize("reduce_runs", [True, False])
def test_triton_backward_on_rays_with_runs_in_one_cell(reduce_runs):
    """Points in ray order, as a renderer passes them: long runs of consecutive points in one cell
    (a ray's samples crowded near a surface), runs across the kernel's block boundary (128), a
    ragged last block and repeated identical points. The run-summing backward and the plain one
    give the reference's table gradient."""
    from novelviews.nerf.hashgrid_triton import BLOCK, hash_encode_triton

    dev = _triton_device()
    cfg = HashGridConfig(n_levels=4, n_features_per_level=2, log2_hashmap_size=10, base_resolution=4,
                         per_level_scale=2.0, backend="torch")
    g = torch.Generator().manual_seed(1)
    enc = HashGridEncoding(cfg).to(dev)
    with torch.no_grad():
        enc.table.copy_((torch.rand(enc.table.shape, generator=g) * 2 - 1).to(dev))
    rays, samples = 5, 97  # 485 points: rays straddle blocks of 128, the last block is ragged
    o = torch.rand(rays, 1, 3, generator=g) * 0.5 + 0.25
    d = torch.nn.functional.normalize(torch.randn(rays, 1, 3, generator=g), dim=-1)
    t = torch.sort(0.3 + 0.02 * torch.randn(rays, samples, 1, generator=g), dim=1).values
    u = (o + t * d).reshape(-1, 3)
    u[BLOCK - 3:BLOCK + 3] = u[BLOCK - 3]  # identical points across a block boundary
    u = u.to(dev)
    grad_out = torch.randn(u.shape[0], cfg.output_dim, generator=g).to(dev)
    (enc(u) * grad_out).sum().backward()
    ref_grad, enc.table.grad = enc.table.grad.clone(), None
    (hash_encode_triton(u, enc.table, enc._res, enc._size, enc._offset, enc._dense, reduce_runs=reduce_runs)
     * grad_out).sum().backward()
    torch.testing.assert_close(enc.table.grad, ref_grad, rtol=1e-5, atol=1e-5 * float(ref_grad.abs().max()))
    touched = (ref_grad != 0).any(-1)
    assert 0 < int(touched.sum()) < u.shape[0]  # the runs really share rows


def test_triton_backend_through_the_field():
    """``field.grid.backend=triton`` and ``torch`` give the same densities and table gradients."""
    dev = _triton_device(interpreter=False)  # the backend itself takes CUDA tensors only
    torch.manual_seed(0)
    grid = dict(n_levels=4, log2_hashmap_size=10, base_resolution=4, per_level_scale=2.0)
    fields = []
    for backend in ("torch", "triton"):
        torch.manual_seed(0)
        fields.append(NeRFField(NeRFFieldConfig(grid=HashGridConfig(**grid, backend=backend))).to(dev))
    x = torch.randn(512, 3).to(dev)
    outs = []
    for f in fields:
        sigma, rgb = f(x)
        (sigma.sum() + rgb.square().sum()).backward()
        outs.append((sigma.detach(), rgb.detach(), f.encoding.table.grad.clone()))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_triton_backend_needs_cuda_and_auto_falls_back():
    enc = HashGridEncoding(HashGridConfig(n_levels=2, log2_hashmap_size=8, base_resolution=2, backend="triton"))
    if not torch.cuda.is_available():
        with pytest.raises(MissingDependencyError, match="backend 'triton' needs CUDA tensors"):
            enc(torch.rand(5, 3))
    auto = HashGridEncoding(HashGridConfig(n_levels=2, log2_hashmap_size=8, base_resolution=2))
    assert auto.requested_backend == "auto"
    u = torch.rand(7, 3)
    torch.testing.assert_close(auto(u), auto._encode(u))  # CPU input: the torch path
    with pytest.raises(ConfigError, match="'cuda' is not one of 'auto', 'torch', 'triton', 'tcnn'"):
        HashGridConfig(backend="cuda").validate()


# --------------------------------------------------------------------------- checkpointing


def _small_field(checkpoint_points: int) -> NeRFField:
    torch.manual_seed(0)
    grid = HashGridConfig(n_levels=4, log2_hashmap_size=10, base_resolution=4, per_level_scale=2.0, backend="torch")
    return NeRFField(NeRFFieldConfig(grid=grid, checkpoint_points=checkpoint_points))


def test_checkpointed_field_chunks_equal_one_plain_call():
    plain, chunked = _small_field(0), _small_field(100)  # 1000 points -> 10 recomputed chunks
    x = torch.randn(10, 100, 3)
    res = []
    for f in (plain, chunked):
        sigma, rgb = f(x)
        assert sigma.shape == (10, 100) and rgb.shape == (10, 100, 3)
        (sigma.square().sum() + (rgb * torch.linspace(0, 1, 3)).sum()).backward()
        res.append([sigma.detach(), rgb.detach()] + [p.grad.clone() for p in f.parameters()])
    for a, b in zip(*res):  # gradients: sums over 1000 points, taken in 10 parts: float32 reordering
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6 * float(b.abs().max()))


def test_checkpointed_keeps_less_for_the_backward():
    """The saved tensors of the autograd graph shrink to the chunks' inputs and outputs."""
    x = torch.randn(4096, 3)

    def saved_bytes(field) -> int:
        total = 0

        def pack(t):
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            field(x)
        return total

    assert saved_bytes(_small_field(512)) < 0.25 * saved_bytes(_small_field(0))


def test_checkpointed_is_plain_without_grad_or_for_point_gradients():
    calls = []

    def fn(x):
        calls.append(x.shape[0])
        return x.sum(-1)

    with torch.no_grad():
        checkpointed(fn, torch.randn(10, 3), 3)
    xg = torch.randn(10, 3, requires_grad=True)
    checkpointed(fn, xg, 3)
    assert calls == [10, 10]


def test_proposal_field_checkpointed_equals_plain():
    outs = []
    for chunk in (0, 64):
        torch.manual_seed(0)
        cfg = SamplerConfig(num_samples=8, num_proposal_samples=16)
        cfg.proposal.checkpoint_points = chunk
        sampler = make_sampler(cfg, 2.0, True)
        x = torch.randn(32, 16, 3)
        sigma = sampler.density_field(x)
        sigma.sum().backward()
        outs.append((sigma.detach(), [p.grad.clone() for p in sampler.parameters()]))
    torch.testing.assert_close(outs[0][0], outs[1][0])
    for a, b in zip(outs[0][1], outs[1][1]):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("sample", [True, False])
def test_chunked_render_encoding_equals_one_call(sample):
    from novelviews.model import ViewConditionedLDM
    from novelviews.model.configuration import model_config

    torch.manual_seed(0)
    model = ViewConditionedLDM(model_config("tiny")).eval().requires_grad_(False)
    rgb0 = torch.rand(3, 3, 16, 16)
    res = []
    for chunk in (0, 1):
        rgb = rgb0.clone().requires_grad_(True)
        lat = encode_renders(model, rgb, sample, torch.Generator().manual_seed(5), None, chunk=chunk)
        (lat * torch.linspace(-1, 1, lat.numel()).reshape(lat.shape)).sum().backward()
        res.append((lat.detach(), rgb.grad))
    torch.testing.assert_close(res[0][0], res[1][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(res[0][1], res[1][1], rtol=1e-5, atol=1e-6)
    assert res[0][1].abs().sum() > 0


@pytest.mark.parametrize("autocast", [None, torch.bfloat16])
def test_graphed_render_encoding_equals_the_plain_call(autocast):
    """The CUDA-graphed VAE encoder (forward and backward replayed) gives the plain call's latents
    and render gradients, for new renders at every call and across a change of batch size (the
    old shape's graphs are dropped). float32 tolerance 1e-3: convolutions run in TF32 and cuDNN
    may pick another algorithm for the captured call than for the plain one (TF32's 10-bit
    mantissa: ~5e-4 relative per product); bfloat16: 2e-2."""
    if not torch.cuda.is_available():
        pytest.skip("CUDA graphs need CUDA")
    from novelviews.model import ViewConditionedLDM
    from novelviews.model.configuration import model_config

    torch.manual_seed(0)
    model = ViewConditionedLDM(model_config("tiny")).cuda().eval().requires_grad_(False)
    graphs: dict = {}
    tol = dict(rtol=1e-3, atol=1e-4) if autocast is None else dict(rtol=2e-2, atol=2e-2)
    for B in (3, 3, 1, 1):
        rgb0 = torch.rand(B, 3, 16, 16, device="cuda")
        res = []
        for g in (None, graphs):
            rgb = rgb0.clone().requires_grad_(True)
            lat = encode_renders(model, rgb, False, None, autocast, graphs=g)
            (lat * torch.linspace(-1, 1, lat.numel(), device="cuda").reshape(lat.shape)).sum().backward()
            res.append((lat.detach(), rgb.grad))
        torch.testing.assert_close(res[1][0], res[0][0], **tol)
        torch.testing.assert_close(res[1][1], res[0][1], **tol)
        assert res[0][1].abs().sum() > 0
        assert list(graphs) == [((B, 3, model.config.image_size, model.config.image_size), rgb0.dtype)]


# --------------------------------------------------------------------------- configs and presets


def test_older_run_configs_read_with_the_grid_backend(tmp_path):
    from novelviews.config import save_config
    from novelviews.nerf.distill import DistillConfig, read_run_config

    for old, new in (("torch", "auto"), ("auto", "auto"), ("tcnn", "tcnn")):
        save_config(DistillConfig(), tmp_path / "config.yaml")
        text = (tmp_path / "config.yaml").read_text().replace("field:\n", f"field:\n  backend: {old}\n", 1)
        (tmp_path / "config.yaml").write_text(text)
        assert read_run_config(tmp_path / "config.yaml").field.grid.backend == new
    with pytest.raises(ConfigError):
        from_dict(DistillConfig, {"field": {"backend": "torch"}})


def test_random_model_presets():
    from novelviews.views import load_any_model

    a = load_any_model("tiny-random", torch.device("cpu"))
    b = load_any_model("tiny-random", torch.device("cpu"))
    assert a.config.name == "tiny"
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    with pytest.raises(NovelViewsError, match="unknown model preset 'huge' in 'huge-random': use one of"):
        load_any_model("huge-random", torch.device("cpu"))


def _tiny_distill_step(batch_sizes: list[int], **sections):
    """One ``train_step`` (backpropagated) of the tiny model with a small field on a random 32 px
    input; ``sections`` override parts of the config. Returns ``(cfg, scene, info)``."""
    from novelviews.config import load, merge
    from novelviews.model import ViewConditionedLDM
    from novelviews.model.configuration import model_config
    from novelviews.nerf import distill as D
    from novelviews.sampling import schedule_alphas

    torch.manual_seed(0)
    model = ViewConditionedLDM(model_config("tiny")).eval().requires_grad_(False)
    img = torch.rand(1, 3, 32, 32) * 2 - 1
    base = {"device": "cpu", "phases": {"steps": 4, "batch_sizes": batch_sizes, "render_scales": [0.5, 1.0],
                                          "milestones": [0.5]},
            "field": {"grid": {"n_levels": 4, "log2_hashmap_size": 10, "base_resolution": 4, "per_level_scale": 1.5},
                      "mlp_width": 16},
            "sampler": {"num_samples": 8, "num_proposal_samples": 8}}
    cfg = load(D.DistillConfig, base=merge(base, sections))
    torch.manual_seed(0)
    scene = D.build_scene(cfg, 32, torch.device("cpu"))
    pool = D.embed_pool(model, img, scene.input_c2w[None], 0.7)
    loss, info = D.train_step(0, scene, model, pool, (img + 1) / 2, cfg, torch.Generator().manual_seed(0),
                              schedule_alphas(model.config.schedule), None)
    loss.backward()
    return cfg, scene, info


@pytest.mark.parametrize("sampler", ["uniform", "proposal"])
def test_batched_view_renders_equal_one_by_one(monkeypatch, sampler):
    """``render.view_batch = 0`` (all SDS views and the input view in one render) computes the step of
    ``1`` (one render per view): same losses and gradients once the resampling jitter
    (``stratified_edges``) is switched off, which would otherwise interleave its draws differently.
    The proposal jitter stays on: its uniforms are one ``[rays, P + 1]`` draw per call from the CPU
    stream, and the views' rays come in the same order either way, so the values are the same."""
    from novelviews.nerf import distill as D
    from novelviews.nerf import sampler as S

    plain_edges = S.stratified_edges
    monkeypatch.setattr(S, "stratified_edges", lambda n, k, stratified, *a, **kw: plain_edges(n, k, False, *a, **kw))
    results = []
    for vb in (1, 0):
        _, scene, info = _tiny_distill_step([3, 1], sampler={"kind": sampler, "num_samples": 8,
                                                             "num_proposal_samples": 8},
                                            loss={"geometry_size": 8}, render={"view_batch": vb})
        results.append((D.step_info(info), [p.grad.clone() for p in scene.parameters() if p.grad is not None]))
    for key in ("loss", "sds", "rgb", "interlevel", "normal_smooth", "orientation"):
        assert results[0][0][key] == pytest.approx(results[1][0][key], rel=1e-5, abs=1e-7), key
    assert len(results[0][1]) == len(results[1][1]) > 0
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


# --------------------------------------------------------------------------- empty-space skipping


@pytest.mark.parametrize("unbounded", [True, False])
def test_grid_to_world_inverts_normalize_points(unbounded):
    from novelviews.nerf.field import grid_to_world, normalize_points

    x = torch.randn(500, 3, dtype=torch.float64) * 3
    if not unbounded:
        x = x.clamp(-1.9, 1.9)
    u, _ = normalize_points(x, 2.0, unbounded)
    back, valid = grid_to_world(u, 2.0, unbounded)
    assert valid.all()
    torch.testing.assert_close(back, x, rtol=1e-6, atol=1e-9)
    assert not grid_to_world(torch.tensor([[1.0, 1.0, 1.0]]), 2.0, True)[1].any()  # no point maps there


def test_skipping_zeroes_empty_cells_and_keeps_the_rest():
    from novelviews.nerf.occupancy import OccupancyGrid, OccupancyGridConfig

    plain = _small_field(0)
    skipping = _small_field(0)
    grid = OccupancyGrid(OccupancyGridConfig(enabled=True, resolution=16, warmup_steps=10))
    skipping.set_occupancy(grid)
    gen = torch.Generator().manual_seed(0)
    for step in range(8):  # the blob: a ball of density; the decayed max over jittered points per cell
        grid.update(skipping.density_at_grid, step, gen)
    assert 0.0 < grid.occupied_fraction() < 0.2
    x = torch.randn(2000, 3) * 0.8
    keep = grid.occupied_at(normalize_points(x, 2.0, True)[0])
    assert 0 < int(keep.sum()) < keep.numel()
    s0, c0 = plain(x)
    s1, c1 = skipping(x)
    torch.testing.assert_close(s1[keep], s0[keep])
    torch.testing.assert_close(c1[keep], c0[keep])
    assert (s1[~keep] == 0).all() and (c1[~keep] == 0).all()
    skipped = s0.detach()[~keep]  # what was skipped is (nearly) empty: boundary cells of a coarse grid
    assert float(skipped.mean()) < 0.01 and float(skipped.max()) < 0.5
    (s1.sum() + c1.sum()).backward()
    (s0[keep].sum() + c0[keep].sum()).backward()
    for a, b in zip(skipping.parameters(), plain.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7)
    assert skipping.query_counts["kept"] == int(keep.sum()) and skipping.query_counts["points"] == 2000


def test_distill_step_reports_skipped_samples():
    cfg, scene, info = _tiny_distill_step([1, 1], occupancy={"resolution": 16})
    assert cfg.occupancy.enabled  # on by default in distillation
    assert scene.field.occupancy is scene.occupancy is scene.sampler.density_field.__dict__["_occupancy"]
    assert 0 < info["occupied_fraction"] < 0.5
    assert 0 < info["field_kept"] < 1 and 0 < info["proposal_kept"] < 1
    assert "occupancy" in scene.modules()


def test_step_info_reads_the_losses_back_as_numbers():
    """train_step keeps its losses on the device (no host sync inside the step); step_info turns
    every tensor into the float it holds and leaves the rest as it is."""
    from novelviews.nerf.distill import step_info

    _, _, info = _tiny_distill_step([1, 1])
    assert isinstance(info["loss"], torch.Tensor) and isinstance(info["batch"], int)
    read = step_info(info)
    for k, v in info.items():
        assert type(read[k]) is (float if isinstance(v, torch.Tensor) else type(v))
        assert read[k] == (float(v) if isinstance(v, torch.Tensor) else v)
    assert read["loss"] > 0 and read.keys() == info.keys()


def test_to_device_copies_values_and_dtype():
    from novelviews.runtime import to_device

    x = torch.randn(5, 3, dtype=torch.float64)
    y = to_device(x, "cpu", torch.float32)
    assert y.dtype == torch.float32 and torch.equal(y, x.float())
    if torch.cuda.is_available():
        z = to_device(x, "cuda", torch.float32)
        assert z.is_cuda and torch.equal(z.cpu(), x.float())


def test_graphed_sds_denoiser_equals_the_plain_call():
    """The CUDA-graphed guided UNet call predicts what the plain call predicts, for a new
    conditioning at every call (copied into the graph's static buffers) and for each batch size."""
    if not torch.cuda.is_available():
        pytest.skip("CUDA graphs need CUDA")
    from novelviews.model import ViewConditionedLDM
    from novelviews.model.configuration import model_config
    from novelviews.nerf.guidance import SDSDenoiser

    torch.manual_seed(0)
    model = ViewConditionedLDM(model_config("tiny")).cuda().eval().requires_grad_(False)
    plain = SDSDenoiser(model, 7.5, torch.bfloat16, cuda_graph=False)
    graphed = SDSDenoiser(model, 7.5, torch.bfloat16, cuda_graph=True)
    h = model.config.latent_size
    for B in (3, 1, 3):
        for _ in range(2):
            ctx = torch.randn(B, 1, model.context_dim, device="cuda")
            cond = torch.randn(B, model.latent_channels, h, h, device="cuda")
            x = torch.randn(B, model.latent_channels, h, h, device="cuda")
            t = torch.randint(20, 980, (B,), device="cuda")
            with torch.no_grad():
                ref = plain(ctx, cond)(x, t)
                out = graphed(ctx, cond)(x, t)
            torch.testing.assert_close(out, ref, rtol=1e-3, atol=1e-3)
    assert len(graphed._graphs) == 2  # one graph per batch size


def _fused_render_and_grads(fusion, device: str):
    """A proposal-sampled render (chunked, checkpointed field, normals on a subset) and the gradients
    of its losses w.r.t. every field and proposal parameter, the field and sampler built from one
    seed and running on ``fusion``."""
    from novelviews.nerf.losses import render_rays_with_normals
    from novelviews.nerf.render import render_rays

    torch.manual_seed(0)
    cfg = NeRFFieldConfig(grid=HashGridConfig(n_levels=4, log2_hashmap_size=10), checkpoint_points=3000)
    field = NeRFField(cfg).to(device)
    sampler = make_sampler(SamplerConfig(num_proposal_samples=24, num_samples=16), cfg.bound, cfg.unbounded).to(device)
    field.fusion = sampler.density_field.fusion = fusion
    g = torch.Generator().manual_seed(1)
    o = (torch.randn(300, 3, generator=g) * 0.1 + torch.tensor([0.0, 0.0, 3.0])).to(device)
    d = torch.nn.functional.normalize(torch.tensor([0.0, 0.0, -1.0]) + 0.2 * torch.randn(300, 3, generator=g),
                                      dim=-1).to(device)
    torch.manual_seed(2)
    out = render_rays(field, o, d, sampler, None, 0.05, 1000.0, stratified=True, chunk=1000)
    geo = render_rays_with_normals(field, o[:50], d[:50], sampler, None, 0.05, 1000.0, stratified=True,
                                   min_weight=1e-4)
    loss = out["rgb"].square().mean() + out["interlevel"] + geo["normal"].square().mean() + geo["interlevel"]
    params = list(field.parameters()) + list(sampler.parameters())
    return {**out, "normal": geo["normal"]}, torch.autograd.grad(loss, params)


def test_fusion_traces_the_render_into_graphs_that_equal_eager():
    """Every function the training render hands to a Fusion traces as one graph (fullgraph) and,
    run through AOTAutograd without a code generator (backend aot_eager), gives exactly the eager
    values and gradients: the pure functions draw no random numbers and change no state."""
    from novelviews.runtime import EAGER, Fusion

    fusion = Fusion(True, backend="aot_eager")
    ref, ref_grads = _fused_render_and_grads(EAGER, "cpu")
    out, grads = _fused_render_and_grads(fusion, "cpu")
    # normalize_points, field_head, density_head, proposal_points, resample, volume_render, interlevel_loss
    assert fusion.compiled_functions == 7
    for k in ref:
        torch.testing.assert_close(out[k], ref[k], rtol=0, atol=0)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert any(float(g.abs().max()) > 0 for g in grads)


def test_fusion_is_eager_without_grad_and_for_tiny_inputs():
    from novelviews.runtime import Fusion

    calls = []

    def f(x):
        calls.append(torch.compiler.is_compiling())  # True while Dynamo traces f
        return x * 2 + 1

    fusion = Fusion(True, backend="aot_eager")
    with torch.no_grad():
        assert fusion(f) is f  # evaluation renders: the function itself, no compile
    fast = fusion(f)
    assert fast is not f and fusion(f) is fast  # compiled once, then reused
    calls.clear()
    torch.testing.assert_close(fast(torch.ones(1, 3)), torch.full((1, 3), 3.0))
    assert calls == [False]  # leading size 1 ran the eager function (sizes < 2 get no graph of their own)
    calls.clear()
    torch.testing.assert_close(fast(torch.ones(5, 3)), torch.full((5, 3), 3.0))
    assert calls and all(calls)  # traced and compiled
    calls.clear()
    torch.testing.assert_close(fast(torch.ones(7, 3)), torch.full((7, 3), 3.0))
    assert False not in calls  # another size: the compiled (dynamic-shape) function, not the eager one
    assert Fusion(False)(f) is f


def test_compiled_render_matches_eager_on_cuda():
    """Inductor's fused kernels vs eager on CUDA: float32 reassociation only (values 1e-5, gradients
    1e-4 relative to their largest entry)."""
    if not torch.cuda.is_available():
        pytest.skip("the compiled render runs on CUDA")
    from novelviews.runtime import EAGER, Fusion

    ref, ref_grads = _fused_render_and_grads(EAGER, "cuda")
    out, grads = _fused_render_and_grads(Fusion(True), "cuda")
    for k in ref:
        torch.testing.assert_close(out[k], ref[k], rtol=1e-5, atol=1e-5)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()) + 1e-12)


def test_render_compile_option_shares_one_fusion():
    """render.compile=on gives the field and the proposal field one compiling Fusion (off: eager)."""
    from novelviews.config import load
    from novelviews.nerf import distill as D
    from novelviews.runtime import EAGER

    for value, enabled in (("on", True), ("off", False)):
        cfg = load(D.DistillConfig, overrides=[f"render.compile={value}", "field.grid.n_levels=2"])
        scene = D.build_scene(cfg, 32, torch.device("cpu"))
        assert scene.field.fusion.enabled is enabled
        assert scene.sampler.density_field.fusion is scene.field.fusion
        assert (scene.field.fusion is EAGER) is not enabled
    with pytest.raises(ConfigError, match="render.compile"):
        load(D.DistillConfig, overrides=["render.compile=auto"]).validate()
