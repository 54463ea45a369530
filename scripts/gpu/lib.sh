# Helpers of the deadline-bounded device scripts (sourced; needs t0, END, R, DEST set):
#   left [S]   seconds until END minus S (at least 1), for `timeout`
#   stamp MSG  a line of the run's timeline ($R/res/timeline.txt), with the seconds since t0
#   save F...  append files / glob patterns (relative to $R) to $DEST/results.tar, safe in parallel
#   export_demo DIR   a trained demo model folder -> fp16 export split into $DEST/demo_model.tar.part-*
left() { local s=$(( END - ($(date +%s) - t0) - ${1:-0} )); echo $(( s > 1 ? s : 1 )); }
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*" | tee -a "$R/res/timeline.txt"; }
DEST=$(mkdir -p "$DEST" && cd "$DEST" && pwd)   # save() runs inside $R
# patterns are expanded inside $R (quote them at the call); missing files are skipped
save() { (cd "$R" && shopt -s nullglob && f=($@) && [ ${#f[@]} -gt 0 ] && \
          flock "$DEST/.lock" tar rf "$DEST/results.tar" "${f[@]}" 2>/dev/null) || true; }
export_demo() {
  python scripts/gpu/export_fp16.py "$1" "$R/demo_model" > "$R/res/export_demo.log" 2>&1 || return 1
  rm -f "$DEST"/demo_model.tar.part-*
  (cd "$R" && tar cf - demo_model | split -b 15m - "$DEST/demo_model.tar.part-") && rm -rf "$R/demo_model"
  stamp "demo model exported from $1"
}
