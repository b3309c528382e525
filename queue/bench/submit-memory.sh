#!/usr/bin/env bash
# Peak memory of the queue for one large submit: generates an API prompt of
# about 9.5 MB (60,000 nodes), submits it once to a fresh comfy-queue
# (SQLite) and prints the process' peak and current RSS before and after.
#
#   bash queue/bench/submit-memory.sh [release|debug]     (default release)
#   COMFY_QUEUE_BIN=path/to/comfy-queue bash queue/bench/submit-memory.sh   (another build)
set -euo pipefail
cd "$(dirname "$0")/../.."
profile="${1:-release}"
if [ -n "${COMFY_QUEUE_BIN:-}" ]; then
  bin="$COMFY_QUEUE_BIN"; profile="given"
elif [ "$profile" = release ]; then
  cargo build -q --release -p comfy-queue --bin comfy-queue
  bin="$PWD/target/release/comfy-queue"
else
  cargo build -q -p comfy-queue --bin comfy-queue
  bin="$PWD/target/debug/comfy-queue"
fi
work="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
python3 - "$work/body.json" <<'PY'
import json, sys
nodes = {str(i): {"class_type": "EmptyImage",
                  "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": i},
                  "_meta": {"title": "Empty Image number %d" % i}} for i in range(60000)}
with open(sys.argv[1], "w") as f:
    json.dump({"user_id": "u1", "workflow": nodes}, f)
PY
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$bin" --listen "127.0.0.1:$port" --db "$work/q.db" --max-pending 0 >"$work/q.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  sleep 0.1
done
rss() { awk '/VmHWM|VmRSS/ {printf "%s %d MB  ", $1, $2/1024}' "/proc/$pid/status"; echo; }
echo "body: $(( $(stat -c %s "$work/body.json") / 1024 / 1024 )) MB ($profile build)"
echo -n "idle:         "; rss
code="$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
  --data-binary @"$work/body.json" "http://127.0.0.1:$port/api/jobs")"
echo -n "after submit ($code): "; rss
