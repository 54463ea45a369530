#!/usr/bin/env bash
# Continue training the demo model from its current weights (docs/DEMO_MODEL.md, v2):
# the LDM and a decoder-only VAE fine-tune (which keeps the latent space, so the LDM stays
# valid) train side by side on one GPU on a freshly rendered pool, then merge and export fp16.
#   GPU:  bash scripts/gpu/continue_demo.sh
#   CPU smoke test:  INIT=/tmp/tiny_model IMG=32 POOL_SECONDS=3 MIN=0.2 BATCH=4 WORKERS=0 PREC=fp32 CHUNK=2 \
#                    bash scripts/gpu/continue_demo.sh
set -euo pipefail
RUN=${RUN:-runs/demo2}
DEST=${OUT:-$RUN/export}
INIT=${INIT:-src/novelviews/data/demo_model}
IMG=${IMG:-128}
POOL_SECONDS=${POOL_SECONDS:-60}
SEED=${SEED:-10700}
MIN=${MIN:-5}
BATCH=${BATCH:-128}
PREC=${PREC:-bf16}
WORKERS=${WORKERS:-4}
mkdir -p "$RUN" "$DEST"
export PYTHONUNBUFFERED=1
[ -f "$RUN/pool.pt" ] || python scripts/gpu/make_pool.py "$RUN/pool.pt" --size "$IMG" --views 16 \
    --seconds "$POOL_SECONDS" --seed "$SEED" --chunk "${CHUNK:-50}"
common=(--batch-size "$BATCH" --steps 1000000 --quiet --overwrite max_minutes="$MIN" precision="$PREC"
        num_workers="$WORKERS" ckpt_every=1000 val_every=1000)
python -m novelviews train "$RUN/pool.pt" --init "$INIT" --stage vae --out "$RUN/dec" "${common[@]}" \
    vae_train=decoder lr=2e-4 warmup_steps=100 ema_decay=0.999 > "$RUN/dec.log" 2>&1 &
python -m novelviews train "$RUN/pool.pt" --init "$INIT" --out "$RUN/ldm" "${common[@]}" \
    lr=2e-4 cc_lr_mult=1 warmup_steps=200 ema_decay=0.9995 > "$RUN/ldm.log" 2>&1 &
wait
for f in "$RUN/dec.log" "$RUN/ldm.log"; do tail -n 2 "$f"; done
python scripts/gpu/export_fp16.py "$RUN/ldm/model" "$DEST/demo_model" --decoder-from "$RUN/dec/model"
for s in dec ldm; do cp "$RUN/$s/logs/metrics.csv" "$DEST/${s}_metrics.csv" || true; done
(cd "$DEST" && tar cf - demo_model | split -b 15m - demo_model.tar.part- && rm -rf demo_model)
ls -la "$DEST"
