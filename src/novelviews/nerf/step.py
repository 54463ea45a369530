"""One distillation step and what it runs on: the scene (field, sampler, background, occupancy
grid), the conditioning pool, the losses of a step (:func:`train_step`), the optimizer."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from .. import cameras as C
from ..runtime import Fusion, precision_dtype, to_device
from .anchors import anchor_probability, choose_conditions
from .distill_config import DistillConfig
from .field import Background, NeRFField
from .guidance import SDSDenoiser, encode_renders, sds_gradient, sds_loss_from_grad, timestep_range
from .losses import normal_smoothness_2d, orientation_loss, render_rays_with_normals
from .occupancy import OccupancyGrid
from .render import get_rays, render_image, render_rays
from .sampler import make_sampler
from .phases import phase, sample_views


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for the diffusion model, or None (fp32): :func:`runtime.precision_dtype`."""
    dtype = precision_dtype(precision, device)
    return None if dtype == torch.float32 else dtype


# --------------------------------------------------------------------------- state


@dataclass
class Scene:
    """What a run renders: the NeRF modules and the fixed input camera."""

    field: NeRFField
    sampler: torch.nn.Module
    background: Background
    fov: float  # vertical, radians
    input_c2w: torch.Tensor  # 4x4 OpenGL, float64
    image_size: int  # the model's image side (default render side)
    occupancy: OccupancyGrid | None = None  # empty-space skipping of field and proposal queries

    def parameters(self):
        return list(self.field.parameters()) + list(self.sampler.parameters()) + list(self.background.parameters())

    def modules(self) -> dict[str, torch.nn.Module]:
        mods = {"field": self.field, "sampler": self.sampler, "background": self.background}
        if self.occupancy is not None:
            mods["occupancy"] = self.occupancy
        return mods

    def query_counts(self) -> dict[str, float]:
        """Field / proposal points queried per ray-sample since the last call, then reset:
        ``{"field_kept": fraction, "proposal_kept": fraction}`` (empty without a grid)."""
        out = {}
        for name, m in (("field", self.field), ("proposal", getattr(self.sampler, "density_field", None))):
            counts = getattr(m, "query_counts", None)
            if counts and counts.get("points"):
                out[f"{name}_kept"] = float(counts["kept"]) / float(counts["points"])
                counts.clear()
        return out


def build_scene(cfg: DistillConfig, image_size: int, device: torch.device) -> Scene:
    """Fresh NeRF modules (initialised from ``torch``'s global RNG; seed it first)."""
    f = NeRFField(cfg.field).to(device)
    s = make_sampler(cfg.sampler, cfg.field.bound, cfg.field.unbounded).to(device)
    b = Background(cfg.background).to(device)
    if cfg.render.compile == "on":
        fusion = Fusion(True)  # one per run: its compiled functions serve the field and the proposal field
        f.fusion = fusion
        if hasattr(s, "density_field"):
            s.density_field.fusion = fusion
    grid = None
    if cfg.occupancy.enabled:
        grid = OccupancyGrid(cfg.occupancy).to(device)
        f.set_occupancy(grid)
        if hasattr(s, "density_field"):
            s.density_field.set_occupancy(grid)
    return Scene(f, s, b, math.radians(cfg.camera.fov_deg), C.camera_on_sphere(
        math.radians(cfg.camera.elevation_deg), 0.0, cfg.camera.distance), image_size, grid)


def render_view(scene: Scene, cfg: DistillConfig, c2w, size: int, fov: float | None = None) -> dict[str, torch.Tensor]:
    """Evaluation render (no grad) of one camera at ``size x size``: rgb ``[H, W, 3]``, depth, opacity."""
    K = C.intrinsics_from_fov(scene.fov if fov is None else fov, size, size)
    return render_image(scene.field, c2w, K, size, size, scene.sampler, scene.background, cfg.render.near,
                        cfg.render.far, chunk=cfg.render.chunk)


@dataclass
class Conditioning:
    """The pool of conditioning views: index 0 the input, then the anchors."""

    c2w: torch.Tensor  # [M, 4, 4] float64 OpenGL
    image_emb: torch.Tensor  # [M, context_dim]
    cond_latent: torch.Tensor  # [M, C, h, w] (posterior mode, unscaled)
    scale: torch.Tensor  # [M] float64 6DoF+1 scene scale


@torch.no_grad()
def embed_pool(model, images: torch.Tensor, c2w: torch.Tensor, scale: float) -> Conditioning:
    """Embed ``[M, 3, S, S]`` ``[-1, 1]`` views like the input (image embedding + VAE mode)."""
    emb, lat = model.embed_image(images.to(model.device))
    return Conditioning(c2w.to(torch.float64), emb, lat, torch.full((c2w.shape[0],), float(scale), dtype=torch.float64))


# --------------------------------------------------------------------------- one step


def _resize_image(img: torch.Tensor, size: int) -> torch.Tensor:
    """``[1, 3, S, S]`` -> ``[1, 3, size, size]`` (bilinear, antialiased when shrinking)."""
    if img.shape[-1] == size:
        return img
    return F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def train_step(step: int, scene: Scene, model, pool: Conditioning, target: torch.Tensor, cfg: DistillConfig,
               gen: torch.Generator, alphas: torch.Tensor, amp_dtype: torch.dtype | None,
               denoiser: SDSDenoiser | None = None) -> tuple[torch.Tensor, dict]:
    """Losses of one step (not yet backpropagated). ``target``: input photo ``[1, 3, S, S]`` in [0, 1].
    ``denoiser``: the run's :class:`~novelviews.nerf.guidance.SDSDenoiser` (its CUDA graphs live
    across steps); None = a plain one for this step."""
    if denoiser is None:
        denoiser = make_denoiser(model, cfg, amp_dtype, cuda_graph=False)

    dev = next(scene.field.parameters()).device
    occ_info = {}
    if scene.occupancy is not None and scene.occupancy.should_update(step):
        occ_info = scene.occupancy.update(scene.field.density_at_grid, step, gen if dev.type == "cpu" else None)
    B, r = phase(step, cfg.phases, scene.image_size)
    c2w = sample_views(step, B, cfg, gen)
    K = C.intrinsics_from_fov(scene.fov, r, r)
    bg = torch.rand(B, 3, generator=gen) if cfg.render.random_background else None
    rgbs: list[torch.Tensor | None] = [None] * B
    inter: list[torch.Tensor] = []
    # normals only when a geometry regulariser is on
    geo = cfg.loss.normal_smooth > 0 or cfg.loss.orientation > 0
    smooth, orient = [], []
    n_geo = B if cfg.loss.geometry_views == 0 else min(B, cfg.loss.geometry_views)
    g = r if cfg.loss.geometry_size == 0 else min(r, cfg.loss.geometry_size)  # side of the normal renders
    rays = [get_rays(c2w[b], K, r, r, device=dev)[:2] for b in range(B)]
    for b in range(n_geo if geo else 0):  # the views are i.i.d., so the first n_geo are a random subset
        og, dg = rays[b] if g == r else get_rays(c2w[b], C.intrinsics_from_fov(scene.fov, g, g), g, g,
                                                 device=dev)[:2]
        geo_out = render_rays_with_normals(scene.field, og, dg, scene.sampler, scene.background,
                                           cfg.render.near, cfg.render.far, stratified=True,
                                           bg_color=None if bg is None else to_device(bg[b], dev),
                                           c2w=c2w[b], min_weight=cfg.loss.normal_min_weight)
        smooth.append(normal_smoothness_2d(geo_out["normal"].reshape(g, g, 3)))
        orient.append(orientation_loss(geo_out["weights"], geo_out["normals"], dg))
        if g == r:  # at the render size it is also this view's SDS render
            rgbs[b] = geo_out["rgb"].reshape(r, r, 3).permute(2, 0, 1)
            if "interlevel" in geo_out:
                inter.append(geo_out["interlevel"])
    # the other views' SDS renders, render.view_batch views per call (their rays concatenated); with
    # all views in one call (view_batch 0) the input view's reconstruction render joins that call
    todo = [b for b in range(B) if rgbs[b] is None]
    vb = cfg.render.view_batch or max(len(todo), 1)
    groups = [todo[i:i + vb] for i in range(0, len(todo), vb)]
    o_in, d_in, _ = get_rays(scene.input_c2w, K, r, r, device=dev)
    input_rgb = None
    for gi, group in enumerate(groups):
        with_input = cfg.render.view_batch == 0 and gi == len(groups) - 1
        o = torch.cat([rays[b][0] for b in group] + ([o_in] if with_input else []))
        d = torch.cat([rays[b][1] for b in group] + ([d_in] if with_input else []))
        bgc = None if bg is None else to_device(bg[group], dev).repeat_interleave(r * r, 0)
        if bgc is not None and with_input:  # the input view keeps the background model's colour
            bgc = torch.cat([bgc, scene.background(d_in)])
        out = render_rays(scene.field, o, d, scene.sampler, scene.background, cfg.render.near, cfg.render.far,
                          stratified=True, chunk=o.shape[0], bg_color=bgc)
        for k, b in enumerate(group):
            rgbs[b] = out["rgb"][k * r * r:(k + 1) * r * r].reshape(r, r, 3).permute(2, 0, 1)
        if with_input:
            input_rgb = out["rgb"][len(group) * r * r:]
        if "interlevel" in out:  # the mean over the call's rays = the mean of its views' (equal sizes)
            inter.extend([out["interlevel"]] * (len(group) + with_input))
    rgb = torch.stack(rgbs)  # [B, 3, r, r] in [0, 1]
    zero = torch.zeros((), device=dev)
    loss_smooth = torch.stack(smooth).mean() if smooth else zero
    loss_orient = torch.stack(orient).mean() if orient else zero

    # SDS on the renders, each conditioned on the input or its nearest anchor
    lat = encode_renders(model, rgb, cfg.guidance.sample_posterior, gen if dev.type == "cpu" else None, amp_dtype,
                         cfg.guidance.encoder_chunk, denoiser.encoder_graphs)
    t_min, t_max = timestep_range(step, cfg.phases.steps, cfg.guidance.t_keyframes, len(alphas))
    t_cpu = torch.randint(t_min, t_max + 1, (B,), generator=gen)
    t = to_device(t_cpu, dev)
    noise = to_device(torch.randn(lat.shape, generator=gen), dev)
    p = anchor_probability(step, cfg.phases.steps, cfg.anchors)
    idx = choose_conditions(c2w, pool.c2w, p, torch.rand(B, generator=gen, dtype=torch.float64))
    cam = C.camera_embedding(model.config.camera_mode, pool.c2w[idx], c2w, pool.scale[idx],
                             torch.full((B,), scene.fov, dtype=torch.float64))
    idx_d = to_device(idx, dev)
    with torch.no_grad():
        ctx = model.context(pool.image_emb[idx_d], to_device(cam, dev, pool.image_emb.dtype))
    eps_fn = denoiser(ctx, pool.cond_latent[idx_d])
    grad, _ = sds_gradient(lat, t, noise, eps_fn, alphas, cfg.guidance.weighting, cfg.guidance.grad_clip)
    loss_sds = sds_loss_from_grad(lat, grad)

    # reconstruction of the input view (rendered above with the SDS views, or on its own)
    if input_rgb is None:
        out = render_rays(scene.field, o_in, d_in, scene.sampler, scene.background, cfg.render.near,
                          cfg.render.far, stratified=True, chunk=o_in.shape[0])
        input_rgb = out["rgb"]
        if "interlevel" in out:
            inter.append(out["interlevel"])
    tgt = to_device(_resize_image(target, r)[0].permute(1, 2, 0).reshape(-1, 3), dev)
    loss_rgb = F.mse_loss(input_rgb, tgt)
    loss_inter = torch.stack(inter).mean() if inter else torch.zeros((), device=dev)
    total = cfg.loss.lambda_sds * loss_sds + cfg.loss.lambda_rgb * loss_rgb + cfg.loss.lambda_interlevel * loss_inter
    total = total + cfg.loss.normal_smooth * loss_smooth + cfg.loss.orientation * loss_orient
    # the losses stay on the device (no host sync in the step): step_info turns them into numbers
    info = {"loss": total.detach(), "sds": loss_sds.detach(), "rgb": loss_rgb.detach(),
            "interlevel": loss_inter.detach(), "normal_smooth": loss_smooth.detach(),
            "orientation": loss_orient.detach(), "t_mean": float(t_cpu.float().mean()),
            "anchor_frac": float((idx > 0).double().mean()), "batch": B, "res": r}
    if scene.occupancy is not None:
        info.update(scene.query_counts())
        if occ_info:
            info["occupied_fraction"] = occ_info["occupied_fraction"]
    return total, info


def start_training(cfg: DistillConfig, image_size: int, device: torch.device, amp: torch.dtype | None):
    """A fresh run's trainable state: ``(scene, optimizer, AMP scaler or None, the run's CPU generator)``.
    Seeds ``torch``'s global RNG with ``cfg.seed`` first (the modules' initial weights)."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    scene = build_scene(cfg, image_size, device)
    opt, scaler = make_optimizer(scene, cfg, amp)
    for m in scene.modules().values():
        m.train()
    return scene, opt, scaler, gen


def guidance_inputs(model, cfg: DistillConfig, scene: Scene, pool_images: torch.Tensor, anchor_c2w: torch.Tensor,
                    scale: float, input_image: torch.Tensor, amp: torch.dtype | None):
    """What :func:`train_step` takes from the diffusion side: ``(conditioning pool, target photo in
    [0, 1], the noise schedule's alphas, the guided denoiser)``. ``pool_images``: ``[1 + A, 3, S, S]``
    in [-1, 1], the input then the ``A`` anchors at ``anchor_c2w [A, 4, 4]``; ``input_image``
    ``[1, 3, S, S]`` in [-1, 1]."""
    from ..sampling import schedule_alphas

    c2w = torch.cat([scene.input_c2w[None], anchor_c2w.to(scene.input_c2w)])
    pool = embed_pool(model, pool_images.to(model.device), c2w, scale)
    alphas = schedule_alphas(model.config.schedule).to(model.device)
    return pool, (input_image + 1.0) / 2.0, alphas, make_denoiser(model, cfg, amp)


def step_info(info: dict) -> dict:
    """``info`` of :func:`train_step` with its tensors as Python numbers, read back in one copy.

    Call it after the step's backward and optimiser update have been queued, so that the one
    host sync of the step waits for work the GPU already has rather than stalling the launches."""
    keys = [k for k, v in info.items() if isinstance(v, torch.Tensor)]
    if not keys:
        return dict(info)
    values = torch.stack([info[k].float().reshape(()) for k in keys]).tolist()
    return {**info, **dict(zip(keys, values))}


def make_denoiser(model, cfg: DistillConfig, amp_dtype: torch.dtype | None, cuda_graph: bool | None = None
                  ) -> SDSDenoiser:
    """The run's guided denoiser (``guidance.cuda_graph`` unless ``cuda_graph`` says otherwise)."""
    graph = cfg.guidance.cuda_graph if cuda_graph is None else cuda_graph
    return SDSDenoiser(model, cfg.guidance.guidance_scale, amp_dtype or torch.float32, graph)


def make_optimizer(scene: Scene, cfg: DistillConfig, amp: torch.dtype | None):
    """Adam over the scene's parameters, and a loss scaler when the guidance runs in fp16."""
    params = list(scene.parameters())
    # on CUDA one fused kernel updates every parameter (the same update as the per-tensor loop)
    fused = bool(params) and all(p.is_cuda and p.dtype.is_floating_point for p in params)
    opt = torch.optim.Adam(params, lr=cfg.optim.lr, betas=cfg.optim.betas, eps=cfg.optim.eps, fused=fused or None)
    return opt, (torch.amp.GradScaler("cuda") if amp == torch.float16 else None)


def optimizer_step(loss: torch.Tensor, opt: torch.optim.Optimizer, scaler=None) -> None:
    """Backward of one step's loss and the optimiser update (loss scaling for fp16)."""
    opt.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        opt.step()


@contextlib.contextmanager
def unused_parts_offloaded(model, enabled: bool = True):
    """For the block, the model's image encoder and VAE decoder (+ its post-quant conv) live on
    the CPU; they are moved back after it, whatever happens (a caller's model stays usable)."""
    parts = [getattr(model, "image_encoder", None), getattr(model.vae, "decoder", None),
             getattr(model.vae, "post_quant_conv", None)] if enabled else []
    parts = [p for p in parts if isinstance(p, torch.nn.Module)]
    devices = [next(p.parameters(), torch.empty(0)).device for p in parts]
    try:
        for p in parts:
            p.to("cpu")
        if parts and torch.cuda.is_available():
            torch.cuda.empty_cache()
        yield model
    finally:
        for p, d in zip(parts, devices):
            p.to(d)
