"""Training pairs: random (condition, target) pairs of views of one scene drawn from a :class:`~.data.ViewPool`.

:class:`PairDataset` draws random pairs of views of the same scene (within ``max_frame_gap``
frames for video-like sources) and computes the camera embedding of each pair;
:class:`MixedPairDataset` mixes several pair datasets with weights; :class:`PairBatches` builds
whole batches of pairs vectorised (:func:`pairs_vectorized`, the fast path of ``nvs train``) and
:class:`BatchOrder` is the resumable, DDP-aware order in which a run takes them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .. import cameras as C
from ..errors import DatasetError
from .data import ViewPool, to_unit_range


class PairDataset(Dataset):
    """Random (condition, target) pairs of views of one scene from a :class:`ViewPool`.

    Item ``i`` is deterministic in ``(seed, i)``. ``max_frame_gap > 0`` limits pairs to
    frames at most that far apart (video-like sources); 0 allows any pair; a pool's own
    per-scene ``scene_gap`` (e.g. synthetic walks) takes precedence where it is set.
    ``identity_fraction``: share of pairs whose target is the condition view itself (zero
    camera offset), so a model learns to keep its input.
    Returns ``cond``/``target`` float ``[3, S, S]`` in ``[-1, 1]`` and ``cam`` float ``[d]``.
    """

    def __init__(self, pool: ViewPool, camera_mode: str, length: int = 100_000, seed: int = 0,
                 max_frame_gap: int = 0, identity_fraction: float = 0.0):
        if len(pool) < 2:
            raise DatasetError("a training pool needs at least 2 views")
        if not 0 <= identity_fraction <= 1:
            raise DatasetError(f"identity_fraction must be within [0, 1], got {identity_fraction}")
        self.pool, self.mode, self.length, self.seed, self.gap = pool, camera_mode, int(length), int(seed), max_frame_gap
        self.identity_fraction = float(identity_fraction)
        C.embedding_dim(camera_mode)
        self.by_scene = [torch.nonzero(pool.scene == s).flatten() for s in range(pool.num_scenes)]
        self.scenes = [s for s, v in enumerate(self.by_scene) if len(v) >= 2]
        self.scene_gaps = pool.gaps()
        if not self.scenes:
            raise DatasetError("no scene in the training pool has 2 or more views")

    def __len__(self) -> int:
        return self.length

    def pair(self, index: int) -> tuple[int, int]:
        g = np.random.default_rng([self.seed, int(index)])
        s = self.scenes[g.integers(len(self.scenes))]
        views = self.by_scene[s]
        a = int(g.integers(len(views)))
        gap = int(self.scene_gaps[s]) or self.gap
        if gap > 0:
            lo, hi = max(0, a - gap), min(len(views) - 1, a + gap)
            choices = [j for j in range(lo, hi + 1) if j != a]
        else:
            choices = [j for j in range(len(views)) if j != a]
        b = choices[int(g.integers(len(choices)))]
        if self.identity_fraction > 0 and g.random() < self.identity_fraction:
            b = a
        return int(views[a]), int(views[b])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        a, b = self.pair(index)
        batch = self.gather(torch.tensor([a]), torch.tensor([b]))
        return {k: v[0] for k, v in batch.items()}

    def gather(self, a: torch.Tensor, b: torch.Tensor, uint8: bool = False) -> dict[str, torch.Tensor]:
        """Batch of pairs (pool indices ``a`` -> ``b``): images in [-1, 1] and camera embeddings.

        ``uint8=True`` leaves the images as the pool's uint8 ``[0, 255]`` (a quarter of the
        bytes to pin and copy to the GPU); :func:`images_to_float` converts them later.
        """
        p = self.pool
        cam = C.camera_embedding(self.mode, p.c2w[a], p.c2w[b], p.scale[a], p.fov[b])
        if uint8:
            out = {"cond": p.images[a], "target": p.images[b], "cam": cam.float()}
        else:
            out = {"cond": to_unit_range(p.images[a]), "target": to_unit_range(p.images[b]), "cam": cam.float()}
        if p.latent_mean is not None and p.latent_std is not None:
            out.update(cond_latent=p.latent_mean[a], target_mean=p.latent_mean[b], target_std=p.latent_std[b])
        return out

    def prepare_vectorized(self) -> None:
        """Per-scene offsets into a scene-sorted index, for :class:`PairBatches`."""
        self.order = np.concatenate([v.numpy() for v in self.by_scene])
        counts = np.array([len(v) for v in self.by_scene], dtype=np.int64)
        self.counts = counts
        self.offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        gaps = self.scene_gaps.numpy().astype(np.int64)
        self.gap_arr = np.where(gaps > 0, gaps, self.gap)


def pairs_vectorized(ds: "PairDataset", rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random (a, b) pool indices of distinct views of one scene, honouring frame gaps."""
    scenes = np.asarray(ds.scenes)[rng.integers(len(ds.scenes), size=n)]
    offs, counts, gaps = ds.offsets[scenes], ds.counts[scenes], ds.gap_arr[scenes]
    a = (rng.random(n) * counts).astype(np.int64)
    # any pair: b = a + 1 + U{0..count-2} (mod count)
    b_any = (a + 1 + (rng.random(n) * (counts - 1)).astype(np.int64)) % counts
    # gap-limited: |b - a| in 1..gap, reflected at the ends of the sequence
    delta = 1 + (rng.random(n) * np.maximum(gaps, 1)).astype(np.int64)
    sign = np.where(rng.random(n) < 0.5, -1, 1)
    b_gap = a + sign * delta
    b_gap = np.where((b_gap < 0) | (b_gap >= counts), a - sign * delta, b_gap)
    b_gap = np.clip(b_gap, 0, counts - 1)
    b_gap = np.where(b_gap == a, b_any, b_gap)
    b = np.where(gaps > 0, b_gap, b_any)
    if ds.identity_fraction > 0:
        b = np.where(rng.random(n) < ds.identity_fraction, a, b)
    return ds.order[offs + a], ds.order[offs + b]


class PairBatches(Dataset):
    """Whole batches of pairs, built vectorised (item ``i`` is batch ``i``); the fast path.

    Equivalent in distribution to batching :class:`MixedPairDataset` items (each sample
    picks its source by weight, then a random pair), but one gather per batch instead of
    one Python call per sample - the data loader stops being the bottleneck on a GPU.
    ``uint8=True``: images stay uint8 (``nvs train`` sets it; the LightningModules convert
    them on the device in ``on_after_batch_transfer``, bit-identical to the float path).
    """

    def __init__(self, datasets: Sequence[PairDataset], weights: Sequence[float], batch_size: int,
                 num_batches: int, seed: int = 0, uint8: bool = False):
        self.mixed = MixedPairDataset(datasets, weights, length=num_batches, seed=seed)
        self.batch_size, self.num_batches, self.seed = int(batch_size), int(num_batches), int(seed)
        self.uint8 = bool(uint8)  # images as uint8 [0, 255]: see PairDataset.gather
        for ds in datasets:
            ds.prepare_vectorized()

    def __len__(self) -> int:
        return self.num_batches

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, 11, int(index)])
        u = rng.random(self.batch_size)
        which = np.minimum(np.searchsorted(self.mixed.cum.numpy(), u), len(self.mixed.datasets) - 1)
        parts = []
        for k, ds in enumerate(self.mixed.datasets):
            n = int((which == k).sum())
            if n:
                a, b = pairs_vectorized(ds, rng, n)
                parts.append(ds.gather(torch.from_numpy(a), torch.from_numpy(b), uint8=self.uint8))
        return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


class BatchOrder(Sampler[int]):
    """The :class:`PairBatches` indices one training process takes, in order; resumable.

    Batch ``i`` of a run is index ``i`` of the dataset (a function of the seed and ``i`` only).
    With ``W`` processes (DDP; rank and world size are read from ``torch.distributed`` when
    iterating, so the sampler also works after pickling for ``ddp_spawn``) rank ``r`` takes
    ``r, r + W, r + 2W, ...``: one step of the W ranks uses W distinct batches. Epoch ``e``
    continues at ``e x W x per_process``, so a batch never repeats. A resumed run passes
    ``start`` (the batches each process consumed in epoch ``start_epoch`` before the checkpoint):
    that epoch skips them, so the run sees exactly the batches an uninterrupted run would. The
    length stays a whole epoch (``per_process``), as Lightning, restoring its loop counters,
    counts the skipped batches as done.
    """

    def __init__(self, per_process: int, start: int = 0, start_epoch: int = 0):
        if per_process < 0 or start < 0 or start_epoch < 0:
            raise DatasetError("a batch order needs per_process, start and start_epoch >= 0")
        self.per_process, self.start, self.start_epoch = int(per_process), int(start), int(start_epoch)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:  # Lightning calls it before each epoch
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.per_process

    def indices(self, rank: int = 0, world: int = 1) -> list[int]:
        """The dataset indices process ``rank`` of ``world`` takes in the current epoch."""
        first = min(self.start, self.per_process) if self.epoch == self.start_epoch else 0
        base = self.epoch * self.per_process * world
        return [base + k * world + rank for k in range(first, self.per_process)]

    def __iter__(self):
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return iter(self.indices(dist.get_rank(), dist.get_world_size()))
        return iter(self.indices())


class MixedPairDataset(Dataset):
    """Several pair datasets mixed with weights (e.g. CO3D 0.34 / RE10K 0.33 / ACID 0.33)."""

    def __init__(self, datasets: Sequence[PairDataset], weights: Sequence[float], length: int, seed: int = 0):
        w = torch.tensor([float(x) for x in weights], dtype=torch.float64)
        if len(datasets) != len(w) or (w < 0).any() or w.sum() <= 0 or not torch.isfinite(w).all():
            raise DatasetError("data weights must be one non-negative number per data source, not all zero")
        self.datasets, self.cum = list(datasets), torch.cumsum(w / w.sum(), 0)
        self.length, self.seed = int(length), int(seed)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        u = np.random.default_rng([self.seed, 7, int(index)]).random()
        k = min(int(torch.searchsorted(self.cum, torch.tensor(u, dtype=torch.float64))), len(self.datasets) - 1)
        return self.datasets[k][index]
