"""Novel views straight from the diffusion model, no NeRF.

* :func:`generate` - the core: conditioning views (images + OpenGL cameras) and target
  cameras, each target assigned to one conditioning view ("anchor"); batched over
  targets and CFG branches; per-view seeds.
* :func:`run_views` - ``nvs views IMAGE``: one photo -> a camera path -> PNGs,
  ``cameras.json``, ``video.mp4``, ``sheet.png``, ``config.yaml``.

Single image camera (documented defaults, all in :class:`InputCameraConfig`): the photo is
taken by a camera at ``elevation_deg``, azimuth 0 and ``distance`` from the origin of a
z-up world, looking at the origin, with vertical fov ``fov_deg`` (the reference's
distillation setup). The 6DoF+1 scene scale is, in order of preference: the 0.2-quantile
of a given depth map (``camera.depth``), else the 0.2-quantile of the depth predicted by a
local transformers depth model (``camera.depth_estimator``, a folder; metric models give
metres x ``camera.depth_estimator_units``, relative ones are refused unless
``camera.depth_estimator_allow_relative``; see :mod:`novelviews.depth`), else
``camera.scale`` (the reference's ``precomputed_scale``, 0.7: "how close the content is;
smaller is closer"). The path is
built around the input camera, orbiting / looking at the origin, so view 0 is the input.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Sequence

import numpy as np
import torch

from . import cameras as C
from .config import check_range, save_config
from .errors import ConfigError, NovelViewsError
from .runtime import resolve_device  # noqa: F401 - re-exported for the commands
from .sampling import DTYPES, SAMPLE_SEED_STRIDE, SamplingConfig, guided_denoiser, prepare_for_sampling, sample

DEMO_MODEL = "demo"


# --------------------------------------------------------------------------- configs


@dataclass
class InputCameraConfig:
    """The single input photo's camera (z-up world, OpenGL axes, looking at the origin)."""

    fov_deg: float = 52.55  # vertical field of view of the photo
    elevation_deg: float = 31.0  # camera elevation above the xy plane
    distance: float = 1.0  # camera distance from the origin (the orbit centre)
    scale: float = 0.7  # 6DoF+1 scene scale when no depth is given (reference precomputed_scale)
    depth: Optional[str] = None  # optional depth map (.npy / 16-bit PNG in mm) -> 0.2-quantile scale
    depth_unit: float = 0.001  # metres per unit of an integer depth PNG
    depth_estimator: Optional[str] = None  # local transformers depth-model folder -> estimated 0.2-quantile scale
    depth_estimator_units: float = 1.0  # scene units per estimator depth unit (metres for metric models)
    depth_estimator_allow_relative: bool = False  # accept relative (disparity) models: scale in arbitrary units

    def validate(self) -> None:
        check_range("camera.fov_deg", self.fov_deg, 5.0, 170.0)
        check_range("camera.elevation_deg", self.elevation_deg, -89.0, 89.0)
        check_range("camera.distance", self.distance, 0.0, None, lo_open=True)
        check_range("camera.scale", self.scale, 0.0, None, lo_open=True)
        check_range("camera.depth_estimator_units", self.depth_estimator_units, 0.0, None, lo_open=True)


@dataclass
class PathConfig:
    """Which target cameras to generate."""

    kind: str = "orbit"  # orbit | spiral | zoom | pan | dolly | wiggle, or a .json file
    num_views: int = 16
    amount: Optional[float] = None  # strength of the path (see cameras.make_path); None = default
    up: Literal["world", "camera"] = "world"  # orbit/pan axis: world z or the input camera's up
    loop: bool = True

    def validate(self) -> None:
        check_range("path.num_views", self.num_views, 1, 10000)
        if not self.kind.endswith(".json") and self.kind not in C.PATH_KINDS:
            raise ConfigError(
                f"config key 'path.kind' = {self.kind!r}: choose one of {', '.join(C.PATH_KINDS)} or a .json file"
            )


@dataclass
class ImageConfig:
    """How the input photo is turned into the model's square input."""

    mode: Literal["crop", "pad"] = "crop"  # centre crop (default) or letterbox padding
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)  # for transparent pixels and padding

    def validate(self) -> None:
        for i, v in enumerate(self.background):
            check_range(f"image.background[{i}]", v, 0.0, 1.0)


@dataclass
class ViewsConfig:
    """``nvs views``: one image -> novel views along a camera path."""

    model: str = DEMO_MODEL  # "demo" (bundled) or a checkpoint path (.ckpt, .safetensors, folder)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    use_ema: bool = True  # official checkpoints: EMA weights (as the reference) or raw
    camera: InputCameraConfig = field(default_factory=InputCameraConfig)
    path: PathConfig = field(default_factory=PathConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    fps: int = 8
    include_input: bool = True  # frame 0 of the video is the input photo (views/000.png stays generated)


# --------------------------------------------------------------------------- helpers


def demo_model_path() -> Path:
    return Path(__file__).resolve().parent / "data" / "demo_model"


#: ``--model PRESET-random`` (e.g. ``zeronvs-random``): that preset's architecture with random
#: weights, built on the device (seed 0). For speed and memory benchmarks of the full-size model
#: without its checkpoint: speed and memory do not depend on the weights' values, the images do.
RANDOM_SUFFIX = "-random"


def random_model(preset: str, device: torch.device, dtype: torch.dtype = torch.float32, seed: int = 0):
    """A :class:`~novelviews.model.ViewConditionedLDM` of ``preset`` with random weights, built on
    ``device`` (no file is read; seeded, so two calls give the same weights on one device)."""
    from .model import PRESETS, ViewConditionedLDM, model_config

    if preset not in PRESETS:
        raise NovelViewsError(f"unknown model preset '{preset}' in '{preset}{RANDOM_SUFFIX}': use one of "
                              f"{', '.join(p + RANDOM_SUFFIX for p in PRESETS)}")
    torch.manual_seed(seed)
    with torch.device(device):
        model = ViewConditionedLDM(model_config(preset))
    return model.to(dtype).eval()


def load_any_model(spec: str, device: torch.device, dtype: torch.dtype = torch.float32, use_ema: bool = True):
    """``"demo"`` -> the bundled demo model; ``"PRESET-random"`` -> :func:`random_model` (when no
    file of that name exists); anything else -> a checkpoint path."""
    from .model.checkpoints import load_model

    if spec.endswith(RANDOM_SUFFIX) and not Path(spec).exists():
        return random_model(spec[: -len(RANDOM_SUFFIX)], device, dtype)
    if spec == DEMO_MODEL:
        path = demo_model_path()
        if not path.exists():
            raise NovelViewsError(
                "the bundled demo model is missing from this installation "
                f"({path}): reinstall novelviews or pass --model PATH to a checkpoint"
            )
    else:
        path = Path(spec)
    model, _report = load_model(path, use_ema=use_ema, device=device, dtype=dtype)
    model.eval()
    return model


def _progress(total: int, desc: str, enabled: bool = True):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, unit="step", leave=False)


# --------------------------------------------------------------------------- core


def check_generation_inputs(model, cfg: SamplingConfig, cond_images: torch.Tensor, cond_c2w, target_c2w):
    """Shared checks of the generators: ``(device, dtype, cond_c2w [M,4,4], target_c2w [N,4,4])``."""
    cond_c2w = C.validate_poses(cond_c2w, "input camera")
    target_c2w = C.validate_poses(target_c2w, "target camera")
    M = cond_c2w.shape[0]
    if cond_images.ndim != 4 or cond_images.shape[0] != M:
        raise NovelViewsError(f"expected {M} conditioning images [M, 3, H, W], got {tuple(cond_images.shape)}")
    return next(model.parameters()).device, DTYPES[cfg.dtype], cond_c2w, target_c2w


def decode_chunked(model, latents: torch.Tensor, chunk: int, dtype: torch.dtype, tiling: bool = False) -> torch.Tensor:
    """Decode ``chunk`` latents at a time (VAE slicing) -> float32 images in [-1, 1] on the CPU;
    ``tiling``: tile by tile within each image (diffusers VAE tiling), else whole images."""
    if hasattr(model.vae, "enable_tiling"):
        model.vae.enable_tiling() if tiling else model.vae.disable_tiling()
    return torch.cat([model.decode(z.to(dtype)).float().clamp(-1, 1).cpu() for z in latents.split(chunk)])


@torch.no_grad()
def generate(
    model,
    cond_images: torch.Tensor,
    cond_c2w,
    target_c2w,
    target_fov,
    anchors: Sequence[int] | torch.Tensor | None = None,
    scale=1.0,
    cfg: SamplingConfig | None = None,
    seeds: Sequence[int] | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """Generate one image per target camera, each conditioned on its anchor view.

    ``cond_images``: ``[M, 3, S, S]`` in ``[-1, 1]`` at the model's resolution;
    ``cond_c2w``: ``[M, 4, 4]`` OpenGL; ``target_c2w``: ``[N, 4, 4]`` OpenGL;
    ``target_fov``: ``[N]`` vertical fov (radians); ``anchors``: ``[N]`` index of the
    conditioning view of each target (default all 0); ``scale``: scene scale per
    conditioning view (scalar or ``[M]``) for 6DoF+1. Returns ``[N, 3, S, S]`` in ``[-1, 1]``
    on the CPU (float32). With ``cfg.samples = K > 1`` each view is the pixel-space mean of K
    samples (sample k of view i uses seed ``seeds[i] + k * SAMPLE_SEED_STRIDE``), all K x N
    drawn in the same batches.
    """
    cfg = cfg or SamplingConfig()
    device, dtype, cond_c2w, target_c2w = check_generation_inputs(model, cfg, cond_images, cond_c2w, target_c2w)
    M, N = cond_c2w.shape[0], target_c2w.shape[0]
    anchors = torch.zeros(N, dtype=torch.long) if anchors is None else torch.as_tensor(anchors, dtype=torch.long)
    if anchors.shape != (N,) or (anchors < 0).any() or (anchors >= M).any():
        raise NovelViewsError(f"anchors must be {N} indices into the {M} conditioning views")
    fov = torch.as_tensor(target_fov, dtype=torch.float64).expand(N)
    scale_t = torch.as_tensor(scale, dtype=torch.float64).expand(M)
    seeds = list(range(cfg.seed, cfg.seed + N)) if seeds is None else list(seeds)
    if len(seeds) != N:
        raise NovelViewsError(f"seeds must give one seed per target view ({N}), got {len(seeds)}")
    K = cfg.samples
    if K > 1:  # the K samples of every view as K x N targets, averaged at the end
        target_c2w, fov, anchors = target_c2w.repeat(K, 1, 1), fov.repeat(K), anchors.repeat(K)
        seeds = [s + k * SAMPLE_SEED_STRIDE for k in range(K) for s in seeds]
        N = K * N

    cam = C.camera_embedding(model.config.camera_mode, cond_c2w[anchors], target_c2w, scale_t[anchors], fov)
    image_emb, cond_latent = model.embed_image(cond_images.to(device))
    latent_shape = (model.config.vae.latent_channels, model.config.latent_size, model.config.latent_size)

    out = []
    prepare_for_sampling(model, cfg)
    bar = _progress(math.ceil(N / cfg.batch_size) * cfg.steps, "sampling", progress)
    for start in range(0, N, cfg.batch_size):
        idx = anchors[start : start + cfg.batch_size].to(device)
        b = idx.shape[0]
        ctx = model.context(image_emb[idx], cam[start : start + b].to(device=device, dtype=image_emb.dtype))
        eps_fn = guided_denoiser(model, ctx, cond_latent[idx], cfg.guidance_scale, dtype)
        lat = sample(eps_fn, (b, *latent_shape), model.config.schedule, cfg, seeds[start : start + b], device,
                     progress=bar.update)
        out.append(decode_chunked(model, lat, cfg.vae_chunk, image_emb.dtype, cfg.vae_tiling))
    bar.close()
    images = torch.cat(out)
    return images.view(K, N // K, *images.shape[1:]).mean(0) if K > 1 else images


# --------------------------------------------------------------------------- single image


def prepare_input_image(path: str | Path, size: int, cfg: ImageConfig) -> np.ndarray:
    """Load the photo and make it the model's ``size x size`` input (float32 HxWx3 in [0, 1])."""
    from .io.images import center_crop_resize, load_image

    img = load_image(path, background=cfg.background)
    out, _ = center_crop_resize(img, None, size, mode=cfg.mode, pad_value=list(cfg.background))
    return out


def input_scale(cfg: InputCameraConfig, size: int, image_cfg: ImageConfig, image: Optional[np.ndarray] = None,
                device: str | torch.device = "cpu") -> tuple[float, str]:
    """The 6DoF+1 scene scale of the input view, and where it came from.

    Precedence: depth map (``cfg.depth``) > depth estimator (``cfg.depth_estimator``, run on
    ``image``, the model-size square input, float HxWx3 in [0, 1]) > ``cfg.scale``.
    """
    if cfg.depth is None and cfg.depth_estimator is not None:
        if image is None:
            raise NovelViewsError("camera.depth_estimator needs the input image: pass image= to input_scale")
        from .depth import estimated_scale

        return estimated_scale(image, cfg.depth_estimator, device=str(device),
                               allow_relative=cfg.depth_estimator_allow_relative, units=cfg.depth_estimator_units)
    if cfg.depth is None:
        return cfg.scale, "config (camera.scale)"
    from .io.images import center_crop_resize, load_depth_map

    # depth_unit converts integer PNGs (e.g. millimetres); float maps (.npy, .tif) are in scene units
    unit = 1.0 if Path(cfg.depth).suffix.lower() in (".npy", ".npz", ".tif", ".tiff", ".exr") else cfg.depth_unit
    depth = load_depth_map(cfg.depth, scale=unit)
    depth, _ = center_crop_resize(depth, None, size, mode=image_cfg.mode, pad_value=0.0, nearest=True)
    return float(C.depth_quantile_scale(torch.as_tensor(depth))), f"depth map {cfg.depth} (0.2-quantile)"


def input_camera(cfg: InputCameraConfig) -> torch.Tensor:
    return C.camera_on_sphere(math.radians(cfg.elevation_deg), 0.0, cfg.distance)


def target_path(cfg: PathConfig, c2w: torch.Tensor, fov: float, focus: float) -> tuple[torch.Tensor, torch.Tensor]:
    if cfg.kind.endswith(".json"):
        return C.load_path_json(cfg.kind, default_fov=fov)
    up = (0.0, 0.0, 1.0) if cfg.up == "world" else None
    return C.make_path(cfg.kind, c2w, fov, cfg.num_views, focus_distance=focus, up=up, amount=cfg.amount, loop=cfg.loop)


def write_view_outputs(out: Path, img: np.ndarray, frames: list[np.ndarray], c2w_in: torch.Tensor, fov_in: float,
                       targets: torch.Tensor, fovs: torch.Tensor, scale: float, scale_source: str,
                       cfg: ViewsConfig) -> tuple[Path, Path, Path]:
    """``cameras.json``, ``video.mp4`` (frame 0 = the photo when view 0 is the input camera) and
    ``sheet.png`` of a finished run whose ``views/NNN.png`` are written. Returns their paths."""
    from .io.runs import atomic_write_json
    from .io.video import save_contact_sheet, write_video

    size = img.shape[0]
    video_frames = list(frames)
    if cfg.include_input and torch.allclose(targets[0], c2w_in) and abs(float(fovs[0]) - fov_in) < 1e-9:
        video_frames[0] = img  # the input camera itself: the video starts on the real photo
    K = C.intrinsics_from_fov(fovs, size, size)
    cams = C.cameras_to_json(targets, fovs, size, size, extra=[{"file": f"views/{i:03d}.png", "fx": float(K[i, 0, 0]),
                                                                 "fy": float(K[i, 1, 1]), "cx": size / 2, "cy": size / 2}
                                                                for i in range(len(frames))])
    cams["input"] = {"c2w": c2w_in.tolist(), "fov_deg": cfg.camera.fov_deg, "file": "input.png"}
    cams["scene_scale"] = {"value": scale, "source": scale_source}
    cam_file = atomic_write_json(out / "cameras.json", cams)
    video = write_video(out / "video.mp4", video_frames, fps=cfg.fps)
    sheet = save_contact_sheet(out / "sheet.png", frames)
    return cam_file, video, sheet


def path_cameras(cfg: "ViewsConfig") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """``(input_c2w [4, 4], targets [N, 4, 4], target fovs [N] radians, input fov radians)`` of a ViewsConfig.

    OpenGL cam2world in the z-up world of this module (view 0 is the input camera).
    """
    c2w_in = input_camera(cfg.camera)
    fov_in = math.radians(cfg.camera.fov_deg)
    targets, fovs = target_path(cfg.path, c2w_in, fov_in, cfg.camera.distance)
    return c2w_in, targets, torch.as_tensor(fovs, dtype=torch.float64).expand(targets.shape[0]), fov_in


def run_views(image: str | Path, out: str | Path, cfg: ViewsConfig, overwrite: bool = False,
              progress: bool = True) -> dict:
    """``nvs views``: write ``views/NNN.png``, ``cameras.json``, ``video.mp4``, ``sheet.png``."""
    from .io.images import image_to_tensor, save_image, tensor_to_image
    from .io.runs import prepare_run_dir

    t0 = time.time()
    device = resolve_device(cfg.device)
    model = load_any_model(cfg.model, device, DTYPES[cfg.sampling.dtype] if device.type == "cuda" else torch.float32,
                           cfg.use_ema)
    size = model.config.image_size
    img = prepare_input_image(image, size, cfg.image)  # validate the input before touching --out
    scale, scale_source = input_scale(cfg.camera, size, cfg.image, image=img, device=device)
    c2w_in, targets, fovs, fov_in = path_cameras(cfg)

    out = prepare_run_dir(out, overwrite=overwrite)
    save_config(cfg, out / "config.yaml")
    save_image(out / "input.png", img)
    views = generate(model, image_to_tensor(img), c2w_in, targets, fovs, scale=scale, cfg=cfg.sampling,
                     progress=progress)
    frames = []
    for i in range(views.shape[0]):
        frame = tensor_to_image(views[i])
        save_image(out / "views" / f"{i:03d}.png", frame)
        frames.append(frame)
    video = write_view_outputs(out, img, frames, c2w_in, fov_in, targets, fovs, scale, scale_source, cfg)[1]
    info = {"out": str(out), "views": len(frames), "video": str(video), "seconds": round(time.time() - t0, 2),
            "device": str(device), "scale": scale, "scale_source": scale_source}
    return info
