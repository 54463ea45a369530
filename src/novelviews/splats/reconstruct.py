"""``nvs reconstruct IMAGE|DATASET --out RUN``: one photo, or a few posed photos, -> generated views
around them -> fitted 3D Gaussians.

**One photo** (below). **A dataset** (any layout :func:`novelviews.io.datasets.load_scene` reads;
:func:`.posed_inputs.is_dataset`): the photos are chosen, framed (origin at their focus, ``+z`` up,
unit = their median distance) and saved in ``inputs/`` (PNGs + ``cameras.json``), some held out
(``inputs.holdout``); ``views.num`` cameras are placed around the fitted ones
(:func:`.posed_inputs.cameras_around_inputs`) and each is generated from its ``anchor.k`` nearest
photos (:func:`novelviews.multiview.generate_nearest`; ``views/anchors.json``); the fit uses every
fitted photo (weight ``input_weight``) and the generated views, starting from points in the photos'
common view volume (``init.visible_in``); ``holdout_psnr`` scores renders at the held-out photos'
cameras against the real photos (``holdout/photo_NNN.png``), ``generated_holdout_psnr`` the held-out
generated views. The rest (fit, outputs, resume) is the one photo's. See :mod:`.posed_inputs`.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from .. import cameras as C
from ..config import save_config
from ..errors import NovelViewsError
from ..sampling import SamplingConfig
from .fit import Fitter, TrainView, render_views
from .init import generated_cameras, held_out, orbit_video_cameras, random_init
from .reconstruct_config import ReconstructConfig, read_run_config

CHECKPOINT = "checkpoints/last.pt"
INPUTS = "inputs"
ProgressFn = Callable[[dict], None]


def _write_metrics(path: Path, history: list[dict]) -> None:
    from ..io.runs import atomic_write_text

    keys = ["step", "loss", "gaussians", "sh_degree", "cloned", "split", "pruned"]
    lines = [",".join(keys)] + [",".join("" if h.get(k) is None else str(h.get(k)) for k in keys) for h in history]
    atomic_write_text(path, "\n".join(lines) + "\n")


@dataclass
class RunInputs:
    """The real photos of a run and what follows from them, in the run's world frame, as read back
    from its folder: ``images [M, S, S, 3]`` in [0, 1], ``c2w [M, 4, 4]`` (OpenGL) and ``K [M, 3, 3]``
    (pixels) float64, ``held_out[m]`` (scored, not fitted); ``fov``: vertical fov of the generated views
    and the video; ``orbit``: the video's first camera (it orbits the origin about ``+z``); ``radius``:
    the default radius of the initial ball; ``extent``: the fit's scene extent; ``min_visible``: see
    :func:`.init.random_init`."""

    images: torch.Tensor
    c2w: torch.Tensor
    K: torch.Tensor
    names: list[str]
    held_out: list[bool]
    fov: float
    orbit: torch.Tensor
    radius: float
    extent: float
    min_visible: float = 0.0

    def rows(self, held: bool) -> list[int]:
        return [m for m, h in enumerate(self.held_out) if h == held]


def _photo_inputs(out: Path, cfg: ReconstructConfig) -> RunInputs:
    from ..io.images import load_image
    from ..views import input_camera

    photo = torch.from_numpy(load_image(out / "input.png"))
    S = photo.shape[0]
    fov = math.radians(cfg.camera.fov_deg)
    c2w_in = input_camera(cfg.camera)
    K = C.intrinsics_from_fov(fov, S, S).float().double()
    return RunInputs(photo[None], c2w_in[None], K[None], ["input.png"], [False], fov, c2w_in,
                     cfg.camera.distance * math.tan(fov / 2), 1.1 * cfg.camera.distance)


def generated_fov(K: torch.Tensor, size: int) -> float:
    """Vertical fov (radians) of the views generated around input photos with intrinsics ``K [M, 3, 3]``
    of ``size``-pixel squares: the inputs' median."""
    return float(C.fov_from_intrinsics(K, size).median())


def _dataset_inputs(out: Path, cfg: ReconstructConfig) -> RunInputs:
    import json

    from ..io.images import load_image
    from .posed_inputs import input_orbit

    folder = out / INPUTS
    if not (folder / "cameras.json").is_file():
        raise NovelViewsError(f"the input photos are missing from '{folder}' (no cameras.json): rerun without "
                              "--resume or with --overwrite")
    frames = json.loads((folder / "cameras.json").read_text())["frames"]
    images = torch.stack([torch.from_numpy(load_image(folder / f["file"])) for f in frames])
    c2w = torch.tensor([f["c2w"] for f in frames], dtype=torch.float64)
    K = torch.tensor([f["K"] for f in frames], dtype=torch.float64)
    held = [bool(f["held_out"]) for f in frames]
    fit = torch.tensor([not h for h in held])
    S = images.shape[1]
    fovs = C.fov_from_intrinsics(K[fit], S)
    elev, dist, az = input_orbit(c2w[fit])
    radius = float((c2w[fit][:, :3, 3].norm(dim=1) * torch.tan(fovs / 2)).mean())
    return RunInputs(images, c2w, K, [f["name"] for f in frames], held, generated_fov(K[fit], S),
                     C.camera_on_sphere(elev, float(az[0]), dist), radius, 1.1 * dist, cfg.init.visible_in)


def _generation_total(n: int, k: int, cfg: SamplingConfig) -> int:
    """Sampler steps :func:`novelviews.generation.generate` reports for ``n`` targets of ``k`` anchors."""
    return math.ceil(cfg.samples * n / max(1, cfg.batch_size // k)) * cfg.steps


def _counter(report: ProgressFn, total: int) -> Callable[[int], None]:
    """The sampler's ``progress(n)`` as ``generate`` events of ``total`` steps."""
    done = [0]

    def sampled(n: int) -> None:
        done[0] += n
        report({"stage": "generate", "done": done[0], "total": total})

    return sampled


def _generate_around_photo(model, photo, image, out: Path, cfg: ReconstructConfig, device, report) -> None:
    from ..generation import generate
    from ..io.images import image_to_tensor, save_image
    from ..nerf.anchors import save_anchors
    from ..views import input_camera, input_scale, square_input

    S = model.config.image_size
    img = square_input(photo, S, cfg.image, image)
    scale, _ = input_scale(cfg.camera, S, cfg.image, image=img, device=device)
    save_image(out / "input.png", img)
    c2w_in, fov = input_camera(cfg.camera), math.radians(cfg.camera.fov_deg)
    targets = generated_cameras(c2w_in, cfg.views)
    sampled = _counter(report, _generation_total(targets.shape[0], 1, cfg.sampling))
    views = generate(model, image_to_tensor(img), c2w_in, targets, fov, scale=scale, cfg=cfg.sampling,
                     seeds=range(cfg.sampling.seed, cfg.sampling.seed + targets.shape[0]), progress=sampled)
    save_anchors(out / "views", views, targets, fov)


def _prepare_dataset(scene, size: int, cfg: ReconstructConfig):
    """The dataset's readable photos at ``size`` and the chosen ``(views, fitted rows, held-out rows)``."""
    from ..multiview import prepare_views
    from .posed_inputs import select_views

    views = prepare_views(scene, size, cfg.image.mode, cfg.image.background)
    return (views, *select_views(len(views), cfg.inputs))


def _generate_around_dataset(model, prepared, out: Path, cfg: ReconstructConfig, report) -> None:
    """Frame the chosen photos (:func:`_prepare_dataset`), save them in ``out/inputs``, generate the
    views around the fitted ones (each from its nearest anchors) into ``out/views`` (``anchors.json``:
    which photos each came from)."""
    from ..io.images import save_image, tensor_to_image
    from ..io.runs import atomic_write_json
    from ..multiview import generate_nearest
    from ..nerf.anchors import save_anchors
    from .posed_inputs import cameras_around_inputs, in_frame, scene_frame

    S = model.config.image_size
    views, fit_rows, held_rows = prepared
    frame = scene_frame(views.c2w[fit_rows])
    framed = in_frame(views, frame)
    frames = []
    for j, r in enumerate(sorted(fit_rows + held_rows)):
        save_image(out / INPUTS / f"{j:03d}.png", tensor_to_image(framed.images[r]))
        frames.append({"file": f"{j:03d}.png", "name": framed.names[r], "index": framed.indices[r],
                       "held_out": r in held_rows, "c2w": framed.c2w[r].tolist(), "K": framed.K[r].tolist(),
                       "c2w_dataset": views.c2w[r].tolist()})
    skipped = [{"index": i, "reason": why} for i, why in views.skipped]
    atomic_write_json(out / INPUTS / "cameras.json", {
        "convention": "OpenGL c2w and K (pixels) of the prepared photos in the run's frame",
        "frame": frame.to_dict(), "skipped": skipped, "frames": frames})
    fit = framed.subset(fit_rows)
    targets = cameras_around_inputs(fit.c2w, cfg.views.num, cfg.views.elevation_offsets_deg, cfg.views.placement)
    fov = generated_fov(fit.K, S)
    a = cfg.anchor
    k = min(a.k, len(fit))
    sampled = _counter(report, _generation_total(targets.shape[0], k, cfg.sampling))
    res = generate_nearest(model, fit, targets, fov, k=k, rotation_weight=a.rotation_weight,
                           translation_weight=a.translation_weight, power=a.power, eps=a.eps, cfg=cfg.sampling,
                           scale_mode=cfg.inputs.scale_mode, default_scale=cfg.inputs.scale,
                           seeds=range(cfg.sampling.seed, cfg.sampling.seed + targets.shape[0]), progress=sampled)
    save_anchors(out / "views", res.images, targets, fov)
    summary = res.summary()
    summary["anchors"] = [[fit.names[j] for j in row] for row in res.anchors.tolist()]
    atomic_write_json(out / "views" / "anchors.json", summary)


def run_reconstruct(image: str | Path | None, out: str | Path, cfg: ReconstructConfig, resume: bool = False,
                    overwrite: bool = False, progress: Optional[ProgressFn] = None, model=None,
                    stop_after: int | None = None) -> dict:
    """``nvs reconstruct`` (see the module docstring). ``image``: a photo, or a posed dataset (a folder,
    a transforms.json, ...; :func:`.posed_inputs.is_dataset`). ``resume`` continues
    ``out/checkpoints/last.pt`` with the run's saved config (only ``device`` comes from ``cfg``; the saved
    ``inputs.dataset`` says whether it is a dataset's run); ``model``: an already loaded
    ViewConditionedLDM; ``stop_after``: stop once this many fit steps are done (resumable). Returns a
    summary dict."""
    from dataclasses import replace

    from ..evaluate.metrics import psnr
    from ..io.datasets import load_scene
    from ..io.images import save_image
    from ..io.runs import atomic_save, atomic_write_json, run_folder
    from ..io.video import write_video
    from ..nerf.anchors import load_anchors
    from ..views import load_any_model, load_input_photo, resolve_device
    from .ply import splat_point_colours, write_point_ply, write_splat_ply
    from .posed_inputs import is_dataset

    report = progress or (lambda event: None)
    t0 = time.time()
    out = Path(out)
    if resume:
        if not (out / CHECKPOINT).is_file():
            raise NovelViewsError(f"cannot resume: '{out / CHECKPOINT}' does not exist (start without --resume)")
        device_setting = cfg.device
        cfg = read_run_config(out / "config.yaml")
        cfg.device = device_setting
    elif image is None:
        raise NovelViewsError("nvs reconstruct needs an input image or dataset (or --resume of an existing run)")
    else:
        cfg = replace(cfg, inputs=replace(cfg.inputs, dataset=str(image) if is_dataset(image) else None))
    cfg.validate()
    device = resolve_device(cfg.device)
    from_dataset = cfg.inputs.dataset is not None
    if not resume:
        # a bad photo or dataset fails before the model loads
        source = load_scene(image, cfg.inputs.format) if from_dataset else load_input_photo(image, cfg.image)
        if model is None:
            model = load_any_model(cfg.model, device, torch.float32, cfg.use_ema)
        model = model.to(device).eval()
        if from_dataset:  # unreadable photos or a bad selection fail before anything is written
            source = _prepare_dataset(source, model.config.image_size, cfg)
    outcome = {"finished": False}
    extra: dict = {}
    with run_folder(out, overwrite=overwrite, resume=resume, finished=lambda: outcome["finished"]) as out:
        if not resume:
            save_config(cfg, out / "config.yaml")
            if from_dataset:
                _generate_around_dataset(model, source, out, cfg, report)
            else:
                _generate_around_photo(model, source, image, out, cfg, device, report)
        real = _dataset_inputs(out, cfg) if from_dataset else _photo_inputs(out, cfg)
        if from_dataset:
            import json

            meta = json.loads((out / INPUTS / "cameras.json").read_text())
            anchors = json.loads((out / "views" / "anchors.json").read_text())
            extra = {"dataset": cfg.inputs.dataset, "frame": meta["frame"], "skipped_photos": len(meta["skipped"]),
                     "anchors_per_view": anchors["k"], "scene_scale_sources": anchors["scene_scale"]["sources"]}
        gen_imgs, gen_c2w = load_anchors(out / "views")
        S = real.images.shape[1]
        K_gen = C.intrinsics_from_fov(real.fov, S, S).float().to(device)
        hold = set(held_out(cfg.views))
        fit_rows, held_rows = real.rows(False), real.rows(True)
        train = [TrainView(real.images[m].to(device), real.c2w[m].float().to(device), real.K[m].float().to(device),
                           cfg.input_weight) for m in fit_rows]
        for i in range(gen_c2w.shape[0]):
            if i not in hold:
                img_i = ((gen_imgs[i].permute(1, 2, 0) + 1) / 2).clamp(0, 1)
                train.append(TrainView(img_i.to(device), gen_c2w[i].float().to(device), K_gen, 1.0))
        radius = cfg.init.radius or real.radius
        gen = torch.Generator().manual_seed(cfg.fit.seed)
        fr = torch.tensor(fit_rows)
        gaussians = random_init(real.images[fr], real.c2w[fr], real.K[fr], cfg.init, radius, cfg.fit.sh_degree, gen,
                                min_visible=real.min_visible).to(device)
        fitter = Fitter(gaussians, train, cfg.fit, extent=real.extent, background=cfg.background, render=cfg.splats)
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
        if from_dataset:
            summary.update(inputs=len(fit_rows), held_out_photos=len(held_rows), **extra)
        if fitter.step < cfg.fit.steps:
            summary["seconds"] = round(time.time() - t0, 3)
            return summary  # stopped early on purpose: the run stays unfinished, resumable

        size = cfg.output.size or S
        zoom = torch.tensor([size / S, size / S, 1.0], dtype=torch.float64)[:, None]
        K_out = C.intrinsics_from_fov(real.fov, size, size).float().to(device)
        summary["splats"] = str(write_splat_ply(out / "splats.ply", gaussians))
        summary["points"] = str(write_point_ply(out / "points.ply", gaussians.means, splat_point_colours(gaussians)))
        render_total = len(hold) + len(held_rows) + cfg.output.video_frames
        rendered = 0

        def render_at(c2w: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
            nonlocal rendered
            rgb = render_views(gaussians, c2w[None].float().to(device), K.float().to(device), size, size,
                               cfg.background, cfg.splats)[0].cpu()
            rendered += 1
            report({"stage": "render", "done": rendered, "total": render_total})
            return rgb

        scores = []
        for i in sorted(hold):
            rgb = render_at(gen_c2w[i], K_out)
            save_image(out / "holdout" / f"{i:03d}.png", rgb.numpy())
            if size == S:
                target = ((gen_imgs[i] + 1) / 2).clamp(0, 1)
                scores.append(float(psnr(rgb.permute(2, 0, 1)[None], target[None])[0]))
        photo_scores = []
        for m in held_rows:
            rgb = render_at(real.c2w[m], real.K[m] * zoom)
            save_image(out / "holdout" / f"photo_{m:03d}.png", rgb.numpy())
            if size == S:
                photo_scores.append(float(psnr(rgb.permute(2, 0, 1)[None], real.images[m].permute(2, 0, 1)[None])[0]))
        generated_key = "generated_holdout_psnr" if from_dataset else "holdout_psnr"
        if scores:
            summary[generated_key] = round(sum(scores) / len(scores), 3)
            summary[generated_key + "_per_view"] = [round(s, 3) for s in scores]
        if photo_scores:  # the honest score of a real capture: photos the fit never saw
            summary["holdout_psnr"] = round(sum(photo_scores) / len(photo_scores), 3)
            summary["holdout_psnr_per_view"] = [round(s, 3) for s in photo_scores]
            summary["holdout_photos"] = [real.names[m] for m in held_rows]
        if cfg.output.video_frames:
            cams = orbit_video_cameras(real.orbit, cfg.output.video_frames)
            frames = [render_at(cams[n], K_out).numpy() for n in range(cams.shape[0])]
            summary["video"] = str(write_video(out / "video.mp4", frames, fps=cfg.output.fps))
        summary["seconds"] = round(time.time() - t0, 3)
        atomic_write_json(out / "info.json", summary)
        outcome["finished"] = True
        return summary


__all__ = ["run_reconstruct", "generated_fov", "RunInputs", "CHECKPOINT", "INPUTS"]
