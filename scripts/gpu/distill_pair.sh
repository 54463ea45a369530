#!/usr/bin/env bash
# Full-length distillation with and without SDS anchoring side by side on a 2-GPU machine (device
# kind nvidia-h100-x2, 2026-11-26), each bounded by a deadline; results into $OUT as they finish:
#   GPU 1: benchmarks/distill_step.py (speed / memory / profile of each phase), then the
#          anchored run (K = 4);   GPU 0: the plain SDS run (K = 0). Same scene, settings, seed.
#   bash scripts/gpu/distill_pair.sh       (env: END total seconds, STEPS of the schedule)
# CPU smoke test: DEV=cpu STEPS=2 END=200 MODEL=/tmp/tinym DIST_ARGS="--preset tiny" \
#   DSTEP_ARGS="--steps 1 --warmup 0 --profile 1 phases.batch_sizes=[1,1]" OUT=/tmp/dp R=/tmp/dprun \
#   bash scripts/gpu/distill_pair.sh
set -uo pipefail
END=${END:-555}
STEPS=${STEPS:-4000}
DEV=${DEV:-cuda}
MODEL=${MODEL:-demo}
source scripts/gpu/lib.sh   # left, stamp, save
[ "$DEV" = cuda ] && nvidia-smi -L > "$R/res/gpus.txt"
# $1 = GPU, $2 = variant name, $3... = extra distill.py arguments
variant() {
  local gpu=$1 name=$2; shift 2
  # shellcheck disable=SC2086
  CUDA_VISIBLE_DEVICES=$gpu timeout "$(left 15)" python benchmarks/distill.py --device "$DEV" --model "$MODEL" \
      --steps "$STEPS" --budget-seconds "$(left 75)" --out "$R/$name" "$@" ${DIST_ARGS:-} > "$R/res/$name.log" 2>&1
  stamp "$name done"
  save "res/$name.log" "$name/distill.json" "$name/input.png" "$name/heldout_gt.png" "$name"/anchors_*/heldout_pred.png \
      "$name"/anchors_*/video.* "$name"/anchors_*/depth.* "$name"/anchors_*/metrics.csv "$name"/anchors_*/info.json \
      "$name"/anchors_*/anchors
}
variant 0 plain --anchors 0 &
(
  # shellcheck disable=SC2086
  CUDA_VISIBLE_DEVICES=1 timeout 90 python benchmarks/distill_step.py --device "$DEV" --model "$MODEL" \
      --out "$R/res/distill_step.json" ${DSTEP_ARGS:---steps 20 --warmup 3 --profile 2} > "$R/res/distill_step.log" 2>&1
  stamp "distill_step done"; save res/distill_step.json res/distill_step.log
  variant 1 anchored --anchors 4 --no-plain
) &
wait
stamp end; save res/timeline.txt
ls -la "$DEST"
