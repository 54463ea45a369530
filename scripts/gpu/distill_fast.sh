#!/usr/bin/env bash
# Device run (one GPU): the fused, memory-bounded distillation step, in one call.
#   1. the CUDA tests of the fast paths (Triton hash grid vs the PyTorch encoding, occupancy grid);
#   2. benchmarks/hash_grid.py: the encoding alone, PyTorch vs the Triton kernels (backward with and
#      without summing runs of points in one cell), on uniform and surface-crowded samples;
#   3. benchmarks/distill_step.py (speed, peak memory, samples per ray, profile of each phase): the
#      demo model, the ZeroNVS-size model (random weights) at the defaults and with --low-memory;
#      (BENCHES="demo zeronvs lowmem" picks them; TESTS=0 skips steps 1-2);
#   REF=1: the ZeroNVS-size step on the plain PyTorch path too (--reference-path, REF_STEPS timed steps);
#   4. PAIRS=1: paired whole runs of benchmarks/distill.py with the demo model, the fast defaults vs
#      --reference-path, seeds 0 and 1, all four at once (held-out PSNR / SSIM; PAIR_STEPS steps).
# Results: $OUT/*.json and $OUT/results.tar (logs).   OUT=... bash scripts/gpu/distill_fast.sh
# CPU smoke run: DEV=cpu SMALL=tiny-random BIG=tiny-random STEPS=1 PROFILE=0 OUT=/tmp/df PAIRS=1 PAIR_STEPS=2 \
#   PAIR_ARGS="--preset tiny" EXTRA="phases.batch_sizes=[2,1] field.grid.n_levels=8" bash scripts/gpu/distill_fast.sh
set -uo pipefail
DEV=${DEV:-cuda}
STEPS=${STEPS:-20}
PROFILE=${PROFILE:-2}
SMALL=${SMALL:-demo}
BIG=${BIG:-zeronvs-random}
PAIRS=${PAIRS:-0}
BENCHES=${BENCHES:-demo zeronvs lowmem}  # which distill_step.py runs of step 3
TESTS=${TESTS:-1}
PAIR_STEPS=${PAIR_STEPS:-600}
OUT=${OUT:-runs/distill_fast}
R=${R:-runs/df}
mkdir -p "$OUT" "$R"
OUT=$(cd "$OUT" && pwd)
export PYTHONUNBUFFERED=1
if [ "$DEV" = cuda ] && [ "$TESTS" = 1 ]; then
  nvidia-smi -L
  timeout 240 python -m pytest -q -p no:cacheprovider tests/test_nerf_fast.py tests/test_occupancy.py \
      > "$R/tests.log" 2>&1
  echo "tests exit $?"; tail -n 3 "$R/tests.log"
  timeout 120 python benchmarks/hash_grid.py --out "$OUT/hash_grid.json" > "$R/hash_grid.log" 2>&1
  echo "hash_grid exit $?"; cat "$R/hash_grid.log"
fi
# $1 = result name, then distill_step.py arguments
bench() {
  local name=$1; shift
  # shellcheck disable=SC2086
  timeout "${TMO:-170}" python benchmarks/distill_step.py --device "$DEV" --steps "$STEPS" --warmup 3 \
      --profile "$PROFILE" --out "$OUT/$name.json" "$@" ${EXTRA:-} > "$R/$name.log" 2>&1
  echo "$name exit $?"; grep -E '^\{|^estimated' "$R/$name.log"
}
case " $BENCHES " in *" demo "*) bench distill_step_demo --model "$SMALL";; esac
case " $BENCHES " in *" zeronvs "*) bench distill_step_zeronvs --model "$BIG";; esac
case " $BENCHES " in *" lowmem "*) bench distill_step_zeronvs_lowmem --model "$BIG" --low-memory;; esac
[ "${REF:-0}" = 1 ] && STEPS=${REF_STEPS:-10} PROFILE=0 bench distill_step_zeronvs_reference --model "$BIG" --reference-path
if [ "$PAIRS" = 1 ]; then
  for seed in 0 1; do
    for path in fast reference; do
      flag=""; [ "$path" = reference ] && flag="--reference-path"
      # shellcheck disable=SC2086
      timeout "${PAIR_TMO:-300}" python benchmarks/distill.py --device "$DEV" --model "$SMALL" --anchors 0 \
          --steps "$PAIR_STEPS" --budget-seconds "${PAIR_BUDGET:-270}" --out "$R/pair_${path}_$seed" $flag \
          ${PAIR_ARGS:-} "seed=$seed" > "$R/pair_${path}_$seed.log" 2>&1 &
    done
  done
  wait
  python - "$R" "$OUT/distill_pairs.json" <<'PY'
import json, sys
from pathlib import Path
r, out = Path(sys.argv[1]), Path(sys.argv[2])
res = {}
for p in sorted(r.glob("pair_*_*/distill.json")):
    v = json.loads(p.read_text())["variants"]["anchors_0"]
    res[p.parent.name] = {k: v[k] for k in ("steps", "steps_per_second", "peak_memory_gb", "heldout_psnr",
                                            "heldout_ssim", "input_psnr", "heldout_psnr_per_view")}
    print(p.parent.name, json.dumps({k: res[p.parent.name][k] for k in list(res[p.parent.name])[:6]}))
out.write_text(json.dumps(res, indent=2) + "\n")
PY
fi
(cd "$R" && tar cf "$OUT/results.tar" --exclude='*.pt' --exclude='*.mp4' --exclude='*.gif' ./*.log \
    pair_*/anchors_0/metrics.csv pair_*/anchors_0/heldout_pred.png 2>/dev/null) || true
ls -la "$OUT"
