#!/usr/bin/env bash
# Demo model trained on real-photo statistics (docs/DEMO_MODEL.md), one GPU, one device call, every
# phase bounded by a deadline from the start (END seconds) and saved to $OUT as soon as it exists:
#   1. pools, rendered at once: procedural scenes (seeds from BASE, half the orbits on arcs) and
#      photo-plane scenes of the photos in PHOTOS (scripts/build_photo_pool.py --export-photos;
#      seeds from PHOTO_BASE), on the GPU with several renderer processes each;
#   2. the VAE fine-tuned on both pools (stage vae, all of it) with the latent anchor (VAE_ANCHOR),
#      so the LDM's latent space stays where it was while the VAE learns real photographs;
#   3. the LDM continued from INIT with that VAE on both pools (weights PROC_W / PHOTO_W), a share
#      IDENTITY of pairs whose target is the condition view itself, mirrored scenes, validation on
#      held-out scenes of each pool, cosine learning-rate decay;
#   4. the EMA weights exported in fp16 (demo_model.tar.part-*);
#   5. with EVAL=1, the export and INIT scored side by side (scripts/gpu/demo_real_photos_eval.sh) into $OUT/eval.
#   PHOTOS=runs/photos BASE=600000 bash scripts/gpu/demo_real_photos.sh
#   env: END, RENDER_S, NPROC, PHOTO_PROCS, VIEWS, PHOTO_VIEWS, VAE_S, VAE_LR, VAE_ANCHOR, LR, EB, IDENTITY,
#        INIT, TRAIN_EXTRA (more nvs train overrides of the LDM stage);
#        PROC_TEX: share of the procedural scenes' materials textured with the photos (0: none);
#        VAE_MODE=decoder: instead of phase 2, a decoder-only VAE fine-tune (the latent space stays INIT's)
#          runs beside the LDM for DEC_S whole seconds (default: the whole LDM phase; beside it the LDM runs at
#          about half its speed), on the pools weighted DEC_PHOTO_W to photo planes, latents noised up to
#          DEC_NOISE (vae_latent_noise; 0 = clean latents only);
#        EVAL=1 (EVAL_SCENES, EVAL_STEPS, EVAL_DEVICE): score the export and INIT at the end
# CPU smoke test (tiny sizes, a few seconds per phase):
#   ACCEL=cpu SIZE=128 VIEWS=3 PHOTO_VIEWS=3 NPROC=1 PHOTO_PROCS=1 RENDER_S=40 SPAN=6 VAE_S=10 END=330 EB=4 VAL_SCENES=2 VAL_BATCH=2 WORKERS=1 PREC=fp32 \
#     OUT=/tmp/drp R=/tmp/drprun bash scripts/gpu/demo_real_photos.sh
#   (add PROC_TEX=0.4 VAE_MODE=decoder EVAL=1 EVAL_SCENES=1 EVAL_STEPS=2 EVAL_DEVICE=cpu for the other phases)
set -uo pipefail
END=${END:-570}
RENDER_S=${RENDER_S:-85}
NPROC=${NPROC:-10}
PHOTO_PROCS=${PHOTO_PROCS:-4}
BASE=${BASE:-600000}
PHOTO_BASE=${PHOTO_BASE:-1000000}
SPAN=${SPAN:-3000}
PHOTOS=${PHOTOS:-runs/photos}
INIT=${INIT:-src/novelviews/data/demo_model}
ACCEL=${ACCEL:-gpu}
PREC=${PREC:-bf16}
VAL_SCENES=${VAL_SCENES:-64}
PROC_TEX=${PROC_TEX:-0}
VAE_MODE=${VAE_MODE:-all}
EVAL=${EVAL:-0}
case "$VAE_MODE" in all|decoder) ;; *) echo "VAE_MODE must be all or decoder, got '$VAE_MODE'" >&2; exit 2 ;; esac
python -c 'import sys; float(sys.argv[1])' "$PROC_TEX" 2>/dev/null \
  || { echo "PROC_TEX must be a number in [0, 1], got '$PROC_TEX'" >&2; exit 2; }
[[ "${DEC_S:-0}" =~ ^[0-9]+$ ]] || { echo "DEC_S must be whole seconds, got '$DEC_S'" >&2; exit 2; }
source scripts/gpu/lib.sh   # left, stamp, save, export_demo
[ -d "$PHOTOS" ] || { echo "no photo folder $PHOTOS (python scripts/build_photo_pool.py --export-photos $PHOTOS)" >&2; exit 2; }
[ "$ACCEL" = gpu ] && nvidia-smi -L > "$R/res/gpus.txt"
dev=(); [ "$ACCEL" = cpu ] && dev=(CUDA_VISIBLE_DEVICES=)

# 1. both pools at once
tex=(); python -c 'import sys; sys.exit(not float(sys.argv[1]) > 0)' "$PROC_TEX" \
  && tex=(--photo-textures "$PHOTOS" --photo-share "$PROC_TEX")
env "${dev[@]}" timeout "$((RENDER_S + 60))" python scripts/gpu/make_pool.py "$R/proc.pt" --size "${SIZE:-128}" \
    --seconds "$RENDER_S" --procs "$NPROC" --chunk 5 --max-scenes "$SPAN" --views "${VIEWS:-8}" --seed "$BASE" \
    --arc-fraction 0.5 "${tex[@]}" > "$R/res/pool_proc.log" 2>&1 &
env "${dev[@]}" timeout "$((RENDER_S + 60))" python scripts/gpu/make_pool.py "$R/photo.pt" --size "${SIZE:-128}" \
    --seconds "$((RENDER_S - 25))" --procs "$PHOTO_PROCS" --chunk 20 --max-scenes "$SPAN" --views "${PHOTO_VIEWS:-6}" \
    --seed "$PHOTO_BASE" --photos "$PHOTOS" > "$R/res/pool_photo.log" 2>&1 &
wait
stamp "pools: $(tail -n 1 "$R/res/pool_proc.log"); $(tail -n 1 "$R/res/pool_photo.log")"
save res/pool_*.log res/timeline.txt res/gpus.txt
[ -f "$R/proc.pt" ] && [ -f "$R/photo.pt" ] || { stamp "a pool is missing"; exit 1; }

train() {  # train TAG SECONDS ARGS...: one nvs train run on both pools (weights W_PROC / W_PHOTO), its logs saved
  local tag=$1 secs=$2; shift 2
  local minutes; minutes=$(python -c "print(max(0.05, $secs / 60))")
  timeout "$(( secs + 150 ))" python -m novelviews train "$R/proc.pt:${W_PROC:-0.5}" "$R/photo.pt:${W_PHOTO:-0.5}" \
      --out "$R/$tag" --overwrite --quiet accelerator="$ACCEL" precision="$PREC" max_minutes="$minutes" \
      num_workers="${WORKERS:-4}" log_every=10 val_batch="${VAL_BATCH:-64}" val_scenes="$VAL_SCENES" ckpt_every=100000 "$@" > "$R/res/$tag.log" 2>&1
  local rc=$?
  stamp "$tag: exit $rc, $(grep -o 'trained [0-9]* steps in [0-9.]* s' "$R/res/$tag.log" | tail -n 1)"
  cp "$R/$tag/train_summary.json" "$R/res/${tag}_summary.json" 2>/dev/null
  cp "$R/$tag/logs/metrics.csv" "$R/res/${tag}_metrics.csv" 2>/dev/null
  save "res/${tag}_summary.json" "res/${tag}_metrics.csv" "res/$tag.log" res/timeline.txt
  return $rc
}

vae_run() {  # vae_run TAG SECONDS WHAT ARGS...: a VAE-stage run (WHAT: all | decoder)
  local tag=$1 secs=$2 what=$3; shift 3
  train "$tag" "$secs" --init "$INIT" --steps 100000 --batch-size "${VAE_EB:-64}" stage=vae vae_train="$what" \
      lr="${VAE_LR:-2e-4}" warmup_steps=50 ema_decay=0.99 val_every=200 "$@"
}
# 2. the VAE on real photos, anchored to its latent space (VAE_MODE=all), before the LDM
ldm_init=$INIT
if [ "$VAE_MODE" = all ]; then
  W_PROC=${PROC_W:-0.5} W_PHOTO=${PHOTO_W:-0.5} vae_run vae "${VAE_S:-110}" all vae_anchor="${VAE_ANCHOR:-1.0}" \
    || { stamp "the VAE stage failed"; exit 1; }
  ldm_init=$R/vae/model   # INIT's UNet and image encoder unchanged, the new VAE
fi

# 3. the LDM (with VAE_MODE=decoder, beside it a decoder-only fine-tune for as long)
reserve=75; [ "$EVAL" = 1 ] && reserve=$(( 75 + ${EVAL_S:-200} ))
ldm_s=$(( $(left "$reserve") - 60 ))
dec_pid=
if [ "$VAE_MODE" = decoder ]; then
  dec_w=${DEC_PHOTO_W:-0.6}
  W_PROC=$(python -c "print(1 - $dec_w)") W_PHOTO=$dec_w vae_run dec "${DEC_S:-$ldm_s}" decoder \
      vae_latent_noise="${DEC_NOISE:-0}" &
  dec_pid=$!
fi
W_PROC=${PROC_W:-0.5} W_PHOTO=${PHOTO_W:-0.5} train ldm "$ldm_s" --init "$ldm_init" --steps "${LDM_STEPS:-1100}" \
    --batch-size "${EB:-2048}" lr="${LR:-4e-4}" warmup_steps=50 cc_lr_mult=10 ema_decay=0.995 val_every=200 \
    mirror=true identity_pairs="${IDENTITY:-0.1}" lr_schedule=cosine min_lr_ratio=0.05 ${TRAIN_EXTRA:-}
if [ -n "$dec_pid" ]; then
  wait "$dec_pid" || stamp "the decoder run failed: the export keeps INIT's decoder"
fi
exported=0
if [ -d "$R/ldm/model" ]; then
  dec=(); [ "$VAE_MODE" = decoder ] && [ -d "$R/dec/model" ] && dec=(--decoder-from "$R/dec/model")
  export_demo "$R/ldm/model" "${dec[@]}" && exported=1
fi
# 5. the export ($R/demo_model) and INIT side by side, same seeds
if [ "$EVAL" = 1 ] && [ "$exported" = 1 ]; then
  init_m=$INIT; [ "$INIT" = src/novelviews/data/demo_model ] && init_m=demo
  MODELS="$init_m $R/demo_model" SCENES=${EVAL_SCENES:-24} PLANES=${EVAL_SCENES:-24} STEPS=${EVAL_STEPS:-50} \
    DEVICE=${EVAL_DEVICE:-cuda} OUT=$DEST/eval timeout "$(left 10)" bash scripts/gpu/demo_real_photos_eval.sh \
    > "$R/res/eval.log" 2>&1
  stamp "eval: exit $?"; save res/eval.log
fi
stamp "end"; save res/timeline.txt
ls -la "$DEST"
