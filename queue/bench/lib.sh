# Shared by the queue's bench scripts (sourced after they cd to the workspace root): a temp
# dir and the processes started, both removed on exit; free loopback ports; waiting for a
# queue to answer /health.
TMP="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 100); do curl -fs "http://127.0.0.1:$1/health" >/dev/null && return 0; sleep 0.1; done; echo "server on $1 did not start" >&2; exit 1; }
