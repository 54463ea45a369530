"""The gradio page: :func:`build_app` lays out the controls and tabs and wires them to
:class:`~novelviews.ui.handlers.UIHandlers`; :func:`launch` serves it (gradio imported lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from .. import cameras as C
from ..errors import NovelViewsError
from ..sampling import SamplingConfig
from .handlers import UIHandlers
from .settings import DEFAULT_HOST, DEFAULT_PORT, UISettings


def build_app(handlers: UIHandlers):
    """The gradio Blocks page wired to ``handlers`` (gradio imported here, lazily)."""
    from ..errors import require

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
    from ..errors import ConfigError

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
