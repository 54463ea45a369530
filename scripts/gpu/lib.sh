# The common start of the deadline-bounded device scripts, sourced right after their settings
# (END: seconds after the start by which everything has stopped). Sets R (run folder, default
# runs), DEST ($OUT, else $R/export; absolute), t0 (the start), the NCCL / unbuffered environment,
# and these helpers:
#   left [S]   seconds until END minus S (at least 1), for `timeout`
#   stamp MSG  a line of the run's timeline ($R/res/timeline.txt), with the seconds since t0
#   save F...  append files / glob patterns (relative to $R) to $DEST/results.tar, safe in parallel
#   export_demo DIR [OPTIONS]   a trained demo model folder -> fp16 export in $R/demo_model (kept), split into
#       $DEST/demo_model.tar.part-* (OPTIONS: scripts/gpu/export_fp16.py's, e.g. --decoder-from RUN/dec/model)
#   demo_train ONLY RUN TAG TRAIN_S TIMEOUT   a demo training run (scripts/gpu/ddp_scaling.sh: ONLY =
#       1 | N GPUs; INIT, POOL, EB, LR, WARMUP, CC_MULT, EXTRA from the caller's environment, e.g.
#       `INIT=m POOL=p.pt EB=1024 demo_train 1 "$R/run" demo5 300 360`), its log / summary / loss
#       log saved as res/TAG.log, res/TAG_summary.json, res/TAG_metrics.csv, then export_demo
R=${R:-runs}
DEST=${OUT:-$R/export}
mkdir -p "$R/res" "$DEST"
DEST=$(cd "$DEST" && pwd)   # save() runs inside $R
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
t0=$(date +%s)
left() { local s=$(( END - ($(date +%s) - t0) - ${1:-0} )); echo $(( s > 1 ? s : 1 )); }
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*" | tee -a "$R/res/timeline.txt"; }
# patterns are expanded inside $R (quote them at the call); missing files are skipped
save() { (cd "$R" && shopt -s nullglob && f=($@) && [ ${#f[@]} -gt 0 ] && \
          flock "$DEST/.lock" tar rf "$DEST/results.tar" "${f[@]}" 2>/dev/null) || true; }
export_demo() {
  rm -rf "$R/demo_model"
  python scripts/gpu/export_fp16.py "$1" "$R/demo_model" "${@:2}" > "$R/res/export_demo.log" 2>&1 || return 1
  rm -f "$DEST"/demo_model.tar.part-*
  (cd "$R" && tar cf - demo_model | split -b 15m - "$DEST/demo_model.tar.part-") || return 1
  stamp "demo model exported from $*"
}
demo_train() {
  local only=$1 run=$2 tag=$3 gpus=1
  [ "$only" = N ] && gpus=$NGPU
  RUN=$run OUT=$R/res ONLY=$only NGPU="$NGPU" ACCEL="$ACCEL" PRESET="$DPRESET" SECONDS="$4" \
      timeout "$5" bash scripts/gpu/ddp_scaling.sh > "$R/res/$tag.log" 2>&1
  local rc=$?
  stamp "$tag: demo on $gpus GPU(s) done (exit $rc)"
  [ "$rc" = 0 ] || tail -n 5 "$R/res/$tag.log"
  local out="$run/${DPRESET}_${gpus}gpu"
  cp "$out/train_summary.json" "$R/res/${tag}_summary.json"; cp "$out/logs/metrics.csv" "$R/res/${tag}_metrics.csv"
  save "res/${tag}_summary.json" "res/${tag}_metrics.csv" "res/$tag.log"
  [ -d "$out/model" ] && export_demo "$out/model"
}
