"""NeRF geometry: hash encoding, field, samplers, volume rendering, fitting, export."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from novelviews import cameras as C
from novelviews.config import from_dict
from novelviews.errors import ConfigError, NovelViewsError
from novelviews.nerf import (
    Background,
    BackgroundConfig,
    HashGridConfig,
    HashGridEncoding,
    NeRFField,
    NeRFFieldConfig,
    SamplerConfig,
    contract,
    export_mesh,
    get_rays,
    hash_encode_reference,
    interlevel_loss,
    make_sampler,
    render_image,
    render_rays,
    render_weights,
    volume_render,
)
from novelviews.nerf.encoding import level_layout
from novelviews.nerf.export import auto_threshold, otsu_threshold
from novelviews.nerf.field import normalize_points
from novelviews.nerf.sampler import ProposalFieldConfig, sample_pdf, s_to_t, stratified_edges
from novelviews.nerf.render import near_far_box

SMALL_GRID = HashGridConfig(n_levels=5, n_features_per_level=2, log2_hashmap_size=9, base_resolution=3,
                            per_level_scale=1.8)


def _random_table(enc: HashGridEncoding, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        enc.table.copy_(torch.rand(enc.table.shape, generator=g) * 2 - 1)


# --------------------------------------------------------------------------- hash encoding


def test_hash_layout_dense_then_hashed():
    res, sizes, offsets, dense = level_layout(SMALL_GRID)
    assert res == [3, 5, 9, 17, 31]  # floor(3 * 1.8**l)
    assert dense == [True, True, False, False, False]  # (N+1)^3 <= 512 only for the first two
    assert sizes == [64, 216, 512, 512, 512]
    assert offsets == [0, 64, 280, 792, 1304]


def test_hash_fast_matches_reference():
    torch.manual_seed(0)
    enc = HashGridEncoding(SMALL_GRID)
    _random_table(enc)
    u = torch.rand(40, 3)
    u[0] = 0.0
    u[1] = 1.0
    u[2] = torch.tensor([1.2, -0.3, 0.5])  # clamped
    fast = enc(u)
    slow = hash_encode_reference(enc, u)
    assert fast.shape == (40, SMALL_GRID.output_dim)
    torch.testing.assert_close(fast, slow, atol=2e-6, rtol=1e-5)
    # batched leading dims are kept
    assert enc(u.reshape(4, 10, 3)).shape == (4, 10, SMALL_GRID.output_dim)


def test_hash_gradients_reach_table_and_match_reference():
    torch.manual_seed(1)
    enc = HashGridEncoding(SMALL_GRID)
    _random_table(enc, 1)
    u = torch.rand(25, 3)
    coef = torch.randn(25, SMALL_GRID.output_dim)
    (enc(u) * coef).sum().backward()
    g_fast = enc.table.grad.clone()
    enc.table.grad = None
    (hash_encode_reference(enc, u) * coef).sum().backward()
    g_slow = enc.table.grad
    assert g_fast.abs().sum() > 0
    # at most 8 rows per point and level receive gradient
    assert int((g_fast.abs().sum(-1) > 0).sum()) <= 25 * 8 * SMALL_GRID.n_levels
    torch.testing.assert_close(g_fast, g_slow, atol=1e-5, rtol=1e-4)


def test_corner_sum_matmul_and_multiply_reduce_agree_with_gradients():
    """The CPU (bmm) and CUDA (multiply + reduce) trilinear blends: same values and gradients."""
    from novelviews.nerf.encoding import corner_sum

    g = torch.Generator().manual_seed(3)
    w = torch.rand(30, 5, 8, generator=g, dtype=torch.float64)
    f = torch.randn(30, 5, 8, 2, generator=g, dtype=torch.float64)
    coef = torch.randn(30, 5, 2, generator=g, dtype=torch.float64)
    direct = torch.stack([sum(w[i, l, c] * f[i, l, c] for c in range(8)) for i in range(30) for l in range(5)])
    outs, grads = [], []
    for mm in (True, False):
        wi, fi = w.clone().requires_grad_(), f.clone().requires_grad_()
        out = corner_sum(wi, fi, batched_matmul=mm)
        (out * coef).sum().backward()
        outs.append(out.detach())
        grads.append((wi.grad, fi.grad))
    torch.testing.assert_close(outs[0].reshape(-1, 2), direct)
    torch.testing.assert_close(outs[1], outs[0])
    torch.testing.assert_close(grads[1][0], grads[0][0])
    torch.testing.assert_close(grads[1][1], grads[0][1])
    torch.testing.assert_close(grads[0][1], w[..., None] * coef[:, :, None, :])  # d/df = w x upstream


def test_hash_encoding_is_continuous_and_interpolates_vertices():
    enc = HashGridEncoding(SMALL_GRID)
    _random_table(enc, 2)
    # a grid vertex of level 0 (res 3): u = 1/3 -> exactly the stored value of that vertex
    p = torch.tensor([[1 / 3, 2 / 3, 0.0]])
    row = 1 + 2 * 4 + 0 * 16
    torch.testing.assert_close(enc(p)[0, :2], enc.table[row].detach(), atol=1e-5, rtol=0)
    # continuity across a cell face
    eps = 1e-5
    a = enc(torch.tensor([[1 / 3 - eps, 0.4, 0.7]]))
    b = enc(torch.tensor([[1 / 3 + eps, 0.4, 0.7]]))
    assert (a - b).abs().max() < 1e-2


def test_hash_tcnn_matches_shape():
    tcnn = pytest.importorskip("tinycudann")  # noqa: F841
    if not torch.cuda.is_available():
        pytest.skip("tinycudann needs CUDA")
    enc = HashGridEncoding(SMALL_GRID, backend="tcnn").cuda()
    out = enc(torch.rand(100, 3, device="cuda"))
    assert out.shape == (100, SMALL_GRID.output_dim)
    out.sum().backward()


# --------------------------------------------------------------------------- field


def test_contraction():
    torch.manual_seed(0)
    inside = torch.randn(100, 3)
    inside = inside / inside.norm(dim=-1, keepdim=True) * torch.rand(100, 1)
    torch.testing.assert_close(contract(inside), inside)
    far = torch.randn(100, 3) * 1e6
    assert (contract(far).norm(dim=-1) < 2.0).all()
    assert (contract(far).norm(dim=-1) > 1.99).all()
    d = torch.nn.functional.normalize(torch.randn(10, 3), dim=-1)
    lo, hi = contract(d * (1 - 1e-6)), contract(d * (1 + 1e-6))
    assert (lo - hi).norm(dim=-1).max() < 1e-5  # continuous at |y| = 1
    r = torch.linspace(0.1, 50, 200)[:, None]
    norms = contract(d[:1] * r).norm(dim=-1)
    assert (norms[1:] > norms[:-1]).all()  # radially monotone
    torch.testing.assert_close(contract(d[:1] * 4.0).norm(dim=-1), torch.tensor([2 - 1 / 4]))
    # normalize_points: unbounded -> [0, 1]; bounded -> mask outside the box
    u, m = normalize_points(torch.tensor([[0.0, 0, 0], [100.0, 0, 0]]), 2.0, True)
    torch.testing.assert_close(u[0], torch.full((3,), 0.5))
    assert u.min() >= 0 and u.max() <= 1 and m.all()
    _, m = normalize_points(torch.tensor([[1.9, 0, 0], [2.1, 0, 0]]), 2.0, False)
    assert m.tolist() == [True, False]


def _ball_field(radius: float = 0.6, blob: float = 40.0, bias=(0.0, 1.5, -0.5, 0.0), bounded=False) -> NeRFField:
    """A field whose density is exactly softplus(blob (1 - |x| / radius)) and albedo constant."""
    cfg = NeRFFieldConfig(grid=SMALL_GRID, blob_density=blob, blob_radius=radius, unbounded=not bounded,
                          bound=1.0)
    f = NeRFField(cfg)
    last = f.mlp[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor(bias))
    return f


def test_field_blob_density_albedo_and_normals():
    f = _ball_field()
    x = torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.0, 0.0], [0.0, 0.0, 0.9]])
    sigma, albedo = f(x)
    expect = torch.nn.functional.softplus(40.0 * (1 - x.norm(dim=-1) / 0.6))
    torch.testing.assert_close(sigma, expect)
    torch.testing.assert_close(albedo, torch.sigmoid(torch.tensor([1.5, -0.5, 0.0])).expand(3, 3))
    pts = torch.nn.functional.normalize(torch.randn(20, 3), dim=-1) * 0.5
    n_fd = f.normals(pts, "finite_difference")
    with torch.no_grad():
        n_ag = f.normals(pts, "autograd")
    radial = torch.nn.functional.normalize(pts, dim=-1)
    assert (n_fd * radial).sum(-1).min() > 0.999  # outward
    torch.testing.assert_close(n_ag, radial, atol=1e-4, rtol=0)
    # bounded: zero outside the box
    fb = _ball_field(radius=5.0, bounded=True)
    s = fb.density(torch.tensor([[0.5, 0, 0], [1.5, 0, 0]]))
    assert s[0] > 0 and s[1] == 0


def test_reference_defaults_render():
    torch.manual_seed(0)
    field = NeRFField()  # the reference's field: 16 levels x 2, 2^19, base 16, scale 1.4473, blob bias
    cfg = field.cfg
    assert (cfg.bound, cfg.unbounded, cfg.mlp_width, cfg.mlp_hidden_layers) == (2.0, True, 32, 2)
    res, sizes, _, dense = level_layout(cfg.grid)
    assert res[:6] == [16, 23, 33, 48, 70, 101] and res[-1] == int(16 * 1.4473**15)
    assert dense == [True] * 5 + [False] * 11  # (70 + 1)^3 <= 2^19 < (101 + 1)^3
    assert field.encoding.table.shape == (sum(sizes), 2)
    sampler = make_sampler(None, cfg.bound, cfg.unbounded)
    assert sampler.cfg.num_samples == 64 and sampler.cfg.num_proposal_samples == 64
    c2w = C.camera_on_sphere(math.radians(31), 0.0, 1.0)
    K = C.intrinsics_from_fov(math.radians(52.55), 6, 6)
    out = render_image(field, c2w, K, 6, 6, sampler, Background())
    assert out["rgb"].shape == (6, 6, 3) and out["depth"].shape == (6, 6)
    # the blob bias (10 (1 - |x| / 0.5)) makes the centre opaque at initialisation: the camera at
    # distance 1 sees a surface at z-depth between 0.5 and 1
    assert out["opacity"][3, 3] > 0.9 and 0.4 < float(out["depth"][3, 3]) < 1.0
    # float64 points work with float32 parameters
    sigma, albedo = field(torch.zeros(2, 3, dtype=torch.float64))
    assert sigma.shape == (2,) and albedo.shape == (2, 3)


def test_configs_are_typed():
    cfg = from_dict(NeRFFieldConfig, {"bound": 1.5, "grid": {"n_levels": 4}, "density_activation": "exp"})
    assert cfg.grid.n_levels == 4 and cfg.bound == 1.5 and cfg.grid.log2_hashmap_size == 19
    with pytest.raises(ConfigError, match="bound"):
        from_dict(NeRFFieldConfig, {"bound": -1.0})
    with pytest.raises(ConfigError, match="grid.n_levels"):
        from_dict(NeRFFieldConfig, {"grid": {"n_levels": "many"}})
    with pytest.raises(ConfigError, match="color"):
        from_dict(BackgroundConfig, {"color": [2.0, 0.0, 0.0]})
    s = from_dict(SamplerConfig, {"num_samples": 32})
    assert s.num_proposal_samples == 64 and s.kind == "proposal"


def test_background():
    d = torch.nn.functional.normalize(torch.randn(7, 3), dim=-1)
    torch.testing.assert_close(Background()(d), torch.full((7, 3), 0.5))
    torch.testing.assert_close(Background()(d, torch.tensor([1.0, 0.0, 0.0])), torch.tensor([[1.0, 0, 0]]).expand(7, 3))
    out = Background(BackgroundConfig(kind="mlp"))(d)
    assert out.shape == (7, 3) and out.min() >= 0 and out.max() <= 1
    assert out.std(0).sum() > 0  # depends on the direction


# --------------------------------------------------------------------------- volume rendering


def test_render_weights_match_product_reference():
    torch.manual_seed(0)
    sig = torch.rand(3, 10) * 5
    dl = torch.rand(3, 10) * 0.3
    w = render_weights(sig, dl)
    ref = torch.zeros_like(w)
    for r in range(3):
        T = 1.0
        for i in range(10):
            a = 1 - math.exp(-float(sig[r, i] * dl[r, i]))
            ref[r, i] = T * a
            T *= 1 - a
    torch.testing.assert_close(w, ref, atol=1e-6, rtol=1e-5)


def test_volume_render_closed_form_segment():
    # constant density sigma on [a, a + L], empty before and after
    sigma, a, L, S = 1.7, 1.0, 0.8, 4000
    f64 = torch.float64
    t = torch.cat([torch.tensor([0.2], dtype=f64), torch.linspace(a, a + L, S + 1, dtype=f64),
                   torch.tensor([3.0], dtype=f64)])[None]
    sig = torch.zeros(1, S + 2, dtype=torch.float64)
    sig[0, 1:-1] = sigma
    rgb = torch.tensor([0.2, 0.4, 0.9], dtype=torch.float64).expand(1, S + 2, 3)
    bg = torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64)
    cos = torch.tensor([0.8], dtype=torch.float64)
    out = volume_render(sig, rgb, t, bg, z_scale=cos)
    e = math.exp(-sigma * L)
    assert abs(out.opacity.item() - (1 - e)) < 1e-12
    torch.testing.assert_close(out.weights.sum(-1), out.opacity)
    exp_t = a * (1 - e) + (1 - e) / sigma - L * e  # int_a^{a+L} t sigma exp(-sigma (t - a)) dt
    assert abs(out.depth.item() - 0.8 * exp_t) < 1e-6
    torch.testing.assert_close(out.rgb[0], (1 - e) * rgb[0, 0] + e * bg)
    # premultiplied without background
    out0 = volume_render(sig, rgb, t)
    torch.testing.assert_close(out0.rgb[0], (1 - e) * rgb[0, 0])
    assert abs(out0.depth.item() - exp_t) < 1e-6  # ray distance without z_scale


def test_get_rays_conventions():
    c2w = C.camera_on_sphere(math.radians(30), math.radians(40), 2.5)
    H, W = 6, 8
    K = C.intrinsics_from_fov(math.radians(50), W, H)
    o, d, zs = get_rays(c2w, K, H, W, dtype=torch.float64)
    assert o.shape == (H * W, 3) and torch.allclose(d.norm(dim=-1), torch.ones(H * W, dtype=torch.float64))
    # project points along each ray back with an OpenCV-style projection: pixel centres (+0.5)
    w2c = C.invert_pose(C.opengl_to_opencv(c2w))
    p = o + 1.7 * d
    pc = p @ w2c[:3, :3].T + w2c[:3, 3]
    uv = pc[:, :2] / pc[:, 2:] @ K[:2, :2].T + K[:2, 2]
    v, u = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    torch.testing.assert_close(uv, torch.stack([u.reshape(-1), v.reshape(-1)], -1).double())
    # z_scale = cosine to the optical axis (-z of the camera); z-depth = 1.7 * z_scale
    torch.testing.assert_close(pc[:, 2], 1.7 * zs)


def test_near_far_box():
    o = torch.tensor([[-3.0, 0.0, 0.0], [-3.0, 5.0, 0.0]])
    d = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    n, f = near_far_box(o, d, 1.0)
    torch.testing.assert_close(n[0], torch.tensor(2.0))
    torch.testing.assert_close(f[0], torch.tensor(4.0))
    assert n[1] == f[1]  # missed: empty interval


# --------------------------------------------------------------------------- samplers


def test_spacing_and_stratified_edges():
    torch.manual_seed(0)
    e = stratified_edges(5, 16, True)
    assert (e[:, 1:] >= e[:, :-1]).all() and (e[:, 0] == 0).all() and (e[:, -1] == 1).all()
    assert not torch.allclose(e, stratified_edges(5, 16, False))
    near, far = torch.tensor([0.1, 0.5]), torch.tensor([1000.0, 3.0])
    s = torch.linspace(0, 1, 101).expand(2, 101)
    for spacing in ("linear", "contracted"):
        t = s_to_t(s, near, far, spacing, 2.0)
        torch.testing.assert_close(t[:, 0], near)
        torch.testing.assert_close(t[:, -1], far, rtol=1e-4, atol=0)
        assert (t[:, 1:] > t[:, :-1]).all()
    t = s_to_t(s, near, far, "contracted", 2.0)
    assert t[0, 50] < 10  # half the samples within a few units of the camera even with far=1000


def test_sample_pdf():
    edges = torch.linspace(0, 1, 9).expand(2, 9).contiguous()
    # uniform histogram -> the regular edges come back
    out = sample_pdf(edges, torch.ones(2, 8), 16, stratified=False)
    torch.testing.assert_close(out, torch.linspace(0, 1, 17).expand(2, 17))
    # all mass in bin 5 ([0.625, 0.75]) -> (1 - padding) of the samples fall there
    w = torch.zeros(2, 8)
    w[:, 5] = 1.0
    out = sample_pdf(edges, w, 100, stratified=True, padding=0.05)
    mid = 0.5 * (out[:, 1:] + out[:, :-1])
    frac = ((mid > 0.625) & (mid < 0.75)).float().mean()
    assert frac > 0.9
    assert (out[:, 1:] >= out[:, :-1]).all() and (out[:, 0] == 0).all() and (out[:, -1] == 1).all()


def test_interlevel_loss():
    s = torch.linspace(0, 1, 9).expand(1, 9)
    w = torch.tensor([[0.0, 0.1, 0.5, 0.3, 0.0, 0.0, 0.0, 0.1]])
    assert interlevel_loss(s, w, s, w).item() < 1e-9  # proposal == final
    wp = torch.tensor([[0.0, 0.1, 0.0, 0.3, 0.0, 0.0, 0.0, 0.1]], requires_grad=True)
    loss = interlevel_loss(s, w, s, wp)
    assert abs(loss.item() - 0.5**2 / 0.5) < 1e-5  # the missing 0.5 of bin 2
    loss.backward()
    assert wp.grad[0, 2] < 0  # raising the proposal weight there lowers the loss
    # coarser proposal with two bins covering the same mass: bound holds -> zero loss
    sp = torch.tensor([[0.0, 0.5, 1.0]])
    assert interlevel_loss(s, w, sp, torch.tensor([[0.9, 0.1]])).item() < 1e-9


def test_render_rays_chunk_invariant_and_proposal_trains():
    torch.manual_seed(0)
    field = _ball_field(radius=0.6, blob=30.0)
    sampler = make_sampler(SamplerConfig(num_samples=24, num_proposal_samples=24,
                                         proposal=ProposalFieldConfig(grid=SMALL_GRID, blob_density=0.0)),
                           field.cfg.bound, field.cfg.unbounded)
    c2w = C.camera_on_sphere(0.3, 0.2, 2.0)
    K = C.intrinsics_from_fov(math.radians(60), 12, 12)
    o, d, zs = get_rays(c2w, K, 12, 12)
    with torch.no_grad():
        a = render_rays(field, o, d, sampler, Background(), chunk=1000, z_scale=zs, far=100.0)
        b = render_rays(field, o, d, sampler, Background(), chunk=7, z_scale=zs, far=100.0)
    for k in ("rgb", "depth", "opacity"):
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a["interlevel"], b["interlevel"], atol=1e-5, rtol=1e-4)
    # the centre ray hits the soft ball (camera at distance 2): opaque; its expected z-depth, by an
    # independent 1D quadrature of the density along the (almost axial) ray, lies near 1.58
    centre = 6 * 12 + 6
    fine = make_sampler(SamplerConfig(kind="uniform", num_samples=512, spacing="linear"), 1.0, True)
    with torch.no_grad():
        c = render_rays(field, o, d, fine, None, near=0.5, far=3.5, z_scale=zs)
    assert a["opacity"][centre] > 0.99 and c["opacity"][centre] > 0.99
    t = np.linspace(0.5, 3.5, 200001)
    dens = np.logaddexp(0.0, 30.0 * (1 - np.abs(2.0 - t) / 0.6))  # softplus along the axis
    tau = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(t))])
    expect = np.trapezoid(t * dens * np.exp(-tau), t)
    assert abs(float(c["depth"][centre]) - expect) < 0.02
    assert c["opacity"][0] < 0.01  # corner rays miss the ball
    # train the proposal field alone: the interlevel loss drops
    opt = torch.optim.Adam(sampler.parameters(), lr=0.02)
    first = None
    for _ in range(40):
        out = render_rays(field, o, d, sampler, None, stratified=True, chunk=4096, far=100.0)
        opt.zero_grad()
        out["interlevel"].backward()
        opt.step()
        first = out["interlevel"].item() if first is None else first
    assert out["interlevel"].item() < 0.5 * first
    # after training, the proposal puts the final samples around the surface: depth close to the fine one
    with torch.no_grad():
        a = render_rays(field, o, d, sampler, None, z_scale=zs, far=100.0)
    assert abs(a["depth"][centre] - c["depth"][centre]) < 0.05


# --------------------------------------------------------------------------- fitting (no prior)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10.0 * math.log10(float(((a - b) ** 2).mean()))


def test_fit_synthetic_scene_heldout_psnr():
    """Fit a small NeRF to 24 known views of a synth scene; held-out PSNR >= 25 dB at 64 px."""
    synth = pytest.importorskip("novelviews.synth")
    torch.manual_seed(0)
    H = 64
    prims = [
        synth.sphere((0.0, 0.0, 0.35), 0.35, synth.Material((0.85, 0.3, 0.2))),
        synth.box((0.35, -0.45, 0.2), (0.2, 0.2, 0.2), 0.02, synth.Material((0.2, 0.5, 0.85))),
        synth.cylinder((-0.4, 0.35, 0.25), 0.15, 0.25, synth.Material((0.3, 0.8, 0.35))),
    ]
    scene = synth.build_scene(prims, ground=False, sky_zenith=(0.5, 0.5, 0.5), sky_horizon=(0.5, 0.5, 0.5))

    def cams(n, offset):
        az = [2 * math.pi * (i + offset) / n for i in range(n)]
        el = [math.radians(15 + 25 * (0.5 + 0.5 * math.sin(3 * a))) for a in az]
        return torch.stack([C.camera_on_sphere(e, a, 3.0, target=(0, 0, 0.2)) for e, a in zip(el, az)])

    K = C.intrinsics_from_fov(math.radians(40), H, H)
    train_c2w, test_c2w = cams(24, 0.0), cams(4, 0.37)
    train = synth.render(scene, train_c2w, K, H, H, spp=2)["rgb"]
    test_out = synth.render(scene, test_c2w, K, H, H, spp=2)
    test, test_mask = test_out["rgb"], test_out["object_mask"]
    rays = [get_rays(c, K, H, H) for c in train_c2w]
    ro = torch.cat([r[0] for r in rays])
    rd = torch.cat([r[1] for r in rays])
    target = train.reshape(-1, 3)

    fcfg = NeRFFieldConfig(bound=0.8, unbounded=False, blob_density=0.0,
                           grid=HashGridConfig(n_levels=8, log2_hashmap_size=15, base_resolution=8,
                                               per_level_scale=1.5))
    field = NeRFField(fcfg)
    sampler = make_sampler(SamplerConfig(kind="uniform", num_samples=24), fcfg.bound, fcfg.unbounded)
    bg = Background()
    steps, batch = 250, 1024
    opt = torch.optim.Adam(field.parameters(), lr=1e-2, betas=(0.9, 0.99), eps=1e-15)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.1 ** (i / steps))
    t0 = time.time()
    for _ in range(steps):
        idx = torch.randint(0, ro.shape[0], (batch,))
        out = render_rays(field, ro[idx], rd[idx], sampler, bg, near=0.1, far=10.0, stratified=True, chunk=batch)
        loss = ((out["rgb"] - target[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    seconds = time.time() - t0
    preds = [render_image(field, c, K, H, H, sampler, bg, near=0.1, far=10.0)["rgb"] for c in test_c2w]
    psnrs = [_psnr(p, g) for p, g in zip(preds, test)]
    mean = sum(psnrs) / len(psnrs)
    fg = _psnr(torch.stack(preds)[test_mask], test[test_mask])  # object pixels only (~15 % of the image)
    print(f"nerf fit: held-out PSNR {mean:.2f} dB ({', '.join(f'{p:.1f}' for p in psnrs)}), "
          f"object pixels {fg:.2f} dB, {seconds:.1f} s train")
    assert mean >= 25.0, psnrs
    # depth is z-depth: the opaque centre pixel of a held-out view lies near the sphere (camera distance ~3)
    r = render_image(field, test_c2w[0], K, H, H, sampler, bg, near=0.1, far=10.0)
    assert r["opacity"].max() > 0.95 and r["opacity"].min() < 0.05


# --------------------------------------------------------------------------- export


@pytest.mark.parametrize("ext", [".obj", ".ply", ".glb"])
def test_export_ball_mesh(tmp_path, ext):
    trimesh = pytest.importorskip("trimesh")
    pytest.importorskip("mcubes")
    field = _ball_field(radius=0.6, blob=40.0, bias=(0.0, 1.5, -0.5, 0.0))
    info = export_mesh(field, tmp_path / f"ball{ext}", resolution=48, bound=1.0)
    assert info["faces"] > 100 and info["vertices"] > 50
    # the level reported is where the surface is: softplus(40 (1 - r / 0.6)) = level
    level = info["level"]
    r_expect = 0.6 * (1 - math.log(math.expm1(level)) / 40.0)
    mesh = trimesh.load(tmp_path / f"ball{ext}", force="mesh", process=False)
    assert len(mesh.faces) == info["faces"]
    radii = np.linalg.norm(mesh.vertices, axis=1)
    assert abs(radii.mean() - r_expect) < 0.02 and radii.std() < 0.02
    assert 0.3 < r_expect < 0.65
    assert mesh.volume > 0  # outward-facing triangles
    assert abs(mesh.volume - 4 / 3 * math.pi * r_expect**3) / (4 / 3 * math.pi * r_expect**3) < 0.05
    cols = np.asarray(mesh.visual.vertex_colors)[:, :3]
    expect = np.round(255 * torch.sigmoid(torch.tensor([1.5, -0.5, 0.0])).numpy())
    assert np.abs(cols.astype(float) - expect).max() <= 1


def test_export_threshold_and_errors(tmp_path):
    pytest.importorskip("mcubes")
    field = _ball_field(radius=0.6, blob=40.0)
    info = export_mesh(field, tmp_path / "ball.ply", resolution=32, threshold=20.0, bound=1.0)
    assert info["level"] == 20.0
    with pytest.raises(NovelViewsError, match="threshold"):
        export_mesh(field, tmp_path / "x.ply", resolution=16, threshold=1e6, bound=1.0)
    with pytest.raises(NovelViewsError, match="extension"):
        export_mesh(field, tmp_path / "x.stl", resolution=16)
    assert not (tmp_path / "x.ply").exists()


def test_otsu_threshold_splits_bimodal():
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.normal(0, 0.1, 1000), rng.normal(5, 0.1, 300)])
    t = otsu_threshold(v)
    assert 0.5 < t < 4.5
    dens = np.concatenate([np.zeros(1000), np.full(100, 50.0)])
    assert 0 < auto_threshold(dens) < 50
