"""Camera paths around one input camera (orbit, spiral, zoom, pan, dolly, wiggle): ``make_path``."""

from __future__ import annotations

import math

import torch

from ..errors import CameraError
from .poses import look_at, to_tensor, validate_poses

PATH_KINDS = ("orbit", "spiral", "zoom", "pan", "dolly", "wiggle")


def _rotation_about(axis, angle) -> torch.Tensor:
    """Rodrigues rotation matrices ``[..., 3, 3]`` about a unit axis by angles (radians)."""
    axis = to_tensor(axis)
    axis = axis / axis.norm()
    angle = to_tensor(angle)
    x, y, z = axis
    Kx = torch.tensor([[0, -z, y], [z, 0, -x], [-y, x, 0]], dtype=torch.float64)
    s = torch.sin(angle)[..., None, None]
    c = torch.cos(angle)[..., None, None]
    return torch.eye(3, dtype=torch.float64) + s * Kx + (1 - c) * (Kx @ Kx)


def make_path(kind: str, input_c2w, fov, num_views: int, focus_distance: float = 1.0,
              up=None, amount: float | None = None, loop: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """A camera path around one input camera; view 0 reproduces the input exactly.

    ``input_c2w``: OpenGL c2w ``[4, 4]``; ``fov``: vertical fov (radians) of the input;
    ``focus_distance``: distance from the camera to the point it orbits / looks at (the
    focus point is ``focus_distance`` along the optical axis); ``up``: orbit axis (world
    vector), default the input camera's own up axis; ``amount``: the kind's strength
    (defaults below). Returns ``(c2w [N, 4, 4], fov [N])``.

    * ``orbit``  - rotate about the focus point around ``up`` by ``amount`` degrees in total
      (default 360).
    * ``spiral`` - circle of radius ``amount * focus_distance`` (default 0.25) in the image
      plane plus a forward/back motion, always looking at the focus point (LLFF-style).
    * ``zoom``   - same pose, fov narrowed to fov / ``amount`` (default 2) and back if ``loop``.
    * ``dolly``  - move along the optical axis by ``amount * focus_distance`` (default 0.5)
      toward the focus point (and back if ``loop``).
    * ``pan``    - rotate the camera in place about ``up`` by +-``amount`` degrees (default 30).
    * ``wiggle`` - small circle (radius ``amount * focus_distance``, default 0.05) in the
      image plane while looking at the focus point.
    """
    if kind not in PATH_KINDS:
        raise CameraError(f"unknown camera path '{kind}': choose one of {', '.join(PATH_KINDS)} or a JSON file")
    if num_views < 1:
        raise CameraError(f"num_views must be >= 1, got {num_views}")
    if not (focus_distance > 0 and math.isfinite(focus_distance)):
        raise CameraError(f"focus distance must be a positive number, got {focus_distance}")
    c2w = validate_poses(input_c2w, "input camera")[0]
    fov = float(fov)
    n = num_views
    # phase in [0, 1): view 0 at phase 0; a looping path does not repeat the start at the end
    phase = torch.arange(n, dtype=torch.float64) / (n if loop else max(n - 1, 1))
    R, centre = c2w[:3, :3], c2w[:3, 3]
    right, cam_up, back = R[:, 0], R[:, 1], R[:, 2]
    focus = centre - back * focus_distance
    axis = cam_up if up is None else to_tensor(up) / to_tensor(up).norm()
    fovs = torch.full((n,), fov, dtype=torch.float64)
    out = c2w.expand(n, 4, 4).clone()

    if kind in ("orbit", "pan"):
        deg = (360.0 if kind == "orbit" else 30.0) if amount is None else amount
        if kind == "orbit":
            angles = phase * math.radians(deg)
        else:
            angles = torch.sin(2 * math.pi * phase) * math.radians(deg)
        Rot = _rotation_about(axis, angles)  # [n, 3, 3]
        out[:, :3, :3] = Rot @ R
        if kind == "orbit":
            out[:, :3, 3] = (Rot @ (centre - focus)) + focus
    elif kind in ("spiral", "wiggle"):
        a = (0.25 if kind == "spiral" else 0.05) if amount is None else amount
        r = a * focus_distance
        ang = 2 * math.pi * phase
        # offsets vanish at phase 0 so view 0 is the input
        dx = r * torch.sin(ang)
        dy = r * (1 - torch.cos(ang)) * 0.5
        dz = (r * 0.5 * torch.sin(ang / 2) ** 2) if kind == "spiral" else torch.zeros_like(ang)
        eyes = centre + dx[:, None] * right + dy[:, None] * cam_up - dz[:, None] * back
        out = look_at(eyes, focus.expand_as(eyes), cam_up.expand_as(eyes))
        out[0] = c2w
    elif kind == "dolly":
        a = 0.5 if amount is None else amount
        prof = torch.sin(math.pi * phase) if loop else phase
        out[:, :3, 3] = centre - (a * focus_distance * prof)[:, None] * back
    elif kind == "zoom":
        a = 2.0 if amount is None else amount
        if a <= 0:
            raise CameraError(f"zoom amount must be positive, got {a}")
        prof = torch.sin(math.pi * phase) if loop else phase
        factor = 1.0 + (a - 1.0) * prof
        fovs = 2 * torch.atan(math.tan(fov / 2) / factor)
    return out, fovs
