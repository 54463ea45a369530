"""Render the bundled example photo (examples/scene.png) from a procedural scene never used in training.

    python scripts/make_example.py [--seed 3] [--size 256]
Writes examples/scene.png, examples/scene_depth.png (16-bit, millimetres) and
examples/scene_camera.json (the exact camera, OpenGL c2w, for evaluation).
"""

import argparse
import json
import math
from pathlib import Path

import torch

from novelviews import cameras as C
from novelviews.io.images import save_image
from PIL import Image

from novelviews.synth.generate import depth_to_png16
from novelviews.synth.render import render
from novelviews.synth.scenes import scene_from_seed

ap = argparse.ArgumentParser()
ap.add_argument("--seed", type=int, default=3)
ap.add_argument("--size", type=int, default=256)
ap.add_argument("--elevation", type=float, default=25.0)
ap.add_argument("--distance", type=float, default=3.2)
ap.add_argument("--fov", type=float, default=50.0)
ap.add_argument("--out", default="examples")
a = ap.parse_args()
out = Path(a.out)
scene = scene_from_seed(a.seed, "orbit")
c2w = C.camera_on_sphere(math.radians(a.elevation), 0.0, a.distance)[None]
K = C.intrinsics_from_fov(torch.tensor([math.radians(a.fov)]), a.size, a.size)
r = render(scene, c2w, K, a.size, a.size, spp=3)
save_image(out / "scene.png", r["rgb"][0].numpy())
Image.fromarray(depth_to_png16(r["depth"][0].numpy())).save(out / "scene_depth.png")
(out / "scene_camera.json").write_text(json.dumps(C.cameras_to_json(c2w, torch.tensor([math.radians(a.fov)]), a.size, a.size) | {"seed": a.seed, "family": "orbit"}, indent=2))
print("wrote", out)
