"""The posed photos of ``nvs reconstruct DATASET``: which ones, the run's world frame, cameras around them.

* **Which photos.** Every view of the dataset (any layout :func:`novelviews.io.datasets.load_scene`
  reads) that can be read, centre-cropped (or padded, ``image.mode``) to the model's resolution;
  ``inputs.max_views`` keeps that many, evenly spaced in the dataset's order. ``inputs.holdout`` holds
  some of them out of the generation and the fit, with the syntax of ``nvs eval --holdout``:
  ``every:K`` (views 0, K, 2K, ... of the kept ones), ``list:i,j,...`` or ``none``. Held-out photos
  are only used to score the fitted splats at their cameras.
* **World frame** (:func:`scene_frame`, from the fitted inputs' cameras only): the origin is the
  inputs' *focus*, the point nearest all their optical axes (least squares; the centroid of the
  cameras plus their mean viewing direction times their spread when the axes are nearly parallel);
  ``+z`` is the capture's up (:func:`capture_up`: the normal of the camera centres' plane for an
  orbit-like capture, else the cameras' mean up vector); ``+x`` points from the focus to
  the first input, so it sits at azimuth 0; one unit is the inputs' median distance to the focus.
  ``x_run = scale * R @ (x_dataset - centre)``, saved in ``inputs/cameras.json`` and ``info.json``
  (``splats.ply`` and every camera of the run are in this frame). Depth maps and a dataset
  ``scene_scale`` are multiplied by ``scale``, so the 6DoF+1 scene scale keeps its meaning.
* **Generated cameras** (:func:`cameras_around_inputs`): ``views.num`` cameras on the sphere about
  the focus at the inputs' mean distance, looking at it (up ``+z``), at the inputs' mean elevation
  plus ``views.elevation_offsets_deg`` in turn. ``views.placement=arc`` (default) spreads them
  evenly over the azimuths the inputs cover (the circle less its largest gap between two inputs,
  the ends excluded), so a forward-facing or half-orbit capture is densified rather than
  extrapolated behind; ``orbit`` spreads them over the whole circle (view i at azimuth
  ``2 pi (i + 0.5) / N`` from the first input), for object captures that should be closed. With one
  input, ``arc`` is ``orbit``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .. import cameras as C
from ..config import check_range
from ..errors import ConfigError, DatasetError

PLACEMENTS = ("arc", "orbit")
DATASET_SUFFIXES = (".json", ".jgz", ".txt")


@dataclass
class PosedInputsConfig:
    """The posed photos of ``nvs reconstruct DATASET`` (see :mod:`novelviews.splats.posed_inputs`)."""

    dataset: Optional[str] = None
    """the dataset this run reconstructs (set from the command's argument; unset: one photo)"""
    format: str = "auto"
    """dataset layout: auto | transforms | colmap | co3d | re10k"""
    max_views: int = 0
    """use at most this many of the readable views, evenly spaced in the dataset's order (0 = all)"""
    holdout: str = "every:8"
    """photos scored but not used: every:K | list:i,j,... | none (positions among the kept views)"""
    scale_mode: str = "auto"
    """6DoF+1 scene scale per input: auto (depth > dataset scene_scale > camera layout > scale) | depth |
    dataset | cameras | config"""
    scale: float = 0.7
    """6DoF+1 scene scale when nothing better is known (in the run's frame: one unit = the inputs'
    median distance to their focus)"""

    def validate(self) -> None:
        from ..evaluate.holdout import holdout_spec
        from ..io.datasets import FORMATS
        from ..multiview import SCALE_MODES

        if self.format not in FORMATS:
            raise ConfigError(f"config key 'inputs.format' = {self.format!r}: choose one of {', '.join(FORMATS)}")
        check_range("inputs.max_views", self.max_views, 0, None)
        if self.holdout.strip() != "none":
            if self.holdout.strip() == "loo":
                raise ConfigError("inputs.holdout=loo would hold out every photo: use every:K, list:i,j,... or none")
            holdout_spec(self.holdout)
        if self.scale_mode not in SCALE_MODES:
            raise ConfigError(f"config key 'inputs.scale_mode' = {self.scale_mode!r}: choose one of "
                              f"{', '.join(SCALE_MODES)}")
        check_range("inputs.scale", self.scale, 0.0, None, lo_open=True)


def is_dataset(path: str | Path) -> bool:
    """Whether ``nvs reconstruct PATH`` means a posed dataset (a folder, a transforms / CO3D ``.json``
    or ``.jgz``, a RealEstate10K ``.txt``) rather than one photo."""
    p = Path(path)
    return p.is_dir() or (p.is_file() and (p.suffix.lower() in DATASET_SUFFIXES
                                           or p.name.startswith("frame_annotations")))


def select_views(n: int, cfg: PosedInputsConfig) -> tuple[list[int], list[int]]:
    """``(fitted, held_out)``: positions among ``n`` readable views (see the module docstring)."""
    from ..evaluate.holdout import parse_holdout

    m = cfg.max_views
    if m and n > m:
        kept = [0] if m == 1 else sorted({round(i * (n - 1) / (m - 1)) for i in range(m)})
    else:
        kept = list(range(n))
    if cfg.holdout.strip() == "none":
        return kept, []
    if len(kept) < 2:
        raise DatasetError(f"inputs.holdout={cfg.holdout} needs at least 2 usable photos but there is "
                           f"{len(kept)}: use inputs.holdout=none (or more views)")
    held = parse_holdout(cfg.holdout, len(kept))[0].targets
    return [kept[i] for i in range(len(kept)) if i not in set(held)], [kept[i] for i in held]


# --------------------------------------------------------------------------- the run's frame


def focus_point(c2w: torch.Tensor) -> torch.Tensor:
    """The point nearest all optical axes (least squares), or, when they are nearly parallel (or
    there is one camera), the cameras' centroid plus their mean viewing direction times their
    spread (1 for one camera)."""
    m = torch.as_tensor(c2w, dtype=torch.float64).reshape(-1, 4, 4)
    point = C.nearest_point_to_axes(m, max_cond=1e4)
    if point is not None:
        return point
    centres, dirs = m[:, :3, 3], -m[:, :3, 2]
    mean_dir = dirs.mean(0)
    mean_dir = mean_dir / mean_dir.norm().clamp_min(1e-12)
    spread = float((centres - centres.mean(0)).norm(dim=1).max()) if m.shape[0] > 1 else 0.0
    return centres.mean(0) + mean_dir * (spread if spread > 1e-9 else 1.0)


@dataclass
class SceneFrame:
    """A similarity from the dataset's world to the run's: ``x_run = scale * rotation @ (x - centre)``."""

    centre: torch.Tensor
    rotation: torch.Tensor
    scale: float

    def to_run(self, c2w: torch.Tensor) -> torch.Tensor:
        """Camera-to-world ``[..., 4, 4]`` of the dataset -> the run's frame (still orthonormal)."""
        c2w = torch.as_tensor(c2w, dtype=torch.float64)
        out = c2w.clone()
        out[..., :3, :3] = self.rotation @ c2w[..., :3, :3]
        out[..., :3, 3] = self.scale * ((c2w[..., :3, 3] - self.centre) @ self.rotation.T)
        return out

    def to_dataset(self, c2w: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`to_run`."""
        c2w = torch.as_tensor(c2w, dtype=torch.float64)
        out = c2w.clone()
        out[..., :3, :3] = self.rotation.T @ c2w[..., :3, :3]
        out[..., :3, 3] = (c2w[..., :3, 3] / self.scale) @ self.rotation + self.centre
        return out

    def to_dict(self) -> dict:
        return {"x_run": "scale * rotation @ (x_dataset - centre)", "centre": self.centre.tolist(),
                "rotation": self.rotation.tolist(), "scale": self.scale}

    @classmethod
    def from_dict(cls, d: dict) -> "SceneFrame":
        return cls(torch.tensor(d["centre"], dtype=torch.float64), torch.tensor(d["rotation"], dtype=torch.float64),
                   float(d["scale"]))


def capture_up(c2w: torch.Tensor) -> torch.Tensor:
    """The capture's up direction (unit): the normal of the camera centres' best-fit plane when it is
    within 30 degrees of the cameras' mean up vector (an orbit-like capture, where the mean up vector
    leans toward the side the cameras cover), else that mean up vector (e.g. forward-facing captures,
    whose centres spread across the view)."""
    m = torch.as_tensor(c2w, dtype=torch.float64).reshape(-1, 4, 4)
    up = m[:, :3, 1].mean(0)
    up = up / up.norm() if float(up.norm()) > 1e-6 else m[0, :3, 1]
    centres = m[:, :3, 3] - m[:, :3, 3].mean(0)
    if m.shape[0] >= 3:
        _, sv, vh = torch.linalg.svd(centres, full_matrices=False)
        normal = vh[-1]
        if float(sv[1]) > 1e-6 * max(float(sv[0]), 1e-12) and abs(float(normal @ up)) > math.cos(math.radians(30)):
            return normal if float(normal @ up) > 0 else -normal
    return up


def scene_frame(c2w: torch.Tensor) -> SceneFrame:
    """The run's frame of input cameras ``c2w [M, 4, 4]`` (OpenGL; see the module docstring)."""
    m = torch.as_tensor(c2w, dtype=torch.float64).reshape(-1, 4, 4)
    centre = focus_point(m)
    up = capture_up(m)
    x = m[0, :3, 3] - centre
    x = x - (x @ up) * up
    if float(x.norm()) < 1e-9 * max(1.0, float((m[0, :3, 3] - centre).norm())):
        x = m[0, :3, 0] - (m[0, :3, 0] @ up) * up  # the first input sits on the axis: its right vector
    x = x / x.norm()
    R = torch.stack([x, torch.linalg.cross(up, x), up])
    dist = (m[:, :3, 3] - centre).norm(dim=1)
    return SceneFrame(centre, R, 1.0 / max(float(dist.median()), 1e-12))


def in_frame(views, frame: SceneFrame):
    """:class:`~novelviews.multiview.PreparedViews` moved into ``frame`` (cameras, depth, scene scale)."""
    from ..multiview import PreparedViews

    depth = [None if d is None else (d * np.float32(frame.scale)).astype(np.float32) for d in views.depth]
    ds = None if views.dataset_scale is None else float(views.dataset_scale) * frame.scale
    return PreparedViews(views.images, frame.to_run(views.c2w), views.K.clone(), views.fov.clone(), depth,
                         list(views.indices), list(views.names), views.size, ds, list(views.skipped))


# --------------------------------------------------------------------------- cameras around the inputs


def input_orbit(c2w_run: torch.Tensor) -> tuple[float, float, torch.Tensor]:
    """``(mean elevation, mean distance, azimuths [M])`` of cameras in the run's frame (radians)."""
    el, az, r = C.cartesian_to_spherical(torch.as_tensor(c2w_run, dtype=torch.float64)[:, :3, 3])
    return float(el.mean()), float(r.mean()), az


def covered_arc(azimuths: torch.Tensor) -> tuple[float, float]:
    """``(start, span)`` radians: the circle less the largest gap between consecutive azimuths
    (span 0 for one azimuth)."""
    a = torch.sort(torch.remainder(torch.as_tensor(azimuths, dtype=torch.float64), 2 * math.pi)).values
    if a.numel() < 2:
        return float(a[0]) if a.numel() else 0.0, 0.0
    gaps = torch.diff(torch.cat([a, a[:1] + 2 * math.pi]))
    g = int(torch.argmax(gaps))
    return float(a[(g + 1) % a.numel()]), 2 * math.pi - float(gaps[g])


def cameras_around_inputs(c2w_run: torch.Tensor, num: int, elevation_offsets_deg, placement: str = "arc"
                          ) -> torch.Tensor:
    """``[num, 4, 4]`` OpenGL c2w of the generated views around inputs ``c2w_run`` (the run's frame;
    see the module docstring)."""
    if placement not in PLACEMENTS:
        raise ConfigError(f"config key 'views.placement' = {placement!r}: choose one of {', '.join(PLACEMENTS)}")
    elev, dist, az = input_orbit(c2w_run)
    start, span = covered_arc(az)
    t = (torch.arange(num, dtype=torch.float64) + 0.5) / num
    if placement == "orbit" or span < 1e-6:
        azimuths = float(az[0]) + 2 * math.pi * t
    else:
        azimuths = start + span * t
    offs = list(elevation_offsets_deg) or [0.0]
    lim = math.radians(89.0)
    el = torch.tensor([min(lim, max(-lim, elev + math.radians(offs[i % len(offs)]))) for i in range(num)],
                      dtype=torch.float64)
    return C.camera_on_sphere(el, azimuths, torch.full((num,), dist, dtype=torch.float64))


__all__ = ["PosedInputsConfig", "PLACEMENTS", "is_dataset", "select_views", "focus_point", "SceneFrame",
           "capture_up", "scene_frame", "in_frame", "input_orbit", "covered_arc", "cameras_around_inputs"]
