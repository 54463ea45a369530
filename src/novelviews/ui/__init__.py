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
  never needs it; everything else in this package (all but :mod:`.page`) is plain Python and is unit-tested by
  calling :class:`UIHandlers` directly (no browser, no server).
* every request writes into its own fresh folder ``tempfile.mkdtemp(dir=output_root)``, so
  two browser tabs never share or overwrite outputs.
* user errors (not an image, animated, too large, out-of-range settings) become a message
  in the page's status box, never a crash; unexpected exceptions are shown the same way.
* cameras follow the package conventions: z-up world, OpenGL cam2world (x right, y up,
  looking along -z), vertical fov; the input photo is seen from azimuth 0 at
  ``elevation_deg`` and distance 1 from the origin (:mod:`novelviews.views`).

Modules, one job each (every name is importable from ``novelviews.ui``): :mod:`.settings`
(:class:`UIConfig`, :class:`UISettings`), :mod:`.camera_figure` (the cameras drawing),
:mod:`.handlers` (:class:`UIHandlers`: the events and jobs, without gradio) and :mod:`.page`
(the gradio page and server).
"""

from __future__ import annotations

from ..views import path_cameras
from .camera_figure import INPUT_COLOR, PANEL_AXES, TARGET_COLOR, PanelMap, camera_figure
from .handlers import DistillResult, ProgressFn, SplatsResult, UIHandlers, ViewsResult, example_image_path
from .page import build_app, launch
from .settings import DEFAULT_HOST, DEFAULT_PORT, UIConfig, UISettings

__all__ = ["UIConfig", "UISettings", "UIHandlers", "ViewsResult", "DistillResult", "SplatsResult", "PanelMap", "camera_figure",
           "path_cameras", "example_image_path", "build_app", "launch", "DEFAULT_HOST", "DEFAULT_PORT",
           "INPUT_COLOR", "TARGET_COLOR", "PANEL_AXES", "ProgressFn"]
