"""Checkpoint formats: official ldm .ckpt round trips (EMA / raw), folders, safetensors, errors."""

from __future__ import annotations

import copy
import json
import os
import pickle

import pytest
import torch
from conftest import perturb

from novelviews.errors import CheckpointError
from novelviews.model import (
    ViewConditionedLDM,
    convert_checkpoint,
    export_ldm_checkpoint,
    load_model,
    model_config,
)
from novelviews.model.ldm_keys import SCHEDULE_BUFFERS, ldm_schedule_buffers


class NotAllowed:
    """A custom class: unpickling it would need code execution."""

    def __init__(self):
        self.x = 1


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    yield


_perturb = perturb


@pytest.fixture(scope="module")
def cfg():
    return model_config("tiny")


@pytest.fixture(scope="module")
def models(cfg):
    """(raw model, the same model with its EMA UNet): the two UNets differ."""
    torch.manual_seed(0)
    raw = ViewConditionedLDM(cfg).eval()
    _perturb(raw, 1)
    ema = copy.deepcopy(raw)
    _perturb(ema.unet, 2, 0.01)
    return raw, ema


@pytest.fixture(scope="module")
def ckpt(models, tmp_path_factory):
    raw, ema = models
    path = tmp_path_factory.mktemp("ckpt") / "model.ckpt"
    export_ldm_checkpoint(raw, path, with_ema=True, ema_unet=ema.unet)
    return path


@pytest.fixture(scope="module")
def ckpt_dict(ckpt):
    return torch.load(ckpt, map_location="cpu", weights_only=True)


@torch.no_grad()
def _outputs(m: ViewConditionedLDM):
    g = torch.Generator().manual_seed(11)
    images = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    x = torch.randn(2, 4, 16, 16, generator=g)
    cam = torch.randn(2, 19, generator=g)
    emb, cond = m.embed_image(images)
    ctx = m.context(emb, cam)
    eps = m.predict_noise(x, torch.tensor([3, 800]), ctx, cond)
    return [emb, cond, ctx, eps, m.decode(x)]


def _assert_same(a: ViewConditionedLDM, b: ViewConditionedLDM):
    for x, y in zip(_outputs(a), _outputs(b)):
        assert torch.equal(x, y)


def _assert_differ(a: ViewConditionedLDM, b: ViewConditionedLDM):
    assert not torch.equal(_outputs(a)[3], _outputs(b)[3])


# ----------------------------------------------------------------------------- ldm layout


def test_export_writes_the_official_layout(ckpt_dict, cfg):
    assert ckpt_dict["epoch"] == 0 and ckpt_dict["global_step"] == 0
    sd = ckpt_dict["state_dict"]
    assert "model.diffusion_model.input_blocks.0.0.weight" in sd
    assert "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight" in sd
    assert "model.diffusion_model.out.2.weight" in sd
    assert "model_ema.diffusion_modelinput_blocks00weight" in sd
    assert "model_ema.decay" in sd and "model_ema.num_updates" in sd
    n_unet = sum(k.startswith("model.diffusion_model.") for k in sd)
    n_ema = sum(k.startswith("model_ema.") for k in sd) - 2
    assert n_unet == n_ema == len(ViewConditionedLDM(cfg).unet.state_dict())
    # ldm VAE: 1x1-conv attention, decoder levels numbered from the bottom
    assert sd["first_stage_model.encoder.mid.attn_1.q.weight"].shape == (32, 32, 1, 1)
    assert "first_stage_model.decoder.up.1.upsample.conv.weight" in sd
    assert "first_stage_model.decoder.up.0.upsample.conv.weight" not in sd
    # OpenAI-CLIP names, stacked in_proj, transposed proj, text-tower leftovers
    v = "cond_stage_model.model.visual."
    assert sd[v + "transformer.resblocks.1.attn.in_proj_weight"].shape == (96, 32)
    assert sd[v + "conv1.weight"].shape == (32, 3, 14, 14)
    assert sd[v + "positional_embedding"].shape == (5, 32)
    assert sd[v + "proj"].shape == (32, 32)
    assert "cond_stage_model.model.token_embedding.weight" in sd
    assert sd["cc_projection.weight"].shape == (32, 32 + 19)
    assert all(k in sd for k in SCHEDULE_BUFFERS)
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    torch.testing.assert_close(sd["betas"].double(), betas, rtol=1e-6, atol=0)
    torch.testing.assert_close(sd["alphas_cumprod"].double(), torch.cumprod(1 - betas, 0), rtol=1e-5, atol=0)


def test_exported_names_survive_diffusers_converter(models, ckpt_dict, cfg):
    """Our diffusers -> ldm UNet/VAE names are exactly the inverse of diffusers' converter."""
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    from novelviews.model.ldm_keys import unet_diffusers_config, vae_diffusers_config

    raw, _ = models
    sd = ckpt_dict["state_dict"]
    unet_ldm = {k: v for k, v in sd.items() if k.startswith("model.diffusion_model.")}
    back = convert_ldm_unet_checkpoint(unet_ldm, unet_diffusers_config(cfg.unet))
    ref = raw.unet.state_dict()
    assert set(back) == set(ref)
    assert all(torch.equal(back[k], ref[k]) for k in ref)
    vae_ldm = {k: v for k, v in sd.items() if k.startswith("first_stage_model.")}
    back = convert_ldm_vae_checkpoint(vae_ldm, vae_diffusers_config(2))
    ref = raw.vae.state_dict()
    assert set(back) == set(ref)
    assert all(torch.equal(back[k], ref[k]) for k in ref)


def test_ldm_round_trip_uses_ema_by_default_and_raw_on_request(models, ckpt, cfg):
    raw, ema = models
    loaded, report = load_model(ckpt, config=cfg)
    assert report.used_ema is True and report.camera_mode == "6dof+1"
    assert report.ok and not report.unexpected and not report.missing and not report.mismatched
    assert "cond_stage_model.model.token_embedding.weight" in report.ignored
    assert "betas" in report.ignored and not report.warnings
    _assert_same(loaded, ema)
    _assert_differ(loaded, raw)
    loaded_raw, report_raw = load_model(ckpt, config=cfg, use_ema=False)
    assert report_raw.used_ema is False
    _assert_same(loaded_raw, raw)
    text = report.summary()
    assert "EMA" in text and "ignored" in text


def test_ldm_architecture_inferred_without_config(ckpt, cfg):
    loaded, report = load_model(ckpt)
    got = loaded.config
    assert got.camera_mode == "6dof+1" and got.context_dim == 32
    assert got.unet.block_out_channels == (32, 64) and got.unet.layers_per_block == 1
    assert got.unet.down_block_types == cfg.unet.down_block_types and got.unet.up_block_types == cfg.unet.up_block_types
    assert got.vae.block_out_channels == (16, 32) and got.vae.layers_per_block == 1
    ie = got.image_encoder
    assert (ie.hidden_size, ie.num_hidden_layers, ie.intermediate_size, ie.image_size, ie.projection_dim) == (32, 2, 64, 28, 32)
    assert any("inferred" in w for w in report.warnings)


def test_ldm_checkpoint_as_safetensors_and_bare_state_dict(models, ckpt_dict, cfg, tmp_path):
    from safetensors.torch import save_file

    _, ema = models
    sd = {k: v.contiguous() for k, v in ckpt_dict["state_dict"].items()}
    save_file(sd, str(tmp_path / "m.safetensors"))
    m, report = load_model(tmp_path / "m.safetensors", config=cfg)
    assert report.format == "ldm-safetensors"
    _assert_same(m, ema)
    torch.save(sd, tmp_path / "bare.pt")
    m, _ = load_model(tmp_path / "bare.pt", config=cfg)
    _assert_same(m, ema)


def test_unexpected_keys_reported_by_name_and_schedule_checked(ckpt_dict, cfg, tmp_path):
    d = copy.deepcopy(ckpt_dict)
    sd = d["state_dict"]
    sd["model.diffusion_model.extra_block.weight"] = torch.zeros(2)
    sd["first_stage_model.bogus.weight"] = torch.zeros(2)
    sd["something_else"] = torch.zeros(1)
    sd["betas"] = sd["betas"] * 1.5
    d["optimizer_states"] = [{"lr": 1e-4}]
    torch.save(d, tmp_path / "x.ckpt")
    _, report = load_model(tmp_path / "x.ckpt", config=cfg)
    assert "model.diffusion_model.extra_block.weight" in report.unexpected
    assert "first_stage_model.bogus.weight" in report.unexpected
    assert "something_else" in report.unexpected
    assert "optimizer_states" in report.ignored
    assert any("betas" in w for w in report.warnings)
    assert "model.diffusion_model.extra_block.weight" in report.summary()


# ----------------------------------------------------------------------------- our formats


def test_folder_round_trip_and_components_load_alone(models, tmp_path):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPVisionModelWithProjection

    raw, _ = models
    out = raw.save_pretrained(tmp_path / "folder")
    for name in ("unet/config.json", "unet/diffusion_pytorch_model.safetensors", "vae/config.json",
                 "image_encoder/config.json", "image_encoder/model.safetensors", "cc_projection.safetensors",
                 "novelviews.json"):
        assert (out / name).is_file(), name
    meta = json.loads((out / "novelviews.json").read_text())
    assert meta["format"] == "novelviews-ldm" and meta["format_version"] == 1 and meta["config"]["name"] == "tiny"
    loaded, report = load_model(out)
    assert report.format == "novelviews-folder" and report.ok and not report.unexpected
    _assert_same(loaded, raw)
    _assert_same(load_model(out)[0], raw)

    unet = UNet2DConditionModel.from_pretrained(out / "unet", local_files_only=True)
    assert all(torch.equal(unet.state_dict()[k], v) for k, v in raw.unet.state_dict().items())
    vae = AutoencoderKL.from_pretrained(out / "vae", local_files_only=True)
    assert all(torch.equal(vae.state_dict()[k], v) for k, v in raw.vae.state_dict().items())
    assert vae.config.scaling_factor == 0.18215
    clip = CLIPVisionModelWithProjection.from_pretrained(out / "image_encoder", local_files_only=True).eval()
    px = torch.randn(1, 3, 28, 28, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(clip.state_dict()[k], v) for k, v in raw.image_encoder.state_dict().items())
    with torch.no_grad():  # (transformers may pick another attention kernel: close, not bitwise)
        torch.testing.assert_close(clip(pixel_values=px).image_embeds, raw.image_encoder(pixel_values=px).image_embeds)

    with pytest.raises(CheckpointError, match="overwrite"):
        raw.save_pretrained(out)
    raw.save_pretrained(out, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]  # no temp leftovers


def test_single_safetensors_round_trip_and_fp16(models, tmp_path):
    from safetensors import safe_open

    raw, _ = models
    path = raw.save_file(tmp_path / "m.safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        assert "unet.conv_in.weight" in f.keys() and "cc_projection.weight" in f.keys()
    assert meta["format"] == "novelviews-ldm" and json.loads(meta["config"])["camera_mode"] == "6dof+1"
    loaded, report = load_model(path)
    assert report.format == "novelviews-safetensors"
    _assert_same(loaded, raw)

    half = raw.save_file(tmp_path / "h.safetensors", dtype=torch.float16)
    assert os.path.getsize(half) < 0.6 * os.path.getsize(path)
    m16, _ = load_model(half)  # loaded back as fp32
    assert m16.dtype == torch.float32
    w, w16 = raw.unet.conv_in.weight, m16.unet.conv_in.weight
    assert not torch.equal(w, w16) and torch.allclose(w, w16, atol=1e-3)
    m16h, _ = load_model(half, dtype=torch.float16)
    assert m16h.unet.conv_in.weight.dtype == torch.float16


def test_conv_encoder_model_round_trip(tmp_path):
    cfg = model_config("tiny", overrides=["image_encoder.kind=conv", "image_encoder.channels=[8,16]"])
    torch.manual_seed(3)
    m = ViewConditionedLDM(cfg).eval()
    _perturb(m, 4)
    out = m.save_pretrained(tmp_path / "conv")
    assert (out / "image_encoder.safetensors").is_file() and not (out / "image_encoder").exists()
    loaded, _ = load_model(out)
    _assert_same(loaded, m)
    with pytest.raises(CheckpointError, match="CLIP"):
        export_ldm_checkpoint(m, tmp_path / "x.ckpt")


def test_convert_checkpoint(models, ckpt, cfg, tmp_path):
    _, ema = models
    report = convert_checkpoint(ckpt, tmp_path / "out", config=cfg)
    assert report.used_ema and report.ok
    _assert_same(load_model(tmp_path / "out")[0], ema)
    with pytest.raises(CheckpointError, match="overwrite"):
        convert_checkpoint(ckpt, tmp_path / "out", config=cfg)
    convert_checkpoint(ckpt, tmp_path / "out", config=cfg, use_ema=False, overwrite=True)
    _assert_differ(load_model(tmp_path / "out")[0], ema)


# ----------------------------------------------------------------------------- errors


def test_missing_path(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nope.ckpt")


def test_truncated_ckpt(ckpt, tmp_path):
    data = ckpt.read_bytes()
    (tmp_path / "half.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(tmp_path / "half.ckpt")


def test_random_bytes(tmp_path):
    g = torch.Generator().manual_seed(0)
    (tmp_path / "r.ckpt").write_bytes(bytes(torch.randint(0, 256, (4096,), generator=g, dtype=torch.uint8).tolist()))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(tmp_path / "r.ckpt")
    (tmp_path / "r.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00garbage!")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(tmp_path / "r.safetensors")
    (tmp_path / "r.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_model(tmp_path / "r.txt")


def test_pickle_needing_code_execution_is_refused(tmp_path):
    torch.save({"state_dict": {"x": torch.zeros(1)}, "extra": NotAllowed()}, tmp_path / "evil.ckpt")
    with pytest.raises(CheckpointError, match="code execution") as info:
        load_model(tmp_path / "evil.ckpt")
    assert "NotAllowed" in str(info.value) and "weights_only=True" in str(info.value)
    # the same for a plain pickle.dump
    with open(tmp_path / "p.pt", "wb") as f:
        pickle.dump({"a": NotAllowed()}, f)
    with pytest.raises(CheckpointError, match="code execution"):
        load_model(tmp_path / "p.pt")


def test_not_a_view_conditioned_checkpoint(tmp_path, ckpt_dict):
    torch.save({"state_dict": {"foo.weight": torch.zeros(2)}}, tmp_path / "a.ckpt")
    with pytest.raises(CheckpointError, match="not a ZeroNVS"):
        load_model(tmp_path / "a.ckpt")
    torch.save([1, 2, 3], tmp_path / "b.ckpt")
    with pytest.raises(CheckpointError, match="not a ZeroNVS"):
        load_model(tmp_path / "b.ckpt")
    sd = {k: v for k, v in ckpt_dict["state_dict"].items() if not k.startswith("cc_projection")}
    torch.save({"state_dict": sd}, tmp_path / "sd.ckpt")
    with pytest.raises(CheckpointError, match="cc_projection"):
        load_model(tmp_path / "sd.ckpt")
    (tmp_path / "dir" / "unet").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="novelviews.json"):
        load_model(tmp_path / "dir")


def test_wrong_camera_mode(ckpt, cfg, tmp_path, models):
    cfg3 = model_config("tiny", overrides=["camera_mode=3dof"])
    with pytest.raises(CheckpointError) as info:
        load_model(ckpt, config=cfg3)
    assert "6dof+1" in str(info.value) and "3dof" in str(info.value)
    raw, _ = models
    raw.save_file(tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="3dof"):
        load_model(tmp_path / "m.safetensors", config=cfg3)


def test_other_architecture(ckpt_dict, cfg, tmp_path):
    d = copy.deepcopy(ckpt_dict)
    d["state_dict"]["cc_projection.weight"] = torch.zeros(40, 40 + 19)
    d["state_dict"]["cc_projection.bias"] = torch.zeros(40)
    torch.save(d, tmp_path / "c.ckpt")
    with pytest.raises(CheckpointError, match="another architecture") as info:
        load_model(tmp_path / "c.ckpt", config=cfg)
    assert "context_dim" in str(info.value)
    d = copy.deepcopy(ckpt_dict)
    d["state_dict"]["cc_projection.weight"] = torch.zeros(32, 32 + 7)
    torch.save(d, tmp_path / "d.ckpt")
    with pytest.raises(CheckpointError, match="7 values"):
        load_model(tmp_path / "d.ckpt", config=cfg)
    # a mis-shaped tensor is named
    d = copy.deepcopy(ckpt_dict)
    sd = d["state_dict"]
    sd["model_ema.diffusion_modelout2weight"] = torch.zeros(4, 16, 3, 3)
    torch.save(d, tmp_path / "e.ckpt")
    with pytest.raises(CheckpointError, match="unet.conv_out.weight"):
        load_model(tmp_path / "e.ckpt", config=cfg)
    # a missing tensor is named
    d = copy.deepcopy(ckpt_dict)
    del d["state_dict"]["first_stage_model.decoder.conv_out.bias"]
    torch.save(d, tmp_path / "f.ckpt")
    with pytest.raises(CheckpointError, match="vae.decoder.conv_out.bias"):
        load_model(tmp_path / "f.ckpt", config=cfg)
    # an incomplete EMA copy
    d = copy.deepcopy(ckpt_dict)
    del d["state_dict"]["model_ema.diffusion_modelout2bias"]
    torch.save(d, tmp_path / "g.ckpt")
    with pytest.raises(CheckpointError, match="use_ema=False"):
        load_model(tmp_path / "g.ckpt", config=cfg)
    load_model(tmp_path / "g.ckpt", config=cfg, use_ema=False)


def test_schedule_buffers_follow_ldm_formulas():
    b = ldm_schedule_buffers(model_config("tiny").schedule)
    ac = b["alphas_cumprod"].double()
    torch.testing.assert_close(b["sqrt_one_minus_alphas_cumprod"].double(), (1 - ac).sqrt(), rtol=1e-4, atol=0)
    torch.testing.assert_close(b["alphas_cumprod_prev"][1:], b["alphas_cumprod"][:-1])
    assert b["alphas_cumprod_prev"][0] == 1.0 and b["posterior_variance"][0] == 0.0
    assert len(b) == 12


def test_full_size_names_match_the_sd1_ldm_layout():
    """ZeroNVS-size model on the meta device (no memory, no init): 686 UNet, 248 VAE and 296
    CLIP-visual tensors in ldm / OpenAI names, which diffusers' converter maps back exactly and
    from which the architecture is inferred as the zeronvs preset."""
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    from novelviews.model.checkpoints import infer_ldm_config
    from novelviews.model.ldm_keys import (
        transformers_to_clip_visual,
        unet_diffusers_config,
        unet_ldm_names,
        vae_diffusers_config,
        vae_key_to_ldm,
        vae_tensor_to_ldm,
    )

    cfg = model_config("zeronvs")
    with torch.device("meta"):
        m = ViewConditionedLDM(cfg)
    usd, vsd = m.unet.state_dict(), m.vae.state_dict()
    names = unet_ldm_names(usd, cfg.unet)
    assert len(names) == 686 and len(set(names.values())) == 686
    for k in ("input_blocks.3.0.op.weight", "input_blocks.11.0.out_layers.3.weight",
              "input_blocks.4.0.skip_connection.weight", "middle_block.1.proj_out.weight",
              "output_blocks.2.1.conv.weight", "output_blocks.5.2.conv.weight", "output_blocks.8.2.conv.weight",
              "output_blocks.11.1.transformer_blocks.0.attn2.to_k.weight", "time_embed.2.weight", "out.2.bias"):
        assert k in names.values(), k
    fake = {"model.diffusion_model." + names[k]: v for k, v in usd.items()}
    back = convert_ldm_unet_checkpoint(fake, unet_diffusers_config(cfg.unet))
    assert set(back) == set(usd) and all(back[k].shape == usd[k].shape for k in usd)
    vnames = {k: vae_key_to_ldm(k, 4) for k in vsd}
    assert len(set(vnames.values())) == 248
    assert "decoder.up.3.upsample.conv.weight" in vnames.values() and "encoder.down.1.block.0.nin_shortcut.weight" in vnames.values()
    vfake = {"first_stage_model." + l: vae_tensor_to_ldm(l, vsd[k]) for k, l in vnames.items()}
    vback = convert_ldm_vae_checkpoint(vfake, vae_diffusers_config(4))
    assert set(vback) == set(vsd) and all(vback[k].shape == vsd[k].shape for k in vsd)
    visual = transformers_to_clip_visual(m.image_encoder.state_dict())
    assert len(visual) == 296
    assert visual["proj"].shape == (1024, 768) and visual["transformer.resblocks.23.attn.in_proj_weight"].shape == (3072, 1024)
    full = {**fake, **vfake, **{"cond_stage_model.model.visual." + k: v for k, v in visual.items()},
            "cc_projection.weight": m.cc_projection.weight, "cc_projection.bias": m.cc_projection.bias}
    assert infer_ldm_config(full, model_config("zero123"), "6dof+1") == cfg.__class__(**{**cfg.__dict__, "name": "zero123"})
