#!/usr/bin/env bash
# Where a lifecycle's CPU goes on the Redis backend: starts a private redis-server (no
# persistence) and a release comfy-queue on it, runs queue-load at one concurrency, and
# prints per lifecycle: CPU time of the queue, of redis-server and of the load tool (from
# /proc/<pid>/stat), and Redis commands (INFO commandstats: calls made from the scripts
# count as commands). With PERF=1 it also records both servers with `perf record -g` and
# prints the top symbols of each (`perf report --no-children`).
#
#   bash queue/bench/redis-profile.sh [seconds] [concurrency]
#   PERF=1 bash queue/bench/redis-profile.sh 5 32
# COMFY_QUEUE_BIN / QUEUE_LOAD_BIN: other builds of comfy-queue / queue-load.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS="${1:-5}"
CONC="${2:-32}"
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

RP="$(free_port)"
redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" >/dev/null & RPID=$!
PIDS+=($RPID)
for _ in $(seq 50); do redis-cli -p "$RP" ping >/dev/null 2>&1 && break; sleep 0.1; done
QP="$(free_port)"
RUST_LOG=warn "$BIN" --listen "127.0.0.1:$QP" --redis-url "redis://127.0.0.1:$RP/" \
  --allow-volatile-redis --max-pending 0 & QPID=$!
PIDS+=($QPID)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$QP/health" >/dev/null && break; sleep 0.1; done
# Warm up (worker registration caches, script loading), then measure.
"$LOAD" --url "http://127.0.0.1:$QP" --concurrency "$CONC" --seconds 1 --handoffs 0 >/dev/null
redis-cli -p "$RP" config resetstat >/dev/null
q0="$(ticks "$QPID")"
r0="$(ticks "$RPID")"
if [ "${PERF:-0}" = 1 ]; then
  perf record -g -o "$TMP/queue.perf" -p "$QPID" -- sleep "$SECS" >/dev/null 2>&1 & PERF_Q=$!
  perf record -g -o "$TMP/redis.perf" -p "$RPID" -- sleep "$SECS" >/dev/null 2>&1 & PERF_R=$!
fi
/usr/bin/time -f "%U %S" -o "$TMP/load.time" \
  "$LOAD" --url "http://127.0.0.1:$QP" --concurrency "$CONC" --seconds "$SECS" --handoffs 0 \
  | tee "$TMP/load.out"
q1="$(ticks "$QPID")"
r1="$(ticks "$RPID")"
n="$(awk -v c="$CONC" '$1 == c {print $2}' "$TMP/load.out")"
read -r lu ls < "$TMP/load.time"
awk -v n="$n" -v hz="$HZ" -v q="$((q1 - q0))" -v r="$((r1 - r0))" -v l="$(echo "$lu + $ls" | bc)" 'BEGIN {
  printf "CPU per lifecycle: queue %.3f ms, redis-server %.3f ms, load tool %.3f ms, total %.3f ms\n",
    q / hz * 1000 / n, r / hz * 1000 / n, l * 1000 / n, (q / hz + r / hz + l) * 1000 / n }'
redis-cli -p "$RP" info commandstats | tr -d '\r' | awk -F'[=:,]' -v n="$n" '
  /^cmdstat_/ { sub("cmdstat_", "", $1); calls[$1] = $3; us[$1] = $5; total += $3 }
  END {
    printf "Redis commands per lifecycle: %.1f (", total / n
    for (c in calls) printf " %s %.2f", c, calls[c] / n
    printf " )\n"; printf "EVALSHA: %.1f us per call inside Redis\n", us["evalsha"] / calls["evalsha"]
  }'
if [ "${PERF:-0}" = 1 ]; then
  wait "$PERF_Q" "$PERF_R" || true
  for p in queue redis; do
    echo "== perf top symbols: $p"
    perf report -i "$TMP/$p.perf" --no-children --sort symbol --stdio -g none 2>/dev/null \
      | grep -E "^ +[0-9.]+%" | sed "s/  */ /g" | cut -c1-110 | head -15 || true
  done
fi
