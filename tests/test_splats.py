"""3D Gaussian splats: the reference rasterizer (conventions, compositing, gradients against finite
differences), the tile-batched rasterizer against it, spherical harmonics, density control, a tiny fit,
exact resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from novelviews import cameras as C
from novelviews.splats.backend import SplatRenderConfig
from novelviews.splats.density import DensityStats, densify, prune, reset_opacity
from novelviews.splats.fit import FitConfig, Fitter, TrainView, render_views
from novelviews.splats.gaussians import GaussianModel, quaternion_to_rotation
from novelviews.splats.rasterize import ALPHA_MAX, rasterize
from novelviews.splats.sh import SH_C0, eval_sh, num_coefficients, rgb_to_sh

TORCH = SplatRenderConfig(backend="torch", tile_size=32)


def _camera(size: int, fov_deg: float = 50.0, elevation: float = 0.3, azimuth: float = 0.2, distance: float = 2.0,
            dtype=torch.float64):
    c2w = C.camera_on_sphere(elevation, azimuth, distance).to(dtype)
    K = C.intrinsics_from_fov(math.radians(fov_deg), size, size).to(dtype)
    return c2w, K


def _render(model, c2w, K, size, bg=(1.0, 1.0, 1.0), **kw):
    return rasterize(model.means, model.quats, model.scales, model.opacities, model.sh, model.sh_degree, c2w, K,
                     size, size, torch.tensor(bg, dtype=model.means.dtype), **kw)


# --------------------------------------------------------------------------- conventions


def test_a_point_on_a_pixel_ray_projects_onto_that_pixel():
    """The rasterizer's projection is the inverse of cameras.ray_directions (OpenGL c2w, pixel centres +0.5):
    a small opaque Gaussian put on pixel (row 3, column 9)'s ray is brightest exactly there."""
    size = 16
    c2w, K = _camera(size)
    o, d = C.ray_directions(K[None], c2w[None], size, size)
    point = o[0, 3, 9] + 1.7 * d[0, 3, 9]
    model = GaussianModel.from_points(point[None], torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64),
                                      opacity=0.9, scales=torch.tensor([0.003], dtype=torch.float64))
    out = _render(model, c2w, K, size, bg=(0.0, 0.0, 0.0))
    assert torch.allclose(out.means2d[0], torch.tensor([9.5, 3.5], dtype=torch.float64), atol=1e-9)
    red = out.rgb[..., 0]
    assert divmod(int(red.argmax()), size) == (3, 9)
    # its z-depth is the distance along the optical axis
    z = float(-(C.invert_pose(c2w) @ torch.cat([point, point.new_ones(1)]))[2])
    assert float((out.depth[3, 9] / out.alpha[3, 9]).detach()) == pytest.approx(z, rel=1e-9)


def test_compositing_front_to_back_with_clamp_and_background():
    """Two wide opaque Gaussians on the optical axis: the nearer one's colour wins, alpha clamps at
    0.99, the rest of the light comes from the one behind and the background."""
    size = 8
    c2w, K = _camera(size, elevation=0.0, azimuth=0.0, distance=3.0)
    fwd = -c2w[:3, 2]
    pts = torch.stack([c2w[:3, 3] + 2.0 * fwd, c2w[:3, 3] + 1.0 * fwd])  # the far one first in memory
    cols = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    model = GaussianModel.from_points(pts, cols, opacity=0.999, scales=torch.tensor([5.0, 5.0], dtype=torch.float64))
    out = _render(model, c2w, K, size, bg=(0.0, 1.0, 0.0))
    a = ALPHA_MAX  # both clamp (opacity 0.999, huge Gaussians: exp(power) ~ 1 everywhere)
    centre = out.rgb[4, 4]
    expected = torch.tensor([a, (1 - a) ** 2, (1 - a) * a], dtype=torch.float64)
    assert torch.allclose(centre, expected, atol=1e-4)
    assert float(out.alpha[4, 4].detach()) == pytest.approx(1 - (1 - a) ** 2, abs=1e-4)


def test_tiles_and_per_tile_recomputation_do_not_change_the_image_or_its_gradients():
    g = torch.Generator().manual_seed(1)
    model = GaussianModel.from_points(torch.randn(30, 3, generator=g, dtype=torch.float64) * 0.3,
                                      torch.rand(30, 3, generator=g, dtype=torch.float64), sh_degree=1, opacity=0.6)
    c2w, K = _camera(20)
    results = []
    for tile, ckpt in ((20, False), (7, False), (4, True)):
        model.zero_grad()
        out = _render(model, c2w, K, 20, tile_size=tile, checkpoint=ckpt)
        (out.rgb.square().sum() + out.depth.sum()).backward()
        results.append((out.rgb.detach(), out.depth.detach(), model.means.grad.clone(), model.log_scales.grad.clone()))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.allclose(a, b, atol=1e-10, rtol=1e-9)


def test_spherical_harmonics_are_orthonormal_on_the_sphere():
    """The 16 basis functions of degree <= 3 (read off eval_sh with unit coefficients) integrate to
    the identity: the constants and signs give an orthonormal real SH basis."""
    n = 6000
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / n
    phi = math.pi * (1 + 5 ** 0.5) * i
    r = torch.sqrt(1 - z * z)
    dirs = torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], -1)  # Fibonacci sphere, equal areas
    k = num_coefficients(3)
    coeffs = torch.eye(k, dtype=torch.float64)[:, :, None].expand(k, k, 3)  # basis j on channel 0..2
    Y = torch.stack([eval_sh(3, coeffs[j].expand(n, k, 3), dirs)[:, 0] for j in range(k)])  # [k, n]
    gram = Y @ Y.T * (4 * math.pi / n)
    assert torch.allclose(gram, torch.eye(k, dtype=torch.float64), atol=2e-3)
    assert float(eval_sh(0, rgb_to_sh(torch.tensor([[0.8, 0.2, 0.5]], dtype=torch.float64))[:, None], dirs[:1])[0, 0]) == \
        pytest.approx((0.8 - 0.5), abs=1e-12)
    assert SH_C0 == pytest.approx(0.5 / math.sqrt(math.pi))


def test_quaternion_rotations_are_proper_rotations():
    q = torch.randn(10, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    R = quaternion_to_rotation(q)
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(10, 3, 3), atol=1e-12)
    assert torch.allclose(torch.linalg.det(R), torch.ones(10, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(quaternion_to_rotation(torch.tensor([1.0, 0, 0, 0])), torch.eye(3))


# --------------------------------------------------------------------------- gradients


def test_rasterizer_gradients_match_central_finite_differences():
    """float64, 5 anisotropic rotated Gaussians with SH degree 1, 8x8 px: the autograd gradient of a
    weighted sum of colour, alpha and depth with respect to every parameter (means, log-scales,
    quaternions, opacity logits, SH coefficients) against central differences."""
    g = torch.Generator().manual_seed(3)
    n, size = 5, 8
    means = torch.randn(n, 3, generator=g, dtype=torch.float64) * 0.15
    log_scales = (torch.rand(n, 3, generator=g, dtype=torch.float64) * 0.5 + 0.12).log()
    quats = torch.randn(n, 4, generator=g, dtype=torch.float64)
    logits = torch.randn(n, generator=g, dtype=torch.float64) * 0.5
    sh = torch.randn(n, 4, 3, generator=g, dtype=torch.float64) * 0.3
    c2w, K = _camera(size, fov_deg=40.0)
    w_rgb = torch.rand(size, size, 3, generator=g, dtype=torch.float64)
    w_a = torch.rand(size, size, generator=g, dtype=torch.float64)
    w_d = torch.rand(size, size, generator=g, dtype=torch.float64)
    bg = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)

    def f(m, ls, q, lo, c):
        out = rasterize(m, q, ls.exp(), torch.sigmoid(lo), c, 1, c2w, K, size, size, bg, tile_size=4)
        return (out.rgb * w_rgb).sum() + (out.alpha * w_a).sum() + 0.3 * (out.depth * w_d).sum()

    params = [p.clone().requires_grad_(True) for p in (means, log_scales, quats, logits, sh)]
    f(*params).backward()
    eps = 1e-6
    for k, p in enumerate(params):
        flat = p.detach().reshape(-1)
        numeric = torch.empty_like(flat)
        for i in range(flat.numel()):
            vals = []
            for sign in (1, -1):
                shifted = [x.detach().clone() for x in params]
                shifted[k].view(-1)[i] += sign * eps
                with torch.no_grad():
                    vals.append(f(*shifted))
            numeric[i] = (vals[0] - vals[1]) / (2 * eps)
        analytic = p.grad.reshape(-1)
        assert analytic.abs().max() > 1e-3  # every parameter matters in this scene
        assert torch.allclose(analytic, numeric, rtol=1e-5, atol=1e-7), (k, (analytic - numeric).abs().max())


# --------------------------------------------------------------------------- density control


def _adam_model(n: int, scales):
    g = torch.Generator().manual_seed(0)
    model = GaussianModel.from_points(torch.randn(n, 3, generator=g), torch.rand(n, 3, generator=g), sh_degree=1,
                                      opacity=0.5, scales=torch.as_tensor(scales, dtype=torch.float32))
    opt = torch.optim.Adam([{"params": [getattr(model, k)], "lr": 0.01, "name": k}
                            for k in ("means", "log_scales", "quats", "opacity_logits", "sh_dc", "sh_rest")])
    sum(getattr(model, k).sum() for k in ("means", "log_scales", "quats", "opacity_logits", "sh_dc")).backward()
    opt.step()
    return model, opt


def test_densify_clones_small_and_splits_large_gaussians_keeping_optimizer_rows():
    n = 10
    scales = [0.001] * 5 + [0.5] * 5  # extent 1, percent_dense 0.01: the first five are small
    model, opt = _adam_model(n, scales)
    before = model.tensors()
    moments = opt.state[model.means]["exp_avg"].clone()
    stats = DensityStats(n)
    stats.grad_sum = torch.tensor([1.0, 0, 1.0, 0, 0, 1.0, 1.0, 1.0, 0, 0]) * 0.001
    stats.count = torch.ones(n)
    cloned, split = densify(model, opt, stats, 0.0002, 0.01, 1.0, torch.Generator().manual_seed(0))
    assert (cloned, split) == (2, 3)
    assert len(model) == n + 2 + 3  # +1 per clone, +2 -1 per split
    keep = torch.tensor([True] * 5 + [False, False, False, True, True])
    assert torch.equal(model.means.detach()[:7], before["means"][keep])  # survivors first, in order
    assert torch.equal(model.means.detach()[7:9], before["means"][[0, 2]])  # then the clones
    children = model.log_scales.detach()[9:].exp()
    assert torch.allclose(children, before["log_scales"][5:8].exp().repeat(2, 1) / 1.6)
    state = opt.state[model.means]
    assert state["exp_avg"].shape == (len(model), 3)
    assert torch.equal(state["exp_avg"][:7], moments[keep]) and not state["exp_avg"][7:].any()
    assert opt.param_groups[0]["params"][0] is model.means
    assert stats.count.shape == (len(model),) and not stats.count.any()
    # a split child is drawn from its parent: within a few of the parent's sigmas
    parents = before["means"][5:8].repeat(2, 1)
    assert ((model.means.detach()[9:] - parents).norm(dim=1) < 4 * 0.5 * math.sqrt(3)).all()


def test_prune_removes_transparent_and_oversized_gaussians():
    n = 8
    model, opt = _adam_model(n, [0.01] * 6 + [0.5, 0.01])
    with torch.no_grad():
        model.opacity_logits[[1, 3]] = -10.0  # opacity ~ 4.5e-5
    stats = DensityStats(n)
    stats.max_radii = torch.tensor([1.0, 1, 1, 1, 1, 1, 1, 50])
    removed = prune(model, opt, stats, min_opacity=0.005, extent=1.0, max_world_size=0.1, max_screen_size=20)
    assert removed == 4 and len(model) == 4  # two transparent, one too large in the world, one on screen
    assert (model.opacities > 0.005).all() and (model.scales.max(1).values <= 0.1).all()
    assert opt.state[model.opacity_logits]["exp_avg"].shape == (4,)
    reset_opacity(model, opt, 0.01)
    assert (model.opacities <= 0.01 + 1e-6).all()


# --------------------------------------------------------------------------- tile-batched rasterizer


def _batched_scene(n: int, width: int, height: int, tile: int, seed: int):
    """float64 Gaussians in front of a camera: random overlapping ones, some centred exactly on tile
    borders, some behind the camera or far outside the image (culled), and a stack of five large
    nearly opaque ones on the optical axis where the centre pixel stops before T < 1e-4."""
    g = torch.Generator().manual_seed(seed)
    dt = torch.float64
    c2w = C.camera_on_sphere(0.3, 0.2, 2.0).to(dt)
    K = C.intrinsics_from_fov(math.radians(50.0), width, height).to(dt)
    pts = [torch.randn(n, 3, generator=g, dtype=dt) * 0.35]
    # on tile corners: ray through pixel corner (x = k * tile, y = j * tile) at depth 1.5
    corners = torch.tensor([[tile, tile], [2 * tile, tile], [tile, 2 * tile]], dtype=dt)
    ray = (C.invert_pose(c2w)[:3, :3].T @ torch.stack([(corners[:, 0] - K[0, 2]) / K[0, 0],
                                                      -(corners[:, 1] - K[1, 2]) / K[1, 1],
                                                      -torch.ones(3, dtype=dt)], 0)).T
    pts.append(c2w[:3, 3] + 1.5 * ray)
    pts.append(torch.stack([c2w[:3, 3] + 2.0 * c2w[:3, 2], c2w[:3, 3] - 50.0 * c2w[:3, 0] - 2.0 * c2w[:3, 2]]))
    axis = c2w[:3, 3] - c2w[:3, 2] * torch.linspace(1.0, 1.4, 5, dtype=dt)[:, None]
    pts.append(axis + 1e-3 * torch.randn(5, 3, generator=g, dtype=dt))
    means = torch.cat(pts)
    m = means.shape[0]
    log_scales = (torch.rand(m, 3, generator=g, dtype=dt) * 0.12 + 0.02).log()
    log_scales[-5:] = math.log(0.4)
    logits = torch.randn(m, generator=g, dtype=dt)
    logits[-5:] = 8.0  # opacity 0.9997: alpha clamps at 0.99, T = 1e-4 after two
    quats = torch.randn(m, 4, generator=g, dtype=dt)
    sh = torch.randn(m, 4, 3, generator=g, dtype=dt) * 0.3
    return [means, log_scales, quats, logits, sh], c2w, K


def _render_and_grads(fn, tensors, c2w, K, width, height, tile, **kw):
    m, ls, q, lo, sh = [t.clone().requires_grad_(True) for t in tensors]
    out = fn(m, q, ls.exp(), torch.sigmoid(lo), sh, 1, c2w, K, width, height,
             torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64), tile_size=tile, **kw)
    g = torch.Generator().manual_seed(9)
    loss = ((out.rgb * torch.rand(out.rgb.shape, generator=g, dtype=torch.float64)).sum()
            + (out.alpha * torch.rand(out.alpha.shape, generator=g, dtype=torch.float64)).sum()
            + 0.3 * (out.depth * torch.rand(out.depth.shape, generator=g, dtype=torch.float64)).sum())
    loss.backward()
    return out, [out.rgb.detach(), out.alpha.detach(), out.depth.detach(), out.means2d.grad,
                 m.grad, ls.grad, q.grad, lo.grad, sh.grad]


@pytest.mark.parametrize("width,height,tile,chunk,ckpt", [(37, 29, 7, 1 << 25, False), (24, 32, 8, 1, True),
                                                          (33, 33, 16, 3000, False)])
def test_batched_rasterizer_equals_the_reference_in_images_and_gradients(width, height, tile, chunk, ckpt, one_thread):
    """Non-square images, tiles that do (8) and do not (7, 16 into 33) divide them, one tile per chunk
    with recomputation, and a chunk budget smaller than one tile: image, alpha, depth, radii, visibility
    and the gradients of every parameter and of means2d equal the reference's to 1e-9 (float64)."""
    from novelviews.splats.rasterize_batched import rasterize_batched

    tensors, c2w, K = _batched_scene(40, width, height, tile, seed=width)
    ref, want = _render_and_grads(rasterize, tensors, c2w, K, width, height, tile)
    out, got = _render_and_grads(rasterize_batched, tensors, c2w, K, width, height, tile, chunk=chunk,
                                 checkpoint=ckpt)
    # the scene has what it claims: culled Gaussians, and centre pixels stopped by T < 1e-4
    assert not bool(ref.visible[40 + 3]) and not bool(ref.visible[40 + 4]) and bool(ref.visible[:40].any())
    cy, cx = int(K[1, 2]), int(K[0, 2])
    # five alpha-0.99 Gaussians would leave T = 1e-10; the stop leaves about 1e-4
    assert 1e-5 < 1.0 - float(want[1][cy, cx]) < 2e-4
    assert torch.equal(out.radii, ref.radii) and torch.equal(out.visible, ref.visible)
    for name, a, b in zip(("rgb", "alpha", "depth", "means2d", "means", "log_scales", "quats", "logits", "sh"),
                          want, got):
        assert a.shape == b.shape, name
        assert float((a - b).abs().max()) <= 1e-9 * max(1.0, float(a.abs().max())), name


def test_tile_binning_pairs_every_gaussian_with_exactly_the_tiles_its_box_touches():
    """Against a brute-force test of every (Gaussian, tile) pair, boxes ending exactly on tile borders
    included; the pairs come sorted by tile, then Gaussian."""
    from novelviews.splats.rasterize_batched import bin_tiles

    g = torch.Generator().manual_seed(4)
    width, height, tile = 45, 30, 8
    u = torch.cat([torch.rand(60, generator=g, dtype=torch.float64) * 60 - 8, torch.tensor([8.0, 16.0, 3.0])])
    v = torch.cat([torch.rand(60, generator=g, dtype=torch.float64) * 40 - 5, torch.tensor([4.0, 8.0, 24.0])])
    r = torch.cat([torch.ceil(torch.rand(60, generator=g, dtype=torch.float64) * 12), torch.tensor([8.0, 8.0, 8.0])])
    gauss, tiles = bin_tiles(u, v, r, width, height, tile)
    want = []
    nx = -(-width // tile)
    for t in range(nx * -(-height // tile)):
        x0, y0 = (t % nx) * tile, (t // nx) * tile
        x1, y1 = min(width, x0 + tile), min(height, y0 + tile)
        want += [(t, i) for i in range(len(u)) if u[i] + r[i] > x0 and u[i] - r[i] < x1 and v[i] + r[i] > y0
                 and v[i] - r[i] < y1]
    keep = tiles < nx * -(-height // tile)
    assert list(zip(tiles[keep].tolist(), gauss[keep].tolist())) == want
    assert bool((tiles[~keep] == nx * -(-height // tile)).all())  # candidate misses: in the dump tile at the end


def test_a_fit_with_the_batched_rasterizer_follows_the_reference(one_thread):
    """60 float64 steps at 8 px with 4 px tiles, densification on (it reads the means2d gradient): the
    batched and reference rasterizers give the same Gaussians (count and values) and the same PSNR."""
    _, K, c2w, _, images, _ = _target_scene(size=16, views=4)
    K = K * torch.tensor([[0.5], [0.5], [1.0]])
    views = [TrainView(images[i, ::2, ::2].double(), c2w[i].double(), K.double()) for i in range(4)]
    cfg = _fit_config(steps=60, densify_start=0.0, densify_stop=0.7, densify_every=20, grad_threshold=1e-5)
    results = []
    for backend in ("torch", "batched"):
        render = SplatRenderConfig(backend=backend, tile_size=4, chunk=100)
        g = torch.Generator().manual_seed(2)
        model = GaussianModel.from_points(((torch.rand(40, 3, generator=g) * 2 - 1) * 0.5).double(),
                                          torch.full((40, 3), 0.5, dtype=torch.float64), sh_degree=1, opacity=0.1)
        fitter = Fitter(model, views, cfg, extent=1.76, render=render)

        def psnr():
            return _psnr(render_views(model, c2w.double(), K.double(), 8, 8, (1, 1, 1), render),
                         images[:, ::2, ::2].double())
        start = psnr()
        for _ in range(60):
            fitter.train_step()
        results.append((model.tensors(), psnr()))
    (ref, psnr_ref), (fast, psnr_fast) = results
    assert len(ref["means"]) > 40 and len(fast["means"]) == len(ref["means"])
    for k in ref:
        # Adam (eps 1e-15) turns 1e-16 gradient differences on near-zero gradients into ~1e-6 steps
        assert float((ref[k] - fast[k]).abs().max()) < 1e-5, k
    assert psnr_fast == pytest.approx(psnr_ref, abs=1e-5) and psnr_ref > start + 2.5  # measured: +3.3 dB


def test_batched_rasterizer_with_nothing_visible_renders_the_background():
    """Every Gaussian behind the camera, tiles smaller and larger than the 10 x 6 image: the background,
    alpha and depth 0, nothing visible, zero gradients (not NaN)."""
    from novelviews.splats.rasterize_batched import rasterize_batched

    dt = torch.float64
    c2w, K = _camera(10, dtype=dt)
    K = C.intrinsics_from_fov(math.radians(50.0), 10, 6).to(dt)
    means = (c2w[:3, 3] + 2.0 * c2w[:3, 2]).repeat(3, 1).requires_grad_(True)
    bg = torch.tensor([0.1, 0.2, 0.3], dtype=dt)
    for tile in (4, 64):
        out = rasterize_batched(means, torch.tensor([[1.0, 0, 0, 0]] * 3, dtype=dt), torch.full((3, 3), 0.1, dtype=dt),
                                torch.full((3,), 0.5, dtype=dt), torch.zeros(3, 1, 3, dtype=dt), 0, c2w, K, 10, 6, bg,
                                tile_size=tile)
        out.rgb.sum().backward()
        assert out.rgb.shape == (6, 10, 3) and torch.equal(out.rgb, bg.expand(6, 10, 3))
        assert not out.alpha.any() and not out.depth.any() and not out.visible.any()
        assert torch.equal(means.grad, torch.zeros_like(means))
        means.grad = None


def test_splat_raster_benchmark_runs_tiny_on_the_cpu(tmp_path, one_thread):
    """benchmarks/splat_raster.py end to end at 24 px: both CPU backends timed, compared (equal images to
    float32 rounding) and fitted, the JSON written and read back; an unknown backend is refused."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_splat_raster",
                                                  Path(__file__).resolve().parents[1] / "benchmarks" / "splat_raster.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "raster.json"
    rep = bench.main(["--device", "cpu", "--size", "24", "--gaussians", "60", "--sh-degree", "1", "--repeats", "2",
                      "--warmup", "1", "--fit-steps", "2", "--tile-size", "8", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["rows"] == json.loads(json.dumps(rep["rows"]))
    assert [r["backend"] for r in data["rows"]] == ["torch", "batched"]
    for r in data["rows"]:
        assert r["status"] == "ok" and r["compared_with"] == "torch" and r["visible"] > 0, r
        assert r["forward_ms"] > 0 and r["forward_backward_ms"] > 0 and len(r["forward_ms_all"]) == 2
        assert r["fit_step_ms"] > 0 and r["peak_gib"] is None
    fast = data["rows"][1]
    assert fast["max_abs_diff_rgb"] < 1e-5 and fast["max_abs_diff_alpha"] < 1e-5 and fast["means_grad_rel_diff"] < 1e-4
    with pytest.raises(SystemExit):
        bench.main(["--device", "cpu", "--backends", "torch,vulkan"])


# --------------------------------------------------------------------------- fitting


def _target_scene(size: int = 32, views: int = 8):
    """Ground truth: 24 opaque coloured Gaussians seen by 8 cameras around them (plus 4 held out)."""
    g = torch.Generator().manual_seed(0)
    gt = GaussianModel.from_points(torch.randn(24, 3, generator=g) * 0.25, torch.rand(24, 3, generator=g),
                                   opacity=0.9, scales=torch.full((24,), 0.12))
    K = C.intrinsics_from_fov(math.radians(50), size, size).float()
    az = torch.arange(views) * 2 * math.pi / views
    c2w = C.camera_on_sphere(torch.full((views,), 0.4), az, torch.full((views,), 1.6)).float()
    held = C.camera_on_sphere(torch.full((4,), 0.6), az[:4] + 0.3, torch.full((4,), 1.6)).float()
    bg = (1.0, 1.0, 1.0)
    return gt, K, c2w, held, render_views(gt, c2w, K, size, size, bg, TORCH), render_views(gt, held, K, size, size, bg, TORCH)


def _fit_config(**kw):
    return FitConfig(**{**dict(steps=300, sh_degree=1, sh_increase_every=100, densify_start=1.0, densify_stop=1.0,
                               lr_means=2e-3, lr_means_final=2e-4, lr_sh_dc=0.01, lr_scales=0.01, lr_quats=0.005), **kw})


def _psnr(a, b):
    return float(-10 * torch.log10(((a - b) ** 2).mean()))


def test_a_tiny_fit_reaches_35_db(one_thread):
    """200 random grey Gaussians fitted to 8 views (32 px) of a 24-Gaussian scene in 300 Adam steps on the
    CPU: over 35 dB on the training views and over 33 dB on 4 held-out views (measured: 42.0 / 39.6)."""
    _, K, c2w, held, images, held_images = _target_scene()
    g = torch.Generator().manual_seed(1)
    model = GaussianModel.from_points((torch.rand(200, 3, generator=g) * 2 - 1) * 0.5, torch.full((200, 3), 0.5),
                                      sh_degree=1, opacity=0.1)
    views = [TrainView(images[i], c2w[i], K) for i in range(len(c2w))]
    fitter = Fitter(model, views, _fit_config(), extent=1.76, render=TORCH)
    first = [fitter.train_step()["loss"] for _ in range(10)]
    for _ in range(290):
        last = fitter.train_step()
    assert last["loss"] < 0.2 * sum(first) / 10
    assert _psnr(render_views(model, c2w, K, 32, 32, (1, 1, 1), TORCH), images) > 35.0
    assert _psnr(render_views(model, held, K, 32, 32, (1, 1, 1), TORCH), held_images) > 33.0


def test_fit_densifies_on_schedule_and_resumes_exactly(one_thread):
    """With densification on, the count changes at the scheduled steps only; 30 + 30 steps through
    state_dict / load_state_dict (into a fresh Fitter) give the same Gaussians as 60 in one go."""
    _, K, c2w, _, images, _ = _target_scene(size=16, views=4)
    K = K * torch.tensor([[0.5], [0.5], [1.0]])
    views = [TrainView(images[i, ::2, ::2].contiguous(), c2w[i], K) for i in range(4)]
    cfg = _fit_config(steps=60, densify_start=0.0, densify_stop=0.9, densify_every=20, grad_threshold=1e-5)

    def start():
        g = torch.Generator().manual_seed(2)
        m = GaussianModel.from_points((torch.rand(40, 3, generator=g) * 2 - 1) * 0.5, torch.full((40, 3), 0.5),
                                      sh_degree=1, opacity=0.1)
        return Fitter(m, views, cfg, extent=1.76, render=TORCH)

    a = start()
    counts = [a.train_step()["gaussians"] for _ in range(60)]
    changes = [i + 1 for i in range(1, 60) if counts[i] != counts[i - 1]]
    assert changes and set(changes) <= {20, 40} and counts[-1] > 40
    b = start()
    for _ in range(30):
        b.train_step()
    state = b.state_dict()
    c = start()
    c.load_state_dict(state)
    for _ in range(30):
        c.train_step()
    assert c.step == 60 and len(c.model) == len(a.model)
    for k, v in a.model.tensors().items():
        assert torch.equal(v, c.model.tensors()[k]), k


# --------------------------------------------------------------------------- .ply files


@pytest.mark.parametrize("degree", [0, 3])
def test_splat_ply_round_trip_keeps_every_field(tmp_path, degree):
    from novelviews.splats.ply import read_ply_vertices, read_splat_ply, splat_properties, write_splat_ply

    g = torch.Generator().manual_seed(degree)
    n, k = 17, num_coefficients(degree)
    model = GaussianModel(torch.randn(n, 3, generator=g), torch.randn(n, 3, generator=g), torch.randn(n, 4, generator=g),
                          torch.randn(n, generator=g), torch.randn(n, 3, generator=g),
                          torch.randn(n, k - 1, 3, generator=g))
    path = write_splat_ply(tmp_path / "s.ply", model)
    header = path.read_bytes().split(b"end_header\n")[0].decode()
    assert header.startswith("ply\nformat binary_little_endian 1.0\nelement vertex 17\n")
    names = [line.split()[-1] for line in header.splitlines() if line.startswith("property")]
    assert names == splat_properties(degree) and len(names) == 17 + 3 * (k - 1)
    back = read_splat_ply(path)
    assert back.sh_degree == degree
    for key, value in model.tensors().items():
        assert torch.equal(back.tensors()[key], value), key
    raw = read_ply_vertices(path)
    if degree:  # channel-major f_rest: the first k-1 are red's higher coefficients
        assert np.array_equal(raw["f_rest_0"], model.sh_rest[:, 0, 0].detach().numpy())
        assert np.array_equal(raw[f"f_rest_{k - 1}"], model.sh_rest[:, 0, 1].detach().numpy())
    assert not raw["nx"].any() and np.array_equal(raw["rot_0"], model.quats[:, 0].detach().numpy())
    try:
        import plyfile
    except ImportError:
        return
    el = plyfile.PlyData.read(str(path))["vertex"]
    assert el.count == n and np.array_equal(el["opacity"], model.opacity_logits.detach().numpy())


def test_point_cloud_ply_round_trip(tmp_path):
    from novelviews.errors import NovelViewsError
    from novelviews.splats.ply import read_point_ply, read_splat_ply, write_point_ply

    pts = np.random.default_rng(0).normal(size=(9, 3)).astype(np.float32)
    cols = np.linspace(0, 1, 27).reshape(9, 3)
    path = write_point_ply(tmp_path / "p.ply", pts, cols)
    p, c = read_point_ply(path)
    assert np.array_equal(p, pts) and np.array_equal(c, np.round(cols * 255).astype(np.uint8))
    with pytest.raises(NovelViewsError, match="not a Gaussian-splat .ply"):
        read_splat_ply(path)
    (tmp_path / "bad.ply").write_bytes(b"hello")
    with pytest.raises(NovelViewsError, match="not a .ply file"):
        read_point_ply(tmp_path / "bad.ply")


# --------------------------------------------------------------------------- nvs reconstruct


TINY_RECONSTRUCT = ["views.num=4", "views.holdout_every=4", "sampling.steps=2", "fit.steps=20", "fit.sh_degree=1",
                    "fit.sh_increase_every=10", "fit.densify_every=10", "fit.densify_start=0.0", "fit.densify_stop=0.6",
                    "init.points=150", "output.video_frames=3", "output.checkpoint_every=10", "output.log_every=5",
                    "splats.tile_size=32", "device=cpu"]


@pytest.fixture()
def photo_file(tmp_path):
    from novelviews.io.images import save_image

    yy, xx = np.mgrid[0:48, 0:48] / 47.0
    img = np.stack([xx, yy, 1 - xx * yy], -1).astype(np.float32)
    img[16:32, 16:32] = (0.9, 0.1, 0.1)
    return save_image(tmp_path / "photo.png", img)


def test_nvs_reconstruct_end_to_end_and_resume(tmp_path, tiny_model_dir, photo_file, one_thread, capsys):
    """`nvs reconstruct` with the tiny 32 px model on the CPU writes the run (views, splats.ply that reads back
    with the reported count, points.ply, held-out renders, video, config); a run stopped after 10 of its 20
    fit steps and resumed ends with the same Gaussians as the uninterrupted run."""
    from novelviews.cli import main
    from novelviews.splats.ply import read_point_ply, read_splat_ply
    from novelviews.splats.reconstruct import run_reconstruct
    from novelviews.splats.reconstruct_config import ReconstructConfig, read_run_config
    from novelviews.config import load

    run = tmp_path / "run"
    assert main(["reconstruct", str(photo_file), "--out", str(run), "--model", str(tiny_model_dir),
                 *TINY_RECONSTRUCT]) == 0
    printed = capsys.readouterr().out
    assert "fit step 20/20" in printed and "held-out PSNR" in printed
    info = json.loads((run / "info.json").read_text())
    for name in ("config.yaml", "input.png", "views/cameras.json", "views/003.png", "holdout/003.png", "splats.ply",
                 "points.ply", "metrics.csv", "checkpoints/last.pt"):
        assert (run / name).is_file(), name
    assert Path(info["video"]).is_file() and not (run / ".incomplete").exists()
    splats = read_splat_ply(run / "splats.ply")
    assert len(splats) == info["gaussians"] and splats.sh_degree == 1
    pts, cols = read_point_ply(run / "points.ply")
    assert np.array_equal(pts, splats.means.detach().numpy()) and cols.shape == (len(splats), 3)
    assert info["views"] == 1 + 3 and info["held_out"] == 1 and math.isfinite(info["holdout_psnr"])
    assert read_run_config(run / "config.yaml").fit.steps == 20

    cfg = load(ReconstructConfig, overrides=TINY_RECONSTRUCT + [f"model={tiny_model_dir}"])
    part = run_reconstruct(photo_file, tmp_path / "part", cfg, stop_after=10)
    assert part["step"] == 10 and (tmp_path / "part" / ".incomplete").exists()
    assert not (tmp_path / "part" / "splats.ply").exists()
    assert main(["reconstruct", "--resume", "--out", str(tmp_path / "part"), "device=cpu"]) == 0
    resumed = read_splat_ply(tmp_path / "part" / "splats.ply")
    for key, value in splats.tensors().items():
        assert torch.equal(resumed.tensors()[key], value), key
    # bad input: one line naming the fix, the finished run untouched
    assert main(["reconstruct", str(photo_file), "--out", str(run), "--model", str(tiny_model_dir)]) == 2
    assert "--overwrite" in capsys.readouterr().err and (run / "splats.ply").is_file()


# --------------------------------------------------------------------------- gsplat backend


def test_backend_choice_and_refusals():
    from novelviews.errors import NovelViewsError
    from novelviews.splats.backend import resolve_backend

    cpu = torch.device("cpu")
    assert resolve_backend("auto", cpu) == "batched" and resolve_backend("torch", cpu) == "torch"
    assert resolve_backend("batched", cpu) == "batched"
    with pytest.raises(NovelViewsError, match="needs a CUDA device.*splats.backend=batched"):
        resolve_backend("gsplat", cpu)
    with pytest.raises(NovelViewsError, match="unknown splat backend"):
        resolve_backend("vulkan", cpu)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="gsplat's kernels need CUDA")
def test_gsplat_matches_the_reference_rasterizer_in_images_and_gradients():
    pytest.importorskip("gsplat")
    from novelviews.splats.backend import rasterize_gsplat

    g = torch.Generator().manual_seed(5)
    n, size = 300, 64
    tensors = [torch.randn(n, 3, generator=g) * 0.3, (torch.rand(n, 3, generator=g) * 0.08 + 0.01).log(),
               torch.randn(n, 4, generator=g), torch.randn(n, generator=g), torch.randn(n, 4, 3, generator=g) * 0.3]
    c2w, K = _camera(size, dtype=torch.float32)
    bg = torch.tensor([0.3, 0.6, 0.9])
    results = []
    for fn in (rasterize, rasterize_gsplat):
        m, ls, q, lo, sh = [t.cuda().requires_grad_(True) for t in tensors]
        out = fn(m, q, ls.exp(), torch.sigmoid(lo), sh, 1, c2w, K, size, size, bg.cuda())
        (out.rgb * torch.linspace(0, 1, 3, device="cuda")).sum().backward()
        results.append((out.rgb.detach(), out.alpha.detach(), m.grad, ls.grad, q.grad, lo.grad, sh.grad))
    ref, fast = results
    assert (ref[0] - fast[0]).abs().max() < 2e-3 and (ref[1] - fast[1]).abs().max() < 2e-3
    for a, b in zip(ref[2:], fast[2:]):
        assert torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0) > 0.99
        assert (a - b).norm() < 0.05 * a.norm()


# --------------------------------------------------------------------------- from a NeRF


def test_gaussians_from_a_nerf_field_cover_its_dense_region(tmp_path):
    """The blob-biased initial field is dense inside a ball of radius ~0.5 about the origin: the
    exported Gaussians sit on the grid points there, with the grid's spacing, the cells' absorption and
    the field's albedo, and the .ply reads back."""
    from novelviews.config import from_dict
    from novelviews.nerf.field import NeRFField, NeRFFieldConfig
    from novelviews.splats.from_nerf import gaussians_from_field
    from novelviews.splats.ply import read_splat_ply, write_splat_ply
    from novelviews.splats.sh import sh_to_rgb

    torch.manual_seed(0)
    field = NeRFField(from_dict(NeRFFieldConfig, {"grid": {"n_levels": 2, "log2_hashmap_size": 8, "per_level_scale": 1.5,
                                                           "base_resolution": 4}, "mlp_width": 8}))
    model, level = gaussians_from_field(field, resolution=24, threshold=2.0)
    bound = field.cfg.bound
    h = 2 * bound / 23
    r = model.means.detach().norm(dim=1)
    with torch.no_grad():
        sigma = field.density(model.means)
        albedo = field.albedo(model.means)
    assert level == 2.0 and len(model) > 10 and (sigma > 2.0).all() and r.max() < 0.6
    assert torch.allclose(model.scales, torch.full_like(model.scales, h / 2))
    assert torch.allclose(model.opacities, (1 - torch.exp(-sigma * h)).clamp(0.01, 0.99), atol=1e-5)
    assert torch.allclose(sh_to_rgb(model.sh_dc), albedo, atol=1e-5)
    back = read_splat_ply(write_splat_ply(tmp_path / "n.ply", model))
    assert torch.equal(back.means, model.means)
    capped, _ = gaussians_from_field(field, resolution=24, threshold=2.0, max_gaussians=7)
    assert len(capped) == 7 and field.density(capped.means).min() >= sigma.sort().values[-7] - 1e-4


# --------------------------------------------------------------------------- the UI


def test_ui_reconstructs_splats_and_shows_the_ply(tmp_path, tiny_model_dir, photo_file, one_thread):
    from novelviews.ui import UIHandlers, UISettings

    h = UIHandlers(model=str(tiny_model_dir), output_root=tmp_path / "ui", device="cpu")
    h.reconstruct_overrides = dict(o.split("=", 1) for o in TINY_RECONSTRUCT if not o.startswith("views.num="))
    seen = []
    r = h.reconstruct(str(photo_file), UISettings(steps=2), num_views=4, steps=20,
                      progress=lambda f, d: seen.append(f))
    assert r.splats and r.status.startswith("Fitted"), r.status
    from novelviews.splats.ply import read_splat_ply

    assert len(read_splat_ply(r.splats)) > 0 and r.splats in r.files and Path(r.video).is_file()
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    bad = h.reconstruct(None, UISettings())
    assert bad.splats is None and "no input image" in bad.status
    gr = pytest.importorskip("gradio")
    from novelviews.ui import build_app

    demo = build_app(h)
    ids = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    assert isinstance(ids["splats-view"], gr.Model3D) and "splats-btn" in ids
