"""What ``nvs ui`` runs with: the server's :class:`UIConfig` and the page's controls, :class:`UISettings`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from .. import cameras as C
from ..sampling import SamplingConfig

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


@dataclass
class UIConfig:
    """``nvs ui``: the server and what its requests use (``--config`` / ``key=value`` like every command)."""

    model: str = "demo"  # 'demo' (bundled) or a checkpoint path, loaded once and shared by all requests
    device: str = "auto"
    host: str = DEFAULT_HOST  # interface to bind (default: this machine only)
    port: int = DEFAULT_PORT
    output_root: Optional[str] = None  # parent of the per-request run folders (default: a new temp folder)
    open_browser: bool = False
    # dotted overrides of the page's short distillation, e.g. ``distill.sampler.num_samples=32``
    # (checked at start-up against nerf.distill.DistillConfig)
    distill: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        from ..errors import ConfigError

        if not (0 < self.port < 65536):
            raise ConfigError(f"port {self.port} is not a TCP port: use 1-65535 (default {DEFAULT_PORT})")

    def distill_overrides(self) -> dict[str, Any]:
        """``distill`` as flat dotted keys, checked: an unknown key or bad value raises ConfigError."""
        from ..config import flatten_dotted, from_dict, renamed_keys
        from ..nerf.distill import DistillConfig

        data = renamed_keys(DistillConfig, self.distill, "distill")
        from_dict(DistillConfig, data, prefix="distill")
        return flatten_dotted(data)


@dataclass
class UISettings:
    """The page's controls. Angles in degrees; ``scale`` is the 6DoF+1 scene scale."""

    fov_deg: float = 52.55
    elevation_deg: float = 31.0
    scale: float = 0.7
    path: str = "orbit"
    num_views: int = 8
    steps: int = SamplingConfig.steps
    seed: int = 0

    def views_config(self, model: str = "demo", device: str = "auto"):
        """The :class:`~novelviews.views.ViewsConfig` of these settings (validated: bad values raise ConfigError)."""
        from ..config import from_dict
        from ..views import ViewsConfig

        if self.path not in C.PATH_KINDS:
            from ..errors import ConfigError

            raise ConfigError(f"path preset {self.path!r} is unknown: choose one of {', '.join(C.PATH_KINDS)}")
        return from_dict(ViewsConfig, {
            "model": model, "device": device,
            "camera": {"fov_deg": float(self.fov_deg), "elevation_deg": float(self.elevation_deg),
                       "scale": float(self.scale)},
            "path": {"kind": self.path, "num_views": int(self.num_views)},
            "sampling": {"steps": int(self.steps), "seed": int(self.seed)},
        })
