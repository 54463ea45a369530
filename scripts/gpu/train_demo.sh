#!/usr/bin/env bash
# Train the shipped demo model (docs/DEMO_MODEL.md): render a pool of procedural scenes,
# train the VAE, then the view-conditioned LDM, export fp16 weights.
#   GPU (device tool):  bash scripts/gpu/train_demo.sh
#   CPU smoke test:     PRESET=tiny IMG=32 POOL_SECONDS=5 VAE_MIN=0.2 LDM_MIN=0.3 bash scripts/gpu/train_demo.sh
# Continue the LDM stage of an earlier run:  RESUME=1 LDM_MIN=8 bash scripts/gpu/train_demo.sh
set -euo pipefail
RUN=${RUN:-runs/demo}
DEST=${OUT:-$RUN/export}
PRESET=${PRESET:-demo}
IMG=${IMG:-128}
VIEWS=${VIEWS:-16}
POOL_SECONDS=${POOL_SECONDS:-90}
VAE_MIN=${VAE_MIN:-1.5}
LDM_MIN=${LDM_MIN:-6}
VAE_BATCH=${VAE_BATCH:-64}
LDM_BATCH=${LDM_BATCH:-128}
PREC=${PREC:-bf16}
WORKERS=${WORKERS:-6}
mkdir -p "$RUN" "$DEST"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
if [ "${RESUME:-0}" != 1 ]; then
  [ -f "$RUN/pool.pt" ] || python scripts/gpu/make_pool.py "$RUN/pool.pt" \
      --size "$IMG" --views "$VIEWS" --seconds "$POOL_SECONDS" --chunk "${CHUNK:-50}"
  [ -f "$RUN/vae/model/novelviews.json" ] || python -m novelviews train "$RUN/pool.pt" --arch "$PRESET" --stage vae --out "$RUN/vae" --steps 1000000 \
      --batch-size "$VAE_BATCH" --quiet --overwrite max_minutes="$VAE_MIN" precision="$PREC" lr="${VAE_LR:-1e-3}" \
      warmup_steps=200 num_workers="$WORKERS" val_every=500 ckpt_every=100000 ema_decay=0.999
  python -m novelviews train "$RUN/pool.pt" --init "$RUN/vae/model" --out "$RUN/ldm" --steps 1000000 \
      --batch-size "$LDM_BATCH" --quiet --overwrite max_minutes="$LDM_MIN" precision="$PREC" lr=3e-4 \
      cc_lr_mult=1 warmup_steps=500 num_workers="$WORKERS" val_every=1000 ckpt_every=1000 ema_decay=0.9995 \
      latent_scale=-1
else
  python -m novelviews train "$RUN/pool.pt" --init "$RUN/vae/model" --out "$RUN/ldm" --steps 1000000 \
      --batch-size "$LDM_BATCH" --quiet --resume max_minutes="$LDM_MIN" precision="$PREC" lr=3e-4 \
      cc_lr_mult=1 warmup_steps=500 num_workers="$WORKERS" val_every=1000 ckpt_every=1000 ema_decay=0.9995
fi
python scripts/gpu/export_fp16.py "$RUN/ldm/model" "$DEST/demo_model"
cp "$RUN/ldm/logs/metrics.csv" "$DEST/ldm_metrics.csv"; cp "$RUN/vae/logs/metrics.csv" "$DEST/vae_metrics.csv"
cp "$RUN/ldm/train_summary.json" "$DEST/ldm_summary.json"
last=$(ls "$RUN/ldm/previews" | tail -1); cp "$RUN/ldm/previews/$last" "$DEST/ldm_preview.png"
(cd "$DEST" && tar cf - demo_model | split -b 15m - demo_model.tar.part- && rm -rf demo_model)
ls -la "$DEST"
