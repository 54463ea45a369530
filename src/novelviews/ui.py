"""``nvs ui``: a local web app (gradio) to generate, browse and export novel views.

Layout of the page: an upload box (or the bundled example), sliders for the input camera
(vertical fov in degrees, elevation in degrees, 6DoF+1 scene scale) and the path (preset,
number of views, denoising steps, seed); *Generate* fills a gallery, an MP4 player, a
drawing of the cameras and a list of downloadable files; *Distil* trains a short SDS
NeRF and shows its previews; *Reconstruct* (tab "Gaussian splats") generates views and fits 3D
Gaussians to them, shows ``splats.ply`` in a 3D viewer (gradio's Model3D) and offers it for download;
*Cancel* stops a job between two batches.

Design rules:

* gradio is imported lazily (:func:`build_app`, :func:`launch`), so ``import novelviews``
  never needs it; everything else in this module is plain Python and is unit-tested by
  calling :class:`UIHandlers` directly (no browser, no server).
* every request writes into its own fresh folder ``tempfile.mkdtemp(dir=output_root)``, so
  two browser tabs never share or overwrite outputs.
* user errors (not an image, animated, too large, out-of-range settings) become a message
  in the page's status box, never a crash; unexpected exceptions are shown the same way.
* cameras follow the package conventions: z-up world, OpenGL cam2world (x right, y up,
  looking along -z), vertical fov; the input photo is seen from azimuth 0 at
  ``elevation_deg`` and distance 1 from the origin (:mod:`novelviews.views`).
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch

from . import cameras as C
from .errors import NovelViewsError
from .sampling import SamplingConfig
from .views import path_cameras  # noqa: F401 - part of this module's API (camera drawing)

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860

ProgressFn = Callable[[float, str], None]
"""``progress(fraction in [0, 1], description)``"""


def example_image_path() -> Path:
    """The bundled example photo (package data ``novelviews/data/example.png``, 256x256 RGB)."""
    return Path(__file__).resolve().parent / "data" / "example.png"


# --------------------------------------------------------------------------- settings


@dataclass
class UIConfig:
    """``nvs ui``: the server and what its requests use (``--config`` / ``key=value`` like every command)."""

    model: str = "demo"  # 'demo' (bundled) or a checkpoint path, loaded once and shared by all requests
    device: str = "auto"
    host: str = DEFAULT_HOST  # interface to bind (default: this machine only)
    port: int = DEFAULT_PORT
    output_root: Optional[str] = None  # parent of the per-request run folders (default: a new temp folder)
    open_browser: bool = False
    # dotted overrides of the page's short distillation, e.g. ``distill.sampler.num_samples=32``
    # (checked at start-up against nerf.distill.DistillConfig)
    distill: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        from .errors import ConfigError

        if not (0 < self.port < 65536):
            raise ConfigError(f"port {self.port} is not a TCP port: use 1-65535 (default {DEFAULT_PORT})")

    def distill_overrides(self) -> dict[str, Any]:
        """``distill`` as flat dotted keys, checked: an unknown key or bad value raises ConfigError."""
        from .config import flatten_dotted, from_dict, renamed_keys
        from .nerf.distill import DistillConfig

        data = renamed_keys(DistillConfig, self.distill, "distill")
        from_dict(DistillConfig, data, prefix="distill")
        return flatten_dotted(data)


@dataclass
class UISettings:
    """The page's controls. Angles in degrees; ``scale`` is the 6DoF+1 scene scale."""

    fov_deg: float = 52.55
    elevation_deg: float = 31.0
    scale: float = 0.7
    path: str = "orbit"
    num_views: int = 8
    steps: int = SamplingConfig.steps
    seed: int = 0

    def views_config(self, model: str = "demo", device: str = "auto"):
        """The :class:`~novelviews.views.ViewsConfig` of these settings (validated: bad values raise ConfigError)."""
        from .config import from_dict
        from .views import ViewsConfig

        if self.path not in C.PATH_KINDS:
            from .errors import ConfigError

            raise ConfigError(f"path preset {self.path!r} is unknown: choose one of {', '.join(C.PATH_KINDS)}")
        return from_dict(ViewsConfig, {
            "model": model, "device": device,
            "camera": {"fov_deg": float(self.fov_deg), "elevation_deg": float(self.elevation_deg),
                       "scale": float(self.scale)},
            "path": {"kind": self.path, "num_views": int(self.num_views)},
            "sampling": {"steps": int(self.steps), "seed": int(self.seed)},
        })


# --------------------------------------------------------------------------- camera drawing


INPUT_COLOR = (220, 40, 40)
TARGET_COLOR = (40, 90, 220)
PANEL_AXES = {"top": (0, 1), "side": (0, 2)}
"""world axes drawn in each panel: top = looking down -z (x right, y up); side = looking along +y (x right, z up)"""


@dataclass
class PanelMap:
    """Maps world points of one panel to pixels: ``u = x0 + s * (p[a] - c[a])``, ``v = y0 - s * (p[b] - c[b])``."""

    axes: tuple[int, int]
    center: tuple[float, float]
    scale: float
    origin: tuple[float, float]

    def __call__(self, p) -> tuple[float, float]:
        a, b = self.axes
        return (self.origin[0] + self.scale * (float(p[a]) - self.center[0]),
                self.origin[1] - self.scale * (float(p[b]) - self.center[1]))


def _frustum(c2w: torch.Tensor, fov: float, depth: float) -> list[np.ndarray]:
    """Camera centre and the 4 image-plane corners at ``depth`` along -z (OpenGL), world coordinates."""
    c2w = c2w.double()
    h = math.tan(fov / 2) * depth
    corners = [(-h, -h), (h, -h), (h, h), (-h, h)]
    pts = [c2w[:3, 3].numpy()]
    for x, y in corners:
        pts.append((c2w[:3, :3] @ torch.tensor([x, y, -depth], dtype=torch.float64) + c2w[:3, 3]).numpy())
    return pts


def camera_figure(input_c2w, targets, fovs, input_fov: float, size: int = 320
                  ) -> tuple[np.ndarray, dict[str, PanelMap]]:
    """Draw the input (red) and generated (blue) camera frusta, top-down and side views, with PIL.

    ``input_c2w`` [4, 4] and ``targets`` [N, 4, 4]: OpenGL cam2world, z-up world; ``fovs``:
    vertical fov (radians) per target. Returns ``(uint8 image [size, 2*size, 3], panel maps)``;
    the left panel is the top view (x, y), the right the side view (x, z). The world origin
    (the orbit centre) is a grey cross.
    """
    from PIL import Image, ImageDraw

    input_c2w = C.validate_poses(input_c2w, "input camera")[0]
    targets = C.validate_poses(targets, "target camera")
    fovs = torch.as_tensor(fovs, dtype=torch.float64).expand(targets.shape[0])
    centres = torch.cat([input_c2w[None, :3, 3], targets[:, :3, 3], torch.zeros(1, 3, dtype=torch.float64)])
    extent = float((centres.max(0).values - centres.min(0).values).max()) or 1.0
    depth = 0.18 * max(extent, 0.2)
    frusta = [(_frustum(input_c2w, input_fov, depth), INPUT_COLOR, 3)]
    n = targets.shape[0]
    frusta = [(_frustum(targets[i], float(fovs[i]), depth), TARGET_COLOR, 1) for i in range(n)] + frusta
    allpts = np.concatenate([np.stack(f[0]) for f in frusta] + [np.zeros((1, 3))])

    img = Image.new("RGB", (2 * size, size), (250, 250, 250))
    draw = ImageDraw.Draw(img)
    maps: dict[str, PanelMap] = {}
    for k, (name, axes) in enumerate(PANEL_AXES.items()):
        a, b = axes
        lo, hi = allpts[:, [a, b]].min(0), allpts[:, [a, b]].max(0)
        span = float(max(hi - lo).max()) or 1.0
        s = (size - 40) / span
        m = PanelMap(axes, (float((lo[0] + hi[0]) / 2), float((lo[1] + hi[1]) / 2)), s,
                     (k * size + size / 2, size / 2 + 6))
        maps[name] = m
        draw.rectangle([k * size + 1, 1, (k + 1) * size - 2, size - 2], outline=(200, 200, 200))
        label = f"{name} view: x right, {'xyz'[b]} up" + ("  (red = input, blue = generated)" if k == 0 else "")
        draw.text((k * size + 8, 4), label, fill=(60, 60, 60))
        ox, oy = m(np.zeros(3))
        draw.line([ox - 6, oy, ox + 6, oy], fill=(150, 150, 150))
        draw.line([ox, oy - 6, ox, oy + 6], fill=(150, 150, 150))
        for pts, color, width in frusta:
            px = [m(p) for p in pts]
            for c in px[1:]:
                draw.line([px[0], c], fill=color, width=width)
            draw.line(px[1:] + [px[1]], fill=color, width=width)
            r = 2 + width
            draw.ellipse([px[0][0] - r, px[0][1] - r, px[0][0] + r, px[0][1] + r], fill=color)
    return np.asarray(img), maps


# --------------------------------------------------------------------------- helpers


def _error_text(exc: BaseException, upload: Optional[str] = None) -> str:
    """The page's message for an error; ``upload``: the uploaded file's server-side path, shown by
    its file name only (the temporary folders behind it mean nothing to the user)."""
    if isinstance(exc, NovelViewsError):
        text = str(exc)
        if upload:
            text = text.replace(str(upload), Path(upload).name)
        return f"Error: {text}"
    log.exception("unexpected error in the UI")
    return f"Internal error ({type(exc).__name__}: {exc}); the server keeps running - see its log for the traceback"


def _zip_folder(folder: Path, dest: Path) -> Path:
    from .io.runs import atomic_save

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(folder.rglob("*")):
                if f.is_file():
                    zf.write(f, f.relative_to(folder.parent))

    return atomic_save(dest, write)


@dataclass
class ViewsResult:
    """One update of a generation job (the gallery grows batch by batch)."""

    status: str
    gallery: list[str]
    video: Optional[str] = None
    files: Optional[list[str]] = None
    plot: Optional[np.ndarray] = None
    run_dir: Optional[str] = None


@dataclass
class DistillResult:
    status: str
    previews: list[str]
    video: Optional[str] = None
    files: Optional[list[str]] = None
    run_dir: Optional[str] = None


@dataclass
class SplatsResult:
    """The end of a splat reconstruction: the ``splats.ply`` shown in the page and the downloads."""

    status: str
    splats: Optional[str] = None
    video: Optional[str] = None
    files: Optional[list[str]] = None
    run_dir: Optional[str] = None


# --------------------------------------------------------------------------- handlers


class UIHandlers:
    """The app's logic without gradio: every page event is one method here.

    ``model``: ``"demo"`` or a checkpoint path (loaded once, lazily, shared read-only by all
    requests); ``output_root``: parent of the per-request run folders (default a fresh
    temporary folder); ``distill_overrides``: dotted overrides of the UI's short
    distillation config (tests use tiny fields).
    """

    def __init__(self, model: str = "demo", output_root: str | Path | None = None, device: str = "auto",
                 distill_overrides: Optional[dict[str, Any]] = None, loaded_model=None):
        self.model_spec = model
        self.device = device
        self.output_root = Path(output_root) if output_root else Path(tempfile.mkdtemp(prefix="nvs-ui-"))
        self.output_root.mkdir(parents=True, exist_ok=True)
        self.distill_overrides = dict(distill_overrides or {})
        self.reconstruct_overrides: dict[str, Any] = {}  # dotted overrides of the splat reconstruction (tests)
        self._model = loaded_model
        self._lock = threading.Lock()

    # ---- resources

    def model(self):
        """The loaded ViewConditionedLDM (loaded on first use; thread-safe)."""
        with self._lock:
            if self._model is None:
                from .views import load_any_model, resolve_device

                self._model = load_any_model(self.model_spec, resolve_device(self.device))
            return self._model

    def new_run_dir(self, kind: str) -> Path:
        """A fresh, empty folder under the output root, unique per request."""
        return Path(tempfile.mkdtemp(prefix=f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-", dir=self.output_root))

    # ---- events

    def load_example(self) -> str:
        """Copy the bundled example into a fresh folder (servable by the app) and return its path."""
        dest = self.new_run_dir("example") / "example.png"
        shutil.copyfile(example_image_path(), dest)
        return str(dest)

    def check_image(self, path: Optional[str]) -> tuple[Optional[np.ndarray], str]:
        """Validate an upload. Returns ``(square preview float32 HxWx3 in [0,1] or None, message)``."""
        if not path:
            return None, "Upload an image or click *Use the example*."
        try:
            from .views import ImageConfig, prepare_input_image

            img = prepare_input_image(path, 256, ImageConfig())
        except Exception as exc:  # noqa: BLE001 - every failure becomes a message in the page
            return None, _error_text(exc, path)
        return img, f"Image OK ({Path(path).name}); the model sees this centre crop."

    def preview_cameras(self, settings: UISettings) -> tuple[Optional[np.ndarray], str]:
        """Drawing of the input camera and the path's cameras, before generating."""
        try:
            cfg = settings.views_config(self.model_spec, self.device)
            c2w_in, targets, fovs, fov_in = path_cameras(cfg)
            img, _ = camera_figure(c2w_in, targets, fovs, fov_in)
            return img, f"{targets.shape[0]} cameras on a {settings.path} path"
        except Exception as exc:  # noqa: BLE001
            return None, _error_text(exc)

    def generate(self, image: Optional[str], settings: UISettings,
                 progress: Optional[ProgressFn] = None) -> Iterator[ViewsResult]:
        """Generate views batch by batch into a fresh run folder; yield after each batch.

        The folder ends up with the layout of ``nvs views`` (``input.png``, ``views/NNN.png``,
        ``cameras.json``, ``video.mp4``, ``sheet.png``, ``config.yaml``) plus ``views.zip`` and
        ``cameras.png``. Closing the generator (gradio's cancel) stops after the current batch.
        """
        try:
            yield from self._generate(image, settings, progress)
        except Exception as exc:  # noqa: BLE001
            yield ViewsResult(_error_text(exc, image), [])

    def _generate(self, image, settings: UISettings, progress) -> Iterator[ViewsResult]:
        from .config import save_config
        from .io.images import save_image
        from .views import input_scale, iter_views, prepare_input_image

        if not image:
            raise NovelViewsError("no input image: upload one or click 'Use the example' first")
        cfg = settings.views_config(self.model_spec, self.device)
        progress = progress or (lambda f, d: None)
        progress(0.0, "loading the model")
        model = self.model()
        size = model.config.image_size
        img = prepare_input_image(image, size, cfg.image)
        scale, scale_source = input_scale(cfg.camera, size, cfg.image, image=img, device=model.device)
        c2w_in, targets, fovs, fov_in = path_cameras(cfg)
        out = self.new_run_dir("views")
        save_config(cfg, out / "config.yaml")
        save_image(out / "input.png", img)
        plot, _ = camera_figure(c2w_in, targets, fovs, fov_in)
        save_image(out / "cameras.png", plot)
        n, bs = targets.shape[0], cfg.sampling.batch_size
        t0 = time.time()
        progress(0.0, f"views 1-{min(n, bs)} of {n}")
        for state in iter_views(model, img, out, cfg, scale, scale_source, batch=bs, progress=False):
            paths = [str(p) for p in state.paths]
            if state.video is None:
                done = len(paths)
                progress(done / n, f"views {done + 1}-{min(n, done + bs)} of {n}" if done < n
                         else "writing video and files")
                yield ViewsResult(f"Generated {done} / {n} views...", paths, plot=plot, run_dir=str(out))
        zipped = _zip_folder(out / "views", out / "views.zip")
        files = [str(p) for p in (zipped, state.video, state.cameras, state.sheet)]
        yield ViewsResult(f"Done: {n} views in {time.time() - t0:.1f} s ({out.name})", paths,
                          video=str(state.video) if str(state.video).endswith(".mp4") else None, files=files,
                          plot=plot, run_dir=str(out))

    def distill_config(self, steps: int, preview_every: int):
        """The UI's short distillation config (anchoring off, small video); validated."""
        from .config import load
        from .nerf.distill import DistillConfig

        base = {"model": self.model_spec, "device": self.device,
                "phases": {"steps": int(steps)},
                "output": {"checkpoint_every": int(preview_every), "preview_every": int(preview_every),
                           "log_every": int(preview_every), "video_frames": 24, "fps": 12}}
        return load(DistillConfig, base=base, overrides=[f"{k}={v}" for k, v in self.distill_overrides.items()])

    def distill(self, image: Optional[str], settings: UISettings, steps: int = 200, preview_every: int = 25,
                mesh_resolution: int = 96, progress: Optional[ProgressFn] = None) -> Iterator[DistillResult]:
        """Short SDS distillation in chunks of ``preview_every`` steps; yield each new preview.

        Each chunk is ``run_distill(stop_after=...)`` then resume, so closing the generator
        (gradio's cancel) stops at a checkpoint. The end writes ``video.mp4`` and ``mesh.glb``.
        """
        try:
            yield from self._distill(image, settings, steps, preview_every, mesh_resolution, progress)
        except Exception as exc:  # noqa: BLE001
            yield DistillResult(_error_text(exc, image), [])

    def _distill(self, image, settings, steps, preview_every, mesh_resolution, progress) -> Iterator[DistillResult]:
        from .nerf.distill import run_distill, run_export

        if not image:
            raise NovelViewsError("no input image: upload one or click 'Use the example' first")
        steps, preview_every = int(steps), max(1, min(int(preview_every), int(steps)))
        cfg = self.distill_config(steps, preview_every)
        cfg.camera.fov_deg = float(settings.fov_deg)
        cfg.camera.elevation_deg = float(settings.elevation_deg)
        cfg.camera.scale = float(settings.scale)
        cfg.seed = int(settings.seed)
        cfg.validate()
        progress = progress or (lambda f, d: None)
        progress(0.0, "loading the model")
        model = self.model()
        out = self.new_run_dir("distill")
        done = 0
        previews: list[str] = []
        while done < steps:
            stop = min(steps, done + preview_every)
            progress(done / steps, f"distilling: steps {done + 1}-{stop} of {steps}")
            info = run_distill(image, out, cfg, resume=done > 0, progress=False, model=model, stop_after=stop,
                               write_outputs=stop >= steps)
            done = info["step"]
            previews = [str(p) for p in sorted((out / "previews").glob("step_*.png"))]
            if done < steps:
                yield DistillResult(f"Distilling: step {done} / {steps}", previews, run_dir=str(out))
        progress(1.0, "exporting the mesh")
        mesh = run_export(out, out / "export", what="mesh", format="glb", resolution=int(mesh_resolution),
                          device=self.device, progress=False)
        files = [p for p in (info.get("video"), mesh.get("path"), str(out / "metrics.csv")) if p]
        yield DistillResult(f"Distilled {done} steps in {info['seconds']:.1f} s ({out.name})", previews,
                            video=info.get("video") if str(info.get("video", "")).endswith(".mp4") else None,
                            files=[str(f) for f in files], run_dir=str(out))


    def reconstruct(self, image: Optional[str], settings: UISettings, num_views: int = 16, steps: int = 1000,
                    progress: Optional[ProgressFn] = None) -> SplatsResult:
        """``nvs reconstruct`` of the page's photo and camera (``settings``; its denoising steps and
        seed) with ``num_views`` generated views and ``steps`` fit steps; errors become the status."""
        try:
            return self._reconstruct(image, settings, num_views, steps, progress or (lambda f, d: None))
        except Exception as exc:  # noqa: BLE001
            return SplatsResult(_error_text(exc, image))

    def _reconstruct(self, image, settings: UISettings, num_views: int, steps: int, progress) -> SplatsResult:
        from .config import load
        from .splats.reconstruct import ReconstructConfig, run_reconstruct

        if not image:
            raise NovelViewsError("no input image: upload one or click 'Use the example' first")
        base = {"model": self.model_spec, "device": self.device, "views": {"num": int(num_views)},
                "fit": {"steps": int(steps)}, "sampling": {"steps": int(settings.steps), "seed": int(settings.seed)},
                "camera": {"fov_deg": float(settings.fov_deg), "elevation_deg": float(settings.elevation_deg),
                           "scale": float(settings.scale)}, "output": {"video_frames": 24, "fps": 12}}
        cfg = load(ReconstructConfig, base=base,
                   overrides=[f"{k}={v}" for k, v in self.reconstruct_overrides.items()])
        progress(0.0, "loading the model")
        model = self.model()
        out = self.new_run_dir("splats")
        share = {"generate": (0.0, 0.3), "fit": (0.3, 0.95), "render": (0.95, 1.0)}

        def report(event: dict) -> None:
            lo, hi = share[event["stage"]]
            progress(lo + (hi - lo) * event["done"] / max(1, event["total"]), f"{event['stage']}: "
                     f"{event['done']} / {event['total']}")

        info = run_reconstruct(image, out, cfg, progress=report, model=model)
        files = [p for p in (info.get("splats"), info.get("points"), info.get("video")) if p]
        score = f", held-out PSNR {info['holdout_psnr']:.2f} dB" if "holdout_psnr" in info else ""
        return SplatsResult(f"Fitted {info['gaussians']} Gaussians to {info['views']} views in {info['seconds']:.1f} s"
                            f"{score} ({out.name})", splats=info.get("splats"), video=info.get("video"),
                            files=files, run_dir=str(out))


# --------------------------------------------------------------------------- gradio


def build_app(handlers: UIHandlers):
    """The gradio Blocks page wired to ``handlers`` (gradio imported here, lazily)."""
    from .errors import require

    gr = require("gradio", "nvs ui", "ui")

    def settings_of(fov, elev, scale, path, n, steps, seed) -> UISettings:
        return UISettings(float(fov), float(elev), float(scale), str(path), int(n), int(steps), int(seed))

    with gr.Blocks(title="novelviews", analytics_enabled=False) as demo:
        gr.Markdown("## novelviews: novel views from one photo\nUpload a photo (or use the example), "
                    "set the camera and path, then **Generate**. Outputs are written to a fresh folder "
                    "per request.")
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Input image", file_types=["image"], type="filepath", elem_id="upload")
                example_btn = gr.Button("Use the example", elem_id="example-btn", size="sm")
                preview = gr.Image(label="Model input (centre crop)", interactive=False, height=220,
                                   elem_id="input-preview")
            with gr.Column(scale=1):
                fov = gr.Slider(10, 120, value=52.55, step=0.05, label="Field of view (vertical, degrees)")
                elev = gr.Slider(-80, 80, value=31, step=1, label="Input camera elevation (degrees)")
                scale = gr.Slider(0.05, 5, value=0.7, step=0.05, label="Scene scale (smaller = closer content)")
                path = gr.Dropdown(list(C.PATH_KINDS), value="orbit", label="Camera path preset")
                n = gr.Slider(1, 64, value=8, step=1, label="Number of views", elem_id="num-views")
                steps = gr.Slider(1, 200, value=SamplingConfig.steps, step=1, label="Denoising steps", elem_id="steps")
                seed = gr.Number(value=0, precision=0, label="Seed (view i uses seed + i)")
        status = gr.Markdown("Upload an image or click *Use the example*.", elem_id="status")
        with gr.Row():
            gen_btn = gr.Button("Generate", variant="primary", elem_id="generate-btn")
            cancel_btn = gr.Button("Cancel", variant="stop", elem_id="cancel-btn")
        with gr.Tab("Views"):
            with gr.Row():
                gallery = gr.Gallery(label="Generated views", columns=4, height=360, elem_id="gallery")
                video = gr.Video(label="Video", elem_id="video", autoplay=True, loop=True, height=360)
            with gr.Row():
                plot = gr.Image(label="Cameras (left: top view, right: side view)", interactive=False,
                                elem_id="cameras-plot", height=320)
                files = gr.File(label="Downloads (views.zip, video.mp4, cameras.json, sheet.png)",
                                file_count="multiple", interactive=False, elem_id="downloads")
        with gr.Tab("Distil a NeRF"):
            gr.Markdown("A short SDS distillation of the model into a NeRF (same input and camera "
                        "settings). Previews: the input view and three other azimuths.")
            with gr.Row():
                d_steps = gr.Slider(2, 2000, value=200, step=1, label="Distillation steps")
                d_every = gr.Slider(1, 500, value=25, step=1, label="Preview every (steps)")
                d_btn = gr.Button("Distil", variant="primary", elem_id="distill-btn")
            d_status = gr.Markdown("", elem_id="distill-status")
            with gr.Row():
                d_previews = gr.Gallery(label="Previews", columns=1, height=300, elem_id="distill-previews")
                d_video = gr.Video(label="Orbit video", elem_id="distill-video", height=300)
            d_files = gr.File(label="Downloads (video.mp4, mesh.glb, metrics.csv)", file_count="multiple",
                              interactive=False)

        with gr.Tab("Gaussian splats"):
            gr.Markdown("Generate views around the photo and fit 3D Gaussians to them (same input and camera "
                        "settings; denoising steps and seed from above). The splats open in the viewer below "
                        "and download as a standard 3DGS .ply.")
            with gr.Row():
                s_views = gr.Slider(2, 64, value=16, step=1, label="Generated views")
                s_steps = gr.Slider(10, 10000, value=1000, step=10, label="Fit steps")
                s_btn = gr.Button("Reconstruct", variant="primary", elem_id="splats-btn")
            s_status = gr.Markdown("", elem_id="splats-status")
            with gr.Row():
                s_model = gr.Model3D(label="Splats (splats.ply)", elem_id="splats-view", height=360)
                s_video = gr.Video(label="Orbit video", elem_id="splats-video", height=360)
            s_files = gr.File(label="Downloads (splats.ply, points.ply, video.mp4)", file_count="multiple",
                              interactive=False)

        controls = [fov, elev, scale, path, n, steps, seed]

        def on_reconstruct(image_path, fov_v, elev_v, scale_v, path_v, n_v, steps_v, seed_v, sv, ss,
                           progress=gr.Progress()):
            r = handlers.reconstruct(image_path, settings_of(fov_v, elev_v, scale_v, path_v, n_v, steps_v, seed_v),
                                     num_views=int(sv), steps=int(ss), progress=lambda f, d: progress(f, desc=d))
            return r.status, r.splats, r.video, r.files

        def on_upload(p):
            img, msg = handlers.check_image(p)
            return img, msg

        def on_controls(image_path, *vals):
            img, _msg = handlers.preview_cameras(settings_of(*vals))
            return img

        def on_generate(image_path, fov_v, elev_v, scale_v, path_v, n_v, steps_v, seed_v,
                        progress=gr.Progress()):
            def prog(f, d):
                progress(f, desc=d)

            for r in handlers.generate(image_path, settings_of(fov_v, elev_v, scale_v, path_v, n_v, steps_v, seed_v),
                                       progress=prog):
                yield (r.status, r.gallery, r.video, r.files, r.plot if r.plot is not None else gr.skip())

        def on_distill(image_path, fov_v, elev_v, scale_v, path_v, n_v, steps_v, seed_v, ds, de,
                       progress=gr.Progress()):
            def prog(f, d):
                progress(f, desc=d)

            for r in handlers.distill(image_path, settings_of(fov_v, elev_v, scale_v, path_v, n_v, steps_v, seed_v),
                                      steps=int(ds), preview_every=int(de), progress=prog):
                yield r.status, r.previews, r.video, r.files

        upload.change(on_upload, inputs=upload, outputs=[preview, status])
        example_btn.click(handlers.load_example, outputs=upload)
        for c in (fov, elev, path, n):
            c.change(on_controls, inputs=[upload, *controls], outputs=plot, show_progress="hidden")
        gen_ev = gen_btn.click(on_generate, inputs=[upload, *controls], outputs=[status, gallery, video, files, plot])
        d_ev = d_btn.click(on_distill, inputs=[upload, *controls, d_steps, d_every],
                           outputs=[d_status, d_previews, d_video, d_files])
        s_ev = s_btn.click(on_reconstruct, inputs=[upload, *controls, s_views, s_steps],
                           outputs=[s_status, s_model, s_video, s_files])
        cancel_btn.click(lambda: "Cancelled: the job stops after the current batch.", outputs=status,
                         cancels=[gen_ev, d_ev, s_ev])
        demo.load(on_controls, inputs=[upload, *controls], outputs=plot)
    return demo


def launch(model: str = "demo", host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
           output_root: str | Path | None = None, device: str = "auto", open_browser: bool = False,
           block: bool = True, distill_overrides: Optional[dict[str, Any]] = None):
    """Start the server on ``host:port`` (localhost only by default). Returns the gradio Blocks.

    ``block=False`` returns once the server is up (tests). Files are served only from the
    output root (per-request run folders).
    """
    import os

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from .errors import ConfigError

    if not (0 < int(port) < 65536):
        raise ConfigError(f"--port {port} is not a TCP port: use 1-65535 (default {DEFAULT_PORT})")
    if model != "demo" and not Path(model).exists():
        raise NovelViewsError(f"model '{model}' does not exist: pass 'demo' or a checkpoint path to --model")
    handlers = UIHandlers(model=model, output_root=output_root, device=device, distill_overrides=distill_overrides)
    demo = build_app(handlers)
    demo.queue(default_concurrency_limit=2)
    try:
        demo.launch(server_name=host, server_port=int(port), inbrowser=open_browser, share=False,
                    prevent_thread_lock=not block, allowed_paths=[str(handlers.output_root)], ssr_mode=False,
                    quiet=not block, footer_links=[])
    except OSError as exc:
        raise NovelViewsError(f"cannot start the server on {host}:{port} ({exc}): choose another --port") from None
    return demo


__all__ = ["UIConfig", "UISettings", "UIHandlers", "ViewsResult", "DistillResult", "SplatsResult", "PanelMap", "camera_figure",
           "path_cameras", "example_image_path", "build_app", "launch", "DEFAULT_HOST", "DEFAULT_PORT"]
