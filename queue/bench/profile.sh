#!/usr/bin/env bash
# Where a lifecycle's CPU goes, on either backend: starts a release comfy-queue (on a
# private redis-server without persistence, or on a fresh SQLite file), runs queue-load at
# one concurrency, and prints per lifecycle: CPU time of the queue, of redis-server and of
# the load tool (from /proc/<pid>/stat); on Redis the commands (INFO commandstats: calls
# made from the scripts count as commands), on SQLite the fsync/fdatasync calls (perf's
# syscall tracepoints) and so the lifecycles one sync covers. With PERF=1 it also records
# the servers with `perf record -g` and prints the top symbols of each.
#
#   bash queue/bench/profile.sh redis|sqlite [seconds] [concurrency]
#   PERF=1 bash queue/bench/profile.sh sqlite 5 32
# COMFY_QUEUE_BIN / QUEUE_LOAD_BIN: other builds of comfy-queue / queue-load.
set -euo pipefail
cd "$(dirname "$0")/../.."
BACKEND="${1:-}"
case "$BACKEND" in
  redis | sqlite) ;;
  *) echo "usage: bash queue/bench/profile.sh redis|sqlite [seconds] [concurrency]" >&2; exit 2 ;;
esac
SECS="${2:-5}"
CONC="${3:-32}"
BIN="${COMFY_QUEUE_BIN:-}"
LOAD="${QUEUE_LOAD_BIN:-}"
if [ -z "$BIN" ] || [ -z "$LOAD" ]; then
  cargo build -p comfy-queue --release --bins
  BIN="${BIN:-target/release/comfy-queue}"
  LOAD="${LOAD:-target/release/queue-load}"
fi
. queue/bench/lib.sh
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # utime + stime, clock ticks
HZ="$(getconf CLK_TCK)"

QP="$(free_port)"
if [ "$BACKEND" = redis ]; then
  RP="$(free_port)"
  redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" >/dev/null & RPID=$!
  PIDS+=($RPID)
  for _ in $(seq 50); do redis-cli -p "$RP" ping >/dev/null 2>&1 && break; sleep 0.1; done
  RUST_LOG=warn "$BIN" --listen "127.0.0.1:$QP" --redis-url "redis://127.0.0.1:$RP/" \
    --allow-volatile-redis --max-pending 0 & QPID=$!
else
  RUST_LOG=warn "$BIN" --listen "127.0.0.1:$QP" --db "$TMP/profile.db" --max-pending 0 & QPID=$!
fi
PIDS+=($QPID)
wait_up "$QP"
# Warm up (worker registration caches, script loading), then measure.
"$LOAD" --url "http://127.0.0.1:$QP" --concurrency "$CONC" --seconds 1 --handoffs 0 >/dev/null
q0="$(ticks "$QPID")"
r0=0
if [ "$BACKEND" = redis ]; then
  redis-cli -p "$RP" config resetstat >/dev/null
  r0="$(ticks "$RPID")"
else
  perf stat -e 'syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync' -x, -o "$TMP/syncs" \
    -p "$QPID" -- sleep "$SECS" 2>/dev/null & PERF_S=$!
fi
if [ "${PERF:-0}" = 1 ]; then
  perf record -g -o "$TMP/queue.perf" -p "$QPID" -- sleep "$SECS" >/dev/null 2>&1 & PERF_Q=$!
  if [ "$BACKEND" = redis ]; then
    perf record -g -o "$TMP/redis.perf" -p "$RPID" -- sleep "$SECS" >/dev/null 2>&1 & PERF_R=$!
  fi
fi
/usr/bin/time -f "%U %S" -o "$TMP/load.time" \
  "$LOAD" --url "http://127.0.0.1:$QP" --concurrency "$CONC" --seconds "$SECS" --handoffs 0 \
  | tee "$TMP/load.out"
q1="$(ticks "$QPID")"
r1=0
[ "$BACKEND" = redis ] && r1="$(ticks "$RPID")"
n="$(awk -v c="$CONC" '$1 == c {print $2}' "$TMP/load.out")"
read -r lu ls < "$TMP/load.time"
awk -v n="$n" -v hz="$HZ" -v q="$((q1 - q0))" -v r="$((r1 - r0))" -v l="$(echo "$lu + $ls" | bc)" 'BEGIN {
  printf "CPU per lifecycle: queue %.3f ms, redis-server %.3f ms, load tool %.3f ms, total %.3f ms\n",
    q / hz * 1000 / n, r / hz * 1000 / n, l * 1000 / n, (q / hz + r / hz + l) * 1000 / n }'
if [ "$BACKEND" = sqlite ]; then
  wait "$PERF_S" || true
  awk -F, -v n="$n" -v secs="$SECS" '$3 ~ /sys_enter_f(data)?sync/ { s += $1 }
    END { if (s > 0) printf "syncs: %.0f per s (fsync + fdatasync), %.2f lifecycles per sync\n", s / secs, n / s }' "$TMP/syncs"
fi
[ "$BACKEND" = redis ] && redis-cli -p "$RP" info commandstats | tr -d '\r' | awk -F'[=:,]' -v n="$n" '
  /^cmdstat_/ { sub("cmdstat_", "", $1); calls[$1] = $3; us[$1] = $5; total += $3 }
  END {
    printf "Redis commands per lifecycle: %.1f (", total / n
    for (c in calls) printf " %s %.2f", c, calls[c] / n
    printf " )\n"; printf "EVALSHA: %.1f us per call inside Redis\n", us["evalsha"] / calls["evalsha"]
  }'
if [ "${PERF:-0}" = 1 ]; then
  wait "$PERF_Q" ${PERF_R:+"$PERF_R"} || true
  for p in queue $([ "$BACKEND" = redis ] && echo redis); do
    echo "== perf top symbols: $p"
    perf report -i "$TMP/$p.perf" --no-children --sort symbol --stdio -g none 2>/dev/null \
      | grep -E "^ +[0-9.]+%" | sed "s/  */ /g" | cut -c1-110 | head -15 || true
  done
fi
