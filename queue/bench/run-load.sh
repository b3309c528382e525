#!/usr/bin/env bash
# Benchmark both backends on this machine: starts a private redis-server on a free port and
# a release comfy-queue per backend on 127.0.0.1, runs queue-load, and stops what it started.
# Usage: bash queue/bench/run-load.sh [seconds-per-level]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS="${1:-5}"
cargo build -p comfy-queue --release --bins
BIN=target/release
TMP="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 100); do curl -fs "http://127.0.0.1:$1/health" >/dev/null && return 0; sleep 0.1; done; echo "server on $1 did not start" >&2; exit 1; }

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
