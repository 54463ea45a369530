"""3D Gaussian splats: the Gaussians (:mod:`.gaussians`), spherical-harmonics colour (:mod:`.sh`), the
differentiable PyTorch reference rasterizer (:mod:`.rasterize`), its tile-batched twin
(:mod:`.rasterize_batched`) and the optional gsplat backend (:mod:`.backend`), adaptive density control (:mod:`.density`), the fitting loop (:mod:`.fit`),
``.ply`` files (:mod:`.ply`) and ``nvs reconstruct`` (:mod:`.reconstruct`; its settings in :mod:`.reconstruct_config`,
its cameras and initial Gaussians in :mod:`.init`)."""

from .backend import SplatRenderConfig, render_model
from .fit import FitConfig, Fitter, TrainView
from .gaussians import GaussianModel
from .rasterize import Render, rasterize

__all__ = ["GaussianModel", "Render", "rasterize", "render_model", "SplatRenderConfig", "FitConfig", "Fitter",
           "TrainView"]
