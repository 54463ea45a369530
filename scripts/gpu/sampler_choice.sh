#!/usr/bin/env bash
# Sampler and step count by measurement: benchmarks/sampler_choice.py on the demo model (the
# held-out procedural scenes of demo_quality.py, paired per view against DDIM-50 eta 1), then the
# ZeroNVS-size speed (random weights, benchmarks/sampling.py) at each step count of STEPS_LIST.
#   OUT=... bash scripts/gpu/sampler_choice.sh            (one GPU; ~2 min for the grid)
#   DEV=cpu SCENES=2 SAMPLERS=ddim,unipc STEPS=5 SPEED=0 OUT=/tmp/sc bash scripts/gpu/sampler_choice.sh  # CPU smoke run
set -uo pipefail
DEV=${DEV:-cuda}
SCENES=${SCENES:-24}
SAMPLERS=${SAMPLERS:-ddim,dpm++2m,dpm++2m-sde,unipc,euler-a}
STEPS=${STEPS:-10,15,20,25,50}
SPEED=${SPEED:-1}
STEPS_LIST=${STEPS_LIST:-50 15}
SPEED_CONFIGS=${SPEED_CONFIGS:-bf16:16+cl+graph+cudnn,bf16:1+cl+graph+cudnn}
OUT=${OUT:-runs/sampler_choice}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
timeout "${TMO:-400}" python benchmarks/sampler_choice.py --device "$DEV" --scenes "$SCENES" --samplers "$SAMPLERS" \
    --steps "$STEPS" --out "$OUT/sampler_choice_demo.json" > "$OUT/sampler_choice_demo.log" 2>&1
echo "sampler_choice exit $?"; tail -n 40 "$OUT/sampler_choice_demo.log"
if [ "$SPEED" = 1 ]; then
  for n in $STEPS_LIST; do
    timeout "${SPEED_TMO:-200}" python benchmarks/sampling.py --device "$DEV" --steps "$n" --eta "${ETA:-0}" \
        --configs "$SPEED_CONFIGS" --budget-seconds 170 --out "$OUT/sampling_zeronvs_${n}steps.json" \
        > "$OUT/sampling_zeronvs_${n}steps.log" 2>&1
    echo "sampling $n steps exit $?"; grep -iE "ms/view|per view|^\{" "$OUT/sampling_zeronvs_${n}steps.log" | tail -n 6
  done
fi
