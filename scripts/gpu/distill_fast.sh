#!/usr/bin/env bash
# Device run (one GPU): the fused, memory-bounded distillation step.
#   1. tests/test_nerf_fast.py on CUDA: the Triton hash grid against the PyTorch encoding;
#   2. benchmarks/distill_step.py (speed, peak memory, profile of each schedule phase): the demo
#      model, and the ZeroNVS-size model with random weights at the defaults and with --low-memory.
# Results (JSON + logs) into $OUT.   OUT=... bash scripts/gpu/distill_fast.sh
# CPU smoke run: DEV=cpu SMALL=tiny-random BIG=tiny-random STEPS=1 PROFILE=0 OUT=/tmp/df \
#   EXTRA="schedule.batch_sizes=[2,1] field.grid.n_levels=8" bash scripts/gpu/distill_fast.sh
set -uo pipefail
DEV=${DEV:-cuda}
STEPS=${STEPS:-20}
PROFILE=${PROFILE:-2}
SMALL=${SMALL:-demo}
BIG=${BIG:-zeronvs-random}
OUT=${OUT:-runs/distill_fast}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ "$DEV" = cuda ]; then
  nvidia-smi -L
  timeout 240 python -m pytest -q -p no:cacheprovider tests/test_nerf_fast.py > "$OUT/test_nerf_fast.log" 2>&1
  echo "tests exit $?"; tail -n 3 "$OUT/test_nerf_fast.log"
fi
# $1 = result name, then distill_step.py arguments
bench() {
  local name=$1; shift
  # shellcheck disable=SC2086
  timeout "${TMO:-170}" python benchmarks/distill_step.py --device "$DEV" --steps "$STEPS" --warmup 3 \
      --profile "$PROFILE" --out "$OUT/$name.json" "$@" ${EXTRA:-} > "$OUT/$name.log" 2>&1
  echo "$name exit $?"; grep -E '^\{|^estimated' "$OUT/$name.log"
}
bench distill_step_demo --model "$SMALL"
bench distill_step_zeronvs --model "$BIG"
bench distill_step_zeronvs_lowmem --model "$BIG" --low-memory
