#!/usr/bin/env bash
# The sampling speed targets on one GPU, side by side on the same card (docs/BENCHMARKS.md):
#   1. 50 DDIM steps (eta 1), ZeroNVS size, 256 px: our sampler against the plain and the tuned
#      diffusers loops (benchmarks/diffusers_loops.py), batch 16 and one view;
#   2. the 10-step default: one view and batch 16 with bf16 + channels-last + compile + CUDA graph.
# Also records whether a CUDA compiler is present (gsplat builds its CUDA code with it).
#   OUT=/tmp/st bash scripts/gpu/sampling_targets.sh      (env: LOOPS_S, TEN_S budgets in seconds)
set -uo pipefail
DEST=${OUT:-runs/sampling_targets}
mkdir -p "$DEST"
export PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; which nvcc || echo "no nvcc on PATH";
  ls -d /usr/local/cuda*/bin/nvcc 2>/dev/null; python -c "import torch.utils.cpp_extension as c; print('CUDA_HOME', c.CUDA_HOME)"; } \
  > "$DEST/machine.txt" 2>&1
LOOPS_S=${LOOPS_S:-160}
timeout $(( LOOPS_S + 15 )) python benchmarks/diffusers_loops.py --device cuda --preset zeronvs --size 256 --steps 50 \
    --eta 1 --batches 16,1 --loops tuned,plain --budget-seconds "$LOOPS_S" --compile-min-seconds 10 \
    --out "$DEST/diffusers_loops_zeronvs_50steps.json" > "$DEST/diffusers_loops.log" 2>&1
echo "diffusers loops: exit $?"
TEN_S=${TEN_S:-85}
timeout $(( TEN_S + 15 )) python benchmarks/sampling.py --device cuda --steps 10 --eta 1 \
    --configs bf16:1+cl+compile+graph+cudnn,bf16:16+cl+compile+graph+cudnn --budget-seconds "$TEN_S" \
    --compile-min-seconds 10 --out "$DEST/sampling_zeronvs_10steps.json" > "$DEST/sampling_10steps.log" 2>&1
echo "10 steps: exit $?"
tail -n 5 "$DEST"/*.log
