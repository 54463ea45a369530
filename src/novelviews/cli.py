"""``nvs``: one entry point, one subcommand per job. Thin: parse, build the config, call.

Every subcommand takes ``--config FILE.yaml`` (repeatable, later wins) and trailing
dotted overrides ``key.sub=value``; the resolved config is saved beside the outputs.
User errors print one line (``error: ...``) and exit with status 2, no traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
import warnings
from typing import Callable

from .config import RenamedKeyWarning
from .errors import NovelViewsError

EPILOG_OVERRIDES = "Any config key can be set as key.sub=value after the arguments (see --show-config)."


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", action="append", default=[], metavar="FILE.yaml",
                   help="YAML config file (repeatable; later files win)")
    p.add_argument("--show-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")


def _given(cls, args, shortcuts: dict[str, object]) -> dict:
    """What the call set (shortcuts given, YAML files, overrides), nested, old key names renamed
    within each layer, before any defaults."""
    from . import config as cfgmod

    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        raise NovelViewsError(f"unexpected argument '{bad[0]}': overrides look like key.sub=value")
    return cfgmod.layered(cls, cfgmod.nest_dotted(shortcuts), args.config, list(args.overrides))


def _build(cls, args, shortcuts: dict[str, object]):
    from . import config as cfgmod

    return cfgmod.from_dict(cls, _given(cls, args, shortcuts))


def _show(cfg) -> bool:
    from .config import dump

    print(dump(cfg), end="")
    return True


# --------------------------------------------------------------------------- commands


def cmd_synth(args) -> None:
    from .synth.generate import SynthConfig, command_synth

    cfg = _build(SynthConfig, args, {"scenes": args.scenes, "views": args.views, "size": args.size,
                                     "family": args.family, "seed": args.seed})
    if args.show_config and _show(cfg):
        return
    command_synth(cfg, args.out, overwrite=args.overwrite, device=args.device)


def cmd_views(args) -> None:
    from .views import ViewsConfig, run_views

    cfg = _build(ViewsConfig, args, {"model": args.model, "path.kind": args.path, "path.num_views": args.num_views,
                                     "sampling.steps": args.steps, "sampling.seed": args.seed, "device": args.device})
    if args.show_config and _show(cfg):
        return
    info = run_views(args.image, args.out, cfg, overwrite=args.overwrite, progress=not args.quiet)
    print(f"wrote {info['views']} views, {info['video']} and sheet.png to {info['out']} "
          f"in {info['seconds']} s on {info['device']} (scene scale {info['scale']:.3g} from {info['scale_source']})")


def cmd_eval(args) -> None:
    from .evaluate import EvalConfig, run_eval

    cfg = _build(EvalConfig, args, {"model": args.model, "holdout": args.holdout, "methods": args.methods,
                                    "anchor.k": args.k, "sampling.steps": args.steps, "sampling.seed": args.seed,
                                    "max_views": args.max_views, "lpips_weights": args.lpips_weights,
                                    "format": args.format, "device": args.device})
    if args.show_config and _show(cfg):
        return
    info = run_eval(args.dataset, args.out, cfg, overwrite=args.overwrite, progress=not args.quiet)
    if cfg.lpips != "off" and not info["lpips_available"]:
        print(info["lpips"], file=sys.stderr)
    names = {"psnr": "PSNR", "ssim": "SSIM", "ssim_gaussian": "SSIM-G", "lpips": "LPIPS"}
    for method, row in info["mean"].items():
        vals = "  ".join(f"{names[k]} {v:.4f}" for k, v in row.items() if k in names and v is not None)
        print(f"  {method:<10} {row['count']:>3} views  {vals or 'n/a'}")
    skipped = f", {info['skipped']} unreadable views skipped" if info["skipped"] else ""
    print(f"scored {info['views']} held-out views at {info['size']} px in {info['seconds']} s{skipped}; "
          f"report: {info['out']}/report.html")


def cmd_distill(args) -> None:
    from .nerf.distill import LOW_MEMORY_PRESET, DistillConfig, preset_settings, run_distill

    shortcuts = {"model": args.model, "device": args.device, "phases.steps": args.steps,
                 "anchors.num": args.anchors, "camera.fov_deg": args.fov, "camera.elevation_deg": args.elevation,
                 "camera.scale": args.scale, "seed": args.seed}
    cfg = _build(DistillConfig, args, (preset_settings(LOW_MEMORY_PRESET) if args.low_memory else {}) | shortcuts)
    if args.show_config and _show(cfg):
        return
    info = run_distill(args.image, args.out, cfg, resume=args.resume, overwrite=args.overwrite,
                       progress=not args.quiet)
    print(f"distilled {info['step']}/{info['steps']} steps ({info['steps_per_second']:.3g} steps/s on "
          f"{info['device']}, {info['anchors']} anchors) in {info['seconds']} s; run in {info['out']}"
          + (f", video {info['video']}" if "video" in info else ""))


def cmd_export(args) -> None:
    from .config import to_dict
    from .nerf.distill import ExportConfig, run_export

    cfg = _build(ExportConfig, args, {"what": args.what, "format": args.format, "resolution": args.resolution,
                                      "threshold": args.threshold, "device": args.device, "frames": args.frames,
                                      "size": args.size, "cameras": args.cameras})
    if args.show_config and _show(cfg):
        return
    info = run_export(args.run, args.out, **to_dict(cfg), overwrite=args.overwrite, progress=not args.quiet)
    if cfg.what == "mesh":
        print(f"wrote {info['path']}: {info['vertices']} vertices, {info['faces']} faces "
              f"(density level {info['level']:.4g})")
    elif cfg.what == "splats":
        print(f"wrote {info['path']} and {info['points']}: {info['gaussians']} Gaussians (density level {info['level']:.4g})")
    elif cfg.what == "video":
        print(f"wrote {info['video']} and {info['depth_video']} ({info['frames']} frames)")
    else:
        print(f"wrote {info['views']} views to {info['out']}/views")


def cmd_reconstruct(args) -> None:
    from pathlib import Path

    from .splats.reconstruct import run_reconstruct
    from .splats.reconstruct_config import ReconstructConfig

    if args.image and "=" in args.image and not Path(args.image).exists():  # `--resume --out R key=value`
        args.overrides, args.image = [args.image] + list(args.overrides), None
    cfg = _build(ReconstructConfig, args, {"model": args.model, "device": args.device, "views.num": args.num_views,
                                           "fit.steps": args.steps, "fit.sh_degree": args.sh_degree,
                                           "inputs.holdout": args.holdout, "anchor.k": args.k})
    if args.show_config and _show(cfg):
        return
    last = {"stage": None}

    def progress(event: dict) -> None:
        if args.quiet:
            return
        if event["stage"] == "fit":
            print(f"fit step {event['done']}/{event['total']}: loss {event['loss']:.4g}, "
                  f"{event['gaussians']} Gaussians", flush=True)
        elif event["stage"] != last["stage"] or event["done"] == event["total"]:
            print(f"{event['stage']}: {event['done']}/{event['total']}", flush=True)
        last["stage"] = event["stage"]

    info = run_reconstruct(args.image, args.out, cfg, resume=args.resume, overwrite=args.overwrite, progress=progress)
    if "holdout_photos" in info:
        score = f", PSNR {info['holdout_psnr']:.2f} dB on {len(info['holdout_photos'])} held-out photos"
    elif "holdout_psnr" in info:
        score = f", held-out PSNR {info['holdout_psnr']:.2f} dB"
    else:
        score = ""
    photos = f" ({info['inputs']} photos + generated)" if "inputs" in info else ""
    print(f"fitted {info['gaussians']} Gaussians to {info['views']} views{photos} in {info['step']} steps "
          f"({info['steps_per_second']:.3g} steps/s on {info['device']}){score}; splats.ply, points.ply and "
          f"video in {info['out']}")


def cmd_ui(args) -> None:
    from .ui import UIConfig, launch

    cfg = _build(UIConfig, args, {"model": args.model, "host": args.host, "port": args.port, "output_root": args.out,
                                  "device": args.device, "open_browser": args.open or None})
    if args.show_config and _show(cfg):
        return
    launch(model=cfg.model, host=cfg.host, port=cfg.port, output_root=cfg.output_root, device=cfg.device,
           open_browser=cfg.open_browser, distill_overrides=cfg.distill_overrides())


def cmd_convert(args) -> None:
    from .model.checkpoints import ConvertConfig, convert_checkpoint
    from .runtime import PRECISION_DTYPES

    cfg = _build(ConvertConfig, args, {"use_ema": False if args.raw else None})
    if args.show_config and _show(cfg):
        return
    report = convert_checkpoint(args.checkpoint, args.out, use_ema=cfg.use_ema, overwrite=args.overwrite,
                                config=cfg.arch, dtype=PRECISION_DTYPES[cfg.precision])
    print(report.summary())
    print(f"wrote {args.out}")


def cmd_train(args) -> None:
    from .train.run import TrainConfig, parse_data_args, resumed_config, run_train

    data, overrides = parse_data_args(args.items)
    args.overrides = overrides
    if args.model is not None:
        if args.arch is not None:
            raise NovelViewsError("--model and --arch are one option ('--model' is its old name): keep only --arch")
        warnings.warn("nvs train --model is now --arch (the old name still works)", RenamedKeyWarning)
        args.arch = args.model
    shortcuts = {"arch": args.arch, "init": args.init, "stage": args.stage, "max_steps": args.steps,
                 "batch_size": args.batch_size, "devices": args.devices, "strategy": args.strategy,
                 "synth.scenes": args.synth}
    if data:
        shortcuts["data"] = data
    # --resume: the run's saved config, with what a resumed run may change (train.run.RESUME_SETTINGS)
    cfg = resumed_config(args.out, _given(TrainConfig, args, shortcuts)) if args.resume else _build(TrainConfig, args, shortcuts)
    if args.show_config and _show(cfg):
        return
    info = run_train(cfg, args.out, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    where = f"model written to {info['out']}/model" if cfg.export_model else "no model exported (export_model=false)"
    print(f"trained {info['steps']} steps in {info['train_seconds']} s; {where}")


def cmd_cache(args) -> None:
    from .compile_cache import cache_info, clear_cache

    if args.action == "clear":
        done = clear_cache()
        print(f"removed {done['removed']} compile cache files ({done['bytes'] / 2**20:.1f} MiB) from {done['folder']}")
        return
    info = cache_info()
    print(f"compile cache: {info['folder']} ({len(info['files'])} files, {info['bytes'] / 2**20:.1f} MiB)")
    for f in info["files"]:
        opts = f.get("options") or {}
        what = f.get("problem") or (f"torch {f.get('torch')}, {f.get('device')}, compile={opts.get('compile')}, "
                                    f"{opts.get('precision')}, batches {opts.get('batches')}")
        print(f"  {f['file']}  {f['bytes'] / 2**20:8.1f} MiB  {what}")


COMMANDS: dict[str, dict] = {
    "views": dict(
        fn=cmd_views,
        help="one image -> novel views along a camera path (PNGs, cameras.json, MP4, contact sheet)",
        examples="""
            nvs views examples/scene.png --out runs/views
            nvs views photo.jpg --path spiral --num-views 24 --out runs/spiral sampling.guidance_scale=2
            nvs views photo.jpg --path my_path.json --model zeronvs.ckpt --device cuda --out runs/custom \\
                camera.fov_deg=60 camera.scale=0.9 sampling.precision=fp16
        """,
    ),
    "eval": dict(
        fn=cmd_eval,
        help="hold out views of a posed scene, regenerate them from the others, score vs baselines",
        examples="""
            nvs eval runs/synth/scene_0000 --out runs/eval                  # every 8th view held out
            nvs eval my_capture/ --holdout loo --model zeronvs.ckpt --device cuda --out runs/loo sampling.precision=fp16
            nvs eval colmap_scene/ --holdout list:0,12,24 --k 3 --methods nearest,model,model_k --out runs/e
            nvs eval scene/ --out runs/e lpips=vgg lpips_weights=/path/to/vgg16-397923af.pth
        """,
    ),
    "distill": dict(
        fn=cmd_distill,
        help="one image -> a 3D NeRF by SDS distillation (with SDS anchoring); orbit + depth video",
        examples="""
            nvs distill examples/scene.png --out runs/nerf
            nvs distill photo.jpg --out runs/nerf --anchors 4 --fov 60 --elevation 20 --scale 0.9
            nvs distill photo.jpg --out runs/nerf --model zeronvs_converted --device cuda \\
                phases.render_scales=[0.5,1.0] guidance.guidance_scale=9.5
            nvs distill photo.jpg --out runs/nerf --resume     # continue after Ctrl-C
            nvs distill examples/scene.png --out runs/nerf_cpu --device cpu --config distill-cpu  # ~13 min, 2 cores
        """,
    ),
    "export": dict(
        fn=cmd_export,
        help="mesh (OBJ/PLY/GLB, vertex colours), orbit video or views from a distilled NeRF (headless)",
        examples="""
            nvs export runs/nerf --what mesh --format glb --resolution 256
            nvs export runs/nerf --what mesh --threshold 10 --out meshes
            nvs export runs/nerf --what video --frames 120 --size 256
            nvs export runs/nerf --what views --cameras my_path.json
            nvs export runs/nerf --what splats --resolution 128    # splats.ply + points.ply
        """,
    ),
    "reconstruct": dict(
        fn=cmd_reconstruct,
        help="one image or a few posed photos -> generated views around them -> fitted 3D Gaussian splats",
        examples="""
            nvs reconstruct examples/scene.png --out runs/splats
            nvs reconstruct my_capture/ --out runs/capture --holdout every:8 --k 2   # transforms.json / COLMAP / ...
            nvs reconstruct colmap_scene/ --out runs/c inputs.max_views=12 views.placement=orbit
            nvs reconstruct photo.jpg --out runs/splats --num-views 64 --steps 3000 --sh-degree 3 --device cuda
            nvs reconstruct photo.jpg --out runs/splats input_weight=8 splats.backend=gsplat
            nvs reconstruct --resume --out runs/splats      # continue from runs/splats/checkpoints/last.pt
        """,
    ),
    "synth": dict(
        fn=cmd_synth,
        help="render procedural multi-view scenes with exact cameras, depth and masks",
        examples="""
            nvs synth runs/synth --scenes 4 --views 24 --size 128
            nvs synth runs/walks --family walk --scenes 2 --views 32 --size 96 --seed 100
        """,
    ),
    "train": dict(
        fn=cmd_train,
        help="train or fine-tune the view-conditioned diffusion model (Lightning; EMA, resume, DDP)",
        examples="""
            nvs train runs/synth --out runs/train --steps 2000 batch_size=16
            nvs train --synth 500 --arch demo --out runs/demo --steps 20000 precision=bf16
            nvs train co3d_scenes:0.34 re10k_scenes:0.33 acid_scenes:0.33 --init converted/zeronvs \
                --out runs/finetune --devices 4 --strategy ddp precision=bf16
            nvs train --resume --out runs/demo ...   # continue from runs/demo/checkpoints/last.ckpt
        """,
    ),
    "ui": dict(
        fn=cmd_ui,
        help="local web app (gradio): upload a photo, generate views + video, see cameras, distil, download",
        examples="""
            nvs ui                                            # http://127.0.0.1:7860, bundled demo model
            nvs ui --model converted/zeronvs --device cuda --port 8080
            nvs ui --out runs/ui --open                       # keep outputs under runs/ui, open a browser
        """,
    ),
    "cache": dict(
        fn=cmd_cache,
        help="show or clear the compile cache of sampling.compile (in $NOVELVIEWS_CACHE_DIR or ~/.cache/novelviews)",
        examples="""
            nvs cache info        # the folder and its files (torch version, device, compile options, batches)
            nvs cache clear       # delete them: the next compiled run compiles from scratch
        """,
    ),
    "convert": dict(
        fn=cmd_convert,
        help="official ZeroNVS / Zero-1-to-3 .ckpt -> a diffusers-style folder",
        examples="""
            nvs convert zeronvs.ckpt converted/zeronvs
            nvs convert zero123-xl.ckpt converted/zero123 --raw      # raw weights instead of EMA
        """,
    ),
}


#: --model of views, eval, distill and ui
MODEL_HELP = ("'demo' (bundled, default), a checkpoint (.ckpt, .safetensors, folder), or PRESET-random "
              "(e.g. zeronvs-random: that architecture with random weights, for timing)")


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    lines = "\n".join(f"  {name:<10}{spec['help']}" for name, spec in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="nvs",
        formatter_class=_formatter,
        description="novelviews: zero-shot novel view synthesis of real scenes.",
        epilog=f"commands:\n{lines}\n\nexamples:\n  nvs views examples/scene.png --out runs/views\n"
               "  nvs synth runs/synth --scenes 4 --views 24 --size 128\n"
               "  nvs eval runs/synth/scene_0000 --out runs/eval\n\nRun `nvs COMMAND --help` for details.",
    )
    parser.add_argument("--version", action="version", version=f"novelviews {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, setup: Callable[[argparse.ArgumentParser], None]) -> None:
        spec = COMMANDS[name]
        p = sub.add_parser(name, help=spec["help"], description=spec["help"], formatter_class=_formatter,
                           epilog="examples:\n" + textwrap.dedent(spec["examples"]).strip("\n").replace("\n", "\n  ")
                           .join(["  ", ""]) + "\n\n" + EPILOG_OVERRIDES)
        setup(p)
        p.set_defaults(fn=spec["fn"])

    def views(p):
        p.add_argument("image", help="input photo (any PIL format; RGBA is composited on image.background)")
        p.add_argument("--out", required=True, help="output folder (must be new or empty, or use --overwrite)")
        p.add_argument("--model", help=MODEL_HELP)
        p.add_argument("--path", help="orbit | spiral | zoom | pan | dolly | wiggle | FILE.json (default orbit)")
        p.add_argument("--num-views", type=int, help="number of views on the path (default 16)")
        p.add_argument("--steps", type=int, help="denoising steps (default 10; sampling.preset=reference: DDIM 50, eta 1)")
        p.add_argument("--seed", type=int, help="seed of view 0; view i uses seed + i")
        p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
        _add_common(p)

    def eval_(p):
        p.add_argument("dataset", help="scene: transforms.json folder/file, COLMAP folder, CO3D sequence, RE10K txt")
        p.add_argument("--out", required=True, help="output folder (must be new or empty, or use --overwrite)")
        p.add_argument("--holdout", help="every:K (default every:8) | list:0,5,9 | loo")
        p.add_argument("--model", help=MODEL_HELP)
        p.add_argument("--methods", type=lambda s: [m.strip() for m in s.split(",") if m.strip()],
                       help="comma list of nearest, reproject, model, model_k (default all)")
        p.add_argument("--k", type=int, help="anchors of the model_k method (default 2)")
        p.add_argument("--steps", type=int, help="denoising steps (default 10; sampling.preset=reference: DDIM 50, eta 1)")
        p.add_argument("--seed", type=int, help="base seed; held-out view i uses seed + i")
        p.add_argument("--max-views", type=int, help="score at most this many held-out views")
        p.add_argument("--lpips-weights", help="local torchvision VGG16/AlexNet weights for LPIPS (never downloaded)")
        p.add_argument("--format", help="dataset layout: auto | transforms | colmap | co3d | re10k")
        p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
        _add_common(p)

    def distill(p):
        p.add_argument("image", help="input photo (any PIL format; RGBA is composited on image.background)")
        p.add_argument("--out", required=True, help="run folder (config.yaml, anchors/, checkpoints/, video.mp4, ...)")
        p.add_argument("--model", help=MODEL_HELP)
        p.add_argument("--steps", type=int, help="distillation steps (default 4000)")
        p.add_argument("--anchors", type=int, help="number of SDS anchor views (default 0 = plain SDS; e.g. 4)")
        p.add_argument("--fov", type=float, help="vertical fov of the photo in degrees (default 52.55)")
        p.add_argument("--elevation", type=float, help="camera elevation of the photo in degrees (default 31)")
        p.add_argument("--scale", type=float, help="6DoF+1 scene scale, smaller = closer content (default 0.7)")
        p.add_argument("--seed", type=int, help="random seed (default 0)")
        p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
        p.add_argument("--resume", action="store_true", help="continue OUT/checkpoints/last.pt with the run's config")
        p.add_argument("--low-memory", action="store_true",
                       help="smaller training renders (batch 3 then 1, 48 samples per ray) for cards of 8-12 GB; "
                            "the bundled preset distill-low-memory; --config files and overrides still win")
        _add_common(p)


    def export(p):
        p.add_argument("run", help="run folder written by `nvs distill`")
        p.add_argument("--out", help="output folder (default RUN/export)")
        p.add_argument("--what", choices=["mesh", "video", "views", "splats"], help="what to export (default mesh)")
        p.add_argument("--format", choices=["obj", "ply", "glb"], help="mesh file format (default obj)")
        p.add_argument("--resolution", type=int, help="marching-cubes grid per axis (default 256)")
        p.add_argument("--threshold", type=float, help="density iso-level (default: automatic, reported)")
        p.add_argument("--frames", type=int, help="video frames (default: the run's output.video_frames)")
        p.add_argument("--size", type=int, help="video / view side in pixels (default: the model's)")
        p.add_argument("--cameras", help="JSON camera path for --what views")
        p.add_argument("--device", help="auto | cpu | cuda (default auto)")
        _add_common(p)

    def reconstruct(p):
        p.add_argument("image", nargs="?", metavar="IMAGE|DATASET",
                       help="input photo, or a posed dataset (transforms.json folder/file, COLMAP folder, CO3D "
                            "sequence, RE10K txt); not needed with --resume")
        p.add_argument("--out", required=True, help="run folder (views/, checkpoints/, splats.ply, points.ply, ...)")
        p.add_argument("--model", help=MODEL_HELP)
        p.add_argument("--num-views", type=int, help="generated views around the input (default 32)")
        p.add_argument("--steps", type=int, help="fit steps (default 3000)")
        p.add_argument("--sh-degree", type=int, help="spherical-harmonics degree of the colours, 0-3 (default 3)")
        p.add_argument("--holdout", help="dataset photos scored, not fitted: every:K (default every:8) | list:0,5,9 "
                                         "| none")
        p.add_argument("--k", type=int, help="dataset: each generated view from its k nearest photos (default 1)")
        p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
        p.add_argument("--resume", action="store_true", help="continue OUT/checkpoints/last.pt with the run's config")
        _add_common(p)

    def synth(p):
        p.add_argument("out", help="output folder: one transforms.json scene per subfolder")
        p.add_argument("--scenes", type=int, help="number of scenes (default 4)")
        p.add_argument("--views", type=int, help="views per scene (default 24)")
        p.add_argument("--size", type=int, help="image side in pixels (default 128)")
        p.add_argument("--family", help="orbit | walk | mixed")
        p.add_argument("--seed", type=int, help="seed of scene 0; scene i uses seed + i")
        p.add_argument("--device", default="auto", help="auto | cpu | cuda")
        _add_common(p)

    def convert(p):
        p.add_argument("checkpoint", help="official .ckpt (or any supported checkpoint)")
        p.add_argument("out", help="output folder (unet/, vae/, image_encoder/, cc_projection, novelviews.json)")
        p.add_argument("--raw", action="store_true", help="use the raw weights instead of the EMA copy (use_ema=false)")
        _add_common(p)

    def train(p):
        p.add_argument("items", nargs="*", metavar="DATA[:weight] | key=value",
                       help="scene folders / dataset roots (optionally :weight), and config overrides")
        p.add_argument("--out", required=True, help="run folder (checkpoints/, logs/, previews/, model/)")
        p.add_argument("--arch", help="architecture preset of a new model (demo, tiny, zeronvs, zero123, or YAML)")
        p.add_argument("--model", help=argparse.SUPPRESS)  # the old name of --arch
        p.add_argument("--init", help="checkpoint to fine-tune from (.ckpt, .safetensors, model folder)")
        p.add_argument("--stage", choices=["ldm", "vae"], help="train the diffusion model (default) or the VAE")
        p.add_argument("--synth", type=int, help="also train on N procedural scenes rendered on the fly")
        p.add_argument("--steps", type=int, help="optimiser steps (max_steps)")
        p.add_argument("--batch-size", type=int, help="per-device batch size")
        p.add_argument("--devices", help="GPUs to use: auto, N, or a list like 0,1")
        p.add_argument("--strategy", help="Lightning strategy: auto, ddp, ...")
        p.add_argument("--resume", action="store_true",
                       help="continue from OUT/checkpoints/last.ckpt with the run's saved config (this call may change "
                            "--steps, max_minutes, --devices/--strategy, num_workers, compile, val/ckpt/log intervals, "
                            "export_model)")
        p.add_argument("--config", action="append", default=[], metavar="FILE.yaml", help="YAML config file")
        p.add_argument("--show-config", action="store_true", help="print the resolved config and exit")
        p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    def ui(p):
        p.add_argument("--model", help=MODEL_HELP)
        p.add_argument("--host", help="interface to bind (default 127.0.0.1: this machine only)")
        p.add_argument("--port", type=int, help="TCP port (default 7860)")
        p.add_argument("--out", help="parent folder of the per-request run folders (default a new temp folder)")
        p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
        p.add_argument("--open", action="store_true", help="open the page in the default browser")
        p.add_argument("--config", action="append", default=[], metavar="FILE.yaml",
                       help="YAML config file (repeatable; later files win)")
        p.add_argument("--show-config", action="store_true", help="print the resolved config and exit")
        p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")

    def cache(p):
        p.add_argument("action", nargs="?", choices=["info", "clear"], default="info",
                       help="info (default): list the cached compiled artifacts; clear: delete them")

    add("views", views)
    add("eval", eval_)
    add("distill", distill)
    add("export", export)
    add("reconstruct", reconstruct)
    add("train", train)
    add("ui", ui)
    add("synth", synth)
    add("convert", convert)
    add("cache", cache)
    return parser


class _Console(logging.Handler):
    """The library's notes (``logging`` records of the ``novelviews`` loggers) as plain lines on
    stdout, written to whatever ``sys.stdout`` is at the time."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), flush=True)


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line on stderr (``warning: ...``), e.g. an old config key name."""
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """``nvs``: the library's notes are shown while the command runs (and only then)."""
    logger = logging.getLogger("novelviews")
    handler, level = _Console(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", RenamedKeyWarning)
            warnings.showwarning = _warning_line
            return _main(argv)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _main(argv: list[str] | None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may also come after options (argparse stops positionals at options)
    unknown = [e for e in extra if e.startswith("-") or "=" not in e]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        target = "items" if hasattr(args, "items") else "overrides"
        if not hasattr(args, target):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        setattr(args, target, list(getattr(args, target)) + extra)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    try:
        args.fn(args)
    except NovelViewsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
