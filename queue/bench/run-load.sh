#!/usr/bin/env bash
# Benchmark both backends on this machine: starts a private redis-server on a free port and
# a release comfy-queue per backend on 127.0.0.1, runs queue-load, and stops what it started.
# Usage: bash queue/bench/run-load.sh [seconds-per-level]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS="${1:-5}"
cargo build -p comfy-queue --release --bins
BIN=target/release
. queue/bench/lib.sh
echo "== SQLite backend"
QP="$(free_port)"
RUST_LOG=warn "$BIN/comfy-queue" --listen "127.0.0.1:$QP" --db "$TMP/bench.db" --max-pending 0 & PIDS+=($!)
wait_up "$QP"
"$BIN/queue-load" --url "http://127.0.0.1:$QP" --seconds "$SECS"

echo "== Redis backend"
RP="$(free_port)"
redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" >/dev/null & PIDS+=($!)
sleep 0.3
QP2="$(free_port)"
RUST_LOG=warn "$BIN/comfy-queue" --listen "127.0.0.1:$QP2" --redis-url "redis://127.0.0.1:$RP/" --allow-volatile-redis --max-pending 0 & PIDS+=($!)
wait_up "$QP2"
"$BIN/queue-load" --url "http://127.0.0.1:$QP2" --seconds "$SECS"
