#!/usr/bin/env bash
# v3 of the demo model (docs/DEMO_MODEL.md): continue the shipped weights on all GPUs of the
# host with Lightning DDP - the N-GPU half of the demo DDP scaling comparison (scripts/gpu/
# ddp_scaling.sh: same hyperparameters, pool, init and effective batch as its 1-GPU half), run
# for MIN minutes with checkpoints and validation; then export fp16 and the loss curves.
#   bash scripts/gpu/train_demo_ddp.sh                 (after scripts/gpu/x2_pools_scaling_distill.sh made runs/pool128.pt)
#   RESUME=1 MIN=8 bash scripts/gpu/train_demo_ddp.sh  (continue the same run from its last checkpoint)
#   POOL_S=45 MIN=4 EB=2048 LR=3e-4 WARMUP=100 EXTRA="ema_decay=0.995" bash scripts/gpu/train_demo_ddp.sh
#       (batch 1024 per GPU; POOL_S pool seconds per GPU, EXTRA more overrides. Pool + set-up +
#       export take ~3 min beyond MIN: 2026-11-25's MIN=6.2 with POOL_S=90 overran the 10-minute
#       device limit - scripts/gpu/x2_scaling_and_demo.sh is the deadline-bounded alternative)
set -euo pipefail
R=${R:-runs}
DEST=${OUT:-$R/export}
MIN=${MIN:-7.5}
NGPU=${NGPU:-$(nvidia-smi -L | wc -l)}
INIT=${INIT:-src/novelviews/data/demo_model}
EB=${EB:-256}
mkdir -p "$R" "$DEST"
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
if [ ! -f "$R/pool128.pt" ]; then   # the machine was fresh: render the pool again (same seeds)
  CUDA_VISIBLE_DEVICES=0 python scripts/gpu/make_pool.py "$R/pool128a.pt" --size 128 --seconds "${POOL_S:-60}" --seed 10000 &
  CUDA_VISIBLE_DEVICES=1 python scripts/gpu/make_pool.py "$R/pool128b.pt" --size 128 --seconds "${POOL_S:-60}" --seed 13000 &
  wait
  python scripts/gpu/make_pool.py "$R/pool128.pt" --cat "$R/pool128a.pt" "$R/pool128b.pt"
fi
out="$R/ddp/demo_${NGPU}gpu"
# the N-GPU half of scripts/gpu/ddp_scaling.sh (its hyperparameters), with validation and checkpoints
RUN=$R/ddp OUT=$DEST ONLY=N NGPU="$NGPU" PRESET=demo INIT="$INIT" POOL="$R/pool128.pt" EB="$EB" \
    SECONDS="$(python -c "print($MIN * 60)")" EXTRA="val_every=1000 ckpt_every=1000 ${EXTRA:-}" \
    bash scripts/gpu/ddp_scaling.sh
python scripts/gpu/export_fp16.py "$out/model" "$DEST/demo_model"
cp "$out/train_summary.json" "$DEST/demo_${NGPU}gpu_summary.json"
cp "$out/logs/metrics.csv" "$DEST/demo_${NGPU}gpu_metrics.csv"
last=$(ls "$out/previews" | tail -1) && cp "$out/previews/$last" "$DEST/ldm_preview.png"
(cd "$DEST" && tar cf - demo_model | split -b 15m - demo_model.tar.part- && rm -rf demo_model)
ls -la "$DEST"
