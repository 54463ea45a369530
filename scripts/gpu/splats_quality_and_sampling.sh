#!/usr/bin/env bash
# One GPU run of three measurements, each packed into $OUT as soon as it ends (a cut run keeps them):
#   1. ours at the 10-step default, batch 16 and one view (bf16, channels-last, compile, CUDA graph)
#      -> ten.tgz (benchmarks/sampling.py JSON + log);
#   2. splats vs SDS NeRF on held-out procedural scenes with the demo model (benchmarks/reconstruct.py
#      --part quality, QUALITY_S seconds, fit.steps=FIT_STEPS, DISTILL_STEPS) -> quality.tgz;
#   3. ours at the reference's 50 DDIM steps, batch 16 (FIFTY_S seconds) -> fifty.tgz.
#   OUT=/tmp/o bash scripts/gpu/splats_quality_and_sampling.sh   (env: TEN_S, QUALITY_S, FIFTY_S, SCENES,
#                                                                FIT_STEPS, DISTILL_STEPS, DEV)
# CPU smoke test: DEV=cpu TEN_S=0 FIFTY_S=0 QUALITY_S=120 SCENES=1 FIT_STEPS=20 DISTILL_STEPS=4 \
#   MODEL=tiny-random OUT=/tmp/o bash scripts/gpu/splats_quality_and_sampling.sh
set -uo pipefail
DEST=${OUT:?set OUT}
DEV=${DEV:-cuda}
TEN_S=${TEN_S:-150}; QUALITY_S=${QUALITY_S:-320}; FIFTY_S=${FIFTY_S:-110}
export PYTHONUNBUFFERED=1
pack() { (cd "$DEST" && tar czf "$1.tgz" "$1" && rm -rf "$1"); }
FAST=cl+compile+graph+cudnn
ours() {  # ours STEPS CONFIGS BUDGET_S NAME: benchmarks/sampling.py into $DEST/NAME, then packed
  [ "$3" -gt 0 ] || return 0
  mkdir -p "$DEST/$4"
  timeout $(( $3 + 20 )) python benchmarks/sampling.py --device "$DEV" --steps "$1" --eta 1 --configs "$2" \
      --budget-seconds "$3" --compile-min-seconds 10 --out "$DEST/$4/sampling_zeronvs_$1steps.json" \
      > "$DEST/$4/sampling_$1steps.log" 2>&1
  echo "$1 steps: exit $?"; pack "$4"
}
ours 10 "bf16:16+$FAST,bf16:1+$FAST" "$TEN_S" ten
mkdir -p "$DEST/quality"
timeout $(( QUALITY_S + 20 )) python benchmarks/reconstruct.py --part quality --device "$DEV" --model "${MODEL:-demo}" \
    --scenes "${SCENES:-8}" --distill-steps "${DISTILL_STEPS:-400}" --budget-seconds "$QUALITY_S" \
    --set "fit.steps=${FIT_STEPS:-1500}" --work /tmp/splats_quality_work \
    --grid "$DEST/quality/reconstruct_quality_grid.png" --out "$DEST/quality/reconstruct_quality.json" \
    > "$DEST/quality/reconstruct_quality.log" 2>&1
echo "quality: exit $?"; pack quality
ours 50 "bf16:16+$FAST" "$FIFTY_S" fifty
