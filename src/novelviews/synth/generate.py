"""Writing procedural multi-view datasets (``nvs synth``).

Layout of ``out_dir`` (one folder per scene, nerfstudio / instant-ngp ``transforms.json``)::

    out_dir/
      config.yaml                 (command_synth only: the resolved SynthConfig)
      sheet.png                   first views of the scenes
      scene_0000/
        transforms.json
        images/0000.png           RGB, 8-bit
        depth/0000.png            z-depth, 16-bit PNG in millimetres (0 = sky / no surface)
        masks/0000.png            object (foreground) mask, 8-bit, 255 = object
        sheet.png                 contact sheet of the scene's views

``transforms.json``: top-level ``camera_model`` (PINHOLE), ``fl_x, fl_y, cx, cy, w, h``
(pixels, shared by all frames), ``camera_angle_x`` / ``camera_angle_y`` (radians),
``depth_unit_scale_factor`` 0.001; per frame ``file_path``, ``depth_file_path``,
``mask_path`` and ``transform_matrix`` (OpenGL camera-to-world, world z-up); and
``novelviews`` metadata (seed, family, renderer settings) so any scene can be
re-rendered: scene ``i`` has seed ``cfg.seed + i``, and
``render(scene_from_seed(seed, family, ...), c2w, K, h, w, spp=..)`` reproduces the
written pixels (see :func:`rerender_scene`).
"""

from __future__ import annotations

import logging
import json
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ..io.images import to_uint8  # the quantisation of every PNG we write
from ..config import check_range
from ..errors import ConfigError

log = logging.getLogger(__name__)  # notes for the user; the CLI prints them

DEPTH_UNIT = 0.001  # metres (scene units) per step of the 16-bit depth PNGs


@dataclass
class SynthConfig:
    """Settings of ``nvs synth``: procedural scenes with exact cameras, depth and masks."""

    scenes: int = 8
    """Number of scenes; scene ``i`` uses seed ``seed + i``."""
    views: int = 24
    """Views per scene."""
    size: int = 128
    """Square image side, pixels."""
    family: Literal["orbit", "walk", "mixed"] = "mixed"
    """Camera family: object-centric ``orbit`` (CO3D-like), forward ``walk`` (RealEstate10K-like),
    or ``mixed`` (chosen per scene from its seed)."""
    seed: int = 0
    """Seed of scene 0."""
    fov_deg: tuple[float, float] = (40.0, 60.0)
    """Vertical field of view range, degrees (one fov per scene)."""
    elevation_deg: tuple[float, float] = (5.0, 60.0)
    """Orbit cameras: elevation range above the ground, degrees."""
    distance: tuple[float, float] = (2.5, 4.0)
    """Orbit cameras: distance range to the origin, scene units."""
    orbit_path: Literal["random", "ordered", "arc", "mixed"] = "mixed"
    """Orbit cameras: random per view, an ordered orbit, an arc (views evenly along ``arc_deg``
    of azimuth, one distance and look-at point), or one of them per scene (``mixed``)."""
    arc_deg: tuple[float, float] = (30.0, 150.0)
    """Orbit ``arc`` cameras: range of the azimuth span of a scene's views, degrees."""
    arc_fraction: float = 0.0
    """Orbit ``mixed``: share of scenes on an arc; the rest are ordered or random, half each."""
    objects: tuple[int, int] = (2, 6)
    """Orbit scenes: number of primitives (inclusive range)."""
    walk_objects: tuple[int, int] = (6, 14)
    """Walk scenes: number of primitives (inclusive range)."""
    shadows: bool = True
    """Soft shadows (a second sphere-traced march toward the light)."""
    ambient_occlusion: bool = True
    """SDF ambient occlusion near objects."""
    spp: int = 2
    """Supersampling: spp x spp samples per pixel (1 = none)."""
    max_steps: int = 128
    """Sphere-tracing step cap."""
    chunk: int | None = None
    """Rays per batch (default: 2**17 on CPU, 2**21 on GPU)."""
    sheet: bool = True
    """Write contact sheets (per scene and overall)."""
    photo_textures: str | None = None
    """A folder of photographs (jpg / png): texture a share of the materials with them
    (triplanar-mapped, mip-filtered; ``novelviews.synth.scenes.photo_textures``)."""
    photo_share: float = 0.5
    """With ``photo_textures``: the probability that a material (object or ground) is a photo."""
    textures_per_scene: int = 4
    """With ``photo_textures``: textures cut (random augmented crops) per scene."""
    texture_size: int = 128
    """With ``photo_textures``: texture side, pixels (a power of two)."""

    def validate(self) -> None:
        check_range("scenes", self.scenes, 1)
        check_range("views", self.views, 1, 10000)
        check_range("size", self.size, 8, 4096)
        check_range("spp", self.spp, 1, 8)
        check_range("max_steps", self.max_steps, 8, 4096)
        if self.chunk is not None:
            check_range("chunk", self.chunk, 1024)
        check_range("fov_deg[0]", self.fov_deg[0], 1.0, 170.0)
        check_range("fov_deg[1]", self.fov_deg[1], self.fov_deg[0], 170.0)
        check_range("elevation_deg[0]", self.elevation_deg[0], 1.0, 89.0)
        check_range("elevation_deg[1]", self.elevation_deg[1], self.elevation_deg[0], 89.0)
        check_range("distance[0]", self.distance[0], 1.5, 30.0)
        check_range("distance[1]", self.distance[1], self.distance[0], 30.0)
        check_range("arc_deg[0]", self.arc_deg[0], 0.0, 360.0)
        check_range("arc_deg[1]", self.arc_deg[1], self.arc_deg[0], 360.0)
        check_range("arc_fraction", self.arc_fraction, 0.0, 1.0)
        check_range("objects[0]", self.objects[0], 0, 64)
        check_range("objects[1]", self.objects[1], self.objects[0], 64)
        check_range("walk_objects[0]", self.walk_objects[0], 0, 64)
        check_range("walk_objects[1]", self.walk_objects[1], self.walk_objects[0], 64)
        check_range("photo_share", self.photo_share, 0.0, 1.0)
        check_range("textures_per_scene", self.textures_per_scene, 1, 64)
        check_range("texture_size", self.texture_size, 4, 1024)
        if self.texture_size & (self.texture_size - 1):
            raise ConfigError(f"texture_size must be a power of two, got {self.texture_size}: use e.g. 64, 128 or 256")


def _ranges(cfg: SynthConfig):
    from .scenes import CameraRanges

    return CameraRanges(fov_deg=tuple(cfg.fov_deg), elevation_deg=tuple(cfg.elevation_deg),
                        distance=tuple(cfg.distance), orbit_path=cfg.orbit_path,
                        arc_deg=tuple(cfg.arc_deg), arc_fraction=cfg.arc_fraction)


def load_texture_photos(cfg: SynthConfig) -> list[torch.Tensor] | None:
    """The photographs of ``cfg.photo_textures`` (longer side at most 512 px), or None without it."""
    if cfg.photo_textures is None:
        return None
    from .photos import load_photo_folder

    return load_photo_folder(cfg.photo_textures, max_side=512)[0]


def photo_folder_key(folder: str | Path) -> dict:
    """What identifies a photo folder's texture draws: its photos' count and a hash of their
    relative file names in load order (adding, removing or renaming a photo changes the draws)."""
    import hashlib

    from .photos import list_photos

    root = Path(folder)
    names = [str(p.relative_to(root)) for p in list_photos(root)]
    return {"count": len(names), "names_sha1": hashlib.sha1("\n".join(names).encode()).hexdigest()}


def scene_of(cfg: SynthConfig, index: int, photos: list[torch.Tensor] | None = None):
    """Scene ``index`` of a run (seed ``cfg.seed + index``); ``photos``: :func:`load_texture_photos`
    of ``cfg`` (loaded here when None and the config names a folder)."""
    from .scenes import resolve_family, scene_from_seed, textures_from_photos

    seed = cfg.seed + index
    if photos is None:
        photos = load_texture_photos(cfg)
    tex = None if photos is None else textures_from_photos(photos, cfg.textures_per_scene, cfg.texture_size, seed)
    return scene_from_seed(seed, resolve_family(cfg.family, seed), objects=tuple(cfg.objects),
                           walk_objects=tuple(cfg.walk_objects), photos=tex, photo_share=cfg.photo_share)


def scene_and_cameras(cfg: SynthConfig, index: int, photos: list[torch.Tensor] | None = None):
    """Scene ``index`` of a run: ``(scene, c2w [N,4,4] OpenGL float64, K [N,3,3] float64)``
    (``photos`` as in :func:`scene_of`)."""
    from .scenes import sample_cameras

    scene = scene_of(cfg, index, photos)
    c2w, K = sample_cameras(scene, cfg.views, cfg.size, cfg.size, _ranges(cfg))
    return scene, c2w, K


def _render(cfg: SynthConfig, scene, c2w, K, device) -> dict[str, torch.Tensor]:
    from .render import render

    return render(scene, c2w, K, cfg.size, cfg.size, device=device, chunk=cfg.chunk, spp=cfg.spp,
                  shadows=cfg.shadows, ao=cfg.ambient_occlusion, max_steps=cfg.max_steps)


def depth_to_png16(depth: np.ndarray) -> np.ndarray:
    """z-depth (scene units) -> uint16 millimetres (rounded; clipped at 65.535)."""
    return np.clip(np.round(depth / DEPTH_UNIT), 0, 65535).astype(np.uint16)


def _save_png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    from ..io.runs import atomic_save

    atomic_save(path, lambda p: Image.fromarray(arr).save(p, format="PNG"))


def _transforms(cfg: SynthConfig, index: int, scene, c2w: torch.Tensor, K: torch.Tensor,
                photo_key: dict | None = None) -> dict:
    w = h = cfg.size
    fx, fy, cx, cy = (float(K[0, 0, 0]), float(K[0, 1, 1]), float(K[0, 0, 2]), float(K[0, 1, 2]))
    frames = []
    for i in range(c2w.shape[0]):
        frames.append({
            "file_path": f"images/{i:04d}.png",
            "depth_file_path": f"depth/{i:04d}.png",
            "mask_path": f"masks/{i:04d}.png",
            "transform_matrix": [[float(v) for v in row] for row in c2w[i].tolist()],
        })
    info = {
        "seed": int(scene.seed),
        "family": scene.family,
        "scene_index": int(index),
        "generator": "novelviews.synth",
        "objects": list(cfg.objects),
        "walk_objects": list(cfg.walk_objects),
        "render": {"spp": cfg.spp, "shadows": cfg.shadows, "ambient_occlusion": cfg.ambient_occlusion,
                   "max_steps": cfg.max_steps},
        "photo_textures": None if cfg.photo_textures is None else {
            "folder": str(Path(cfg.photo_textures).resolve()), "share": cfg.photo_share,
            "per_scene": cfg.textures_per_scene, "size": cfg.texture_size,
            **(photo_key or photo_folder_key(cfg.photo_textures))},
        "mask": "objects (foreground); depth 0 marks sky",
        "world": "z-up, ground plane z=0",
    }
    return {
        "camera_model": "PINHOLE",
        "fl_x": fx, "fl_y": fy, "cx": cx, "cy": cy, "w": w, "h": h,
        "camera_angle_x": 2.0 * math.atan(0.5 * w / fx),
        "camera_angle_y": 2.0 * math.atan(0.5 * h / fy),
        "depth_unit_scale_factor": DEPTH_UNIT,
        "frames": frames,
        "novelviews": {**info, "meta": {"seed": int(scene.seed), "family": scene.family}},
    }


def _write_scene(folder: Path, cfg: SynthConfig, index: int, scene, c2w, K,
                 rgb: np.ndarray, depth: np.ndarray, obj_mask: np.ndarray, photo_key: dict | None = None) -> np.ndarray:
    """Write one scene folder; returns the first view (uint8) for the overall sheet."""
    from ..io.runs import atomic_write_json

    images = to_uint8(rgb)
    dmm = depth_to_png16(depth)
    masks = obj_mask.astype(np.uint8) * 255
    for i in range(images.shape[0]):
        _save_png(folder / "images" / f"{i:04d}.png", images[i])
        _save_png(folder / "depth" / f"{i:04d}.png", dmm[i])
        _save_png(folder / "masks" / f"{i:04d}.png", masks[i])
    if cfg.sheet:
        from ..io.video import save_contact_sheet

        save_contact_sheet(folder / "sheet.png", list(images.astype(np.float32) / 255.0),
                           cols=min(8, images.shape[0]), pad=1)
    # transforms.json last: a folder holding it is complete
    atomic_write_json(folder / "transforms.json", _transforms(cfg, index, scene, c2w, K, photo_key))
    return images[0]


def generate(cfg: SynthConfig, out_dir: str | Path, device: str | torch.device = "cpu",
             progress: bool = True) -> list[Path]:
    """Render ``cfg.scenes`` scenes into ``out_dir/scene_%04d`` and return the scene folders.

    Rendering of scene ``i + 1`` overlaps the PNG encoding of scene ``i`` (a writer
    thread). ``device`` is where rays are traced (``"cuda"`` scales to thousands of views).
    """
    cfg.validate()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    folders: list[Path] = []
    firsts: list[np.ndarray] = []
    pending: list[Future] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.scenes, desc="synth", unit="scene")
    photos = load_texture_photos(cfg)
    photo_key = None if cfg.photo_textures is None else photo_folder_key(cfg.photo_textures)
    with ThreadPoolExecutor(max_workers=2) as pool:
        for i in range(cfg.scenes):
            scene, c2w, K = scene_and_cameras(cfg, i, photos)
            out = _render(cfg, scene, c2w, K, device)
            rgb = out["rgb"].cpu().numpy()
            depth = out["depth"].cpu().numpy()
            om = out["object_mask"].cpu().numpy()
            folder = out_dir / f"scene_{i:04d}"
            folders.append(folder)
            pending.append(pool.submit(_write_scene, folder, cfg, i, scene, c2w, K, rgb, depth, om, photo_key))
            while len(pending) > 2:  # bound the memory held by queued scenes
                firsts.append(pending.pop(0).result())
                if bar:
                    bar.update(1)
        for f in pending:
            firsts.append(f.result())
            if bar:
                bar.update(1)
    if bar:
        bar.close()
    if cfg.sheet:
        from ..io.video import save_contact_sheet

        shown = firsts[:64]
        save_contact_sheet(out_dir / "sheet.png", [x.astype(np.float32) / 255.0 for x in shown],
                           cols=min(8, len(shown)), pad=1)
    return folders


def rerender_scene(transforms_path: str | Path, c2w=None, K=None, height: int | None = None,
                   width: int | None = None, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Re-render a written scene from its ``transforms.json`` metadata.

    With no cameras given, the written cameras are used and the written pixels are
    reproduced; pass ``c2w [N, 4, 4]`` (OpenGL), ``K [N, 3, 3]`` and a size for new views.
    """
    from ..errors import DatasetError
    from .render import render

    path = Path(transforms_path)
    if path.is_dir():
        path = path / "transforms.json"
    try:
        data = json.loads(path.read_text())
        info = data["novelviews"]
        seed, family = int(info["seed"]), info["family"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"'{path}' is not a transforms.json written by `nvs synth` ({exc}): "
                           "pass a scene folder of an nvs synth run") from None
    cfg = SynthConfig(seed=seed, family=family, objects=tuple(info.get("objects", (2, 6))),
                      walk_objects=tuple(info.get("walk_objects", (6, 14))))
    pt = info.get("photo_textures")
    if pt:
        if not Path(pt["folder"]).is_dir():
            raise DatasetError(f"'{path}' was rendered with the photo textures of '{pt['folder']}', which is "
                               "gone: put the photographs back there to re-render it")
        now = photo_folder_key(pt["folder"])
        if "names_sha1" in pt and now["names_sha1"] != pt["names_sha1"]:
            raise DatasetError(f"'{path}' was rendered with {pt.get('count')} photos of '{pt['folder']}', which "
                               f"now holds other ones ({now['count']}): restore those photos to re-render it")
        cfg = replace(cfg, photo_textures=pt["folder"], photo_share=float(pt["share"]),
                      textures_per_scene=int(pt["per_scene"]), texture_size=int(pt["size"]))
    scene = scene_of(cfg, 0)
    if c2w is None:
        c2w = torch.tensor([f["transform_matrix"] for f in data["frames"]], dtype=torch.float64)
    if K is None:
        K = torch.tensor([[data["fl_x"], 0.0, data["cx"]], [0.0, data["fl_y"], data["cy"]],
                          [0.0, 0.0, 1.0]], dtype=torch.float64)
    r = info.get("render", {})
    return render(scene, c2w, K, height or int(data["h"]), width or int(data["w"]), device=device,
                  spp=int(r.get("spp", 1)), shadows=bool(r.get("shadows", True)),
                  ao=bool(r.get("ambient_occlusion", True)), max_steps=int(r.get("max_steps", 128)))


def _auto_device(device: str) -> torch.device:
    from ..runtime import resolve_device

    return resolve_device(device)


def command_synth(cfg: SynthConfig, out: str | Path, overwrite: bool = False,
                  device: str = "auto") -> list[Path]:
    """``nvs synth OUT``: prepare the run folder, save ``config.yaml``, render, print a summary."""
    from ..config import save_config
    from ..io.runs import run_folder

    cfg.validate()
    dev = _auto_device(device)
    with run_folder(out, overwrite=overwrite) as out:
        save_config(cfg, out / "config.yaml")
        t0 = time.perf_counter()
        folders = generate(cfg, out, device=dev)
        dt = time.perf_counter() - t0
        n = cfg.scenes * cfg.views
        log.info(f"nvs synth: {cfg.scenes} scenes x {cfg.views} views at {cfg.size}px ({cfg.family}, "
              f"spp {cfg.spp}) on {dev} in {dt:.1f}s ({1000 * dt / n:.1f} ms/view) -> {out}")
        return folders


__all__ = ["SynthConfig", "generate", "command_synth", "scene_of", "scene_and_cameras", "rerender_scene", "load_texture_photos",
           "depth_to_png16", "to_uint8", "DEPTH_UNIT"]
