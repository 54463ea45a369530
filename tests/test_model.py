"""The view-conditioned LDM: configs/presets, conditioning, CFG, CLIP preprocessing, VAE paths."""

from __future__ import annotations

import pytest
import torch
from conftest import perturb
import torch.nn.functional as F

from novelviews.errors import ConfigError, ImageError
from novelviews.model import ModelConfig, ViewConditionedLDM, model_config
from novelviews.model.encoders import CLIP_MEAN, CLIP_STD, clip_preprocess


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    yield


_perturb = perturb


@pytest.fixture(scope="module")
def tiny() -> ViewConditionedLDM:
    torch.manual_seed(0)
    m = ViewConditionedLDM(model_config("tiny")).eval()
    _perturb(m, 1)
    return m


def _images(b: int = 2, size: int = 32, seed: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, size, size, generator=g) * 2 - 1


# ----------------------------------------------------------------------------- configs


def test_presets_match_the_reference_and_validate():
    z = model_config("zeronvs")
    assert z == ModelConfig()  # the dataclass defaults are ZeroNVS
    assert z.camera_mode == "6dof+1" and z.camera_dim == 19 and z.image_size == 256 and z.latent_size == 32
    assert z.unet.block_out_channels == (320, 640, 1280, 1280) and z.unet.in_channels == 8
    assert z.vae.block_out_channels == (128, 256, 512, 512) and z.vae.scaling_factor == 0.18215
    ie = z.image_encoder
    assert (ie.hidden_size, ie.num_hidden_layers, ie.num_attention_heads, ie.intermediate_size,
            ie.patch_size, ie.image_size, ie.projection_dim) == (1024, 24, 16, 4096, 14, 224, 768)
    assert (z.schedule.beta_start, z.schedule.beta_end, z.schedule.beta_schedule) == (0.00085, 0.012, "scaled_linear")
    z123 = model_config("zero123")
    assert z123.camera_mode == "3dof" and z123.camera_dim == 4
    assert z123.unet == z.unet and z123.image_encoder == z.image_encoder
    demo = model_config("demo")
    assert demo.image_size == 128 and demo.vae.downsample_factor == 4 and demo.latent_size == 32
    assert demo.image_encoder.kind == "conv" and demo.context_dim == 256 and demo.camera_mode == "6dof+1"


def test_demo_model_sizes():
    m = ViewConditionedLDM(model_config("demo"))
    n = m.num_parameters()
    assert 5_000_000 <= n["unet"] <= 7_500_000
    assert n["unet"] * 2 < 15 * 2**20  # fp16 UNet under 15 MiB
    assert n["vae"] * 2 < 8 * 2**20
    assert n["total"] == sum(v for k, v in n.items() if k != "total")


@pytest.mark.parametrize(
    "override, words",
    [
        (["unet.in_channels=6"], "twice"),
        (["unet.cross_attention_dim=48"], "context_dim"),
        (["image_size=30"], "divisible"),
        (["image_encoder.projection_dim=16"], "projection_dim"),
        (["unet.down_block_types=[DownBlock2D]"], "one entry per"),
        (["camera_mode=7dof"], "camera_mode"),
        (["unet.bogus=1"], "unknown config key"),
    ],
)
def test_config_validation_errors(override, words):
    with pytest.raises(ConfigError, match=words):
        model_config("tiny", overrides=override)


# ----------------------------------------------------------------------------- conditioning


def test_cc_projection_initialised_as_identity_on_image_part():
    cfg = model_config("tiny")
    m = ViewConditionedLDM(cfg)
    c, d = cfg.context_dim, cfg.camera_dim
    w = m.cc_projection.weight
    assert w.shape == (c, c + d)
    assert torch.equal(w[:, :c], torch.eye(c))
    assert torch.count_nonzero(w[:, c:]) == 0 and torch.count_nonzero(m.cc_projection.bias) == 0
    emb = torch.randn(3, c)
    ctx = m.context(emb, torch.randn(3, d))
    assert ctx.shape == (3, 1, c)
    torch.testing.assert_close(ctx[:, 0], emb, rtol=0, atol=1e-6)  # camera ignored at init


def test_context_token_equals_hand_computation(tiny):
    torch.manual_seed(4)
    emb, cam = torch.randn(2, 32), torch.randn(2, 19)
    ctx = tiny.context(emb, cam)
    W, b = tiny.cc_projection.weight, tiny.cc_projection.bias
    manual = torch.cat([emb, cam], dim=1) @ W.T + b
    torch.testing.assert_close(ctx[:, 0], manual, rtol=1e-5, atol=1e-6)
    # one image, several cameras: broadcast
    ctx_b = tiny.context(emb[:1], cam)
    torch.testing.assert_close(ctx_b[1, 0], (torch.cat([emb[0], cam[1]]) @ W.T + b), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="19"):
        tiny.context(emb, torch.randn(2, 4))


@torch.no_grad()
def test_predict_noise_is_unet_on_concatenated_latents(tiny):
    torch.manual_seed(5)
    x, cl, ctx = torch.randn(2, 4, 16, 16), torch.randn(2, 4, 16, 16), torch.randn(2, 1, 32)
    t = torch.tensor([10, 700])
    eps = tiny.predict_noise(x, t, ctx, cl)
    manual = tiny.unet(torch.cat([x, cl], 1), t, encoder_hidden_states=ctx).sample
    assert eps.shape == (2, 4, 16, 16)
    assert torch.equal(eps, manual)


@torch.no_grad()
def test_cfg_scale_one_is_predict_noise_bit_for_bit(tiny):
    torch.manual_seed(6)
    x, cl, ctx = torch.randn(2, 4, 16, 16), torch.randn(2, 4, 16, 16), torch.randn(2, 1, 32)
    assert torch.equal(tiny.predict_noise_cfg(x, 500, ctx, cl, 1.0), tiny.predict_noise(x, 500, ctx, cl))


@torch.no_grad()
def test_cfg_equals_two_separate_calls_with_zeroed_uncond_branch(tiny):
    torch.manual_seed(7)
    x, cl, ctx = torch.randn(2, 4, 16, 16), torch.randn(2, 4, 16, 16), torch.randn(2, 1, 32)
    t = torch.tensor([100, 900])
    s = 3.0
    eps_c = tiny.predict_noise(x, t, ctx, cl)
    eps_u = tiny.predict_noise(x, t, torch.zeros_like(ctx), torch.zeros_like(cl))
    assert (eps_c - eps_u).abs().max() > 1e-3  # the conditioning matters, so the test can fail
    got = tiny.predict_noise_cfg(x, t, ctx, cl, s)
    torch.testing.assert_close(got, eps_u + s * (eps_c - eps_u), rtol=1e-4, atol=1e-5)
    # an unconditional branch that kept the concat latent would be a different answer
    eps_u_wrong = tiny.predict_noise(x, t, torch.zeros_like(ctx), cl)
    assert (got - (eps_u_wrong + s * (eps_c - eps_u_wrong))).abs().max() > 1e-4
    # scalar t works and equals a per-sample t of the same value
    torch.testing.assert_close(
        tiny.predict_noise_cfg(x, 250, ctx, cl, s), tiny.predict_noise_cfg(x, torch.tensor([250, 250]), ctx, cl, s)
    )


# ----------------------------------------------------------------------------- CLIP / VAE


def test_clip_preprocess_values():
    img = torch.full((1, 3, 40, 40), 0.5)
    out = clip_preprocess(img, 28)
    assert out.shape == (1, 3, 28, 28)
    expect = (0.75 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    torch.testing.assert_close(out[0, :, 5, 7], expect)


@torch.no_grad()
def test_embed_image_uses_reference_clip_preprocessing(tiny):
    images = _images(2, 64)  # 64 -> 28: a real downsampling, where antialiasing matters
    emb, cond = tiny.embed_image(images)
    assert emb.shape == (2, 32) and cond.shape == (2, 4, 32, 32)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    x = F.interpolate(images, size=(28, 28), mode="bicubic", align_corners=True)
    manual = tiny.image_encoder(pixel_values=((x + 1) / 2 - mean) / std).image_embeds
    assert torch.equal(emb, manual)
    x_aa = F.interpolate(images, size=(28, 28), mode="bicubic", align_corners=False, antialias=True)
    aa = tiny.image_encoder(pixel_values=((x_aa + 1) / 2 - mean) / std).image_embeds
    assert (aa - emb).abs().max() > 1e-3
    assert not torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-3)  # not L2-normalised


@torch.no_grad()
def test_cond_latent_is_unscaled_posterior_mode_and_encode_scales_it(tiny):
    images = _images(2, 32)
    _, cond = tiny.embed_image(images)
    dist = tiny.vae.encode(images).latent_dist
    assert torch.equal(cond, dist.mean)
    z = tiny.encode(images)
    torch.testing.assert_close(z, cond * 0.18215)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    s1, s2 = tiny.encode(images, sample=True, generator=g1), tiny.encode(images, sample=True, generator=g2)
    assert torch.equal(s1, s2) and not torch.equal(s1, z)
    noise = (s1 / 0.18215 - dist.mean) / dist.std  # a posterior sample: mean + std * N(0, 1)
    assert abs(noise.mean().item()) < 0.1 and abs(noise.std().item() - 1) < 0.1


@torch.no_grad()
def test_decode_divides_by_scaling_factor_and_chunks(tiny):
    z = torch.randn(3, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    out = tiny.decode(z)
    assert out.shape == (3, 3, 32, 32)
    assert torch.equal(out, tiny.vae.decode(z / 0.18215).sample)
    torch.testing.assert_close(tiny.decode(z, chunk=1), out, rtol=1e-5, atol=1e-5)
    assert tiny.decode(z * 50, clamp=True).abs().max() <= 1.0


def test_encode_is_differentiable(tiny):
    images = _images(1, 32).requires_grad_(True)
    tiny.encode(images, sample=True, generator=torch.Generator().manual_seed(0)).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


@torch.no_grad()
def test_conv_and_none_image_encoders():
    conv = ViewConditionedLDM(model_config("tiny", overrides=["image_encoder.kind=conv", "image_encoder.channels=[8,16]"]))
    emb, cond = conv.embed_image(_images(2, 32))
    assert emb.shape == (2, 32) and emb.abs().sum() > 0 and cond.shape == (2, 4, 16, 16)
    none = ViewConditionedLDM(model_config("tiny", overrides=["image_encoder.kind=none"]))
    emb, _ = none.embed_image(_images(2, 32))
    assert torch.count_nonzero(emb) == 0
    assert none.num_parameters()["image_encoder"] == 0


def test_bad_images_raise_image_error(tiny):
    with pytest.raises(ImageError, match="Bx3xHxW"):
        tiny.embed_image(torch.zeros(3, 32, 32))
    with pytest.raises(ImageError, match="divisible"):
        tiny.encode(torch.zeros(1, 3, 31, 31))
