"""``nvs reconstruct IMAGE --out RUN``: one photo -> generated views around it -> fitted 3D Gaussians.

1. **Views.** The photo's camera is the one of ``nvs views`` / ``nvs distill`` (z-up world, OpenGL
   c2w at ``camera.elevation_deg``, azimuth 0, ``camera.distance`` from the origin, looking at it;
   :class:`~novelviews.views.InputCameraConfig`). ``views.num`` cameras orbit the origin at the same
   distance, evenly spaced in azimuth (the first one step after the input), their elevations offset by
   ``views.elevation_offsets_deg`` in turn. Each is generated from the photo by the diffusion model
   (:func:`novelviews.generation.generate`; view i uses seed ``sampling.seed + i``) at the model's
   resolution and saved in ``views/`` (PNGs + cameras.json; a resumed run reads them back).
2. **Fit.** The Gaussians start as ``init.points`` random points in the ball of radius ``init.radius``
   (default: the input frustum's half-width at the orbit centre) coloured by where they fall in the
   photo, and are fitted (:mod:`.fit`) to the photo (loss weight ``input_weight``) and the generated
   views (weight 1), except every ``views.holdout_every``-th generated view, which is held out.
3. **Outputs.** ``splats.ply`` (standard 3DGS layout), ``points.ply`` (coloured point cloud of the
   means), ``holdout/NNN.png`` (renders at the held-out cameras, PSNR against the generated view in
   ``info.json``), ``video.mp4`` (orbit), ``metrics.csv``, ``config.yaml``, ``info.json``;
   ``checkpoints/last.pt`` every ``output.checkpoint_every`` steps (``--resume`` continues it with the
   run's saved config).

Progress goes through ``progress(event)`` with ``event = {"stage": "generate" | "fit" | "render",
"done": int, "total": int, ...}`` (the fit's events also carry the step's loss and Gaussian count).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from .. import cameras as C
from ..config import check_range, from_dict, read_yaml, save_config
from ..errors import NovelViewsError
from ..sampling import SamplingConfig
from ..views import ImageConfig, InputCameraConfig
from .backend import SplatRenderConfig
from .fit import FitConfig, Fitter, TrainView, render_views
from .gaussians import GaussianModel

CHECKPOINT = "checkpoints/last.pt"
ProgressFn = Callable[[dict], None]


@dataclass
class GeneratedViewsConfig:
    """The generated views the splats are fitted to."""

    num: int = 32
    elevation_offsets_deg: tuple[float, ...] = (0.0, 15.0, -10.0)
    """elevation offsets from the input's, used in turn by consecutive views"""
    holdout_every: int = 8
    """every this many generated views, one is held out of the fit and scored (0 = none)"""

    def validate(self) -> None:
        check_range("views.num", self.num, 1, 4096)
        check_range("views.holdout_every", self.holdout_every, 0, None)
        if self.holdout_every == 1:
            raise NovelViewsError("views.holdout_every=1 would hold out every generated view: use 0 or >= 2")
        for i, e in enumerate(self.elevation_offsets_deg):
            check_range(f"views.elevation_offsets_deg[{i}]", e, -89.0, 89.0)


@dataclass
class InitConfig:
    """The Gaussians before the fit."""

    points: int = 5000
    radius: float = 0.0
    """radius of the ball of random initial points around the orbit centre (0 = the input frustum's
    half-width there, camera.distance x tan(fov / 2))"""
    opacity: float = 0.1

    def validate(self) -> None:
        check_range("init.points", self.points, 1, 10_000_000)
        check_range("init.radius", self.radius, 0.0, None)
        check_range("init.opacity", self.opacity, 0.0, 1.0, lo_open=True)
        if self.opacity >= 1.0:
            raise NovelViewsError("init.opacity must be below 1 (it is stored as a logit)")


@dataclass
class ReconstructOutputConfig:
    checkpoint_every: int = 500
    log_every: int = 50
    """progress events and metrics.csv every this many steps"""
    video_frames: int = 60
    fps: int = 24
    size: int = 0
    """side of the video and held-out renders (0 = the training views' size)"""

    def validate(self) -> None:
        check_range("output.checkpoint_every", self.checkpoint_every, 1, None)
        check_range("output.log_every", self.log_every, 1, None)
        check_range("output.video_frames", self.video_frames, 0, 100000)
        check_range("output.fps", self.fps, 1, 240)
        check_range("output.size", self.size, 0, 8192)


@dataclass
class ReconstructConfig:
    """``nvs reconstruct``: one image -> generated views -> 3D Gaussian splats."""

    model: str = "demo"
    device: str = "auto"
    use_ema: bool = True
    input_weight: float = 4.0
    """loss weight of the input photo (the generated views weigh 1)"""
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """background colour of the renders (the photo's and the generated views' background)"""
    camera: InputCameraConfig = field(default_factory=InputCameraConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    views: GeneratedViewsConfig = field(default_factory=GeneratedViewsConfig)
    init: InitConfig = field(default_factory=InitConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    splats: SplatRenderConfig = field(default_factory=SplatRenderConfig)
    output: ReconstructOutputConfig = field(default_factory=ReconstructOutputConfig)

    def validate(self) -> None:
        check_range("input_weight", self.input_weight, 0.0, None)
        for i, v in enumerate(self.background):
            check_range(f"background[{i}]", v, 0.0, 1.0)
        for sub in (self.camera, self.image, self.views, self.init, self.fit, self.splats, self.output):
            sub.validate()


# --------------------------------------------------------------------------- cameras, initialisation


def generated_cameras(c2w_in: torch.Tensor, cfg: GeneratedViewsConfig) -> torch.Tensor:
    """``[N, 4, 4]`` OpenGL c2w of the generated views (see the module docstring)."""
    n = cfg.num
    az = 2 * math.pi * torch.arange(1, n + 1, dtype=torch.float64) / (n + 1)
    offs = torch.tensor([math.radians(cfg.elevation_offsets_deg[i % len(cfg.elevation_offsets_deg)])
                         for i in range(n)], dtype=torch.float64) if cfg.elevation_offsets_deg else None
    return C.orbit_about_vertical(c2w_in, az, offs)


def held_out(cfg: GeneratedViewsConfig) -> list[int]:
    """Indices of the generated views held out of the fit."""
    k = cfg.holdout_every
    return [i for i in range(cfg.num) if k and i % k == k - 1]


def orbit_video_cameras(c2w_in: torch.Tensor, frames: int) -> torch.Tensor:
    return C.orbit_about_vertical(c2w_in, 2 * math.pi * torch.arange(frames, dtype=torch.float64) / max(frames, 1))


def random_init(photo: torch.Tensor, c2w: torch.Tensor, K: torch.Tensor, cfg: InitConfig, radius: float,
                sh_degree: int, generator: torch.Generator) -> GaussianModel:
    """``cfg.points`` points uniform in the ball of ``radius`` about the origin, coloured by the
    photo (``[H, W, 3]``) pixel they project to (grey outside it)."""
    n = cfg.points
    d = torch.randn(n, 3, generator=generator, dtype=torch.float64)
    d = d / d.norm(dim=1, keepdim=True).clamp_min(1e-12)
    pts = d * radius * torch.rand(n, 1, generator=generator, dtype=torch.float64) ** (1 / 3)
    q = (pts - c2w[:3, 3]) @ c2w[:3, :3]
    z = (-q[:, 2]).clamp_min(1e-6)
    u = (K[0, 0] * q[:, 0] / z + K[0, 2]).floor().long()
    v = (-K[1, 1] * q[:, 1] / z + K[1, 2]).floor().long()
    H, W = photo.shape[:2]
    inside = (u >= 0) & (u < W) & (v >= 0) & (v < H) & (q[:, 2] < 0)
    colours = torch.full((n, 3), 0.5, dtype=torch.float64)
    colours[inside] = photo[v[inside], u[inside]].double()
    return GaussianModel.from_points(pts.float(), colours.float(), sh_degree=sh_degree, opacity=cfg.opacity)


# --------------------------------------------------------------------------- run


def read_run_config(path: Path) -> ReconstructConfig:
    return from_dict(ReconstructConfig, read_yaml(path))


def _write_metrics(path: Path, history: list[dict]) -> None:
    from ..io.runs import atomic_write_text

    keys = ["step", "loss", "gaussians", "sh_degree", "cloned", "split", "pruned"]
    lines = [",".join(keys)] + [",".join("" if h.get(k) is None else str(h.get(k)) for k in keys) for h in history]
    atomic_write_text(path, "\n".join(lines) + "\n")


def run_reconstruct(image: str | Path | None, out: str | Path, cfg: ReconstructConfig, resume: bool = False,
                    overwrite: bool = False, progress: Optional[ProgressFn] = None, model=None,
                    stop_after: int | None = None) -> dict:
    """``nvs reconstruct`` (see the module docstring). ``resume`` continues ``out/checkpoints/last.pt``
    with the run's saved config (only ``device`` comes from ``cfg``); ``model``: an already loaded
    ViewConditionedLDM; ``stop_after``: stop once this many fit steps are done (resumable). Returns
    a summary dict."""
    from ..evaluate.metrics import psnr
    from ..generation import generate
    from ..io.images import image_to_tensor, load_image, save_image
    from ..io.runs import atomic_save, atomic_write_json, run_folder
    from ..io.video import write_video
    from ..nerf.anchors import load_anchors, save_anchors
    from ..views import input_camera, input_scale, load_any_model, load_input_photo, resolve_device, square_input
    from .ply import splat_point_colours, write_point_ply, write_splat_ply

    report = progress or (lambda event: None)
    t0 = time.time()
    out = Path(out)
    if resume:
        if not (out / CHECKPOINT).is_file():
            raise NovelViewsError(f"cannot resume: '{out / CHECKPOINT}' does not exist (start without --resume)")
        device_setting = cfg.device
        cfg = read_run_config(out / "config.yaml")
        cfg.device = device_setting
    cfg.validate()
    device = resolve_device(cfg.device)
    if not resume:
        if image is None:
            raise NovelViewsError("nvs reconstruct needs an input image (or --resume of an existing run)")
        photo = load_input_photo(image, cfg.image)  # a bad photo fails before the model loads
        if model is None:
            model = load_any_model(cfg.model, device, torch.float32, cfg.use_ema)
        model = model.to(device).eval()
    c2w_in = input_camera(cfg.camera)
    fov = math.radians(cfg.camera.fov_deg)
    targets = generated_cameras(c2w_in, cfg.views)
    outcome = {"finished": False}
    with run_folder(out, overwrite=overwrite, resume=resume, finished=lambda: outcome["finished"]) as out:
        if not resume:
            S = model.config.image_size
            img = square_input(photo, S, cfg.image, image)
            scale, _ = input_scale(cfg.camera, S, cfg.image, image=img, device=device)
            save_config(cfg, out / "config.yaml")
            save_image(out / "input.png", img)
            total = math.ceil(targets.shape[0] / max(1, cfg.sampling.batch_size)) * cfg.sampling.steps
            done = [0]

            def sampled(n: int) -> None:
                done[0] += n
                report({"stage": "generate", "done": done[0], "total": total})

            views = generate(model, image_to_tensor(img), c2w_in, targets, fov, scale=scale, cfg=cfg.sampling,
                             seeds=range(cfg.sampling.seed, cfg.sampling.seed + targets.shape[0]), progress=sampled)
            save_anchors(out / "views", views, targets, fov)
        photo_t = torch.from_numpy(load_image(out / "input.png"))
        gen_imgs, gen_c2w = load_anchors(out / "views")
        S = photo_t.shape[0]
        K = C.intrinsics_from_fov(fov, S, S).float().to(device)
        hold = set(held_out(cfg.views))
        train = [TrainView(photo_t.to(device), c2w_in.float().to(device), K, cfg.input_weight)]
        for i in range(gen_c2w.shape[0]):
            if i not in hold:
                img_i = ((gen_imgs[i].permute(1, 2, 0) + 1) / 2).clamp(0, 1)
                train.append(TrainView(img_i.to(device), gen_c2w[i].float().to(device), K, 1.0))
        radius = cfg.init.radius or cfg.camera.distance * math.tan(fov / 2)
        gen = torch.Generator().manual_seed(cfg.fit.seed)
        gaussians = random_init(photo_t, c2w_in, K.double().cpu(), cfg.init, radius, cfg.fit.sh_degree, gen).to(device)
        fitter = Fitter(gaussians, train, cfg.fit, extent=1.1 * cfg.camera.distance, background=cfg.background,
                        render=cfg.splats)
        if resume:
            fitter.load_state_dict(torch.load(out / CHECKPOINT, map_location=device, weights_only=True))
            gaussians = fitter.model

        def checkpoint() -> None:
            atomic_save(out / CHECKPOINT, lambda p: torch.save(fitter.state_dict(), p))

        end = cfg.fit.steps if stop_after is None else min(cfg.fit.steps, int(stop_after))
        t_fit = time.time()
        steps_before = fitter.step
        while fitter.step < end:
            info = fitter.train_step()
            if fitter.step % cfg.output.log_every == 0 or fitter.step == end:
                report({"stage": "fit", "done": fitter.step, "total": cfg.fit.steps, "loss": info["loss"],
                        "gaussians": info["gaussians"]})
                _write_metrics(out / "metrics.csv", fitter.history)
            if fitter.step % cfg.output.checkpoint_every == 0:
                checkpoint()
        fit_seconds = time.time() - t_fit
        checkpoint()
        _write_metrics(out / "metrics.csv", fitter.history)
        summary = {"out": str(out), "step": fitter.step, "steps": cfg.fit.steps, "gaussians": len(gaussians),
                   "views": len(train), "held_out": len(hold), "device": str(device),
                   "fit_seconds": round(fit_seconds, 3),
                   "steps_per_second": round((fitter.step - steps_before) / max(fit_seconds, 1e-9), 3)}
        if fitter.step < cfg.fit.steps:
            summary["seconds"] = round(time.time() - t0, 3)
            return summary  # stopped early on purpose: the run stays unfinished, resumable

        size = cfg.output.size or S
        K_out = C.intrinsics_from_fov(fov, size, size).float().to(device)
        summary["splats"] = str(write_splat_ply(out / "splats.ply", gaussians))
        summary["points"] = str(write_point_ply(out / "points.ply", gaussians.means, splat_point_colours(gaussians)))
        scores = []
        render_total = len(hold) + cfg.output.video_frames
        for n, i in enumerate(sorted(hold)):
            rgb = render_views(gaussians, gen_c2w[i:i + 1].float().to(device), K_out, size, size, cfg.background,
                               cfg.splats)[0].cpu()
            save_image(out / "holdout" / f"{i:03d}.png", rgb.numpy())
            report({"stage": "render", "done": n + 1, "total": render_total})
            if size == S:
                target = ((gen_imgs[i] + 1) / 2).clamp(0, 1)
                scores.append(float(psnr(rgb.permute(2, 0, 1)[None], target[None])[0]))
        if scores:
            summary["holdout_psnr"] = round(sum(scores) / len(scores), 3)
            summary["holdout_psnr_per_view"] = [round(s, 3) for s in scores]
        if cfg.output.video_frames:
            cams = orbit_video_cameras(c2w_in, cfg.output.video_frames).float().to(device)
            frames = []
            for n in range(cams.shape[0]):
                frames.append(render_views(gaussians, cams[n:n + 1], K_out, size, size, cfg.background,
                                           cfg.splats)[0].cpu().numpy())
                report({"stage": "render", "done": len(hold) + n + 1, "total": render_total})
            summary["video"] = str(write_video(out / "video.mp4", frames, fps=cfg.output.fps))
        summary["seconds"] = round(time.time() - t0, 3)
        atomic_write_json(out / "info.json", summary)
        outcome["finished"] = True
        return summary


__all__ = ["ReconstructConfig", "GeneratedViewsConfig", "InitConfig", "ReconstructOutputConfig", "run_reconstruct",
           "generated_cameras", "held_out", "random_init", "read_run_config", "CHECKPOINT"]
