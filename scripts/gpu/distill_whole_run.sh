#!/usr/bin/env bash
# Device run (one GPU): one whole, uncut `nvs distill` run timed end to end - model set-up, SDS
# anchors, 4000 steps, previews, checkpoints, orbit and depth videos - with the ZeroNVS-size
# architecture (random weights: speed and memory do not depend on the values).
# Writes $OUT/distill_whole_run.json (wall seconds, the run's info.json) and $OUT/metrics.csv.
#   OUT=... bash scripts/gpu/distill_whole_run.sh
#   CPU smoke run: DEV=cpu MODEL=tiny-random STEPS=4 ARGS="phases.batch_sizes=[1,1] field.grid.n_levels=4 \
#     output.video_frames=2 anchors.steps=2" OUT=/tmp/dw bash scripts/gpu/distill_whole_run.sh
set -uo pipefail
DEV=${DEV:-cuda}
MODEL=${MODEL:-zeronvs-random}
STEPS=${STEPS:-4000}
ANCHORS=${ANCHORS:-4}
OUT=${OUT:-runs/distill_whole_run}
R=${R:-runs/dw}
mkdir -p "$OUT"
rm -rf "$R"
export PYTHONUNBUFFERED=1
[ "$DEV" = cuda ] && nvidia-smi -L
t0=$(date +%s.%N)
# shellcheck disable=SC2086
timeout "${TMO:-585}" python -m novelviews distill examples/scene.png --out "$R" --model "$MODEL" --device "$DEV" \
    --steps "$STEPS" --anchors "$ANCHORS" --quiet ${ARGS:-} > "$OUT/distill.log" 2>&1
rc=$?
t1=$(date +%s.%N)
echo "nvs distill exit $rc"; tail -n 5 "$OUT/distill.log"
python - "$R" "$OUT" "$t0" "$t1" "$rc" "$MODEL" "$STEPS" "$ANCHORS" <<'PY'
import json, sys, time
from pathlib import Path
r, out = Path(sys.argv[1]), Path(sys.argv[2])
t0, t1, rc = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
res = {"command": f"nvs distill examples/scene.png --model {sys.argv[6]} --steps {sys.argv[7]} --anchors {sys.argv[8]}",
       "date": time.strftime("%Y-%m-%d"), "exit_status": rc, "wall_seconds": round(t1 - t0, 2),
       "wall_minutes": round((t1 - t0) / 60, 2)}
try:
    import torch
    res["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
except Exception:
    pass
info = r / "info.json"
if info.exists():
    res["info"] = json.loads(info.read_text())
if (r / "metrics.csv").exists():
    (out / "metrics.csv").write_text((r / "metrics.csv").read_text())
(out / "distill_whole_run.json").write_text(json.dumps(res, indent=2) + "\n")
print(json.dumps({k: v for k, v in res.items() if k != "info"}))
PY
