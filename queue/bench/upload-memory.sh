#!/usr/bin/env bash
# Throughput and peak memory of the queue for one large worker upload: starts a fresh
# comfy-queue (SQLite, local file store in a temp dir), leases a job, uploads a file of
# SIZE_MB (default 200) random bytes as its output through
# POST /api/workers/jobs/{id}/files (curl streams it from disk), downloads it again, and
# prints the throughput of both and the process' RSS before, its peak after, and the growth.
#
#   bash queue/bench/upload-memory.sh [release|debug]      (default release)
#   SIZE_MB=1000 bash queue/bench/upload-memory.sh
#   COMFY_QUEUE_BIN=path/to/comfy-queue bash queue/bench/upload-memory.sh   (another build)
set -euo pipefail
cd "$(dirname "$0")/../.."
profile="${1:-release}"
size_mb="${SIZE_MB:-200}"
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
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
head -c "$((size_mb * 1024 * 1024))" /dev/urandom >"$work/out.bin"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
"$bin" --listen "127.0.0.1:$port" --db "$work/q.db" --max-pending 0 \
  --max-file-bytes $((2 * size_mb * 1024 * 1024)) >"$work/q.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -sf "$base/health" >/dev/null && break
  sleep 0.1
done
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
curl -sf -H 'Content-Type: application/json' \
  -d '{"user_id": "bench", "workflow": {"1": {"class_type": "SaveImage"}}}' "$base/api/jobs" >/dev/null
leased="$(curl -sf "$base/api/workers/next-job?worker_id=bench-worker")"
id="$(echo "$leased" | json "['job']['id']")"
token="$(echo "$leased" | json "['job']['lease_token']")"
kb() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$pid/status"; }
rss_before="$(kb VmRSS)"
hwm_before="$(kb VmHWM)"
echo "file: $size_mb MB ($profile build)"
echo "before:   VmRSS $((rss_before / 1024)) MB, VmHWM $((hwm_before / 1024)) MB"
start="$(date +%s.%N)"
code="$(curl -s -o "$work/answer.json" -w '%{http_code}' -X POST -T "$work/out.bin" \
  -H 'Content-Type: application/octet-stream' \
  "$base/api/workers/jobs/$id/files?lease_token=$token&role=output&filename=big.bin")"
end="$(date +%s.%N)"
hwm_up="$(kb VmHWM)"
[ "$code" = 201 ] || { echo "upload answered $code: $(cat "$work/answer.json")"; exit 1; }
url="$(json "['url']" <"$work/answer.json")"
dstart="$(date +%s.%N)"
curl -sf -o "$work/back.bin" "$base$url"
dend="$(date +%s.%N)"
hwm_down="$(kb VmHWM)"
cmp -s "$work/out.bin" "$work/back.bin" || { echo "downloaded bytes differ"; exit 1; }
python3 - "$size_mb" "$start" "$end" "$dstart" "$dend" "$rss_before" "$hwm_up" "$hwm_down" <<'PY'
import sys
mb, s, e, ds, de = float(sys.argv[1]), *map(float, sys.argv[2:6])
rss, hwm_up, hwm_down = (int(x) / 1024 for x in sys.argv[6:9])
print(f"upload:   {e - s:.2f} s, {mb / (e - s):.0f} MB/s; peak RSS {hwm_up:.1f} MB, growth {hwm_up - rss:.1f} MB")
print(f"download: {de - ds:.2f} s, {mb / (de - ds):.0f} MB/s; peak RSS {hwm_down:.1f} MB, growth {hwm_down - rss:.1f} MB")
PY
