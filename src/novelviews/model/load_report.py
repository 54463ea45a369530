"""What loading a checkpoint found: missing, unexpected and mis-shaped keys, the weights used."""

from __future__ import annotations

from dataclasses import dataclass, field




# --------------------------------------------------------------------------- report


@dataclass
class LoadReport:
    """What a load did, key by key.

    ``missing``: weights the model needs that the checkpoint lacks; ``unexpected``:
    checkpoint weights nothing consumed; ``mismatched``: ``"name: checkpoint (shape) vs
    model (shape)"``; ``ignored``: known non-weights skipped on purpose (optimizer state,
    CLIP text-tower leftovers, schedule buffers...); ``warnings``: things to know.
    """

    source: str
    format: str
    camera_mode: str = ""
    used_ema: bool | None = None
    loaded: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.mismatched

    def summary(self, max_names: int | None = None) -> str:
        """Human-readable report; every key is listed unless ``max_names`` caps each list."""
        lines = [f"loaded {self.loaded} tensors from {self.source} ({self.format})"]
        if self.camera_mode:
            lines.append(f"camera mode: {self.camera_mode}")
        if self.used_ema is not None:
            lines.append("UNet weights: " + ("EMA" if self.used_ema else "raw (non-EMA)"))
        for title, names in (
            ("missing", self.missing),
            ("mis-shaped", self.mismatched),
            ("unexpected (not used)", self.unexpected),
            ("ignored", self.ignored),
        ):
            if not names:
                continue
            lines.append(f"{title}: {len(names)}")
            shown = names if max_names is None else names[:max_names]
            lines += [f"  {n}" for n in shown]
            if len(shown) < len(names):
                lines.append(f"  ... and {len(names) - len(shown)} more")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def first_names(names: list[str], n: int = 8) -> str:
    s = ", ".join(names[:n])
    return s + (f" (and {len(names) - n} more)" if len(names) > n else "")
