"""Which frames of a posed scene are held out and which are their inputs (every:K, list:..., loo)."""

from __future__ import annotations

from dataclasses import dataclass


from ..errors import ConfigError, DatasetError


# --------------------------------------------------------------------------- holdout


@dataclass
class HoldoutGroup:
    """Targets generated from the same input set; indices are positions in the scene."""

    targets: list[int]
    inputs: list[int]


def holdout_spec(spec: str) -> tuple[str, object]:
    """Check the syntax of a holdout spec: ``("every", K)``, ``("list", [i, ...])`` or ``("loo", None)``."""
    spec = spec.strip()
    if spec == "loo":
        return "loo", None
    kind, _, arg = spec.partition(":")
    if kind == "every":
        try:
            K = int(arg)
        except ValueError:
            K = 0
        if K < 2:
            raise ConfigError(f"holdout '{spec}': every:K needs an integer K >= 2 (e.g. every:8)")
        return "every", K
    if kind == "list":
        try:
            raw = [int(x) for x in arg.replace(" ", "").split(",") if x != ""]
        except ValueError:
            raw = []
        if not raw:
            raise ConfigError(f"holdout '{spec}': list needs comma-separated view indices, e.g. list:0,5,9")
        return "list", raw
    raise ConfigError(f"holdout '{spec}' is not understood: use every:K, list:i,j,... or loo")


def parse_holdout(spec: str, n: int) -> list[HoldoutGroup]:
    """Split ``n`` views into held-out targets and the inputs they are generated from.

    ``every:K``: views ``0, K, 2K, ...`` are held out, all others are inputs;
    ``list:0,5,9``: those views are held out (negative indices count from the end);
    ``loo``: every view in turn, from all the others (one group per view). A target is
    never among its own inputs.
    """
    kind, arg = holdout_spec(spec)
    if n < 2:
        raise DatasetError(f"evaluation needs at least 2 readable views (one to hold out, one input), got {n}")
    if kind == "loo":
        return [HoldoutGroup([i], [j for j in range(n) if j != i]) for i in range(n)]
    if kind == "every":
        targets = list(range(0, n, arg))
    else:
        bad = [i for i in arg if not -n <= i < n]
        if bad:
            raise ConfigError(f"holdout '{spec}': indices {bad} are out of range for {n} views (0..{n - 1})")
        targets = sorted({i % n for i in arg})
    inputs = [i for i in range(n) if i not in set(targets)]
    if not inputs:
        raise ConfigError(f"holdout '{spec}' holds out all {n} views: keep at least one input")
    return [HoldoutGroup(targets, inputs)]
