"""``nvs distill`` / ``nvs export``: SDS distillation (with anchoring) of the prior into a NeRF.

A plain PyTorch training loop (not Lightning: exact resume of the loss curve, the Ctrl-C
checkpoint and per-step RNG control are simpler to get right and to test in a loop we own).

World and cameras (docs/REFERENCE.md): z-up world, OpenGL cam2world (x right, y up,
looking along -z); a camera at elevation e, azimuth a, distance d sits at
``d (cos e cos a, cos e sin a, sin e)`` looking at the origin; fov is vertical. The input
photo is seen from azimuth 0, ``camera.elevation_deg``, ``camera.distance``, with
``camera.fov_deg``; its 6DoF+1 scene scale is ``camera.scale`` (or a depth map's 0.2-quantile).

One training step (:func:`train_step`):

* ``B`` random cameras (:func:`sample_views`): azimuth, elevation and distance uniform in
  ranges that widen linearly from the input pose to the full ranges over the first
  ``sds_cameras.widen_fraction`` of the run (reference: 1000 of 4000 steps); fov = input fov;
  distances are multiples of ``camera.distance``.
* each is rendered at ``r x r`` pixels (stratified samples, a random background colour per
  image), VAE-encoded and scored by SDS (:mod:`.guidance`) conditioned on the input or on its
  nearest anchor (:mod:`.anchors`);
* the input camera is rendered at ``r x r`` and compared with the input photo (MSE);
* ``loss = loss.lambda_sds * sds + loss.lambda_rgb * rgb + loss.lambda_interlevel * interlevel
  + loss.normal_smooth * smooth + loss.orientation * orient`` (the last two on the SDS renders,
  :mod:`.losses`; a weight of 0 skips the normal computation).

Batch size and render resolution follow ``phases`` (reference: batch 6 at half the model's
size for the first half of the run, then batch 1 at full size). All step milestones are
fractions of ``phases.steps``, so short runs keep the reference's shape.

Run folder: ``config.yaml``, ``input.png``, ``anchors/`` (PNGs + cameras.json),
``checkpoints/last.pt`` (field + sampler + background + optimizer + step + RNG + loss
history), ``metrics.csv``, ``previews/step_NNNNNN.png``, and at the end ``video.mp4``
(orbit), ``depth.mp4``, ``views/`` (at ``output.cameras``) and ``info.json``.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from pathlib import Path

import torch

from ..config import save_config
from ..errors import NovelViewsError
from .anchors import load_anchors, sample_anchors, save_anchors
log = logging.getLogger(__name__)  # notes for the user; the CLI prints them
MESH_FORMATS = ("obj", "ply", "glb")
from .distill_config import (CPU_PRESET, LOW_MEMORY_PRESET, REFERENCE_PATH, DistillConfig, DistillOccupancyConfig,
                             ExportConfig, LossConfig, OptimConfig, OutputConfig, PhasesConfig, RandomCameraConfig,
                             RenderConfig,
                             config_differences, cpu_note, preset_settings, read_run_config)
from .outputs import depth_frames, render_orbit, write_metrics, write_preview, write_views
from .run_state import CHECKPOINT, load_checkpoint, load_modules, load_run, save_checkpoint, set_rng_state
from .phases import camera_ranges, orbit_cameras, phase, sample_views
from .step import (Conditioning, Scene, build_scene, embed_pool, guidance_inputs, make_denoiser, make_optimizer,
                   optimizer_step, render_view, resolve_precision, start_training, step_info, train_step,
                   unused_parts_offloaded)


# --------------------------------------------------------------------------- run


class _StopFlag:
    """Ctrl-C handler: the first press finishes the current step, saves and stops; the second aborts."""

    def __init__(self):
        self.stop = False
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.getsignal(signal.SIGINT)

            def handler(signum, frame):
                if self.stop:
                    raise KeyboardInterrupt
                self.stop = True
                log.info("\ninterrupt: saving a checkpoint after this step (press Ctrl-C again to abort)")

            signal.signal(signal.SIGINT, handler)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def run_distill(image: str | Path, out: str | Path, cfg: DistillConfig, resume: bool = False,
                overwrite: bool = False, progress: bool = True, model=None, stop_after: int | None = None,
                max_seconds: float | None = None, write_outputs: bool = True) -> dict:
    """``nvs distill``: distil the diffusion prior into a NeRF of the scene behind ``image``.

    ``resume`` continues ``out/checkpoints/last.pt`` with the run's saved config in full (same
    step count, same loss curve, same outputs; only ``device`` comes from ``cfg``; the settings of
    ``cfg`` that differ are named in a note). ``model``: an already loaded ViewConditionedLDM (tests);
    ``stop_after``: stop once this many steps are done (the run can be resumed);
    ``max_seconds``: stop training after this much wall time (benchmarks). Ctrl-C saves a
    checkpoint and raises KeyboardInterrupt. Returns a summary dict.
    """
    from tqdm.auto import tqdm

    from ..io.images import image_to_tensor, load_image, save_image
    from ..io.runs import atomic_write_json, run_folder
    from ..io.video import write_video
    from ..views import input_scale, load_any_model, load_input_photo, resolve_device, square_input

    t_start = time.time()
    out = Path(out)
    if resume:
        if not (out / CHECKPOINT).is_file():
            raise NovelViewsError(f"cannot resume: '{out / CHECKPOINT}' does not exist (start without --resume)")
        saved = read_run_config(out / "config.yaml")
        ignored = config_differences(saved, cfg)
        if ignored:
            log.info(f"note: resuming with the run's saved config ({out / 'config.yaml'}); these settings of this "
                     f"call are ignored: {', '.join(ignored)}")
        saved.device = cfg.device  # the one setting a resumed run takes from the new call
        cfg = saved
    cfg.validate()
    device = resolve_device(cfg.device)
    amp = resolve_precision(cfg.precision, device)
    if not resume:
        photo = load_input_photo(image, cfg.image)  # a bad photo fails before the model loads
    note = cpu_note(cfg) if device.type == "cpu" and model is None else None
    if note:
        log.info(note)
    if model is None:
        model = load_any_model(cfg.model, device, torch.float32, cfg.use_ema)
    model = model.to(device).eval().requires_grad_(False)
    S = model.config.image_size

    if not resume:
        img = square_input(photo, S, cfg.image, image)
        scale, scale_source = input_scale(cfg.camera, S, cfg.image, image=img, device=device)
    else:
        scale, scale_source = None, None
    outcome = {"finished": False}  # a run stopped early on purpose (stop_after, max_seconds) stays unfinished
    with run_folder(out, overwrite=overwrite, resume=resume, finished=lambda: outcome["finished"]) as out:
        if not resume:
            save_config(cfg, out / "config.yaml")
            save_image(out / "input.png", img)
        input_img = image_to_tensor(load_image(out / "input.png"))  # [1, 3, S, S] in [-1, 1] (as saved)

        scene, opt, scaler, gen = start_training(cfg, S, device, amp)
        history: list[dict] = []
        step = 0
        meta = {"image_size": S, "fov": scene.fov, "scale": scale, "scale_source": scale_source,
                "model": cfg.model}
        if resume:
            state = load_checkpoint(out / CHECKPOINT, map_location=device)
            load_modules(scene, state)
            opt.load_state_dict(state["optimizer"])
            if scaler is not None and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            set_rng_state(state["rng"], gen)
            step, history, meta = int(state["step"]), list(state["history"]), dict(state["meta"])
            scale = float(meta["scale"])

        # conditioning pool: input + anchors (sampled once, saved with the run, reloaded from PNGs)
        anchors_dir = out / "anchors"
        if not resume:
            a_imgs, a_c2w = sample_anchors(model, input_img.to(device), scene.input_c2w, scene.fov, scale, cfg.anchors,
                                           math.radians(cfg.camera.elevation_deg), cfg.camera.distance, cfg.precision,
                                           progress)
            save_anchors(anchors_dir, a_imgs, a_c2w, scene.fov)
        a_imgs, a_c2w = load_anchors(anchors_dir)
        pool_imgs = torch.cat([input_img, a_imgs]) if a_c2w.shape[0] else input_img
        pool, target, alphas, denoiser = guidance_inputs(model, cfg, scene, pool_imgs, a_c2w, scale, input_img, amp)

        total = cfg.phases.steps
        end = total if stop_after is None else min(total, int(stop_after))
        preview_size = cfg.output.size or S
        bar = tqdm(total=total, initial=step, desc="distill", unit="step", disable=not progress, dynamic_ncols=True)
        t_train = time.time()
        steps_done = 0
        stopped = None
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with _StopFlag() as flag, unused_parts_offloaded(model, cfg.offload_unused and device.type == "cuda"):
            while step < end:
                loss, info = train_step(step, scene, model, pool, target, cfg, gen, alphas, amp, denoiser)
                optimizer_step(loss, opt, scaler)
                step += 1
                steps_done += 1
                info = {"step": step, **step_info(info), "seconds": round(time.time() - t_train, 3)}
                history.append(info)
                bar.update(1)
                bar.set_postfix(loss=f"{info['loss']:.4g}", rgb=f"{info['rgb']:.3g}", t=int(info["t_mean"]))
                if step % cfg.output.log_every == 0:
                    write_metrics(out / "metrics.csv", history)
                if cfg.output.preview_every and step % cfg.output.preview_every == 0:
                    write_preview(out / "previews" / f"step_{step:06d}.png", scene, cfg, preview_size)
                if step % cfg.output.checkpoint_every == 0:
                    save_checkpoint(out / CHECKPOINT, step, scene, opt, scaler, gen, history, meta)
                if flag.stop:
                    stopped = "interrupt"
                    break
                if max_seconds is not None and time.time() - t_train > max_seconds:
                    stopped = "time budget"
                    break
        bar.close()
        train_seconds = time.time() - t_train
        save_checkpoint(out / CHECKPOINT, step, scene, opt, scaler, gen, history, meta)
        write_metrics(out / "metrics.csv", history)
        if stopped == "interrupt":
            log.info(f"saved {out / CHECKPOINT} at step {step}/{total}; continue with --resume")
            raise KeyboardInterrupt

        info = {"out": str(out), "step": step, "steps": total, "steps_this_call": steps_done,
                "train_seconds": round(train_seconds, 3),
                "steps_per_second": round(steps_done / max(train_seconds, 1e-9), 4),
                "device": str(device), "precision": "fp32" if amp is None else str(amp).replace("torch.", ""),
                "anchors": int(a_c2w.shape[0]), "scale": scale, "final_loss": history[-1]["loss"] if history else None,
                "stopped": stopped}
        if device.type == "cuda":
            info["peak_memory_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
        if write_outputs:
            for m in scene.modules().values():
                m.eval()
            if cfg.output.video_frames > 0:
                rgb, depth = render_orbit(scene, cfg, cfg.output.video_frames, preview_size, progress)
                info["video"] = str(write_video(out / "video.mp4", rgb, fps=cfg.output.fps))
                info["depth_video"] = str(write_video(out / "depth.mp4", depth, fps=cfg.output.fps))
            if cfg.output.cameras:
                info["views"] = write_views(scene, cfg, cfg.output.cameras, out / "views", preview_size)
        info["seconds"] = round(time.time() - t_start, 3)
        atomic_write_json(out / "info.json", info)
        outcome["finished"] = step >= total
        return info


# --------------------------------------------------------------------------- export


def run_export(run_dir: str | Path, out: str | Path | None = None, what: str = "mesh", format: str = "obj",
               resolution: int = 256, threshold: float | None = None, device: str = "auto",
               frames: int | None = None, size: int | None = None, cameras: str | Path | None = None,
               overwrite: bool = False, progress: bool = True) -> dict:
    """``nvs export``: mesh / orbit video / views from a distillation run, headless, CPU or GPU.

    ``what``: ``mesh`` (marching cubes at ``resolution``^3 over the field's box; ``threshold``
    = density iso-level or None for the automatic one; vertex colours from the albedo;
    ``format`` obj | ply | glb), ``splats`` (``splats.ply`` + ``points.ply``: one Gaussian per grid
    point of ``resolution``^3 denser than ``threshold``, :mod:`novelviews.splats.from_nerf`), ``video`` (``video.mp4`` + ``depth.mp4``, ``frames`` frames at
    ``size`` px) or ``views`` (the cameras of a JSON camera path). ``out`` defaults to
    ``RUN/export``; existing files are kept unless ``overwrite``.
    """
    from ..io.video import write_video
    from ..views import resolve_device

    if what not in ("mesh", "video", "views", "splats"):
        raise NovelViewsError(f"unknown export '{what}': use mesh, video, views or splats")
    cfg, scene, state = load_run(run_dir, resolve_device(device))
    out = Path(run_dir) / "export" if out is None else Path(out)
    if out.exists() and not out.is_dir():
        raise NovelViewsError(f"output path '{out}' exists and is not a folder: choose another --out")

    def fresh(path: Path) -> Path:
        if path.exists() and not overwrite:
            raise NovelViewsError(f"'{path}' already exists: pass --overwrite to replace it or choose another --out")
        return path

    size = int(size or cfg.output.size or scene.image_size)
    info: dict = {"run": str(run_dir), "step": int(state["step"]), "out": str(out)}
    if what == "mesh":
        from .export import export_mesh

        fmt = format.lower().lstrip(".")
        if fmt not in MESH_FORMATS:
            raise NovelViewsError(f"unknown mesh format '{format}': use one of {', '.join(MESH_FORMATS)}")
        res = export_mesh(scene.field, fresh(out / f"mesh.{fmt}"), resolution=resolution, threshold=threshold)
        info.update(res)
    elif what == "splats":  # one Gaussian per dense grid point (splats.from_nerf)
        from ..splats.from_nerf import gaussians_from_field
        from ..splats.ply import splat_point_colours, write_point_ply, write_splat_ply

        gaussians, level = gaussians_from_field(scene.field, resolution=resolution, threshold=threshold)
        info["path"] = str(write_splat_ply(fresh(out / "splats.ply"), gaussians))
        info["points"] = str(write_point_ply(fresh(out / "points.ply"), gaussians.means, splat_point_colours(gaussians)))
        info.update(gaussians=len(gaussians), level=level)
    elif what == "video":
        n = int(frames or cfg.output.video_frames or 60)
        rgb, depth = render_orbit(scene, cfg, n, size, progress)
        info["video"] = str(write_video(fresh(out / "video.mp4"), rgb, fps=cfg.output.fps))
        info["depth_video"] = str(write_video(fresh(out / "depth.mp4"), depth, fps=cfg.output.fps))
        info["frames"] = n
    else:
        cams = cameras or cfg.output.cameras
        if not cams:
            raise NovelViewsError("export of views needs a camera path: pass --cameras FILE.json")
        fresh(out / "views" / "cameras.json")
        info["views"] = write_views(scene, cfg, cams, out / "views", size)
    return info


__all__ = ["RandomCameraConfig", "PhasesConfig", "ExportConfig", "LossConfig", "OptimConfig", "RenderConfig", "OutputConfig",
           "DistillOccupancyConfig", "DistillConfig", "LOW_MEMORY_PRESET", "REFERENCE_PATH", "CPU_PRESET", "cpu_note",
           "config_differences", "preset_settings", "phase", "camera_ranges", "sample_views", "orbit_cameras", "resolve_precision",
           "Scene", "build_scene", "render_view", "Conditioning", "embed_pool", "train_step", "start_training",
           "guidance_inputs", "step_info", "make_denoiser", "make_optimizer", "optimizer_step", "save_checkpoint",
           "load_checkpoint", "load_modules", "load_run", "read_run_config", "unused_parts_offloaded",
           "depth_frames", "render_orbit", "write_views", "write_preview", "write_metrics", "run_distill",
           "run_export", "CHECKPOINT"]
