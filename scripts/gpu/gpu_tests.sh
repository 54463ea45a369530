#!/usr/bin/env bash
# The tests that need CUDA (skipped on a CPU-only machine): CUDA graphs of the denoisers, the
# inductor-compiled sampler, the Triton NeRF kernels, the CUDA rasterizers and occupancy grids;
# each against its eager or PyTorch reference. Report: $OUT/gpu_tests.log (the skip reasons too).
#   OUT=/tmp/gt bash scripts/gpu/gpu_tests.sh        (env: TESTS, the test files; K, a -k expression)
set -uo pipefail
DEST=${OUT:-runs/gpu_tests}
mkdir -p "$DEST"
TESTS=${TESTS:-tests/test_sampling.py tests/test_nerf_fast.py tests/test_nerf.py tests/test_occupancy.py tests/test_splats.py tests/test_photo_planes.py tests/test_config.py}
nvidia-smi -L > "$DEST/gpus.txt" 2>&1
# shellcheck disable=SC2086
timeout "${TESTS_S:-400}" python -m pytest -q -rs -p no:cacheprovider ${K:+-k "$K"} $TESTS > "$DEST/gpu_tests.log" 2>&1
echo "gpu tests: exit $?"
tail -n 25 "$DEST/gpu_tests.log"
