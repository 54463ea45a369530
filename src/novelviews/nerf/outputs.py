"""What a distillation run writes besides checkpoints: metrics.csv, previews, orbit / depth
frames, views at given cameras."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import torch

from .. import cameras as C

from .distill_config import DistillConfig
from .phases import orbit_cameras
from .step import Scene, render_view


# --------------------------------------------------------------------------- outputs


def write_metrics(path: Path, history: list[dict]) -> None:
    from ..io.runs import atomic_write_text

    if not history:
        return
    keys = list(history[0].keys())
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    for row in history:
        w.writerow({k: row.get(k) for k in keys})
    atomic_write_text(path, buf.getvalue())


def depth_frames(depths: list[torch.Tensor], opacities: list[torch.Tensor]) -> list[np.ndarray]:
    """Grey-scale depth images (near = bright), one normalisation for all frames
    (2nd-98th percentile of the surface depth ``depth / opacity`` where ``opacity > 0.5``)."""
    surf = [(d / o.clamp_min(1e-6)).float() for d, o in zip(depths, opacities)]
    valid = torch.cat([s[o > 0.5].flatten() for s, o in zip(surf, opacities)])
    if valid.numel() > 0:
        lo, hi = torch.quantile(valid, 0.02).item(), torch.quantile(valid, 0.98).item()
    else:
        lo, hi = 0.0, 1.0
    hi = max(hi, lo + 1e-6)
    out = []
    for s, o in zip(surf, opacities):
        g = (1.0 - (s - lo) / (hi - lo)).clamp(0, 1) * (o > 0.5).float()
        out.append(np.repeat(g.cpu().numpy()[..., None], 3, axis=-1).astype(np.float32))
    return out


def render_orbit(scene: Scene, cfg: DistillConfig, n: int, size: int, progress: bool = False
                 ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """RGB and depth frames (float32 HxWx3 in [0, 1]) of an orbit at the input elevation/distance."""
    from tqdm.auto import tqdm

    rgb, depth, opac = [], [], []
    for c in tqdm(orbit_cameras(cfg, n), desc="orbit", disable=not progress, leave=False):
        out = render_view(scene, cfg, c, size)
        rgb.append(out["rgb"].clamp(0, 1).cpu().numpy().astype(np.float32))
        depth.append(out["depth"].cpu())
        opac.append(out["opacity"].cpu())
    return rgb, depth_frames(depth, opac)


def write_views(scene: Scene, cfg: DistillConfig, cameras_json: str | Path, folder: Path, size: int) -> int:
    """Render the cameras of a JSON camera path into ``folder/NNN.png`` + ``cameras.json``."""
    from ..io.images import save_image
    from ..io.runs import atomic_write_json

    c2w, fov = C.load_path_json(cameras_json, default_fov=scene.fov)
    for i in range(c2w.shape[0]):
        out = render_view(scene, cfg, c2w[i], size, float(fov[i]))
        save_image(folder / f"{i:03d}.png", out["rgb"].clamp(0, 1).cpu().numpy())
    atomic_write_json(folder / "cameras.json", C.cameras_to_json(c2w, fov, size, size, extra=[
        {"file": f"{i:03d}.png"} for i in range(c2w.shape[0])]))
    return int(c2w.shape[0])


def write_preview(path: Path, scene: Scene, cfg: DistillConfig, size: int) -> None:
    """Input view and three more azimuths side by side."""
    from ..io.images import save_image

    cams = orbit_cameras(cfg, 4)
    with torch.no_grad():
        tiles = [render_view(scene, cfg, c, size)["rgb"].clamp(0, 1).cpu().numpy() for c in cams]
    save_image(path, np.concatenate(tiles, axis=1))
