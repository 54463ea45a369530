#!/usr/bin/env bash
# One call on a 2-GPU machine (device kind nvidia-h100-x2, 2026-11-26), every phase bounded by a
# deadline from the start, each result saved to $OUT as soon as it exists:
#   GPU 0: a 128 px pool, then the demo model continued at batch 1024 with the reference
#          cc_lr_mult = 10 (the shipped model ignores the camera: val/camera_gain ~ 0), logging
#          val/camera_gain every VAL_EVERY steps; exported in fp16 (demo_model.tar.part-*);
#   GPU 1: benchmarks/distill_step.py (speed, peak memory and profile of each schedule phase) at
#          the defaults and with --low-memory, then benchmarks/distill.py: plain SDS vs anchoring
#          (K = 4) with the schedule shortened to DSTEPS steps (both phases run).
#   bash scripts/gpu/x2_demo_and_distill_step.sh          (env: END total seconds, DSTEPS, VAL_EVERY, INIT)
# CPU smoke test (a random tiny model folder first: python -c "from novelviews.model import
#   ViewConditionedLDM, model_config; ViewConditionedLDM(model_config('tiny')).save_pretrained('/tmp/tinym')"):
#   ACCEL=cpu DPRESET=tiny INIT= SIZE=32 DEB=8 END=420 DSTEPS=4 \
#   DSTEP_ARGS="--steps 1 --warmup 0 --profile 1 --model /tmp/tinym phases.batch_sizes=[1,1]" \
#   DIST_ARGS="--preset tiny --model /tmp/tinym" OUT=/tmp/x2s4 R=/tmp/x2s4run bash scripts/gpu/x2_demo_and_distill_step.sh
set -uo pipefail
END=${END:-560}
DSTEPS=${DSTEPS:-400}
DPRESET=${DPRESET:-demo}
INIT=${INIT-src/novelviews/data/demo_model}
ACCEL=${ACCEL:-gpu}
DEV=cuda; [ "$ACCEL" = cpu ] && DEV=cpu
NGPU=2
source scripts/gpu/lib.sh   # left, stamp, save, export_demo, demo_train
[ "$ACCEL" = gpu ] && nvidia-smi -L > "$R/res/gpus.txt"

(   # GPU 0: the demo model, camera pathway at the reference learning rate
  export CUDA_VISIBLE_DEVICES=0
  python scripts/gpu/make_pool.py "$R/pool128.pt" --size "${SIZE:-128}" --seconds 45 --seed 10000 \
      > "$R/res/pool128.log" 2>&1
  stamp "128 px pool: $(tail -n 1 "$R/res/pool128.log")"
  INIT="$INIT" POOL="$R/pool128.pt" EB="${DEB:-1024}" LR=2e-4 WARMUP=50 CC_MULT=10 \
      EXTRA="ema_decay=0.995 val_every=${VAL_EVERY:-150} val_batch=32 ckpt_every=100000" \
      demo_train 1 "$R/demo5" demo5 $(( $(left 75) - 40 )) "$(left 45)"
) &
(   # GPU 1: distillation - each phase measured, then a short-schedule anchoring comparison
  export CUDA_VISIBLE_DEVICES=1
  # shellcheck disable=SC2086
  timeout 150 python benchmarks/distill_step.py --device "$DEV" --out "$R/res/distill_step.json" ${DSTEP_ARGS:---steps 20 --warmup 3 --profile 2} \
      > "$R/res/distill_step.log" 2>&1
  stamp "distill_step (defaults) done"
  # shellcheck disable=SC2086
  timeout 120 python benchmarks/distill_step.py --device "$DEV" --low-memory --out "$R/res/distill_step_lowmem.json" \
      ${DSTEP_ARGS:---steps 20 --warmup 3 --profile 2} > "$R/res/distill_step_lowmem.log" 2>&1
  stamp "distill_step (--low-memory) done"
  save res/distill_step.json res/distill_step.log res/distill_step_lowmem.json res/distill_step_lowmem.log
  # shellcheck disable=SC2086
  timeout "$(left 30)" python benchmarks/distill.py --device "$DEV" --steps "$DSTEPS" --anchors 4 \
      --budget-seconds "$(left 60)" --out "$R/distill" ${DIST_ARGS:-} > "$R/res/distill.log" 2>&1
  stamp "distill.py done"
  save res/distill.log distill/distill.json distill/input.png distill/heldout_gt.png \
      distill/anchors_*/heldout_pred.png distill/anchors_*/video.* distill/anchors_*/metrics.csv distill/anchors_*/anchors
) &
wait
stamp "end"; save res/timeline.txt res/pool128.log res/gpus.txt
ls -la "$DEST"
