#!/usr/bin/env bash
# A device job longer than one device command: `start` copies the checkout to /tmp/nv_NAME and runs
# CMD there in its own process session (it survives the end of the command that started it),
# then follows its log for WATCH seconds; `wait` (the next command, on the same machine) follows
# it until it ends or SECONDS pass, then copies its result folder (/tmp/nv_NAME/out, which CMD
# writes to as $JOB_OUT) into $OUT.
#   bash scripts/gpu/detached.sh start NAME WATCH 'OUT=$JOB_OUT bash scripts/gpu/demo_real_photos.sh'
#   bash scripts/gpu/detached.sh wait NAME 560
# CPU smoke test: bash scripts/gpu/detached.sh start t 3 'sleep 5; echo hi > $JOB_OUT/x'; \
#   OUT=/tmp/o bash scripts/gpu/detached.sh wait t 20
set -uo pipefail
verb=${1:?start or wait}; name=${2:?job name}; secs=${3:?seconds}
job=/tmp/nv_$name
follow() {  # follow SECONDS: print the log's new lines until the job ends or SECONDS pass
  local end=$(( $(date +%s) + $1 )) seen=0 n
  while [ "$(date +%s)" -lt "$end" ] && kill -0 "$(cat "$job.pid")" 2>/dev/null; do
    sleep 5
    n=$(wc -l < "$job.log"); [ "$n" -gt "$seen" ] && sed -n "$((seen + 1)),${n}p" "$job.log"; seen=$n
  done
  n=$(wc -l < "$job.log"); [ "$n" -gt "$seen" ] && sed -n "$((seen + 1)),${n}p" "$job.log"
  if kill -0 "$(cat "$job.pid")" 2>/dev/null; then echo "[detached] $name still running"; else
    echo "[detached] $name ended: exit $(cat "$job.rc" 2>/dev/null || echo unknown)"; fi
}
case "$verb" in
  start)
    cmd=${4:?command}
    rm -rf "$job" && mkdir -p "$job/out"
    tar cf - --exclude=.git --exclude=./runs/dw . | (cd "$job/tree" 2>/dev/null || { mkdir -p "$job/tree"; cd "$job/tree"; }; tar xf -)
    JOB_OUT="$job/out" setsid nohup bash -c "cd '$job/tree' && { $cmd; }; echo \$? > '$job.rc'" \
        > "$job.log" 2>&1 < /dev/null &
    echo $! > "$job.pid"
    follow "$secs" ;;
  wait)
    [ -f "$job.pid" ] || { echo "no job $name on this machine (it went back?)" >&2; exit 2; }
    follow "$secs"
    mkdir -p "${OUT:?OUT}" && cp -r "$job/out/." "$OUT/" && cp "$job.log" "$OUT/${name}.log" ;;
  *) echo "verb: start or wait" >&2; exit 2 ;;
esac
