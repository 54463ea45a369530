#!/usr/bin/env bash
# Score demo models side by side on one GPU (same card, same seeds): the real-photo benchmark
# (benchmarks/real_photos.py: (a) the view at the input camera and the VAE round trip on
# scikit-image's photos, (b) photo-plane scenes at 5/10/20/45 degrees) and the procedural held-out
# scenes (benchmarks/demo_quality.py), one JSON each in $OUT named TAG_real.json / TAG_quality.json
# (TAG: "demo" for the shipped model, else the model folder's parent's name).
#   MODELS="demo runs/drp/ldm/model" SCENES=24 bash scripts/gpu/demo_real_photos_eval.sh
# CPU smoke test: MODELS=demo SCENES=1 PLANES=1 STEPS=2 DEVICE=cpu OUT=/tmp/drpe bash scripts/gpu/demo_real_photos_eval.sh
set -uo pipefail
MODELS=${MODELS:-demo}
SCENES=${SCENES:-24}
PLANES=${PLANES:-24}
STEPS=${STEPS:-50}
DEVICE=${DEVICE:-cuda}
DEST=${OUT:-runs/demo_real_photos_eval}
mkdir -p "$DEST"
export PYTHONUNBUFFERED=1
t0=$(date +%s)
fail=0
for m in $MODELS; do
  tag=$(basename "$(dirname "$m")"); [ "$m" = demo ] && tag=demo
  python benchmarks/real_photos.py --model "$m" --device "$DEVICE" --scenes "$PLANES" --steps "$STEPS" \
      --out "$DEST/${tag}_real.json" > "$DEST/${tag}_real.log" 2>&1 || { fail=1; tail -n 4 "$DEST/${tag}_real.log"; }
  echo "[$(( $(date +%s) - t0 )) s] $tag real photos: $(grep '^(' "$DEST/${tag}_real.log" | tr '\n' ';')"
  python benchmarks/demo_quality.py --model "$m" --device "$DEVICE" --scenes "$SCENES" --steps "$STEPS" \
      --batch-size 256 --out "$DEST/${tag}_quality.json" > "$DEST/${tag}_quality.log" 2>&1 \
    || { fail=1; tail -n 4 "$DEST/${tag}_quality.log"; }
  echo "[$(( $(date +%s) - t0 )) s] $tag procedural: $(grep -A5 '^ offset' "$DEST/${tag}_quality.log" | tr -s ' ' | tr '\n' ';')"
done
exit $fail
