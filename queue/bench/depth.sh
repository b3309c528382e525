#!/usr/bin/env bash
# Cost at queue depth on both backends: starts a release comfy-queue on SQLite and one on a
# private redis-server (free ports, temp dirs), fills each to 0 / 10,000 / 100,000 pending
# jobs with queue-load --depth, and prints status, job-read, submit and claim latencies, the
# submit rate, the queue's RSS and Redis memory per pending job at each depth.
# Usage: bash queue/bench/depth.sh [depths] [samples]        (defaults 0,10000,100000 and 500)
#        COMFY_QUEUE_BIN=path/to/comfy-queue bash queue/bench/depth.sh   (another build)
#        BACKENDS=sqlite bash queue/bench/depth.sh                       (one backend)
set -euo pipefail
cd "$(dirname "$0")/../.."
DEPTHS="${1:-0,10000,100000}"
SAMPLES="${2:-500}"
BACKENDS="${BACKENDS:-sqlite redis}"
cargo build -p comfy-queue --release --bins
QUEUE="${COMFY_QUEUE_BIN:-target/release/comfy-queue}"
LOAD=target/release/queue-load
. queue/bench/lib.sh
for backend in $BACKENDS; do
  QP="$(free_port)"
  case "$backend" in
    sqlite)
      echo "== SQLite backend ($QUEUE)"
      RUST_LOG=warn "$QUEUE" --listen "127.0.0.1:$QP" --db "$TMP/depth.db" --max-pending 0 & QPID=$!
      PIDS+=($QPID)
      wait_up "$QP"
      "$LOAD" --url "http://127.0.0.1:$QP" --depth "$DEPTHS" --samples "$SAMPLES" --server-pid "$QPID"
      ;;
    redis)
      echo "== Redis backend ($QUEUE)"
      RP="$(free_port)"
      redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" >/dev/null & PIDS+=($!)
      sleep 0.3
      RUST_LOG=warn "$QUEUE" --listen "127.0.0.1:$QP" --redis-url "redis://127.0.0.1:$RP/" --allow-volatile-redis --max-pending 0 & QPID=$!
      PIDS+=($QPID)
      wait_up "$QP"
      "$LOAD" --url "http://127.0.0.1:$QP" --depth "$DEPTHS" --samples "$SAMPLES" --server-pid "$QPID" --redis-url "redis://127.0.0.1:$RP/"
      ;;
    *) echo "unknown backend $backend (sqlite, redis)" >&2; exit 2 ;;
  esac
  kill "$QPID" 2>/dev/null || true
done
