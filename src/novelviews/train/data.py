"""Training data: a pool of posed views, and the builders of pools.

A :class:`ViewPool` holds every view of every scene at the model's resolution (uint8,
``[V, 3, S, S]``) with OpenGL ``c2w``, vertical fov, a per-view 6DoF+1 scene scale and
the scene / frame index of each view. Pools come from any
:class:`~novelviews.io.datasets.MultiViewScene` (transforms.json, COLMAP, CO3D-style,
RealEstate10K/ACID), or are rendered directly by the procedural renderer (on a GPU for
volume) or as photo-plane scenes. The (condition, target) pairs drawn from a pool are in
:mod:`.pairs`.

Scene scale of a view (6DoF+1): the 0.2-quantile of its depth map when the source has
depth (as ZeroNVS), else the source's stated scale, else a scale from the camera layout
(``cameras.scene_scale_from_cameras``) - each pool records which one it used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .. import cameras as C
from ..errors import DatasetError


@dataclass
class ViewPool:
    images: torch.Tensor  # uint8 [V, 3, S, S]
    c2w: torch.Tensor  # float64 [V, 4, 4] OpenGL
    fov: torch.Tensor  # float64 [V] vertical, radians
    scale: torch.Tensor  # float64 [V] 6DoF+1 scene scale of each view (as a conditioning view)
    scene: torch.Tensor  # long [V] scene index
    frame: torch.Tensor  # long [V] frame index within its scene
    scale_source: str = "depth"
    names: list[str] = field(default_factory=list)  # scene names
    scene_gap: torch.Tensor | None = None  # long [num_scenes]: max frame gap of pairs (0 = any pair)
    # VAE posterior of every view (see :func:`cache_pool_latents`): float [V, C, h, w], unscaled
    # (NOT multiplied by the scaling factor); model-specific, so never saved nor carried by ``cat``
    latent_mean: torch.Tensor | None = None
    latent_std: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_scenes(self) -> int:
        return int(self.scene.max().item()) + 1 if len(self) else 0

    def save(self, path: str | Path) -> Path:
        from ..io.runs import atomic_save

        data = {k: getattr(self, k) for k in ("images", "c2w", "fov", "scale", "scene", "frame", "scene_gap")}
        data = {k: v for k, v in data.items() if v is not None}
        return atomic_save(Path(path), lambda p: torch.save(data, p))

    @classmethod
    def load(cls, path: str | Path) -> "ViewPool":
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure is a bad file for the user
            raise DatasetError(f"cannot read view pool '{path}': {exc}") from None
        return cls(**data)

    @staticmethod
    def cat(pools: Sequence["ViewPool"]) -> "ViewPool":
        offset, scenes = 0, []
        for p in pools:
            scenes.append(p.scene + offset)
            offset += p.num_scenes
        return ViewPool(
            images=torch.cat([p.images for p in pools]),
            c2w=torch.cat([p.c2w for p in pools]),
            fov=torch.cat([p.fov for p in pools]),
            scale=torch.cat([p.scale for p in pools]),
            scene=torch.cat(scenes),
            frame=torch.cat([p.frame for p in pools]),
            scale_source=",".join(sorted({p.scale_source for p in pools})),
            names=sum((p.names for p in pools), []),
            scene_gap=torch.cat([p.gaps() for p in pools]),
        )

    def gaps(self) -> torch.Tensor:
        return self.scene_gap if self.scene_gap is not None else torch.zeros(self.num_scenes, dtype=torch.long)

    def select_scenes(self, scenes: Sequence[int]) -> "ViewPool":
        """The views of ``scenes`` (scene indices, kept in this order and renumbered 0..k-1)."""
        scenes = [int(s) for s in scenes]
        if len(set(scenes)) != len(scenes) or any(s < 0 or s >= self.num_scenes for s in scenes):
            raise DatasetError(f"select_scenes: scene indices must be distinct and in 0..{self.num_scenes - 1}")
        order = torch.argsort(self.scene, stable=True)
        sorted_scene = self.scene[order]
        idx, new_scene = [], []
        for k, s in enumerate(scenes):
            lo, hi = torch.searchsorted(sorted_scene, torch.tensor([s, s + 1])).tolist()
            idx.append(order[lo:hi])
            new_scene.append(torch.full((hi - lo,), k, dtype=torch.long))
        ix = torch.cat(idx) if idx else torch.zeros(0, dtype=torch.long)

        def pick(t):
            return None if t is None else t[ix]

        names = [self.names[s] for s in scenes] if len(self.names) == self.num_scenes else []
        scene = torch.cat(new_scene) if new_scene else torch.zeros(0, dtype=torch.long)
        return ViewPool(self.images[ix], self.c2w[ix], self.fov[ix], self.scale[ix], scene, self.frame[ix],
                        self.scale_source, names, self.gaps()[torch.tensor(scenes, dtype=torch.long)],
                        pick(self.latent_mean), pick(self.latent_std))

    def mirrored(self) -> "ViewPool":
        """The same scenes in a mirror world: every image flipped left-right and every camera
        ``c2w -> S @ c2w @ F`` (``S`` reflects the world's x axis, ``F`` the camera's).

        The mirrored views are exactly what the mirrored scene looks like from the mirrored
        cameras (a proper rotation again, as ``det(S R F) = 1``), so a pair of them is a valid
        training pair: the relative pose becomes ``F @ E @ F`` (6DoF+1) and the azimuth change
        flips sign (3DoF; z-up worlds keep their elevation), while fov, depth-quantile scale,
        frames and frame gaps are unchanged. Doubles the distinct pairs of a pool at no
        rendering cost (``nvs train mirror=true``). Scene names get ``-mirror``; cached latents
        are dropped (the flipped images need their own). Mirroring twice gives the pool back.
        """
        flip = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0], dtype=self.c2w.dtype))
        return ViewPool(self.images.flip(-1), flip @ self.c2w @ flip, self.fov.clone(), self.scale.clone(),
                        self.scene.clone(), self.frame.clone(), self.scale_source,
                        [n[:-len("-mirror")] if n.endswith("-mirror") else n + "-mirror" for n in self.names],
                        None if self.scene_gap is None else self.scene_gap.clone())

    def split_scenes(self, holdout: int) -> tuple["ViewPool", "ViewPool"]:
        """``(train, held_out)``: the last ``holdout`` scenes (whole scenes, never single views)
        are held out, e.g. for validation on scenes the model never trains on."""
        n = self.num_scenes
        if not 0 < holdout < n:
            raise DatasetError(f"cannot hold out {holdout} of {n} scenes: hold out at least 1 and leave at least 1 "
                               "to train on (lower val_scenes or add data)")
        return self.select_scenes(range(n - holdout)), self.select_scenes(range(n - holdout, n))


def _to_uint8_chw(img: np.ndarray) -> torch.Tensor:
    from ..io.images import to_uint8

    return torch.from_numpy(to_uint8(img)).permute(2, 0, 1).contiguous()


def pool_from_scene(scene, size: int, mode: str = "crop") -> ViewPool:
    """All views of one MultiViewScene at ``size x size`` (intrinsics -> fov after the crop)."""
    from ..io.images import center_crop_resize

    imgs, fovs, scales = [], [], []
    has_depth = scene.has_depth
    for i in range(len(scene)):
        img = scene.load_image(i)
        out, K = center_crop_resize(img, scene.K[i].numpy(), size, mode=mode)
        imgs.append(_to_uint8_chw(out))
        fovs.append(float(C.fov_from_intrinsics(torch.as_tensor(K), size)))
        if has_depth:
            d = scene.load_depth(i)
            d, _ = center_crop_resize(d, None, size, mode=mode, pad_value=0.0, nearest=True)
            try:
                scales.append(float(C.depth_quantile_scale(torch.as_tensor(d))))
            except Exception:  # noqa: BLE001 - an empty depth map: fall back below
                scales.append(float("nan"))
        else:
            scales.append(float("nan"))
    scale = torch.tensor(scales, dtype=torch.float64)
    source = "depth"
    if torch.isnan(scale).any():  # views without a depth scale: the dataset's stated one, else the cameras'
        stated = getattr(scene, "scale", None)
        fallback = stated if stated else C.scene_scale_from_cameras(scene.c2w)
        source = "depth+fallback" if has_depth else ("dataset" if stated else "cameras")
        scale = torch.where(torch.isnan(scale), torch.full_like(scale, float(fallback)), scale)
    n = len(scene)
    return ViewPool(torch.stack(imgs), scene.c2w.double().clone(), torch.tensor(fovs, dtype=torch.float64), scale,
                    torch.zeros(n, dtype=torch.long), torch.arange(n), source, [scene.name])


def pool_from_paths(paths: Sequence[str | Path], size: int, mode: str = "crop", progress: bool = True) -> ViewPool:
    """Every scene under each path (a scene folder, or a folder of scene folders)."""
    from tqdm.auto import tqdm

    from ..io.datasets import load_scene

    scene_dirs: list[Path] = []
    pools: list[ViewPool] = []
    for p in map(Path, paths):
        if not p.exists():
            raise DatasetError(f"training data '{p}' does not exist")
        if p.suffix == ".pt":  # a pool saved by ViewPool.save (e.g. rendered once on a GPU)
            pools.append(ViewPool.load(p))
            continue
        subs = sorted(d for d in p.iterdir() if d.is_dir() and (d / "transforms.json").exists()) if p.is_dir() else []
        scene_dirs.extend(subs if subs and not (p / "transforms.json").exists() else [p])
    for d in tqdm(scene_dirs, desc="loading scenes", disable=not progress):
        scene = load_scene(d)
        if len(scene) >= 2:
            pools.append(pool_from_scene(scene, size, mode))
    if not pools:
        raise DatasetError(f"no scene with at least 2 views found in {', '.join(map(str, paths))}")
    return ViewPool.cat(pools)


def pool_from_synth(num_scenes: int, views: int, size: int, seed: int = 0, family: str = "mixed",
                    device: str | torch.device = "cpu", spp: int = 1, progress: bool = True,
                    ranges=None, photos: Sequence[torch.Tensor] | None = None, photo_share: float = 0.5,
                    textures_per_scene: int = 4, texture_size: int = 128) -> ViewPool:
    """Render a pool directly with the procedural renderer (no files): scene i has seed ``seed + i``;
    ``ranges``: the cameras' :class:`~novelviews.synth.scenes.CameraRanges` (default ones if None).

    ``photos`` (``[H, W, 3]`` each): photo-textured scenes; each scene cuts ``textures_per_scene``
    textures of ``texture_size`` px from them (seeded by the scene's seed) and gives each material
    a photo texture with probability ``photo_share`` (:func:`~novelviews.synth.scenes.scene_from_seed`)."""
    from tqdm.auto import tqdm

    from ..synth.render import render
    from ..synth.scenes import sample_cameras, scene_from_seed, textures_from_photos

    rows, gaps = [], []
    for i in tqdm(range(num_scenes), desc="rendering scenes", disable=not progress):
        tex = None if photos is None or len(photos) == 0 else textures_from_photos(photos, textures_per_scene, texture_size, seed + i)
        scene = scene_from_seed(seed + i, family, photos=tex, photo_share=photo_share)
        c2w, K = sample_cameras(scene, views, size, size, ranges)
        out = render(scene, c2w, K, size, size, device=device, spp=spp)
        rows.append(_rendered_views(out, c2w, C.fov_from_intrinsics(K, size)))
        gaps.append(max(1, views // 6) if scene.family == "walk" else 0)  # walks: nearby frames only
    return _pool_of_scenes(rows, [f"synth-{seed + i}" for i in range(num_scenes)], gaps)


def _rendered_views(out: dict, c2w: torch.Tensor, fov: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """One scene's rendered views (``rgb [V, H, W, 3]`` in [0, 1], ``depth [V, H, W]``) as pool
    rows: uint8 images, c2w, fov and the depth 0.2-quantile scale of each view."""
    images = (out["rgb"].clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 3, 1, 2).cpu()
    return images, c2w.double(), fov.double(), C.depth_quantile_scale(out["depth"].double().cpu())


def _pool_of_scenes(rows: list[tuple[torch.Tensor, ...]], names: list[str], gaps: list[int]) -> ViewPool:
    """A depth-scaled :class:`ViewPool` of scenes given as :func:`_rendered_views` rows (scene ``i``
    is ``rows[i]``, its frames in order)."""
    images, c2w, fov, scale = (torch.cat(parts) for parts in zip(*rows))
    counts = [len(r[0]) for r in rows]
    scene = torch.cat([torch.full((n,), i, dtype=torch.long) for i, n in enumerate(counts)])
    frame = torch.cat([torch.arange(n) for n in counts])
    return ViewPool(images, c2w, fov, scale, scene, frame, "depth", names, torch.tensor(gaps, dtype=torch.long))


def photo_plane_offsets(views: int, generator: torch.Generator, near_fraction: float = 0.5,
                        near_deg: float = 10.0, max_deg: float = 40.0,
                        elevation_deg: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Azimuth / elevation offsets (radians, ``[views]``) of a photo-plane scene's views.

    View 0 is the input camera (offsets 0). Each other view is *near* with probability
    ``near_fraction``: azimuth offset uniform in ``[0, near_deg]``, elevation offset uniform
    within ``+-min(elevation_deg, max(1, |azimuth offset|))`` degrees (so a near view stays
    near); else azimuth uniform in ``[near_deg, max_deg]`` and elevation within
    ``+-elevation_deg``. Azimuth signs are random.
    """
    if not (0 <= near_fraction <= 1 and 0 <= near_deg <= max_deg and elevation_deg >= 0 and views >= 1):
        raise DatasetError("photo-plane offsets need views >= 1, 0 <= near_fraction <= 1, "
                           "0 <= near_deg <= max_deg and elevation_deg >= 0")
    u = torch.rand(views - 1, 4, generator=generator, dtype=torch.float64)
    near = u[:, 0] < near_fraction
    lo = torch.where(near, 0.0, near_deg)
    hi = torch.where(near, near_deg, max_deg)
    az = lo + (hi - lo) * u[:, 1]
    el_max = torch.where(near, torch.clamp(az, min=1.0).clamp(max=elevation_deg), torch.tensor(elevation_deg))
    el = (2 * u[:, 2] - 1) * el_max
    sign = torch.where(u[:, 3] < 0.5, -1.0, 1.0)
    zero = torch.zeros(1, dtype=torch.float64)
    return torch.deg2rad(torch.cat([zero, sign * az])), torch.deg2rad(torch.cat([zero, el]))


def pool_from_photo_planes(photos, num_scenes: int, views: int, size: int, seed: int = 0,
                           device: str | torch.device = "cpu", spp: int = 2, n_cards: tuple[int, int] = (0, 3),
                           near_fraction: float = 0.5, near_deg: float = 10.0, max_deg: float = 40.0,
                           elevation_deg: float = 10.0, progress: bool = True) -> ViewPool:
    """Render a pool of photo-plane ("card") scenes: real photographs with exact ground truth.

    Scene ``i`` is :func:`~novelviews.synth.photo_planes.random_card_scene` of ``photos`` (a
    list of ``[h, w, 3]`` images, a ``[N, h, w, 3]`` tensor or a ``PhotoPool``) drawn from a
    generator seeded ``seed + i``, with ``n_cards`` cards before a photo background (0 cards:
    one photo on a plane). Its views are the input camera and ``views - 1`` cameras orbiting
    the cards (:func:`photo_plane_offsets`, :func:`~novelviews.cameras.orbit_about_vertical`):
    half of them within ``near_deg`` of the input, so pairs near identity are common. Scene
    scale (6DoF+1) is each view's depth 0.2-quantile, as for the procedural scenes. The
    background plane is made wide enough that every view of an orbit up to ``max_deg`` sees it.
    """
    from tqdm.auto import tqdm

    from ..synth.photo_planes import random_card_scene, render_photo_planes

    rows = []
    margin = 2.5 + 4.0 * math.sin(math.radians(max_deg))  # room for the orbit's views
    for i in tqdm(range(num_scenes), desc="rendering photo-plane scenes", disable=not progress):
        g = torch.Generator().manual_seed(seed + i)
        scene = random_card_scene(photos, g, n_cards=n_cards, background_margin=margin)
        d_az, d_el = photo_plane_offsets(views, g, near_fraction, near_deg, max_deg, elevation_deg)
        c2w = C.orbit_about_vertical(scene.input_c2w, d_az, d_el)
        K = scene.input_intrinsics(size, size)
        out = render_photo_planes(scene, c2w, K, size, size, spp=spp, device=device,
                                  dtype=torch.float32 if torch.device(device).type == "cuda" else torch.float64)
        rows.append(_rendered_views(out, c2w, torch.full((views,), float(scene.fov), dtype=torch.float64)))
    return _pool_of_scenes(rows, [f"photo-planes-{seed + i}" for i in range(num_scenes)], [0] * num_scenes)


@torch.no_grad()
def cache_pool_latents(pool: ViewPool, vae: torch.nn.Module, device: str | torch.device = "cpu",
                       chunk: int = 64, dtype: torch.dtype = torch.float32, progress: bool = False) -> ViewPool:
    """Encode every view of ``pool`` once with a (frozen) VAE; store its posterior on the pool.

    Sets ``pool.latent_mean`` / ``pool.latent_std`` (``dtype``, ``[V, C, h, w]``, on the CPU):
    the mean (= the posterior mode, the unscaled conditioning latent ``embed_image`` gives) and
    ``std = exp(0.5 * clamp(logvar, -30, 20))`` of the VAE's diagonal Gaussian posterior, for
    images mapped ``uint8 -> [-1, 1]`` exactly as :meth:`~.pairs.PairDataset.gather` does. Runs on
    ``device`` in chunks of ``chunk`` views without gradients; the VAE is moved there for the
    duration and back to where it was. :meth:`~.pairs.PairDataset.gather` then adds ``cond_latent``,
    ``target_mean`` and ``target_std`` to every batch. Returns the pool.
    """
    from tqdm.auto import tqdm

    if len(pool) == 0:
        raise DatasetError("cannot cache the latents of an empty view pool")
    param = next(vae.parameters())
    home, vae_dtype = param.device, param.dtype
    vae.to(device)
    means, stds = [], []
    try:
        for start in tqdm(range(0, len(pool), max(1, int(chunk))), desc="caching latents", disable=not progress):
            imgs = pool.images[start:start + max(1, int(chunk))].to(device)
            dist = vae.encode(to_unit_range(imgs).to(vae_dtype)).latent_dist
            means.append(dist.mean.to("cpu", dtype))
            stds.append(dist.std.to("cpu", dtype))
    finally:
        vae.to(home)
    pool.latent_mean, pool.latent_std = torch.cat(means), torch.cat(stds)
    return pool


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 127.5 - 1.0


def images_to_float(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``cond`` / ``target`` of a batch as float ``[-1, 1]`` (uint8 ones converted, on their device)."""
    out = dict(batch)
    for key in ("cond", "target"):
        if key in out and out[key].dtype == torch.uint8:
            out[key] = to_unit_range(out[key])
    return out
