#!/usr/bin/env bash
# Interoperability with NVIDIA's own clients: perf_analyzer (HTTP and gRPC) and tritonclient's
# HTTP and gRPC clients (2.51.0).
#
#   Tests/Interop/run_interop.sh                                   # .build/debug/dnnscaler
#   DNNSCALER_BIN=.build/release/dnnscaler Tests/Interop/run_interop.sh
#
# Starts the server on free ports with simple,tiny_cnn,linear_hand,string_echo, waits until it is
# ready, then runs perf_analyzer over HTTP (binary tensors, JSON tensors, batch 4, system shared
# memory, BYTES binary and JSON) and gRPC (unary, batch 4, streaming, system shared memory, BYTES), Tests/Interop/tritonclient_roundtrip.py and
# Tests/Interop/tritonclient_grpc_roundtrip.py, checks the metrics endpoint, sends SIGTERM and
# checks a clean exit (0 within 30 s), then runs Tests/Interop/drain_check.py (SIGTERM under load
# with a drain grace, on servers of its own). Needs scripts/setup (models) and scripts/setup_clients
# (.venv-client with tritonclient and perf_analyzer). Prints `N passed, M failed` last and
# exits non-zero if anything failed. Takes about a minute.
#
# Environment: DNNSCALER_BIN (server binary), DNNSCALER_CLIENT_VENV (default .venv-client),
# DNNSCALER_MODEL_REPOSITORY (default model_repository), INTEROP_READY_TIMEOUT (s, default 120).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

BIN="${DNNSCALER_BIN:-.build/debug/dnnscaler}"
CLIENT_VENV="${DNNSCALER_CLIENT_VENV:-$ROOT/.venv-client}"
REPO="${DNNSCALER_MODEL_REPOSITORY:-$ROOT/model_repository}"
READY_TIMEOUT="${INTEROP_READY_TIMEOUT:-120}"
MODELS="simple,tiny_cnn,linear_hand,string_echo"

PASSED=0
FAILED=0
SERVER_PID=""
WORK="$(mktemp -d "${TMPDIR:-/tmp}/dnnscaler-interop.XXXXXX")"
LOG="$WORK/server.log"

say() { printf 'interop: %s\n' "$*"; }
pass() { PASSED=$((PASSED + 1)); printf 'PASS %s\n' "$*"; }
fail() { FAILED=$((FAILED + 1)); printf 'FAIL %s\n' "$*"; }
summary() { printf '%d passed, %d failed\n' "$PASSED" "$FAILED"; }

cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "interop: interrupted" >&2; exit 130' INT TERM

# Fatal before any check ran: say why, count it, stop.
abort() {
  fail "$*"
  if [ -s "$LOG" ]; then
    echo "--- server log (last 40 lines) ---"
    tail -n 40 "$LOG"
  fi
  summary
  exit 1
}

# --- prerequisites --------------------------------------------------------------------------
case "$BIN" in /*) ;; *) BIN="$ROOT/$BIN" ;; esac
[ -x "$BIN" ] || abort "server binary $BIN not found (build it, or set DNNSCALER_BIN)"
[ -x "$CLIENT_VENV/bin/python" ] || abort "no client venv at $CLIENT_VENV: run scripts/setup_clients"
PA="$CLIENT_VENV/bin/perf_analyzer"
[ -x "$PA" ] || abort "no perf_analyzer in $CLIENT_VENV/bin: run scripts/setup_clients"
CUDART_LIB="$(ls -d "$CLIENT_VENV"/lib/python3*/site-packages/nvidia/cuda_runtime/lib 2>/dev/null | head -n 1)"
[ -n "$CUDART_LIB" ] || abort "nvidia-cuda-runtime-cu12 missing in $CLIENT_VENV: run scripts/setup_clients"
export LD_LIBRARY_PATH="$CUDART_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
for m in ${MODELS//,/ }; do
  [ -f "$REPO/$m/1/model.onnx" ] || abort "model $m missing in $REPO: run scripts/setup"
done

# --- free ports (bound to 0 by the kernel, released just before the server binds them) -----
read -r HTTP_PORT GRPC_PORT METRICS_PORT < <("$CLIENT_VENV/bin/python" - <<'PY'
import socket
socks = []
for _ in range(3):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(*(s.getsockname()[1] for s in socks))
PY
)
[ -n "${METRICS_PORT:-}" ] || abort "could not pick free ports"
URL="127.0.0.1:$HTTP_PORT"
GRPC_URL="127.0.0.1:$GRPC_PORT"

# --- start the server -----------------------------------------------------------------------
# With 2 or more CPUs the server splits them (--io-cores 1: event loops on the last CPU, the
# instances pinned to the others), so every check below also runs against that placement.
IO_ARGS=()
[ "$(nproc)" -ge 2 ] && IO_ARGS=(--io-cores 1)
say "starting $BIN on http $HTTP_PORT, grpc $GRPC_PORT, metrics $METRICS_PORT (models $MODELS) ${IO_ARGS[*]}"
"$BIN" serve --model-repository "$REPO" --models "$MODELS" --host 127.0.0.1 \
  --http-port "$HTTP_PORT" --grpc-port "$GRPC_PORT" --metrics-port "$METRICS_PORT" --slo-ms 50 --allow-client-shm \
  --drain-grace-seconds 0 \
  "${IO_ARGS[@]}" >"$LOG" 2>&1 &
SERVER_PID=$!

start=$SECONDS
ready=no
while [ $((SECONDS - start)) -lt "$READY_TIMEOUT" ]; do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    wait "$SERVER_PID"
    rc=$?
    SERVER_PID=""
    abort "server exited with status $rc before it was ready"
  fi
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$URL/v2/health/ready" || true)"
  if [ "$code" = 200 ]; then
    ready=yes
    break
  fi
  sleep 0.5
done
[ "$ready" = yes ] || abort "server not ready within ${READY_TIMEOUT}s"
pass "server ready after $((SECONDS - start))s"

# --- CPU placement (--io-cores 1): threads on the I/O CPU alone, and on the compute CPUs alone --
if [ "${#IO_ARGS[@]}" -gt 0 ]; then
  if placement="$("$CLIENT_VENV/bin/python" - "$SERVER_PID" "$MODELS" <<'PY'
import os, sys
pid, models = sys.argv[1], sys.argv[2].split(",")
cpus = sorted(os.sched_getaffinity(0))
io, compute = cpus[-1:], cpus[:-1]
def allowed(task):
    for line in open(f"/proc/{pid}/task/{task}/status"):
        if line.startswith("Cpus_allowed_list:"):
            out = []
            for part in line.split(":", 1)[1].strip().split(","):
                a, _, b = part.partition("-")
                out += range(int(a), int(b or a) + 1)
            return out
sets = [allowed(t) for t in os.listdir(f"/proc/{pid}/task")]
on_io, on_compute = sets.count(io), sets.count(compute)
print(f"{on_io} thread(s) on I/O CPUs {io}, {on_compute} on compute CPUs {compute}")
# Each model has at least one instance, whose worker is pinned to the compute CPUs.
sys.exit(0 if on_io >= 1 and on_compute >= len(models) else 1)
PY
)"; then
    pass "--io-cores 1: $placement"
  else
    fail "--io-cores 1: threads not placed as asked ($placement)"
  fi
  if grep -q "cpus=compute" "$LOG"; then
    pass "placement logged: $(grep -o 'cpus=compute [^=]*io [0-9,-]*' "$LOG" | head -n 1)"
  else
    fail "the server log does not say its CPU placement"
  fi
fi

# --- perf_analyzer --------------------------------------------------------------------------
# Lenient stability (-s 100): on 2 shared cores the windows vary; this checks the protocol,
# not the figures. Every concurrency level must be reported (perf_analyzer exits 0 but stops
# early when a level does not stabilize).
run_pa() {
  local name="$1" levels="$2"
  shift 2
  local out="$WORK/pa-$name.txt" csv="$WORK/pa-$name.csv"
  say "perf_analyzer $name: $*"
  rm -f "$csv"
  "$PA" -m "${PA_MODEL:-simple}" -p 1000 --max-trials 5 -s 100 -f "$csv" "$@" >"$out" 2>&1
  local rc=$?
  if grep -q 'Failed to obtain stable measurement' "$out" && ! grep -q 'had error' "$out"; then
    # A busy machine, not the protocol: once more with the stability check all but off.
    say "perf_analyzer $name: no stable measurement; retrying with -s 1000"
    rm -f "$csv"
    "$PA" -m "${PA_MODEL:-simple}" -p 1000 --max-trials 5 -s 1000 -f "$csv" "$@" >"$out" 2>&1
    rc=$?
  fi
  local rows=0
  [ -f "$csv" ] && rows=$(grep -c '^[0-9]' "$csv")
  if [ "$rc" -ne 0 ] || [ "$rows" -ne "$levels" ] || grep -qiE 'error|failed' "$out"; then
    fail "perf_analyzer $name (exit $rc, $rows of $levels levels reported)"
    tail -n 25 "$out"
  else
    pass "perf_analyzer $name ($(grep -E '^Concurrency: ' "$out" | sed -E 's/.*throughput: ([0-9.]+) infer\/sec.*/\1/' | tr '\n' ' ')infer/s)"
  fi
}
run_pa binary 4 -u "$URL" --concurrency-range 1:4
run_pa json 4 -u "$URL" --concurrency-range 1:4 --input-tensor-format json --output-tensor-format json
run_pa batch4 2 -u "$URL" --concurrency-range 1:2 -b 4
run_pa shared-memory 2 -u "$URL" --concurrency-range 1:2 --shared-memory system
run_pa grpc 4 -i grpc -u "$GRPC_URL" --concurrency-range 1:4
run_pa grpc-batch4 2 -i grpc -u "$GRPC_URL" --concurrency-range 1:2 -b 4
run_pa grpc-streaming 2 -i grpc -u "$GRPC_URL" --concurrency-range 1:2 --streaming --async
run_pa grpc-shared-memory 2 -i grpc -u "$GRPC_URL" --concurrency-range 1:2 --shared-memory system
# BYTES tensors (string_echo): every string "7", which its Cast parses.
PA_MODEL=string_echo run_pa bytes 2 -u "$URL" --concurrency-range 1:2 --string-data 7
PA_MODEL=string_echo run_pa bytes-json 2 -u "$URL" --concurrency-range 1:2 --string-data 7 --input-tensor-format json --output-tensor-format json
PA_MODEL=string_echo run_pa grpc-bytes 2 -i grpc -u "$GRPC_URL" --concurrency-range 1:2 --string-data 7

# --- tritonclient ---------------------------------------------------------------------------
say "tritonclient round trips"
if "$CLIENT_VENV/bin/python" "$ROOT/Tests/Interop/tritonclient_roundtrip.py" --url "$URL" >"$WORK/roundtrip.txt" 2>&1; then
  pass "tritonclient round trips ($(tail -n 1 "$WORK/roundtrip.txt"))"
else
  fail "tritonclient round trips"
  grep -v '^ok ' "$WORK/roundtrip.txt"
fi

say "tritonclient gRPC round trips"
if "$CLIENT_VENV/bin/python" "$ROOT/Tests/Interop/tritonclient_grpc_roundtrip.py" --url "$GRPC_URL" >"$WORK/grpc-roundtrip.txt" 2>&1; then
  pass "tritonclient gRPC round trips ($(tail -n 1 "$WORK/grpc-roundtrip.txt"))"
else
  fail "tritonclient gRPC round trips"
  grep -v '^ok ' "$WORK/grpc-roundtrip.txt"
fi

# --- metrics --------------------------------------------------------------------------------
metrics="$(curl -s --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics" || true)"
success="$(printf '%s\n' "$metrics" | awk '/^nv_inference_request_success\{.*model="simple"/ {print $NF}' | head -n 1)"
if [ -n "$success" ] && awk -v n="$success" 'BEGIN {exit !(n + 0 > 0)}'; then
  pass "metrics: nv_inference_request_success for simple = $success"
else
  fail "metrics: no positive nv_inference_request_success for simple on port $METRICS_PORT"
fi

# --- graceful shutdown ----------------------------------------------------------------------
say "SIGTERM"
kill -TERM "$SERVER_PID"
start=$SECONDS
while kill -0 "$SERVER_PID" 2>/dev/null && [ $((SECONDS - start)) -lt 30 ]; do
  sleep 0.2
done
if kill -0 "$SERVER_PID" 2>/dev/null; then
  fail "server still running 30s after SIGTERM"
else
  wait "$SERVER_PID"
  rc=$?
  SERVER_PID=""
  if [ "$rc" -eq 0 ]; then
    pass "SIGTERM: server exited 0 after $((SECONDS - start))s"
  else
    fail "SIGTERM: server exited with status $rc"
  fi
fi

# --- drain under load (its own servers) ----------------------------------------------------
say "drain: SIGTERM under open-loop load"
if "$CLIENT_VENV/bin/python" "$ROOT/Tests/Interop/drain_check.py" --bin "$BIN" --repository "$REPO" \
  >"$WORK/drain.txt" 2>&1; then
  pass "drain ($(grep -c '^ok ' "$WORK/drain.txt") checks: $(grep 'readiness' "$WORK/drain.txt" | sed 's/^ok //'))"
else
  fail "drain"
  cat "$WORK/drain.txt"
fi

if [ "$FAILED" -ne 0 ]; then
  echo "--- server log (last 40 lines) ---"
  tail -n 40 "$LOG"
fi
summary
[ "$FAILED" -eq 0 ]
