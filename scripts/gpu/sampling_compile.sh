#!/usr/bin/env bash
# Batch-16 sampling (2026-11-26): one single-GPU call (device kind nvidia-h100-x1) bounded
# by END seconds; results go to $OUT/results.tar as they finish.
#   0. the CUDA-only sampling tests (CUDA graph and inductor-compiled + graphed sampling equal eager);
#   1. benchmarks/sampling.py on the full ZeroNVS-size model through the product path: the
#      best CUDA-graph setting of 2026-11-25 (bf16 batch 16, CUDA graph) against cuDNN autotuning (sampling.cudnn_benchmark),
#      channels-last and torch.compile of the UNet (sampling.compile), then the best at batch 1.
#   bash scripts/gpu/sampling_compile.sh   (env: END, CONFIGS at --compile-mode default, AUTOTUNE_CONFIGS
#                                           at max-autotune-no-cudagraphs afterwards, if set)
# CPU smoke test: ACCEL=cpu CONFIGS=fp32:2,fp32:2+cudnn BENCH_ARGS="--preset tiny --size 32 --steps 2 \
#   --device cpu" OUT=/tmp/sc R=/tmp/scrun bash scripts/gpu/sampling_compile.sh
set -uo pipefail
END=${END:-540}
ACCEL=${ACCEL:-gpu}
CONFIGS=${CONFIGS:-bf16:16+graph,bf16:16+graph+cudnn,bf16:16+cl+graph+cudnn,bf16:16+compile+graph+cudnn,bf16:16+cl+compile+graph+cudnn,fp16:16+compile+graph+cudnn,bf16:1+compile+graph+cudnn}
source scripts/gpu/lib.sh   # left, stamp, save
[ "$ACCEL" = gpu ] && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$R/res/gpu.txt"
timeout 120 python -m pytest -q -p no:cacheprovider tests/test_sampling.py -k "cuda or inductor" \
    > "$R/res/gpu_tests.log" 2>&1
stamp "GPU tests: $(tail -n 1 "$R/res/gpu_tests.log")"
save res/gpu.txt res/gpu_tests.log res/timeline.txt
# shellcheck disable=SC2086
timeout "$(left 10)" python benchmarks/sampling.py --budget-seconds "$(left 40)" --compile-min-seconds 100 \
    --compile-mode default --configs "$CONFIGS" --out "$R/res/sampling.json" ${BENCH_ARGS:-} \
    > "$R/res/sampling.log" 2>&1
stamp "sampling benchmark done"
save res/sampling.json res/sampling.log res/timeline.txt
if [ -n "${AUTOTUNE_CONFIGS:-}" ]; then   # longer compilation: Triton kernels tuned per shape
  # shellcheck disable=SC2086
  timeout "$(left 5)" python benchmarks/sampling.py --budget-seconds "$(left 30)" --compile-min-seconds 60 \
      --compile-mode max-autotune-no-cudagraphs --configs "$AUTOTUNE_CONFIGS" \
      --out "$R/res/sampling_autotune.json" ${BENCH_ARGS:-} > "$R/res/sampling_autotune.log" 2>&1
  stamp "max-autotune benchmark done"
  save res/sampling_autotune.json res/sampling_autotune.log res/timeline.txt
fi
ls -la "$DEST"
