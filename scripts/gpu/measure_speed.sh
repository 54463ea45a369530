#!/usr/bin/env bash
# The speed measurements of sampling and distillation (and the training-step breakdown), in one
# single-GPU call of about 9 minutes; each result is appended to $OUT/speed.tar as it finishes, so
# a call that runs over the device limit still returns what was done.
#   bash scripts/gpu/measure_speed.sh          (env: SAMPLING_S, DISTILL_S budgets in seconds)
# 0. the CUDA-only tests; 1. sampling: CUDA-graph denoiser vs eager, batch 1 and 16, fp16/bf16 (full ZeroNVS size)
# 2. training step breakdown of the demo model (profile + torch.compile row)
# 3. distillation at the current defaults (geometry regularisers on one view per step), with and
#    without anchoring; mesh export of the anchored run
set -uo pipefail
R=${R:-runs/speed}
DEST=${OUT:-$R/export}
mkdir -p "$R" "$DEST"
export PYTHONUNBUFFERED=1
save() { (cd "$R" && tar rf "$DEST/speed.tar" "$@" 2>/dev/null) || true; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$R/gpu.txt"; save gpu.txt
# the GPU-only tests (CUDA-graph sampling equals eager, fp32 and bf16) before timing anything
timeout 90 python -m pytest -q -p no:cacheprovider tests/test_sampling.py -k cuda_graph > "$R/gpu_tests.log" 2>&1
save gpu_tests.log
timeout $(( ${SAMPLING_S:-110} + 40 )) python benchmarks/sampling.py --budget-seconds "${SAMPLING_S:-110}" \
    --configs fp16:1+graph,fp16:1,bf16:1+graph,fp16:16+graph,fp16:16,bf16:16+graph \
    --out "$R/sampling.json" > "$R/sampling.log" 2>&1
save sampling.json sampling.log
timeout 140 python benchmarks/train_throughput.py --batch 256 --workers 6 --profile 3 --compile \
    --lightning-steps 100 --out "$R/train_throughput.json" > "$R/train_throughput.log" 2>&1
save train_throughput.json train_throughput.log
timeout $(( ${DISTILL_S:-170} + 40 )) python benchmarks/distill.py --device cuda \
    --budget-seconds "${DISTILL_S:-170}" --anchors 4 --out "$R/distill" > "$R/distill.log" 2>&1
cp "$R/distill/distill.json" "$R/" 2>/dev/null; save distill.json distill.log
timeout 45 python -m novelviews export "$R/distill/anchors_4" --what mesh --format glb --resolution 128 --quiet \
    --out "$R/mesh" > "$R/export.log" 2>&1
save export.log mesh
ls -la "$R" "$DEST"
