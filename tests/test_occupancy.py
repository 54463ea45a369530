"""The occupancy grid of empty-space skipping (novelviews.nerf.occupancy), on analytic densities.

* which cells end up occupied for a ball of density (exact for cells wholly inside or outside);
* one update against the rule applied by hand to what ``density_fn`` was given and returned
  (chosen cells, jitter, EMA-max, threshold), in warm-up and afterwards;
* ``occupied_at`` against a per-point Python reference (boundaries, points outside the cube);
* decay: a region that empties disappears after exactly the computed number of updates;
  the relative threshold (faint fields are kept) and an all-zero field;
* state_dict round trip, bounded batches, seeded reproducibility, config validation.
"""

from __future__ import annotations

import io
import math
import struct

import pytest
import torch

from novelviews.errors import ConfigError
from novelviews.nerf.occupancy import UPDATE_BATCH, OccupancyGrid, OccupancyGridConfig, cell_index

NEVER_WARM = 10**9  # warmup_steps that keeps every update a full one


def ball(centre=(0.5, 0.5, 0.5), radius=0.2, value=10.0):
    """Density ``value`` inside the ball, 0 outside (u-space)."""
    c = torch.tensor(centre)

    def fn(u):
        return torch.where((u - c.to(u)).norm(dim=-1) < radius, value, 0.0).to(u)

    return fn


def cell_centres(R: int) -> torch.Tensor:
    """``[R^3, 3]`` centres of the cells in flat (x fastest) order."""
    r = (torch.arange(R, dtype=torch.float64) + 0.5) / R
    z, y, x = torch.meshgrid(r, r, r, indexing="ij")
    return torch.stack([x, y, z], -1).reshape(-1, 3)


def inside_outside(R: int, centre, radius):
    """(cells wholly inside the ball, cells wholly outside) as bool ``[R^3]``."""
    d = (cell_centres(R) - torch.tensor(centre, dtype=torch.float64)).norm(dim=-1)
    half_diag = math.sqrt(3.0) / (2 * R)
    return d + half_diag < radius, d - half_diag > radius


def make(**kw) -> OccupancyGrid:
    return OccupancyGrid(OccupancyGridConfig(enabled=True, **kw))


def test_initial_state_and_buffers():
    g = make(resolution=8)
    assert g.density.shape == (512,) and g.density.dtype == torch.float32 and torch.isinf(g.density).all()
    assert g.occupied.dtype == torch.bool and g.occupied.all()
    assert g.occupied_fraction() == 1.0 and int(g.updates) == 0
    assert set(g.state_dict()) == {"density", "occupied", "updates"}
    assert g.occupied_at(torch.rand(10, 3)).all()
    assert g.effective_threshold() == 0.01


def test_ball_cells_after_warmup():
    R, centre, radius = 16, (0.5, 0.5, 0.5), 0.2
    g = make(resolution=R)
    gen = torch.Generator().manual_seed(0)
    for step in range(16):
        out = g.update(ball(centre, radius), step, gen)
        assert out["cells_evaluated"] == R**3  # warm-up: every cell
    inside, outside = inside_outside(R, centre, radius)
    assert inside.sum() > 50 and g.occupied[inside].all()
    assert not g.occupied[outside].any()
    # the few boundary cells: occupied exactly when some jittered sample hit the ball
    centre_in = (cell_centres(R) - torch.tensor(centre, dtype=torch.float64)).norm(dim=-1) < radius
    assert g.occupied[centre_in].all()
    assert out["occupied_fraction"] == g.occupied_fraction() == g.occupied.sum().item() / R**3
    assert int(g.updates) == 16
    # occupied_at on points: deep inside the ball True, far outside False
    assert g.occupied_at(torch.tensor([[0.5, 0.5, 0.5], [0.45, 0.55, 0.5]])).all()
    assert not g.occupied_at(torch.tensor([[0.05, 0.05, 0.05], [0.95, 0.5, 0.5], [2.0, -1.0, 0.5]])).any()


def _expected(before: torch.Tensor, cells: torch.Tensor, vals: torch.Tensor, decay: float, thr: float):
    """The update rule by hand: EMA-max then the threshold."""
    exp = torch.where(torch.isinf(before), before, before * decay)
    prev = before[cells]
    exp[cells] = torch.where(torch.isinf(prev), vals, torch.maximum(prev * decay, vals))
    finite = torch.isfinite(exp)
    mean = exp[finite].double().mean().item() if finite.any() else math.inf
    t = min(thr, mean)
    return exp, (exp > 0) & (exp >= t)


def test_update_rule_on_recorded_samples():
    R, decay, thr, warm = 8, 0.8, 0.01, 2
    n = R**3
    g = make(resolution=R, decay=decay, density_threshold=thr, warmup_steps=warm)
    gen = torch.Generator().manual_seed(3)
    calls = []

    def fn(u):  # smooth bump in x < 0.5, exactly 0 elsewhere; varies with the jitter
        assert u.dtype == torch.float32 and u.shape[-1] == 3 and u.min() >= 0 and u.max() <= 1
        v = 10.0 * torch.exp(-((u - torch.tensor([0.3, 0.5, 0.5])) ** 2).sum(-1) / 0.02)
        v = torch.where(u[:, 0] < 0.5, v, torch.zeros_like(v))
        calls.append((u.clone(), v.clone()))
        return v

    fracs = []
    for step in range(8):
        before, occ_before = g.density.clone(), g.occupied.clone()
        calls.clear()
        out = g.update(fn, step, gen)
        u = torch.cat([c[0] for c in calls])
        vals = torch.cat([c[1] for c in calls])
        cells = cell_index(u, R)
        assert cells.unique().numel() == cells.numel() == out["cells_evaluated"]  # each cell at most once
        # jitter: the point sits anywhere in its cell, not at its centre
        frac = u * R - torch.floor(u * R)
        assert not torch.allclose(frac, torch.full_like(frac, 0.5))
        fracs.append(frac)
        chosen = torch.zeros(n, dtype=torch.bool)
        chosen[cells] = True
        if step < warm:
            assert chosen.all()
        else:  # every occupied cell plus a random quarter
            assert chosen[occ_before].all()
            extra = (chosen & ~occ_before).sum().item()
            assert extra <= n // 4 and chosen.sum().item() >= n // 4
            assert 0 < occ_before.sum().item() < n  # the selection is really a subset here
            assert chosen.sum().item() < n
        exp_d, exp_occ = _expected(before, cells, vals, decay, thr)
        assert torch.equal(g.density, exp_d)
        assert torch.equal(g.occupied, exp_occ)
        assert out["occupied_fraction"] == exp_occ.sum().item() / n
    f = torch.cat(fracs)
    assert f.min() < 0.02 and f.max() > 0.98 and abs(f.mean().item() - 0.5) < 0.02


def _ref_cell(p, R):
    """Per-point reference: clamp, float32 product u * R, floor, clip, row-major."""
    idx = []
    for c in p:
        c = min(max(c, 0.0), 1.0)
        prod = struct.unpack("f", struct.pack("f", c * R))[0]  # IEEE float32 multiply
        idx.append(min(math.floor(prod), R - 1))
    return idx[0] + R * idx[1] + R * R * idx[2]


def test_occupied_at_matches_reference():
    R = 7
    g = make(resolution=R)
    gen = torch.Generator().manual_seed(5)
    g.occupied.copy_(torch.rand(R**3, generator=gen) < 0.5)
    pts = torch.rand(5, 40, 3, generator=gen) * 1.4 - 0.2  # some outside [0, 1]^3
    edges = torch.tensor([0.0, 1.0, 1.0 - 1e-7, 1e-7] + [k / R for k in range(R + 1)])
    special = edges[torch.randint(len(edges), (60, 3), generator=gen)]
    for u in (pts, special):
        got = g.occupied_at(u)
        assert got.shape == u.shape[:-1] and got.dtype == torch.bool
        flat = u.reshape(-1, 3).tolist()
        ref = torch.tensor([bool(g.occupied[_ref_cell(p, R)]) for p in flat]).reshape(u.shape[:-1])
        assert torch.equal(got, ref)
        assert torch.equal(cell_index(u, R).reshape(-1), torch.tensor([_ref_cell(p, R) for p in flat]))
    # float64 and half inputs, NaN never indexes out of range
    assert torch.equal(g.occupied_at(pts.double()), g.occupied_at(pts))
    assert g.occupied_at(torch.tensor([[float("nan"), 0.5, 0.5]])).shape == (1,)


@pytest.mark.parametrize("decay", [0.5, 0.95])
def test_emptied_region_disappears_after_computed_updates(decay):
    """Ball A fills, then the density moves to ball B: A's cells hold 10 * decay^n after n
    updates and the mean stays above the threshold (ball B), so they go after exactly n*."""
    R, thr, value = 16, 0.01, 10.0
    a, b, r = (5 / 16, 0.5, 0.5), (12 / 16, 0.5, 0.5), 0.15
    g = make(resolution=R, decay=decay, density_threshold=thr, warmup_steps=NEVER_WARM)
    gen = torch.Generator().manual_seed(1)
    for step in range(4):
        g.update(ball(a, r, value), step, gen)
    in_a, out_a = inside_outside(R, a, r)
    in_b, _ = inside_outside(R, b, r)
    near_a = ~out_a
    assert g.occupied[in_a].all() and (g.density[in_a] == value).all()
    # n* = first n with value * decay^n < thr, analytically and in float32 arithmetic
    n_star = math.floor(math.log(value / thr) / math.log(1.0 / decay)) + 1
    v, n = torch.tensor(value), 0
    while v >= thr:
        v, n = v * decay, n + 1
    assert n == n_star and value * decay ** (n_star - 1) > 1.001 * thr and value * decay**n_star < 0.999 * thr
    for k in range(1, n_star + 1):
        g.update(ball(b, r, value), 4 + k, gen)
        assert g.effective_threshold() == thr  # ball B keeps the mean above the threshold
        assert g.occupied[in_b].all()
        if k < n_star:
            assert g.occupied[in_a].all(), k
    assert not g.occupied[near_a].any()
    assert torch.allclose(g.density[in_a], torch.tensor(value * decay**n_star), rtol=1e-4)


def test_relative_threshold_keeps_faint_field_and_zero_field_is_empty():
    R, centre, radius = 16, (0.5, 0.5, 0.5), 0.2
    inside, outside = inside_outside(R, centre, radius)
    # a field fainter than the threshold everywhere: the cut drops to its mean, the ball stays
    g = make(resolution=R, density_threshold=0.01)
    gen = torch.Generator().manual_seed(2)
    for step in range(3):
        g.update(ball(centre, radius, 1e-3), step, gen)
    assert g.effective_threshold() < 1e-3
    assert g.occupied[inside].all() and not g.occupied[outside].any()
    # a field that is 0 everywhere from the start: nothing occupied
    z = make(resolution=R)
    out = z.update(lambda u: torch.zeros(u.shape[0]), 0, gen)
    assert out["occupied_fraction"] == 0.0 and not z.occupied_at(torch.rand(100, 3)).any()
    # a ball that goes to 0 everywhere: the above-mean cells fade together with the mean,
    # so they stay (instant-ngp's guard) until their values underflow to 0
    h = make(resolution=R, decay=0.5, warmup_steps=NEVER_WARM)
    h.update(ball(centre, radius), 0, gen)
    for step in range(1, 21):
        h.update(lambda u: torch.zeros(u.shape[0]), step, gen)
    assert h.effective_threshold() < 1e-4 and h.occupied[inside].all()
    for step in range(21, 200):
        h.update(lambda u: torch.zeros(u.shape[0]), step, gen)
    assert (h.density == 0).all() and h.occupied_fraction() == 0.0


def test_state_dict_round_trip():
    R = 12
    cfg = OccupancyGridConfig(enabled=True, resolution=R, warmup_steps=2)
    a = OccupancyGrid(cfg)
    gen = torch.Generator().manual_seed(7)
    for step in range(5):
        a.update(ball((0.4, 0.6, 0.5), 0.25), step, gen)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = OccupancyGrid(OccupancyGridConfig(enabled=True, resolution=R, warmup_steps=2))
    pts = torch.rand(2000, 3, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(b.occupied_at(pts), a.occupied_at(pts))  # fresh: all occupied
    b.load_state_dict(torch.load(buf))
    assert torch.equal(b.occupied_at(pts), a.occupied_at(pts))
    assert torch.equal(b.density, a.density) and int(b.updates) == int(a.updates) == 5
    # resuming: the same next update on both
    ga, gb = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    a.update(ball((0.5, 0.5, 0.5), 0.1), 5, ga)
    b.update(ball((0.5, 0.5, 0.5), 0.1), 5, gb)
    assert torch.equal(a.density, b.density) and torch.equal(a.occupied, b.occupied)
    with pytest.raises(RuntimeError):  # another resolution does not load silently
        OccupancyGrid(OccupancyGridConfig(resolution=R + 1)).load_state_dict(a.state_dict())


def test_update_batches_are_bounded():
    R = 65  # 274625 cells > 2**18
    assert R**3 > UPDATE_BATCH == 2**18
    g = make(resolution=R, warmup_steps=1)
    sizes = []

    def fn(u):
        sizes.append(u.shape[0])
        return torch.zeros(u.shape[0])

    out = g.update(fn, 0)
    assert len(sizes) == 2 and max(sizes) <= 2**18 and sum(sizes) == R**3 == out["cells_evaluated"]
    sizes.clear()
    g.occupied.fill_(True)  # after warm-up: all occupied plus the random quarter = every cell
    out = g.update(fn, 1)
    assert max(sizes) <= 2**18 and sum(sizes) == out["cells_evaluated"] == R**3


def test_reproducible_with_seed():
    def run(seed):
        g = make(resolution=10, warmup_steps=2)
        gen = torch.Generator().manual_seed(seed)
        seen = []

        def fn(u):
            seen.append(u.clone())
            return ball((0.45, 0.5, 0.55), 0.23)(u)

        outs = [g.update(fn, step, gen) for step in range(6)]
        return g, outs, torch.cat(seen)

    g1, o1, u1 = run(11)
    g2, o2, u2 = run(11)
    g3, _, u3 = run(12)
    assert o1 == o2 and torch.equal(u1, u2)
    assert torch.equal(g1.density, g2.density) and torch.equal(g1.occupied, g2.occupied)
    assert u3.shape != u1.shape or not torch.equal(u1, u3)


def test_should_update_and_density_fn_contract():
    assert not OccupancyGrid(OccupancyGridConfig(enabled=False)).should_update(0)
    g = make(resolution=4, update_every=16)
    assert [s for s in range(50) if g.should_update(s)] == [0, 16, 32, 48]
    with pytest.raises(ValueError, match="one density per point"):
        g.update(lambda u: torch.zeros(u.shape[0] + 1), 0)
    # [M, 1] outputs are fine; NaN reads as 0, +inf as the largest float32, negatives as 0
    g.update(lambda u: torch.where(u[:, :1] < 0.5, float("nan"), float("inf")), 0)
    left = cell_centres(4)[:, 0] < 0.5
    assert (g.density[left] == 0).all() and (g.density[~left] == torch.finfo(torch.float32).max).all()
    assert torch.equal(g.occupied, ~left)
    g.update(lambda u: -torch.ones(u.shape[0]), 1)
    assert (g.density >= 0).all()


def test_decay_zero_and_one():
    R = 6
    gen = torch.Generator().manual_seed(4)
    for decay in (0.0, 1.0):
        g = make(resolution=R, decay=decay, warmup_steps=1)
        g.update(ball((0.5, 0.5, 0.5), 0.3), 0, gen)
        before = g.density.clone()
        g.occupied.fill_(False)
        g.update(lambda u: torch.zeros(u.shape[0]), 1, gen)  # only a random quarter measured
        assert torch.isfinite(g.density).all()
        assert torch.equal(g.density, before * decay)


def test_validate():
    OccupancyGridConfig().validate()
    assert OccupancyGridConfig().enabled is False
    bad = [("resolution", 0), ("resolution", 513), ("update_every", 0), ("warmup_steps", -1),
           ("density_threshold", -0.1), ("density_threshold", float("nan")), ("decay", -0.1), ("decay", 1.5)]
    for key, value in bad:
        cfg = OccupancyGridConfig(**{key: value})
        with pytest.raises(ConfigError, match=key):
            cfg.validate()
        with pytest.raises(ConfigError):
            OccupancyGrid(cfg)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_with_a_cpu_generator():
    cfg = OccupancyGridConfig(enabled=True, resolution=16, warmup_steps=2)
    cpu, gpu = OccupancyGrid(cfg), OccupancyGrid(cfg).cuda()
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    fn = ball((0.5, 0.5, 0.5), 0.2)
    for step in range(5):
        o1, o2 = cpu.update(fn, step, g1), gpu.update(fn, step, g2)
        assert o1 == o2
    assert torch.equal(gpu.occupied.cpu(), cpu.occupied)
    pts = torch.rand(1000, 3)
    assert torch.equal(gpu.occupied_at(pts.cuda()).cpu(), cpu.occupied_at(pts))
    gpu.update(fn, 5, torch.Generator("cuda").manual_seed(0))  # a CUDA generator works too
    gpu.update(fn, 6)  # and the global RNG
