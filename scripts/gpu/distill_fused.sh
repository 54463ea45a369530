#!/usr/bin/env bash
# Device run (one GPU): the training render through torch.compile (render.compile=on) vs eager.
#   1. the CUDA tests of the fast paths (compiled render vs eager, Triton hash grid, occupancy grid);
#   2. benchmarks/distill_step.py, ZeroNVS-size model (random weights), render.compile=on, profiled
#      (kernels launched per step, device time per step, first-step time = compile);
#   3. a paired A/B on this machine (scripts/gpu/distill_step_ab.sh): render.compile=on vs the
#      defaults (off), REPEAT rounds. Packages installed outside the image (--target DIR): EXTRA_PATH=DIR.
# Results in $OUT (at most 8 files): distill_step_zeronvs.json, ab_summary.json, results.tar (logs,
# every A/B round's JSON).        OUT=... bash scripts/gpu/distill_fused.sh
# CPU smoke run: DEV=cpu MODEL=tiny-random STEPS=1 PROFILE=0 REPEAT=1 TESTS=0 \
#   EXTRA="phases.batch_sizes=[2,1] field.grid.n_levels=8" OUT=/tmp/dfu bash scripts/gpu/distill_fused.sh
set -uo pipefail
DEV=${DEV:-cuda}
MODEL=${MODEL:-zeronvs-random}
STEPS=${STEPS:-20}
PROFILE=${PROFILE:-2}
REPEAT=${REPEAT:-1}
TESTS=${TESTS:-1}
OUT=${OUT:-runs/distill_fused}
R=${R:-runs/dfu}
mkdir -p "$OUT" "$R"
OUT=$(cd "$OUT" && pwd)
export PYTHONUNBUFFERED=1
if [ "$TESTS" = 1 ]; then
  nvidia-smi -L
  timeout 200 python -m pytest -q -p no:cacheprovider tests/test_nerf_fast.py tests/test_occupancy.py > "$R/tests.log" 2>&1
  echo "tests exit $?"; tail -n 3 "$R/tests.log"
fi
# shellcheck disable=SC2086
timeout "${TMO:-200}" python benchmarks/distill_step.py --device "$DEV" --model "$MODEL" --steps "$STEPS" --warmup 3 \
    --profile "$PROFILE" --out "$OUT/distill_step_zeronvs.json" ${EXTRA:-} render.compile=on > "$R/distill_step_zeronvs.log" 2>&1
echo "distill_step exit $?"; grep -E '^\{|^estimated' "$R/distill_step_zeronvs.log"
grep -A 24 'Self CUDA' "$R/distill_step_zeronvs.log" | head -n 30
VARIANTS=$'fused|.|'"${EXTRA:-} render.compile=on"$'\neager|.|'"${EXTRA:-}" DEV=$DEV MODEL=$MODEL STEPS=$STEPS \
    REPEAT=$REPEAT OUT="$R/ab" TMO=${AB_TMO:-150} bash scripts/gpu/distill_step_ab.sh
cp "$R/ab/ab_summary.json" "$OUT/" 2>/dev/null
(cd "$R" && tar cf "$OUT/results.tar" ./*.log ab) 2>/dev/null
ls "$OUT"
