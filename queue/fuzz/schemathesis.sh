#!/usr/bin/env bash
# Schema-driven fuzzing of the queue's HTTP API: schemathesis (from PyPI)
# reads the server's own /api/openapi.json and sends generated requests —
# valid and invalid — to a real comfy-queue, once without tokens and once
# with worker/admin tokens set. Fails on any 5xx, undocumented status,
# wrong content type or answer that does not match the documented schema.
#
#   bash queue/fuzz/schemathesis.sh [MAX_EXAMPLES]      (default 100)
#
# Needs python3; the venv is cached under $COMFY_CI_CACHE (default
# ~/.cache/comfy-ci). Uses target/debug/comfy-queue, building it if missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

max_examples="${1:-100}"
version=4.32.5
cache="${COMFY_CI_CACHE:-$HOME/.cache/comfy-ci}"
venv="$cache/schemathesis-$version"
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==$version"
fi

bin="$PWD/target/debug/comfy-queue"
[ -x "$bin" ] || cargo build -q -p comfy-queue --bin comfy-queue

work="$(mktemp -d)"
cd "$work"  # schemathesis keeps its cache in the working directory
# start_queue runs in a command substitution (a subshell), so the servers' pids are kept
# in files: an array filled there would be empty here and the servers would outlive the run.
cleanup() {
  for f in "$work"/*.pid; do [ -e "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_queue() { # name, extra args...
  local name="$1"; shift
  local port; port="$(free_port)"
  "$bin" --listen "127.0.0.1:$port" --db "$work/$name.db" --max-pending 0 \
    --max-wait-secs 1 "$@" >"$work/$name.log" 2>&1 &
  echo "$!" >"$work/$name.pid"
  for _ in $(seq 1 100); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/health')" 2>/dev/null; then
      echo "$port"; return 0
    fi
    sleep 0.1
  done
  echo "queue $name did not start:" >&2; cat "$work/$name.log" >&2; return 1
}

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance
run() { # label, port, extra schemathesis args...
  local label="$1" port="$2"; shift 2
  echo "== schemathesis: $label (max $max_examples examples per operation)"
  timeout 600 "$venv/bin/schemathesis" run "http://127.0.0.1:$port/api/openapi.json" \
    --checks "$checks" --max-examples "$max_examples" \
    --phases examples,coverage,fuzzing --request-timeout 10 --no-color "$@"
}

port="$(start_queue open)"
run "no tokens" "$port"

port="$(start_queue tokens --worker-token fuzz-worker-token --admin-token fuzz-admin-token)"
run "tokens set, as admin" "$port" -H "Authorization: Bearer fuzz-admin-token"
run "tokens set, as a worker" "$port" -H "Authorization: Bearer fuzz-worker-token"
run "tokens set, as a user" "$port" -H "X-Forwarded-User: fuzz-user"
