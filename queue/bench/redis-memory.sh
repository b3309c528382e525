#!/usr/bin/env bash
# Redis memory per pending job and the queue's RSS at N pending: starts a private
# redis-server (no persistence) and a release comfy-queue on it, submits N jobs over HTTP
# (nobody claims them), and prints `used_memory` (INFO memory) after minus before, over N,
# and the queue's VmRSS.
#
#   bash queue/bench/redis-memory.sh [N] [small|large] [users]
#
# small: queue-load's submit body (a 62-byte workflow, 33-byte metadata); large: a 14-node
# API prompt of about 2 kB. Jobs go round robin to `users` users (default 20, as queue-load).
# COMFY_QUEUE_BIN=path/to/comfy-queue to measure another build.
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-100000}"
KIND="${2:-small}"
USERS="${3:-20}"
BIN="${COMFY_QUEUE_BIN:-}"
if [ -z "$BIN" ]; then
  cargo build -p comfy-queue --release --bin comfy-queue
  BIN=target/release/comfy-queue
fi
. queue/bench/lib.sh
RP="$(free_port)"
redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" >/dev/null & PIDS+=($!)
for _ in $(seq 50); do redis-cli -p "$RP" ping >/dev/null 2>&1 && break; sleep 0.1; done
QP="$(free_port)"
RUST_LOG=warn "$BIN" --listen "127.0.0.1:$QP" --redis-url "redis://127.0.0.1:$RP/" \
  --allow-volatile-redis --max-pending 0 --max-per-user 0 & QPID=$!
PIDS+=($QPID)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$QP/health" >/dev/null && break; sleep 0.1; done
used() { redis-cli -p "$RP" info memory | awk -F: '/^used_memory:/ {print $2+0}'; }
before="$(used)"
python3 - "$QP" "$N" "$KIND" "$USERS" <<'PY'
import http.client, json, sys, threading
port, n, kind, users = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
if kind == "small":
    wf = {"3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20}}}
else:
    wf = {str(i): {"class_type": "KSampler",
                   "inputs": {"seed": i, "steps": 20, "cfg": 7.5, "sampler_name": "euler",
                              "scheduler": "normal", "denoise": 1.0, "model": ["4", 0]}}
          for i in range(14)}
THREADS = 4
def run(t):
    c = http.client.HTTPConnection("127.0.0.1", port)
    for i in range(t, n, THREADS):
        body = json.dumps({"user_id": "user%03d" % (i % users + 1), "workflow": wf,
                           "priority": 2, "metadata": {"batch_index": 0, "batch_total": 1}},
                          separators=(",", ":"))
        c.request("POST", "/api/jobs", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        if r.status != 201:
            sys.exit("submit answered %d" % r.status)
ts = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
for t in ts: t.start()
for t in ts: t.join()
PY
after="$(used)"
pending="$(curl -fs "http://127.0.0.1:$QP/api/queue/status" | python3 -c 'import json,sys; v=json.load(sys.stdin); print(v.get("pending_jobs", "?"))' 2>/dev/null || echo '?')"
rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$QPID/status")"
echo "jobs $N ($KIND body, $USERS users), pending per /api/queue/status: $pending"
awk -v a="$after" -v b="$before" -v n="$N" 'BEGIN {printf "redis used_memory: %.1f MB more, %.0f bytes per pending job\n", (a-b)/1048576, (a-b)/n}'
echo "queue VmRSS: $((rss / 1024)) MB"
redis-cli -p "$RP" --scan --pattern 'cq:job:*' 2>/dev/null | head -1 | xargs -r -I{} redis-cli -p "$RP" object encoding {} | sed 's/^/job hash encoding: /'
