#!/usr/bin/env bash
# gsplat on the GPU against our rasterizers: the comparison test (images and gradients against the
# PyTorch reference) and the speed benchmark with all three backends. gsplat is a pure wheel whose
# CUDA code is compiled on first use (nvcc and ninja; minutes, once per machine): carry it and its
# dependencies as wheels (no network on the GPU machine), e.g.
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl/gsplat \
#       gsplat==1.5.3 ninja jaxtyping wadler_lindig rich markdown_it_py mdurl pygments
#   then, on the GPU machine: OUT=$OUT bash scripts/gpu/gsplat_compare.sh
# env: WHEELS (default .whl/gsplat), BUILD_S (the compile budget, default 420 s)
set -uo pipefail
DEST=${OUT:-runs/gsplat_compare}
WHEELS=${WHEELS:-.whl/gsplat}
mkdir -p "$DEST" /tmp/gsplat_site
export PYTHONUNBUFFERED=1
python -m pip install -q --no-index --no-deps --no-compile --target /tmp/gsplat_site "$WHEELS"/*.whl \
  || { echo "no gsplat wheels in $WHEELS (see the header)" >&2; exit 2; }
export PYTHONPATH=/tmp/gsplat_site:${PYTHONPATH:-}:$PWD/src PATH=/tmp/gsplat_site/bin:$PATH
{ nvidia-smi -L; which nvcc ninja; } > "$DEST/machine.txt" 2>&1
t0=$(date +%s)
# the first gsplat call compiles its CUDA code (cached in ~/.cache/torch_extensions for later calls)
timeout "${BUILD_S:-420}" python -c "
import torch, gsplat
from novelviews.splats.backend import rasterize_gsplat
print('gsplat', gsplat.__version__, 'built and imported')" > "$DEST/build.log" 2>&1
echo "build: exit $? in $(( $(date +%s) - t0 )) s"
timeout 300 python -m pytest -q -rs -p no:cacheprovider tests/test_splats.py -k gsplat > "$DEST/test.log" 2>&1
echo "gsplat comparison test: exit $?"; tail -n 3 "$DEST/test.log"
timeout 300 python benchmarks/splat_raster.py --backends torch,batched,gsplat --fit-steps 20 \
    --out "$DEST/splat_raster_gsplat.json" > "$DEST/bench.log" 2>&1
echo "benchmark: exit $?"; tail -n 8 "$DEST/bench.log"
