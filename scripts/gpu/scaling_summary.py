"""Summarise the runs of scripts/gpu/ddp_scaling.sh: throughput, scaling efficiency, loss curves.

    python scripts/gpu/scaling_summary.py RUN PRESET OUT.json

Reads ``RUN/<PRESET>_<n>gpu/train_summary.json`` and ``logs/metrics.csv`` of every n found and
writes OUT.json: per run the samples/s (effective batch), samples/s per device, peak memory and
steps; the scaling efficiency ``samples/s(n) / (n x samples/s(1))``; and the training loss
averaged over bins of ``--bin`` steps on the common step range (the curves side by side).
A PNG of the curves is written beside OUT.json when matplotlib imports.
"""

import argparse
import csv
import json
import math
import re
from pathlib import Path


def loss_by_step(path: Path) -> dict[int, float]:
    out: dict[int, float] = {}
    if not path.exists():
        return out
    with path.open() as f:
        for row in csv.DictReader(f):
            v = row.get("train/loss") or ""
            if v and row.get("step", "") != "":
                out[int(float(row["step"]))] = float(v)
    return out


def binned(curve: dict[int, float], last: int, width: int) -> list[tuple[int, float]]:
    rows = []
    for lo in range(0, last, width):
        vals = [v for s, v in curve.items() if lo <= s < lo + width]
        if vals:
            rows.append((lo + width // 2, sum(vals) / len(vals)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("preset")
    ap.add_argument("out")
    ap.add_argument("--bin", type=int, default=0, help="steps per loss bin (0: 1/20 of the common range)")
    a = ap.parse_args()
    runs = {}
    for d in sorted(Path(a.run).glob(f"{a.preset}_*gpu")):
        m = re.fullmatch(rf"{re.escape(a.preset)}_(\d+)gpu", d.name)
        if not m or not (d / "train_summary.json").exists():
            continue
        info = json.loads((d / "train_summary.json").read_text())
        runs[int(m.group(1))] = {"summary": info, "loss": loss_by_step(d / "logs" / "metrics.csv")}
    if not runs:
        raise SystemExit(f"no finished runs {a.preset}_*gpu under {a.run}")
    result = {"preset": a.preset, "runs": {}}
    base = runs.get(1, {}).get("summary", {}).get("samples_per_s")
    for n, r in sorted(runs.items()):
        s = r["summary"]
        row = {k: s.get(k) for k in ("steps", "world_size", "steps_per_s", "samples_per_s", "samples_per_s_per_device",
                                     "peak_memory_gib", "train_seconds", "timed_steps")}
        if base and s.get("samples_per_s"):
            row["scaling_efficiency"] = round(s["samples_per_s"] / (n * base), 4)
        result["runs"][str(n)] = row
    common = min(max(r["loss"]) for r in runs.values() if r["loss"]) if all(r["loss"] for r in runs.values()) else 0
    width = a.bin or max(1, common // 20)
    result["loss_bin_steps"] = width
    result["loss_bins"] = {str(n): [(s, round(v, 5)) for s, v in binned(r["loss"], common + 1, width)]
                           for n, r in sorted(runs.items())}
    result["common_steps"] = common
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "loss_bins"}, indent=2))
    for n, rows in result["loss_bins"].items():
        print(f"{n} device(s) loss by {width}-step bin: " + " ".join(f"{v:.4f}" for _, v in rows))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    for n, r in sorted(runs.items()):
        steps = sorted(s for s in r["loss"] if s <= common)
        ax.plot(steps, [r["loss"][s] for s in steps], alpha=0.25, lw=0.8, color=f"C{n}")
        pts = result["loss_bins"][str(n)]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=2, color=f"C{n}", label=f"{n} GPU(s)")
    ax.set_xlabel("optimizer step (same effective batch)")
    ax.set_ylabel("training loss (eps MSE)")
    ax.set_title(f"{a.preset}: 1 vs N GPUs")
    ax.legend()
    if not any(math.isnan(v) for r in runs.values() for v in r["loss"].values()):
        fig.tight_layout()
    fig.savefig(out.with_suffix(".png"))


if __name__ == "__main__":
    main()
