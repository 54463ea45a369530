"""The page's drawing of the cameras: input and generated frusta from above and from the side (PIL)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .. import cameras as C

INPUT_COLOR = (220, 40, 40)
TARGET_COLOR = (40, 90, 220)
PANEL_AXES = {"top": (0, 1), "side": (0, 2)}
"""world axes drawn in each panel: top = looking down -z (x right, y up); side = looking along +y (x right, z up)"""


@dataclass
class PanelMap:
    """Maps world points of one panel to pixels: ``u = x0 + s * (p[a] - c[a])``, ``v = y0 - s * (p[b] - c[b])``."""

    axes: tuple[int, int]
    center: tuple[float, float]
    scale: float
    origin: tuple[float, float]

    def __call__(self, p) -> tuple[float, float]:
        a, b = self.axes
        return (self.origin[0] + self.scale * (float(p[a]) - self.center[0]),
                self.origin[1] - self.scale * (float(p[b]) - self.center[1]))


def _frustum(c2w: torch.Tensor, fov: float, depth: float) -> list[np.ndarray]:
    """Camera centre and the 4 image-plane corners at ``depth`` along -z (OpenGL), world coordinates."""
    c2w = c2w.double()
    h = math.tan(fov / 2) * depth
    corners = [(-h, -h), (h, -h), (h, h), (-h, h)]
    pts = [c2w[:3, 3].numpy()]
    for x, y in corners:
        pts.append((c2w[:3, :3] @ torch.tensor([x, y, -depth], dtype=torch.float64) + c2w[:3, 3]).numpy())
    return pts


def camera_figure(input_c2w, targets, fovs, input_fov: float, size: int = 320
                  ) -> tuple[np.ndarray, dict[str, PanelMap]]:
    """Draw the input (red) and generated (blue) camera frusta, top-down and side views, with PIL.

    ``input_c2w`` [4, 4] and ``targets`` [N, 4, 4]: OpenGL cam2world, z-up world; ``fovs``:
    vertical fov (radians) per target. Returns ``(uint8 image [size, 2*size, 3], panel maps)``;
    the left panel is the top view (x, y), the right the side view (x, z). The world origin
    (the orbit centre) is a grey cross.
    """
    from PIL import Image, ImageDraw

    input_c2w = C.validate_poses(input_c2w, "input camera")[0]
    targets = C.validate_poses(targets, "target camera")
    fovs = torch.as_tensor(fovs, dtype=torch.float64).expand(targets.shape[0])
    centres = torch.cat([input_c2w[None, :3, 3], targets[:, :3, 3], torch.zeros(1, 3, dtype=torch.float64)])
    extent = float((centres.max(0).values - centres.min(0).values).max()) or 1.0
    depth = 0.18 * max(extent, 0.2)
    frusta = [(_frustum(input_c2w, input_fov, depth), INPUT_COLOR, 3)]
    n = targets.shape[0]
    frusta = [(_frustum(targets[i], float(fovs[i]), depth), TARGET_COLOR, 1) for i in range(n)] + frusta
    allpts = np.concatenate([np.stack(f[0]) for f in frusta] + [np.zeros((1, 3))])

    img = Image.new("RGB", (2 * size, size), (250, 250, 250))
    draw = ImageDraw.Draw(img)
    maps: dict[str, PanelMap] = {}
    for k, (name, axes) in enumerate(PANEL_AXES.items()):
        a, b = axes
        lo, hi = allpts[:, [a, b]].min(0), allpts[:, [a, b]].max(0)
        span = float(max(hi - lo).max()) or 1.0
        s = (size - 40) / span
        m = PanelMap(axes, (float((lo[0] + hi[0]) / 2), float((lo[1] + hi[1]) / 2)), s,
                     (k * size + size / 2, size / 2 + 6))
        maps[name] = m
        draw.rectangle([k * size + 1, 1, (k + 1) * size - 2, size - 2], outline=(200, 200, 200))
        label = f"{name} view: x right, {'xyz'[b]} up" + ("  (red = input, blue = generated)" if k == 0 else "")
        draw.text((k * size + 8, 4), label, fill=(60, 60, 60))
        ox, oy = m(np.zeros(3))
        draw.line([ox - 6, oy, ox + 6, oy], fill=(150, 150, 150))
        draw.line([ox, oy - 6, ox, oy + 6], fill=(150, 150, 150))
        for pts, color, width in frusta:
            px = [m(p) for p in pts]
            for c in px[1:]:
                draw.line([px[0], c], fill=color, width=width)
            draw.line(px[1:] + [px[1]], fill=color, width=width)
            r = 2 + width
            draw.ellipse([px[0][0] - r, px[0][1] - r, px[0][0] + r, px[0][1] + r], fill=color)
    return np.asarray(img), maps
