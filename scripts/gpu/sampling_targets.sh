#!/usr/bin/env bash
# The sampling speed targets on one GPU, side by side on the same card (docs/BENCHMARKS.md):
#   1. 50 DDIM steps (eta 1), ZeroNVS size, 256 px: the plain and the tuned diffusers loops
#      (benchmarks/diffusers_loops.py), batch 16 and one view;
#   2. ours at the same 50 steps (benchmarks/sampling.py, FIFTY_CONFIGS: bf16 + channels-last +
#      compile + CUDA graph, with and without fused QKV projections);
#   3. ours at the 10-step default (TEN_CONFIGS), batch 16 and one view.
# Also records whether a CUDA compiler is present (gsplat builds its CUDA code with it).
#   OUT=/tmp/st bash scripts/gpu/sampling_targets.sh   (env: LOOPS_S, FIFTY_S, TEN_S budgets in seconds;
#                                                       FIFTY_CONFIGS, TEN_CONFIGS; SKIP_LOOPS=1; PROFILE=1:
#                                                       a torch.profiler table of one run per config)
set -uo pipefail
DEST=${OUT:-runs/sampling_targets}
mkdir -p "$DEST"
export PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; which nvcc || echo "no nvcc on PATH";
  ls -d /usr/local/cuda*/bin/nvcc 2>/dev/null; python -c "import torch.utils.cpp_extension as c; print('CUDA_HOME', c.CUDA_HOME)"; } \
  > "$DEST/machine.txt" 2>&1
LOOPS_S=${LOOPS_S:-160}
if [ "${SKIP_LOOPS:-0}" != 1 ]; then
  timeout $(( LOOPS_S + 15 )) python benchmarks/diffusers_loops.py --device cuda --preset zeronvs --size 256 --steps 50 \
      --eta 1 --batches 16,1 --loops tuned,plain --budget-seconds "$LOOPS_S" --compile-min-seconds 10 \
      --out "$DEST/diffusers_loops_zeronvs_50steps.json" > "$DEST/diffusers_loops.log" 2>&1
  echo "diffusers loops: exit $?"
fi
ours() {  # ours STEPS CONFIGS BUDGET_S: benchmarks/sampling.py -> sampling_zeronvs_${STEPS}steps.json + log
  timeout $(( $3 + 15 )) python benchmarks/sampling.py --device cuda --steps "$1" --eta 1 --configs "$2" \
      --budget-seconds "$3" --compile-min-seconds 10 ${PROFILE:+--profile} \
      --out "$DEST/sampling_zeronvs_$1steps.json" > "$DEST/sampling_$1steps.log" 2>&1
  echo "ours, $1 steps: exit $?"
}
FAST=bf16:16+cl+compile+graph+cudnn
ours 50 "${FIFTY_CONFIGS:-$FAST,$FAST+fuse,bf16:1+cl+compile+graph+cudnn+fuse}" "${FIFTY_S:-230}"
ours 10 "${TEN_CONFIGS:-$FAST,$FAST+fuse,bf16:1+cl+compile+graph+cudnn+fuse}" "${TEN_S:-200}"
tail -n 5 "$DEST"/*.log
