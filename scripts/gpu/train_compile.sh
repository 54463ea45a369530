#!/usr/bin/env bash
# 2026-11-26: does nvs train compile=true (+ channels_last) speed up the demo's training step at the
# batch the rounds use (1024 per GPU)? One GPU (device kind nvidia-h100-x1), ~6 min.
#   bash scripts/gpu/train_compile.sh            (OUT: the result folder; BATCH, STEPS)
# CPU smoke test: DEV=cpu PRESET=tiny BATCH=2 STEPS=3 PREC=fp32 OUT=/tmp/tc bash scripts/gpu/train_compile.sh
set -uo pipefail
OUT=${OUT:-runs/train_compile}; mkdir -p "$OUT"
B=${BATCH:-1024}; S=${STEPS:-40}
common=(--preset "${PRESET:-demo}" --batch "$B" --device "${DEV:-cuda}" --precision "${PREC:-bf16}" --iters 10
        --warmup 3 --workers 6 --scenes 256 --views 8 --skip-components)
# 1. eager vs compile + channels_last: manual step and the Lightning run (nvs train itself)
timeout 330 python benchmarks/train_throughput.py "${common[@]}" --compile --channels-last --lightning-steps "$S" \
    --out "$OUT/train_compile_cl.json" > "$OUT/train_compile_cl.log" 2>&1
# 2. compile without channels_last (manual step only)
timeout 200 python benchmarks/train_throughput.py "${common[@]}" --compile --lightning-steps 0 \
    --out "$OUT/train_compile.json" > "$OUT/train_compile.log" 2>&1
tail -n 8 "$OUT"/train_compile*.log
