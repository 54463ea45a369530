#!/usr/bin/env bash
# nvs reconstruct on one GPU, inside END seconds (default 280): benchmarks/reconstruct.py
#   1. --part timing: the ZeroNVS-size model (random weights, built on the GPU), 64 views at 256 px
#      + the splat fit at the reconstruct defaults (SET: extra overrides, e.g. "splats.backend=gsplat")
#      -> $OUT/reconstruct_timing.json (phase times, peak memory, Gaussians, fit steps/s) + .log
#   2. --part quality: as many held-out procedural scenes (of SCENES) as fit in the time left, each
#      reconstructed as splats and distilled as an SDS NeRF (DISTILL_STEPS steps) from the same
#      input view with the demo model, both scored at the same ground-truth cameras
#      -> $OUT/reconstruct_quality.json (per scene, per offset, splats - NeRF +- sem) + .log + grid PNG
# Each JSON is rewritten as the run goes, so a part cut by its `timeout` keeps what it finished.
#   bash scripts/gpu/reconstruct_measure.sh     (env: END, TIMING_S, SCENES, DISTILL_STEPS, SCENE_S, SET,
#                                                QUALITY_SET, DISTILL_SET, MODEL, DEV)
# CPU smoke test: DEV=cpu END=200 TIMING_ARGS="--preset tiny --size 32 --views 2" SET="fit.steps=20" \
#   MODEL=tiny-random SCENES=1 DISTILL_STEPS=4 OUT=/tmp/rm R=/tmp/rmrun bash scripts/gpu/reconstruct_measure.sh
set -uo pipefail
END=${END:-280}
TIMING_S=${TIMING_S:-150}     # the timing part's own limit
SCENES=${SCENES:-8}
DISTILL_STEPS=${DISTILL_STEPS:-400}
SCENE_S=${SCENE_S:-70}        # the quality part starts only with this much time left; a later scene only
                              # with as much left as the scene before it took
MODEL=${MODEL:-demo}
DEV=${DEV:-cuda}
R=${R:-runs/reconstruct_measure}
source scripts/gpu/lib.sh     # DEST ($OUT), left, stamp
[ "$DEV" = cuda ] && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$DEST/gpu.txt"
fail=0
t_timing=$(( TIMING_S < $(left 20) ? TIMING_S : $(left 20) ))
# shellcheck disable=SC2086
timeout "$t_timing" python benchmarks/reconstruct.py --part timing --device "$DEV" ${TIMING_ARGS:-} \
    --budget-seconds "$(( t_timing - 10 ))" --set ${SET:-} --work "$R/work" \
    --out "$DEST/reconstruct_timing.json" > "$DEST/reconstruct_timing.log" 2>&1 || fail=1
stamp "timing done (exit $fail): $(grep '^timing' "$DEST/reconstruct_timing.log")"
q_left=$(left 5)
# shellcheck disable=SC2086
timeout "$q_left" python benchmarks/reconstruct.py --part quality --device "$DEV" --model "$MODEL" \
    --scenes "$SCENES" --distill-steps "$DISTILL_STEPS" --budget-seconds "$(( q_left > SCENE_S ? q_left - 5 : 0 ))" \
    --set ${QUALITY_SET:-} ${SET:-} --distill-set ${DISTILL_SET:-} --work "$R/work" \
    --grid "$DEST/reconstruct_quality_grid.png" --out "$DEST/reconstruct_quality.json" \
    > "$DEST/reconstruct_quality.log" 2>&1 || fail=1
stamp "quality done: $(grep -A6 '^quality' "$DEST/reconstruct_quality.log" | tr -s ' ' | tr '\n' ';')"
cp "$R/res/timeline.txt" "$DEST/" 2>/dev/null
ls -la "$DEST"
exit $fail
