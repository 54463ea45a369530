"""The page's events as plain Python (no gradio): :class:`UIHandlers` and the results they yield.

One method per event: the example and upload checks, the camera preview, and one job per
tab (views, NeRF distillation, Gaussian splats), each in a fresh run folder per request;
errors become the status text.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np

from ..errors import NovelViewsError
from ..views import path_cameras
from .camera_figure import camera_figure
from .settings import UISettings

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
"""``progress(fraction in [0, 1], description)``"""


def example_image_path() -> Path:
    """The bundled example photo (package data ``novelviews/data/example.png``, 256x256 RGB)."""
    return Path(__file__).resolve().parents[1] / "data" / "example.png"


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
    from ..io.runs import atomic_save

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
                from ..views import load_any_model, resolve_device

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
            from ..views import ImageConfig, prepare_input_image

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
        from ..config import save_config
        from ..io.images import save_image
        from ..views import input_scale, iter_views, prepare_input_image

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
        from ..config import load
        from ..nerf.distill import DistillConfig

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
        from ..nerf.distill import run_distill, run_export

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
        from ..config import load
        from ..splats.reconstruct import run_reconstruct
        from ..splats.reconstruct_config import ReconstructConfig

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
