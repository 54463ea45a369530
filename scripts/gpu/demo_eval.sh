#!/usr/bin/env bash
# Demo-model quality on the GPU (benchmarks/demo_quality.py): every model of MODELS x every K of
# SAMPLES on the same SCENES held-out scenes, one JSON each in $OUT (names: TAG_kK.json, TAG = the
# model folder's name, "demo" for the shipped one). 2026-11-26: the mean of K samples per view
# (sampling.samples) costs K x the sampling of one, which the CPU cannot afford on 24 scenes.
#   MODELS="demo runs/r10/demo_model" SAMPLES="1 16" SCENES=24 bash scripts/gpu/demo_eval.sh
# Scores from different devices differ slightly (float order); compare models within one device.
set -uo pipefail
MODELS=${MODELS:-demo}
SAMPLES=${SAMPLES:-1 8}
SCENES=${SCENES:-24}
DEST=${OUT:-runs/demo_eval}
mkdir -p "$DEST"
export PYTHONUNBUFFERED=1
t0=$(date +%s)
fail=0
for m in $MODELS; do
  tag=$(basename "$m")   # demo, or the folder's name (its parent's for .../demo_model)
  [ "$tag" = demo_model ] && tag=$(basename "$(dirname "$m")")
  for k in $SAMPLES; do
    python benchmarks/demo_quality.py --model "$m" --scenes "$SCENES" --samples "$k" --batch-size 256 \
        --out "$DEST/${tag}_k$k.json" > "$DEST/${tag}_k$k.log" 2>&1
    rc=$?
    [ "$rc" = 0 ] || { fail=1; tail -n 4 "$DEST/${tag}_k$k.log"; }
    echo "[$(( $(date +%s) - t0 )) s] $tag K=$k exit $rc: $(grep -A5 '^ offset' "$DEST/${tag}_k$k.log" | tr -s ' ' | tr '\n' ';')"
  done
done
exit $fail
