#!/usr/bin/env bash
# A/B two comfy-queue builds on Redis: one private redis-server, each build in turn on its own
# key prefix, queue-load at the given concurrency levels, the builds interleaved ROUNDS times
# (a busy machine drifts; interleaving keeps the comparison fair).
# Usage: bash queue/bench/ab-redis.sh path/to/comfy-queue-A path/to/comfy-queue-B
#        SECS=5 LEVELS=1,8,32 ROUNDS=2 (the defaults)
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$#" -ge 2 ] || { echo "usage: $0 BUILD_A BUILD_B [BUILD...]" >&2; exit 2; }
SECS="${SECS:-5}"; LEVELS="${LEVELS:-1,8,32}"; ROUNDS="${ROUNDS:-2}"
cargo build -p comfy-queue --release --bin queue-load
. queue/bench/lib.sh
RP="$(free_port)"
redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" >/dev/null & PIDS+=($!)
sleep 0.3
for round in $(seq "$ROUNDS"); do
  n=0
  for bin in "$@"; do
    n=$((n + 1))
    QP="$(free_port)"
    RUST_LOG=error "$bin" --listen "127.0.0.1:$QP" --redis-url "redis://127.0.0.1:$RP/" \
      --redis-prefix "ab$round-$n" --allow-volatile-redis --max-pending 0 & QPID=$!
    wait_up "$QP"
    echo "== $bin (round $round)"
    target/release/queue-load --url "http://127.0.0.1:$QP" --seconds "$SECS" --concurrency "$LEVELS" --handoffs 0
    kill "$QPID"; wait "$QPID" 2>/dev/null || true
  done
done
