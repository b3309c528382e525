#!/usr/bin/env bash
# Memory of the queue for large submits: generates an API prompt of about 9.5 MB
# (60,000 nodes) and, for each build, on a fresh comfy-queue (SQLite) each time:
#   - submits it once: peak RSS (VmHWM) over idle, as a ratio to the body;
#   - submits it 8 times at once: peak over idle, and RSS 2 s after the burst vs idle.
#
#   bash queue/bench/submit-memory.sh                 release and debug builds
#   bash queue/bench/submit-memory.sh release|debug   one of them
#   COMFY_QUEUE_BIN=path/to/comfy-queue bash queue/bench/submit-memory.sh   (another build)
set -euo pipefail
cd "$(dirname "$0")/../.."
work="$(mktemp -d)"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
python3 - "$work/body.json" <<'PY'
import json, sys
nodes = {str(i): {"class_type": "EmptyImage",
                  "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": i},
                  "_meta": {"title": "Empty Image number %d" % i}} for i in range(60000)}
with open(sys.argv[1], "w") as f:
    json.dump({"user_id": "u1", "workflow": nodes}, f)
PY
body_bytes="$(stat -c %s "$work/body.json")"
kb() { awk -v k="$1" "/^$2:/ {print \$2}" "/proc/$pid/status"; }   # field in kB
mb() { awk -v k="$1" 'BEGIN {printf "%.0f MB", k / 1024}'; }

start_queue() {
  local port
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  rm -rf "$work/db"; mkdir -p "$work/db"
  "$1" --listen "127.0.0.1:$port" --db "$work/db/q.db" --max-pending 0 >"$work/q.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    sleep 0.1
  done
  url="http://127.0.0.1:$port"
  sleep 0.5
  idle="$(kb "$pid" VmRSS)"
}

stop_queue() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=""; }

submit() {
  curl -s -o /dev/null -w '%{http_code}\n' -H 'Content-Type: application/json' \
    --data-binary @"$work/body.json" "$url/api/jobs"
}

measure() { # $1 = binary, $2 = label
  echo "$2 build, body $(awk -v b="$body_bytes" 'BEGIN {printf "%.1f MiB (%.1f MB)", b / 1048576, b / 1e6}')"
  start_queue "$1"
  local code peak
  code="$(submit)"
  peak="$(kb "$pid" VmHWM)"
  echo "  one submit ($code):   idle $(mb "$idle"), peak $(mb "$peak"), +$(mb $((peak - idle))) =" \
    "$(awk -v d=$((peak - idle)) -v b="$body_bytes" 'BEGIN {printf "%.1f", d * 1024 / b}')x the body;" \
    "RSS after $(mb "$(kb "$pid" VmRSS)")"
  stop_queue
  start_queue "$1"
  local codes
  codes="$(for _ in 1 2 3 4 5 6 7 8; do submit & done; wait)"
  peak="$(kb "$pid" VmHWM)"
  sleep 2
  local after
  after="$(kb "$pid" VmRSS)"
  echo "  8 at once ($(echo "$codes" | sort | uniq -c | awk '{printf "%s×%s ", $1, $2}')): idle $(mb "$idle")," \
    "peak $(mb "$peak"), +$(mb $((peak - idle))) =" \
    "$(awk -v d=$((peak - idle)) -v b="$body_bytes" 'BEGIN {printf "%.1f", d * 1024 / b / 8}')x per body;" \
    "RSS 2 s after $(mb "$after") (idle +$(mb $((after - idle))))"
  stop_queue
}

if [ -n "${COMFY_QUEUE_BIN:-}" ]; then
  measure "$COMFY_QUEUE_BIN" given
  exit 0
fi
for profile in ${1:-release debug}; do
  if [ "$profile" = release ]; then
    cargo build -q --release -p comfy-queue --bin comfy-queue
    measure "$PWD/target/release/comfy-queue" release
  else
    cargo build -q -p comfy-queue --bin comfy-queue
    measure "$PWD/target/debug/comfy-queue" debug
  fi
done
