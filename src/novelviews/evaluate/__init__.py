"""Image metrics (PSNR, SSIM, LPIPS) computed the way the ZeroNVS evaluation did.

* PSNR with data range 1: ``-10 log10(MSE)`` over all pixels and channels.
* SSIM as scikit-image's defaults (what the reference used): 7x7 *uniform* window,
  ``K1 = 0.01``, ``K2 = 0.03``, data range 1, sample covariance (N / (N - 1)), computed
  per channel on the valid region (no padding) and averaged. ``gaussian=True`` gives the
  Wang et al. variant (11x11 Gaussian, sigma 1.5, population covariance).
* LPIPS (VGG as the reference, or AlexNet) needs the ``lpips`` package and its weights
  on disk; nothing is downloaded.

Images are float tensors ``[B, 3, H, W]`` (or ``[3, H, W]``) in ``[0, 1]``.

``nvs eval`` (:func:`run_eval`): hold out frames of a posed multi-view scene
(:func:`parse_holdout`: ``every:K``, ``list:i,j,...``, ``loo``), generate each held-out
frame from the *remaining* frames only, and score it against the ground truth at the
model's resolution after the same centre crop as the inputs. Methods, all in one table:

* ``nearest``: the nearest input (by :func:`cameras.pose_distance`) copied as is;
* ``reproject``: the nearest input forward-splatted into the target camera with its
  depth map and a z-buffer (:func:`reproject`; needs depth);
* ``model``: the diffusion model conditioned on the nearest input (single anchor);
* ``model_k``: the model with the ``anchor.k`` nearest inputs blended per step.

Outputs: ``metrics.json``, ``report.html`` (self-contained), ``sheet.png``, the images
in ``views/`` and ``config.yaml``.
"""

from __future__ import annotations

from .holdout import HoldoutGroup, holdout_spec, parse_holdout
from .metrics import (LPIPS_NETS, TORCHVISION_BACKBONE_FILES, gaussian_blur, load_lpips, lpips_backbone_state,
                      lpips_distance, mean_table, psnr, score, ssim)
from .report import METRIC_INFO, bar_chart_svg, write_report
from .reproject import reproject
from .run import SHORT_LABELS, run_eval
from .settings import (EvalAnchorConfig, EvalConfig, EvalImageConfig, METHODS, METHOD_LABELS, MODEL_METHODS,
                       method_label)

__all__ = ["EvalAnchorConfig", "EvalConfig", "EvalImageConfig", "HoldoutGroup", "LPIPS_NETS", "METHODS",
           "METHOD_LABELS", "METRIC_INFO", "MODEL_METHODS", "SHORT_LABELS", "TORCHVISION_BACKBONE_FILES",
           "bar_chart_svg", "gaussian_blur", "holdout_spec", "load_lpips", "lpips_backbone_state", "lpips_distance",
           "mean_table", "method_label", "parse_holdout", "psnr", "reproject", "run_eval", "score", "ssim",
           "write_report"]
