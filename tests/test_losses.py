"""Geometry regularisers of the distillation: 2D normal smoothness and orientation."""

from __future__ import annotations

import math

import pytest
import torch

from novelviews import cameras as C
from novelviews.config import load
from novelviews.nerf import distill as D
from novelviews.nerf import step as STEP  # where train_step looks its renderers up
from novelviews.nerf.field import NeRFField, NeRFFieldConfig
from novelviews.nerf.losses import normal_smoothness_2d, orientation_loss, render_rays_with_normals, world_to_camera
from novelviews.nerf.render import get_rays, render_rays
from novelviews.nerf.sampler import SamplerConfig, UniformSampler, make_sampler

TINY_GRID = {"n_levels": 2, "log2_hashmap_size": 8, "base_resolution": 4, "per_level_scale": 1.5}


def tiny_field(**kw) -> NeRFField:
    from novelviews.config import from_dict

    return NeRFField(from_dict(NeRFFieldConfig, {"grid": TINY_GRID, "mlp_width": 8, **kw}))


class SphereField(NeRFField):
    """Analytic field: a soft ball of radius 0.5 (density ~ 200 inside), grey albedo."""

    def forward(self, x):
        sigma = torch.nn.functional.softplus(40.0 * (0.5 - x.norm(dim=-1))) * 5.0
        return sigma, torch.full(x.shape[:-1] + (3,), 0.5, dtype=x.dtype, device=x.device)


# --------------------------------------------------------------------------- smoothness


def test_smoothness_constant_map_is_zero_and_checker_is_exact():
    n = torch.nn.functional.normalize(torch.tensor([0.3, -0.2, 0.9]), dim=0)
    const = n.expand(2, 5, 6, 3).clone()
    assert normal_smoothness_2d(const).item() == 0.0

    a, b = torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0.6, 0.0, 0.8])
    v, u = torch.meshgrid(torch.arange(4), torch.arange(5), indexing="ij")
    mask = ((u + v) % 2 == 0)[..., None]
    checker = torch.where(mask, a, b)  # [4, 5, 3]
    expected = 2.0 * (a - b).abs().mean().item()  # every neighbour pair differs, in both directions
    assert normal_smoothness_2d(checker).item() == pytest.approx(expected, rel=1e-6)
    assert expected > 0

    # stripes along u: only the horizontal term is non-zero
    stripes = torch.where((u % 2 == 0)[..., None], a, b)
    assert normal_smoothness_2d(stripes).item() == pytest.approx(0.5 * expected, rel=1e-6)

    # gradient pushes a single outlier pixel back towards its neighbours
    m = const[0].clone().requires_grad_(True)
    with torch.no_grad():
        m[2, 3] += torch.tensor([0.5, 0.0, 0.0])
    normal_smoothness_2d(m).backward()
    assert m.grad[2, 3, 0] > 0 and m.grad[2, 2, 0] < 0

    with pytest.raises(ValueError):
        normal_smoothness_2d(torch.zeros(4, 4))


# --------------------------------------------------------------------------- orientation


def test_orientation_hand_cases():
    d = torch.nn.functional.normalize(torch.tensor([[0.2, -0.3, -1.0]]), dim=-1)  # one ray [1, 3]
    w = torch.tensor([[0.3, 0.2, 0.1]])
    along = d[:, None, :].expand(1, 3, 3)
    assert orientation_loss(w, along, d).item() == pytest.approx(0.6, rel=1e-6)  # n . d = 1 -> sum w
    assert orientation_loss(w, -along, d).item() == 0.0  # facing the camera
    perp = torch.nn.functional.normalize(torch.cross(d, torch.tensor([[0.0, 1.0, 0.0]]), dim=-1), dim=-1)
    assert orientation_loss(w, perp[:, None, :].expand(1, 3, 3), d).item() == pytest.approx(0.0, abs=1e-12)
    # 60 degrees away from the camera: cos = 0.5 -> 0.25 w; mean over two rays
    e = torch.nn.functional.normalize(torch.cross(d, perp, dim=-1), dim=-1)
    n60 = 0.5 * d + math.sqrt(0.75) * e
    w2 = torch.tensor([[0.4, 0.0, 0.0], [1.0, 0.0, 0.0]])
    normals = torch.stack([n60[0].expand(3, 3), -along[0]])
    assert orientation_loss(w2, normals, torch.cat([d, d])).item() == pytest.approx(0.5 * 0.25 * 0.4, rel=1e-5)

    # weights are detached by default; the plain form differentiates them
    wg = w.clone().requires_grad_(True)
    ng = along.clone().requires_grad_(True)
    orientation_loss(wg, ng, d).backward()
    assert wg.grad is None and ng.grad.abs().sum() > 0
    orientation_loss(wg, along, d, detach_weights=False).backward()
    torch.testing.assert_close(wg.grad, torch.ones_like(w))


# --------------------------------------------------------------------------- rendered normals


def test_render_with_normals_matches_render_rays():
    torch.manual_seed(0)
    field = tiny_field()
    sampler = make_sampler(SamplerConfig(kind="proposal", num_proposal_samples=8, num_samples=8))
    c2w = C.camera_on_sphere(math.radians(20.0), math.radians(30.0), 1.5)
    o, d, zs = get_rays(c2w, C.intrinsics_from_fov(math.radians(50.0), 6, 6), 6, 6)
    torch.manual_seed(1)
    ref = render_rays(field, o, d, sampler, torch.tensor([0.2, 0.4, 0.6]), 0.05, 100.0, stratified=True,
                      chunk=1000, z_scale=zs)
    torch.manual_seed(1)
    out = render_rays_with_normals(field, o, d, sampler, torch.tensor([0.2, 0.4, 0.6]), 0.05, 100.0,
                                   stratified=True, z_scale=zs, c2w=c2w)
    for k in ("rgb", "depth", "opacity", "interlevel"):
        torch.testing.assert_close(out[k], ref[k], msg=k)
    assert out["normals"].shape == (36, 8, 3) and out["weights"].shape == (36, 8)
    # unit normals where the density varies (inside the box); 0 far out, where the gradient vanishes
    norms = out["normals"].norm(dim=-1)
    assert torch.all(((norms - 1).abs() < 1e-4) | (norms < 1e-6))
    assert ((norms - 1).abs() < 1e-4).float().mean() > 0.5
    # camera-space normal = R^T (sum w n)
    world = (out["weights"][..., None] * out["normals"]).sum(-2)
    torch.testing.assert_close(out["normal"], world @ c2w[:3, :3].float())
    # the smoothness of the rendered normal map trains the field
    normal_smoothness_2d(out["normal"].reshape(6, 6, 3)).backward()
    assert sum(p.grad.abs().sum() for p in field.parameters() if p.grad is not None) > 0


@pytest.mark.parametrize("method", ["finite_difference", "autograd"])
def test_sphere_normals_face_the_camera_in_camera_space(method):
    from novelviews.config import from_dict

    field = SphereField(from_dict(NeRFFieldConfig, {"grid": TINY_GRID, "mlp_width": 8, "blob_density": 0.0,
                                                    "normal_method": method, "normal_eps": 1e-3}))
    sampler = UniformSampler(256, "linear")
    c2w = C.camera_on_sphere(math.radians(35.0), math.radians(-70.0), 2.0)
    H = 9
    o, d, _ = get_rays(c2w, C.intrinsics_from_fov(math.radians(40.0), H, H), H, H)
    out = render_rays_with_normals(field, o, d, sampler, None, 1.0, 3.0, stratified=False, c2w=c2w)
    nmap = out["normal"].reshape(H, H, 3)
    centre = nmap[H // 2, H // 2]
    # the front of the ball faces the camera: +z in OpenGL camera axes, whatever the pose
    torch.testing.assert_close(centre, torch.tensor([0.0, 0.0, 1.0]), atol=2e-2, rtol=0)
    # right of the centre the surface turns right (+x), above it turns up (+y)
    assert nmap[H // 2, H // 2 + 2, 0] > 0.1 and nmap[H // 2 - 2, H // 2, 1] > 0.1
    assert abs(nmap[H // 2, H // 2 + 2, 1]) < 0.05
    # a convex object seen from outside has (almost) no back-facing normals where the weights are
    # (a little at the soft silhouette, where grazing rays cross the back half of the shell)
    front = orientation_loss(out["weights"], out["normals"], d).item()
    assert front < 5e-3
    # the inside-out ball (normals flipped) is penalised by about the opacity
    flipped = orientation_loss(out["weights"], -out["normals"], d).item()
    hit = out["opacity"] > 0.5
    assert flipped > 0.3 * hit.float().mean().item() > 0 and flipped > 50 * front
    # world_to_camera inverts the camera rotation
    v = torch.randn(5, 3, dtype=torch.float64)
    torch.testing.assert_close(world_to_camera(v, c2w) @ c2w[:3, :3].T, v)


# --------------------------------------------------------------------------- distillation wiring


def _cfg(**over) -> D.DistillConfig:
    data = {
        "device": "cpu",
        "phases": {"steps": 2, "batch_sizes": [2], "render_scales": [0.25], "milestones": []},
        "anchors": {"num": 0},
        "field": {"grid": TINY_GRID, "mlp_width": 8},
        "sampler": {"kind": "uniform", "num_samples": 8},
        "occupancy": {"resolution": 16},
    }
    return load(D.DistillConfig, base=data, overrides=[f"{k}={v}" for k, v in over.items()])


def test_loss_config_defaults_and_validation():
    from novelviews.errors import ConfigError

    cfg = D.LossConfig()
    assert (cfg.normal_smooth, cfg.orientation) == (8.0, 5.0)
    with pytest.raises(ConfigError, match="normal_smooth"):
        _cfg(**{"loss.normal_smooth": -1}).validate()


@pytest.fixture(scope="module")
def tiny_ldm_and_photo():
    from novelviews.model import ViewConditionedLDM
    from novelviews.model.configuration import model_config

    torch.manual_seed(0)
    model = ViewConditionedLDM(model_config("tiny")).eval().requires_grad_(False)
    S = model.config.image_size
    return model, torch.rand(1, 3, S, S) * 2 - 1


def _one_train_step(model, img, cfg):
    """``D.train_step`` at step 0 of a fresh scene (seeded) from ``img`` in [-1, 1]."""
    from novelviews.sampling import schedule_alphas

    torch.manual_seed(0)
    scene = D.build_scene(cfg, model.config.image_size, torch.device("cpu"))
    pool = D.embed_pool(model, img, scene.input_c2w[None], 0.7)
    loss, info = D.train_step(0, scene, model, pool, (img + 1) / 2, cfg, torch.Generator().manual_seed(0),
                              schedule_alphas(model.config.schedule), None)
    return loss, D.step_info(info)


def test_train_step_adds_the_geometry_losses(tiny_ldm_and_photo):
    model, img = tiny_ldm_and_photo

    def step(cfg):
        return _one_train_step(model, img, cfg)

    loss_off, off = step(_cfg(**{"loss.normal_smooth": 0, "loss.orientation": 0}))
    loss_on, on = step(_cfg())
    assert off["normal_smooth"] == 0.0 and off["orientation"] == 0.0
    assert on["normal_smooth"] > 0.0 and on["orientation"] >= 0.0
    # same renders / RNG use: the other terms agree, the total adds 8 * smooth + 5 * orient
    for k in ("sds", "rgb", "t_mean"):
        assert on[k] == pytest.approx(off[k], rel=1e-5, abs=1e-7), k
    assert loss_on.item() == pytest.approx(loss_off.item() + 8.0 * on["normal_smooth"] + 5.0 * on["orientation"],
                                           rel=1e-5)


def test_pruned_normals_equal_exact_normals_where_kept_and_bound_the_rest():
    torch.manual_seed(0)
    field = tiny_field()
    sampler = UniformSampler(16, "linear")
    c2w = C.camera_on_sphere(math.radians(20.0), math.radians(30.0), 1.5)
    o, d, _ = get_rays(c2w, C.intrinsics_from_fov(math.radians(50.0), 6, 6), 6, 6)
    exact = render_rays_with_normals(field, o, d, sampler, None, 0.05, 3.0, stratified=False)
    w = exact["weights"].detach()
    thr = float(w.quantile(0.6))  # drop ~60 % of the samples
    pruned = render_rays_with_normals(field, o, d, sampler, None, 0.05, 3.0, stratified=False, min_weight=thr)
    keep = w > thr
    assert 0.2 < keep.float().mean() < 0.6
    torch.testing.assert_close(pruned["normals"][keep], exact["normals"][keep])
    assert torch.all(pruned["normals"][~keep] == 0)
    # rendered normal: off by at most the dropped weight mass of each ray (unit normals)
    dropped = (w * (~keep)).sum(-1)
    err = (pruned["normal"] - exact["normal"]).norm(dim=-1)
    assert torch.all(err <= dropped + 1e-6) and err.max() > 0
    # and it still trains the field through the kept samples
    normal_smoothness_2d(pruned["normal"].reshape(6, 6, 3)).backward()
    assert sum(p.grad.abs().sum() for p in field.parameters() if p.grad is not None) > 0


@pytest.mark.parametrize("views,expected", [(1, 1), (2, 2), (0, 3), (9, 3)])
def test_geometry_losses_on_the_configured_number_of_views(monkeypatch, tiny_ldm_and_photo, views, expected):
    calls = []
    real = STEP.render_rays_with_normals

    def counting(*a, **k):
        calls.append(k.get("min_weight"))
        return real(*a, **k)

    monkeypatch.setattr(STEP, "render_rays_with_normals", counting)
    cfg = _cfg(**{"phases.batch_sizes": "[3]", "loss.geometry_views": views, "loss.normal_min_weight": 0.01})
    _, info = _one_train_step(*tiny_ldm_and_photo, cfg)
    assert len(calls) == expected and set(calls) == {0.01}
    assert info["batch"] == 3 and info["normal_smooth"] > 0


def test_geometry_config_validation():
    from novelviews.errors import ConfigError

    assert (D.LossConfig().geometry_views, D.LossConfig().normal_min_weight) == (1, 1e-3)
    with pytest.raises(ConfigError, match="geometry_views"):
        _cfg(**{"loss.geometry_views": -1}).validate()
    with pytest.raises(ConfigError, match="normal_min_weight"):
        _cfg(**{"loss.normal_min_weight": 2}).validate()


@pytest.mark.parametrize("size,expected", [(8, 8), (0, 16), (64, 16)])
def test_geometry_losses_at_their_own_render_size(monkeypatch, tiny_ldm_and_photo, size, expected):
    """loss.geometry_size bounds the normal render (the memory peak of the 128-256 px phases);
    the SDS render of that view stays at the phase's size; 0 = the render size (the reference)."""
    normal_rays, plain_rays = [], []
    real_n, real_p = STEP.render_rays_with_normals, STEP.render_rays

    def count_n(field, o, *a, **k):
        normal_rays.append(o.shape[0])
        return real_n(field, o, *a, **k)

    def count_p(field, o, *a, **k):
        plain_rays.append(o.shape[0])
        return real_p(field, o, *a, **k)

    monkeypatch.setattr(STEP, "render_rays_with_normals", count_n)
    monkeypatch.setattr(STEP, "render_rays", count_p)
    S = tiny_ldm_and_photo[0].config.image_size
    cfg = _cfg(**{"phases.render_scales": f"[{16 / S}]", "loss.geometry_size": size})
    loss, info = _one_train_step(*tiny_ldm_and_photo, cfg)
    assert normal_rays == [expected * expected]  # one geometry view (the default), at its own size
    # plain 16 px renders, one call: the SDS views (the second view, and the geometry view's SDS
    # render when the normal render had another size) and the input view (RGB loss)
    assert plain_rays == [16 * 16 * ((2 if expected != 16 else 1) + 1)]
    assert info["normal_smooth"] > 0 and torch.isfinite(loss)
    from novelviews.errors import ConfigError

    with pytest.raises(ConfigError, match="geometry_size"):
        _cfg(**{"loss.geometry_size": 4}).validate()
