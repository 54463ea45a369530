#!/usr/bin/env bash
# One call on a 2-GPU machine (device kind nvidia-h100-x2, 2026-11-25), every phase
# bounded by a deadline from the start so the call always ends inside the device limit and each
# result is in $OUT as soon as it exists:
#   phase 1, in parallel: GPU 0 renders a 256 px pool and runs the ZeroNVS-size 1-GPU half of the
#            DDP scaling comparison; GPU 1 renders a 128 px pool and continues the shipped
#            demo model at batch 1024 on one GPU, exported in fp16;
#   phase 2: the ZeroNVS-size 2-GPU half (same pool, effective batch, seed) + scaling summary;
#   phase 3: the demo model continued on both GPUs (DDP, effective batch 2048) from phase 1's
#            export until the deadline, exported again (replaces phase 1's export in $OUT).
# $OUT gets results.tar (summaries, metrics, logs) and demo_model.tar.part-* (cat | tar x).
#   bash scripts/gpu/x2_scaling_and_demo.sh          (env: END total seconds, ZNVS_S, ZSTEPS, ZLR, ZWARM, DEMO1_S)
# 2026-11-26 (ZeroNVS halves at lr 5e-5 / warm-up 100, 300 steps each):
#   ZNVS_S=100 ZSTEPS=300 bash scripts/gpu/x2_scaling_and_demo.sh
# CPU smoke test: RESERVE=60 ACCEL=cpu ZPRESET=tiny DPRESET=tiny INIT= SIZE=32 ZSIZE=32 END=300 ZNVS_S=6 DEMO1_S=6 ZEB=4 DEB=8 \
#   NGPU=2 OUT=/tmp/x2s3 R=/tmp/x2s3run bash scripts/gpu/x2_scaling_and_demo.sh
set -uo pipefail
END=${END:-555}              # seconds after the start by which everything has stopped
ZNVS_S=${ZNVS_S:-60}         # training seconds of each ZeroNVS-size half
ZSTEPS=${ZSTEPS:-100000}     # ... or this many steps, whichever comes first (equal-step curves)
ZLR=${ZLR:-5e-5}             # 2026-11-25 ran 2e-4 / warm-up 50: both halves diverged
ZWARM=${ZWARM:-100}
DEMO1_S=${DEMO1_S:-75}       # training seconds of the demo's 1-GPU phase
ZPRESET=${ZPRESET:-zeronvs}
DPRESET=${DPRESET:-demo}
INIT=${INIT-src/novelviews/data/demo_model}
ACCEL=${ACCEL:-gpu}
NGPU=${NGPU:-2}
source scripts/gpu/lib.sh   # left, stamp, save, export_demo
# the two halves of the ZeroNVS-size scaling comparison: $1 = 1 | N, $2 = timeout (s), $3 = log
zeronvs_half() {
  RUN=$R/ddp OUT=$R/res ONLY=$1 NGPU="$NGPU" ACCEL="$ACCEL" PRESET="$ZPRESET" POOL=$R/pool256.pt EB="${ZEB:-32}" \
      SECONDS="$ZNVS_S" STEPS="$ZSTEPS" LR="$ZLR" WARMUP="$ZWARM" EXTRA="freeze_image_encoder=true export_model=false" \
      timeout "$2" bash scripts/gpu/ddp_scaling.sh > "$3" 2>&1
}
# a demo training run (lib.sh demo_train) at these settings:
# $1 = 1 | N, $2 = run folder, $3 = init model folder (empty: random DPRESET), $4 = effective batch,
# $5 = training seconds, $6 = warm-up steps, $7 = timeout (s), $8 = tag of the result files
demo_run() {
  INIT="$3" POOL="$R/pool128.pt" EB="$4" LR=3e-4 WARMUP="$6" EXTRA="ema_decay=0.995 val_every=100000 ckpt_every=100000" \
      demo_train "$1" "$2" "demo4_$8" "$5" "$7"
}
[ "$ACCEL" = gpu ] && nvidia-smi -L > "$R/res/gpus.txt"

(   # GPU 0: 256 px pool, ZeroNVS-size on 1 GPU
  export CUDA_VISIBLE_DEVICES=0
  python scripts/gpu/make_pool.py "$R/pool256.pt" --size "${ZSIZE:-256}" --seconds 30 --seed 10000 --chunk 20 \
      > "$R/res/pool256.log" 2>&1
  stamp "256 px pool: $(tail -n 1 "$R/res/pool256.log")"
  zeronvs_half 1 "$(left)" "$R/res/zeronvs_1gpu.log"
  stamp "ZeroNVS size, 1 GPU done"
  save "ddp/${ZPRESET}_1gpu/train_summary.json" "ddp/${ZPRESET}_1gpu/logs/metrics.csv" res/zeronvs_1gpu.log
) &
(   # GPU 1: 128 px pool, demo continued on 1 GPU at batch 1024
  export CUDA_VISIBLE_DEVICES=1
  python scripts/gpu/make_pool.py "$R/pool128.pt" --size "${SIZE:-128}" --seconds 45 --seed 10000 \
      > "$R/res/pool128.log" 2>&1
  stamp "128 px pool: $(tail -n 1 "$R/res/pool128.log")"
  demo_run 1 "$R/demo4" "$INIT" "${DEB:-1024}" "$DEMO1_S" 100 "$(left "${RESERVE:-250}")" 1gpu
) &
wait
save res/timeline.txt res/pool256.log res/pool128.log

# phase 2: the ZeroNVS-size N-GPU half, then the 1 vs N summary (JSON + loss-curve PNG)
zeronvs_half N "$(left 120)" "$R/res/zeronvs_ngpu.log"
stamp "ZeroNVS size, $NGPU GPUs done"
save "ddp/${ZPRESET}_${NGPU}gpu/train_summary.json" "ddp/${ZPRESET}_${NGPU}gpu/logs/metrics.csv" \
    res/zeronvs_ngpu.log "res/scaling_${ZPRESET}.json" "res/scaling_${ZPRESET}.png" res/timeline.txt

# phase 3: the demo on all GPUs from phase 1's weights until the deadline (training stops 60 s
# before it: set-up, export)
rest=$(( $(left) - 60 - 45 ))
if [ "$rest" -gt 30 ] && [ -d "$R/demo4/${DPRESET}_1gpu/model" ]; then
  demo_run N "$R/demo4b" "$R/demo4/${DPRESET}_1gpu/model" "$(( ${DEB:-1024} * NGPU ))" "$rest" 50 "$(left 20)" ngpu
fi
stamp "end"; save res/timeline.txt
ls -la "$DEST"
