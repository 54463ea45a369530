"""Render a training pool of procedural scenes within a time budget (GPU), save it as .pt.

    python scripts/gpu/make_pool.py OUT.pt --size 128 --views 16 --seconds 90 --max-scenes 4000
Scene i has seed SEED + i (training seeds start at 10000; evaluation uses seeds < 10000).
    python scripts/gpu/make_pool.py OUT.pt --cat A.pt B.pt      # concatenate saved pools instead
    python scripts/gpu/make_pool.py OUT.pt --procs 12 --seconds 100 --seed 20000 --max-scenes 2000
        # 12 renderer processes on the visible GPU at once (the renderer is launch-bound, so one
        # process leaves the GPU mostly idle); process k renders seeds SEED + k * MAX_SCENES onwards
    python scripts/gpu/make_pool.py OUT.pt --arc-fraction 0.5    # half the orbits on arcs (2026-11-26)
    python scripts/gpu/make_pool.py OUT.pt --photos runs/photos --views 8 --seconds 60 --seed 0
        # photo-plane scenes of the photographs in a folder instead (scripts/build_photo_pool.py
        # --export-photos writes one; novelviews.train.data.pool_from_photo_planes)
    python scripts/gpu/make_pool.py OUT.pt --photo-textures runs/photos --photo-share 0.5 --arc-fraction 0.5
        # procedural scenes whose materials are photographs with probability 0.5 (triplanar-mapped;
        # novelviews.synth.scenes.photo_textures)
"""

import argparse
import os
import subprocess
import sys
import time

from novelviews.runtime import resolve_device
from novelviews.synth.scenes import CameraRanges
from novelviews.synth.photos import load_photo_folder
from novelviews.train.data import ViewPool, pool_from_photo_planes, pool_from_synth

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--size", type=int, default=128)
ap.add_argument("--views", type=int, default=16)
ap.add_argument("--seconds", type=float, default=90)
ap.add_argument("--max-scenes", type=int, default=4000)
ap.add_argument("--seed", type=int, default=10_000)
ap.add_argument("--spp", type=int, default=2)
ap.add_argument("--chunk", type=int, default=50)
ap.add_argument("--cat", nargs="+", default=None, metavar="POOL.pt", help="concatenate these pools, render nothing")
ap.add_argument("--arc-fraction", type=float, default=0.0,
                help="share of orbit scenes whose views lie on an arc (many small azimuth offsets; CameraRanges)")
ap.add_argument("--procs", type=int, default=1, help="renderer processes in parallel (seed ranges of MAX_SCENES each)")
ap.add_argument("--photos", default=None, metavar="DIR", help="render photo-plane scenes of the photos in DIR")
ap.add_argument("--photo-max-side", type=int, default=512, help="photos are shrunk to this longer side first")
ap.add_argument("--cards", type=int, nargs=2, default=(0, 3), metavar=("LO", "HI"), help="cards per photo-plane scene")
ap.add_argument("--near-fraction", type=float, default=0.5, help="photo planes: share of views within 10 deg of the input")
ap.add_argument("--max-deg", type=float, default=40.0, help="photo planes: largest azimuth offset of a view")
ap.add_argument("--photo-textures", default=None, metavar="DIR",
                help="procedural scenes textured with the photos in DIR (a share of their materials)")
ap.add_argument("--photo-share", type=float, default=0.5, help="photo textures: share of materials that are photos")
ap.add_argument("--textures-per-scene", type=int, default=4, help="photo textures cut per scene")
a = ap.parse_args()
if a.photos is not None and a.photo_textures is not None:
    raise SystemExit("--photos (photo-plane scenes) and --photo-textures (textured procedural scenes) exclude each other")


def merge(files: list[str], out: str) -> ViewPool:
    pool = ViewPool.cat([ViewPool.load(f) for f in files])
    pool.save(out)
    return pool


photo_args = [] if a.photos is None else [
    "--photos", a.photos, "--photo-max-side", str(a.photo_max_side), "--cards", *map(str, a.cards),
    "--near-fraction", str(a.near_fraction), "--max-deg", str(a.max_deg)]
if a.photo_textures is not None:
    photo_args += ["--photo-textures", a.photo_textures, "--photo-share", str(a.photo_share),
                   "--photo-max-side", str(a.photo_max_side), "--textures-per-scene", str(a.textures_per_scene)]
if a.procs > 1:
    t0 = time.time()
    parts = [f"{a.out}.part{k}.pt" for k in range(a.procs)]
    children = [subprocess.Popen([sys.executable, __file__, part, "--size", str(a.size), "--views", str(a.views),
                                  "--seconds", str(a.seconds), "--max-scenes", str(a.max_scenes),
                                  "--seed", str(a.seed + k * a.max_scenes), "--spp", str(a.spp),
                                  "--chunk", str(a.chunk), "--arc-fraction", str(a.arc_fraction),
                                  *photo_args], env=dict(os.environ, OMP_NUM_THREADS="1"))
                for k, part in enumerate(parts)]
    codes = [c.wait() for c in children]
    done = [p for p, c in zip(parts, codes) if c == 0 and os.path.exists(p)]
    if not done:
        raise SystemExit(f"no renderer process finished (exit codes {codes})")
    pool = merge(done, a.out)
    for p in done:
        os.remove(p)
    print(f"pool: {pool.num_scenes} scenes, {len(pool)} views at {a.size}px from {len(done)}/{a.procs} processes "
          f"in {time.time() - t0:.1f} s (exit codes {codes})")
    raise SystemExit(0)
if a.cat:
    pool = merge(a.cat, a.out)
    print(f"merged pool: {pool.num_scenes} scenes, {len(pool)} views -> {a.out}")
    raise SystemExit(0)
dev = str(resolve_device("auto"))
t0, pools, n = time.time(), [], 0
if a.photos is not None:
    photos, _ = load_photo_folder(a.photos, max_side=a.photo_max_side)
textures = None if a.photo_textures is None else load_photo_folder(a.photo_textures, max_side=a.photo_max_side)[0]
while n < a.max_scenes and time.time() - t0 < a.seconds:
    k = min(a.chunk, a.max_scenes - n)
    if a.photos is not None:
        pools.append(pool_from_photo_planes(photos, k, a.views, a.size, seed=a.seed + n, device=dev, spp=a.spp,
                                            n_cards=tuple(a.cards), near_fraction=a.near_fraction,
                                            max_deg=a.max_deg, progress=False))
    else:
        pools.append(pool_from_synth(k, a.views, a.size, seed=a.seed + n, family="mixed", device=dev, spp=a.spp,
                                     progress=False, ranges=CameraRanges(arc_fraction=a.arc_fraction),
                                     photos=textures, photo_share=a.photo_share,
                                     textures_per_scene=a.textures_per_scene))
    n += k
    print(f"{n} scenes, {time.time() - t0:.1f} s", flush=True)
pool = ViewPool.cat(pools)
pool.save(a.out)
print(f"pool: {pool.num_scenes} scenes, {len(pool)} views at {a.size}px in {time.time() - t0:.1f} s on {dev}")
