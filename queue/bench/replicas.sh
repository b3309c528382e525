#!/usr/bin/env bash
# Queue replicas on one Redis: lifecycle throughput at concurrency 32 with 1, 2 and 4
# `comfy-queue` processes on one private redis-server (each level on a fresh Redis), the
# lifecycles crossing replicas (task t submits through replica t mod n and claims and
# completes through the next one), and the long-poll hand-off from a submit on one replica
# to a worker waiting on another. Prints Redis' CPU per lifecycle beside each level.
# Usage: bash queue/bench/replicas.sh [seconds-per-level] [replica counts, e.g. "1 2 4"]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS="${1:-5}"
COUNTS="${2:-1 2 4}"
cargo build -p comfy-queue --release --bins
BIN=target/release
. queue/bench/lib.sh
redis_cpu() { # used_cpu_sys + used_cpu_user of the server, in seconds
  redis-cli -p "$1" info cpu | awk -F: '/^used_cpu_(sys|user):/ {s += $2} END {printf "%.3f", s}'
}
for n in $COUNTS; do
  echo "== $n replica(s)"
  RP="$(free_port)"
  redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" >/dev/null & RPID=$!
  sleep 0.3
  URLS=()
  QPIDS=()
  for _ in $(seq "$n"); do
    QP="$(free_port)"
    RUST_LOG=error "$BIN/comfy-queue" --listen "127.0.0.1:$QP" --redis-url "redis://127.0.0.1:$RP/" \
      --allow-volatile-redis --max-pending 0 & QPIDS+=($!)
    wait_up "$QP"
    URLS+=("http://127.0.0.1:$QP")
  done
  before="$(redis_cpu "$RP")"
  out="$("$BIN/queue-load" --url "$(IFS=,; echo "${URLS[*]}")" --concurrency 32 --seconds "$SECS" --handoffs 200)"
  after="$(redis_cpu "$RP")"
  echo "$out"
  done_jobs="$(echo "$out" | awk '$1 == 32 {print $2}')"
  awk -v a="$after" -v b="$before" -v d="$done_jobs" \
    'BEGIN {printf "redis-server CPU: %.2f s, %.3f ms per lifecycle (handoffs included)\n", a - b, (a - b) * 1000 / (d + 200)}'
  kill "${QPIDS[@]}" "$RPID" 2>/dev/null || true
  wait "${QPIDS[@]}" "$RPID" 2>/dev/null || true
done
