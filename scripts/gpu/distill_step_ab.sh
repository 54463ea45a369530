#!/usr/bin/env bash
# Device run (one GPU): paired A/B of the distillation step on one machine - variants run in
# turn, REPEAT rounds, each a benchmarks/distill_step.py run (no profile) of the same model.
# A variant is "name|tree|overrides": tree is a source tree holding src/ and benchmarks/ (e.g. an
# exported older commit: git archive REV src benchmarks | tar -x -C .ab/NAME; "." = this checkout).
#   VARIANTS=$'new|.|\nold|.ab/old|\nno_occupancy|.|occupancy.enabled=false' OUT=... bash scripts/gpu/distill_step_ab.sh
# Writes $OUT/ab_<name>_<round>.json and $OUT/ab_summary.json (ms per step of each phase: mean and
# standard error over the rounds, estimated minutes per 4000-step run).
set -uo pipefail
DEV=${DEV:-cuda}
MODEL=${MODEL:-zeronvs-random}
STEPS=${STEPS:-20}
REPEAT=${REPEAT:-2}
OUT=${OUT:-runs/distill_step_ab}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export PYTHONUNBUFFERED=1
here=$PWD
for round in $(seq 1 "$REPEAT"); do
  while IFS='|' read -r name tree overrides; do
    [ -z "$name" ] && continue
    tree_abs=$(cd "$here/$tree" && pwd)
    # shellcheck disable=SC2086
    (cd "$tree_abs" && PYTHONPATH="$tree_abs/src:${EXTRA_PATH:-}" timeout "${TMO:-150}" python benchmarks/distill_step.py \
        --device "$DEV" --model "$MODEL" --steps "$STEPS" --warmup 3 --profile 0 \
        --out "$OUT/ab_${name}_${round}.json" $overrides > "$OUT/ab_${name}_${round}.log" 2>&1)
    echo "$name round $round exit $?: $(grep -h '^estimated' "$OUT/ab_${name}_${round}.log")"
  done <<< "$VARIANTS"
done
python - "$OUT" <<'PY'
import json, math, sys
from collections import defaultdict
from pathlib import Path
out = Path(sys.argv[1])
runs = defaultdict(list)
for p in sorted(out.glob("ab_*_*.json")):
    if p.name == "ab_summary.json":
        continue
    name = p.stem[3:].rsplit("_", 1)[0]
    runs[name].append(json.loads(p.read_text()))
def stats(xs):
    m = sum(xs) / len(xs)
    se = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1) / len(xs)) if len(xs) > 1 else None
    return {"mean": round(m, 2), "se": None if se is None else round(se, 2), "n": len(xs)}
summary = {}
for name, rs in runs.items():
    summary[name] = {"overrides": rs[0]["overrides"], "gpu": rs[0]["gpu"],
                     "estimated_run_minutes": stats([r["estimated_run_minutes"] for r in rs]),
                     "phases": [{"ms_per_step": stats([r["phases"][i]["ms_per_step"] for r in rs]),
                                 "peak_memory_gb": max(r["phases"][i].get("peak_memory_gb") or 0 for r in rs)}
                                for i in range(len(rs[0]["phases"]))]}
    print(name, json.dumps(summary[name]["estimated_run_minutes"]), [p["ms_per_step"]["mean"] for p in summary[name]["phases"]])
(out / "ab_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
PY
