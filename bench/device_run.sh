#!/usr/bin/env bash
# On a machine without Swift (a lent device machine), from the repository root with .devbundle/ and
# model_repository/ carried over (scripts/device_bundle made the bundle): unpacks the bundle and
# runs the benchmarks with the server and the load generators on separate CPUs.
#
#   bench/device_run.sh overhead     # serving_overhead.py: server on CPUs 0-1, perf_analyzer on 2-5 (~4 min)
#   bench/device_run.sh overhead-io  # the same with `serve --io-cores 1`: server on CPUs 0-2 (compute 0-1,
#                                    # event loops on 2), in process on 0-1, perf_analyzer on 3-6 (~4 min)
#   bench/device_run.sh capacity     # pinned_capacity.py: lanes of 2 server CPUs + 1 client CPU (~6-9 min)
#   bench/device_run.sh all          # both at once on disjoint CPUs, for one short run (~7 min, 16 CPUs):
#                                    # overhead-io with server 0-2 and perf_analyzer 3-4; capacity in four
#                                    # lanes 5,6 7,8 9,10 11,12 (their generators two to a CPU, 13 and 14) of
#                                    # dnnscaler, joint and the statics 1x1 and 1x2, two rounds
#   bench/device_run.sh squeezenet-lanes # one round of squeezenet in five lanes (servers 0-9, a generator
#                                    # CPU each, 10-14), each lane's progress streamed to lanes/laneN.log
#                                    # (~1-2 min; wrap in `timeout` to keep what a stall leaves)
#   bench/device_run.sh stall-probe  # stall_probe.py: squeezenet at 10/s in five lanes (spinning or not,
#                                    # the generator's loop count, 1x2T or 2x1T), together, then each alone
#                                    # (~3 min): where 30-55 ms single requests at low load come from
#
# Results go to $OUT (the device tool's output folder) or bench/results/device/. Standard library
# Python only; needs at least 6 CPUs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WHAT="${1:-overhead}"
DEST="${OUT:-$ROOT/bench/results/device}"
mkdir -p "$DEST"
B="$(mktemp -d /tmp/dnnscaler-bundle.XXXXXX)"
tar -C "$B" -xJf "$ROOT/.devbundle/dnnscaler-bundle.tar.xz"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export DNNSCALER_BIN="$B/bin/dnnscaler"
export DNNSCALER_CLIENT_VENV="$B/venvc"
export DNNSCALER_ORT_LIBRARY="$(ls "$B"/lib/libonnxruntime.so.1.* | head -n 1)"
"$DNNSCALER_BIN" --help >/dev/null
{ nproc; lscpu 2>/dev/null | grep -E "Model name|Thread|Core|Socket|NUMA node" || true; } >"$DEST/machine.txt"
case "$WHAT" in
  overhead)
    DNNSCALER_BENCH_SERVER_CPUS=0,1 DNNSCALER_BENCH_CLIENT_CPUS=2-5 \
      python3 -m bench.serving_overhead --repeats 2 --window-ms 2000 --latency-window-ms 2000 --duration 3 \
      --json "$DEST/overhead.json" 2>&1 | tee "$DEST/overhead.txt"
    ;;
  overhead-io)
    DNNSCALER_BENCH_SERVER_CPUS=0-2 DNNSCALER_BENCH_CLIENT_CPUS=3-6 \
      python3 -m bench.serving_overhead --io-cores 1 --skip-latency --repeats 2 --window-ms 2000 --duration 3 \
      --json "$DEST/overhead-io.json" 2>&1 | tee "$DEST/overhead-io.txt"
    ;;
  capacity)
    python3 -m bench.pinned_capacity --models squeezenet,resnet50 --repeats 2 --json "$DEST/capacity.json" 2>&1 \
      | tee "$DEST/capacity.txt"
    ;;
  all)
    [ "$(nproc)" -ge 15 ] || { echo "device_run: 'all' needs 15 CPUs, this machine has $(nproc)" >&2; exit 2; }
    DNNSCALER_BENCH_SERVER_CPUS=0-2 DNNSCALER_BENCH_CLIENT_CPUS=3-4 \
      python3 -u -m bench.serving_overhead --io-cores 1 --repeats 2 --window-ms 2000 --latency-window-ms 2000 \
      --duration 3 --json "$DEST/overhead-io.json" >"$DEST/overhead-io.txt" 2>&1 &
    OVERHEAD=$!
    python3 -u -m bench.pinned_capacity --models squeezenet,resnet50 --repeats 2 --configs dnnscaler,joint,1x1,1x2 \
      --lane 5,6+13 --lane 7,8+13 --lane 9,10+14 --lane 11,12+14 \
      --json "$DEST/capacity.json" >"$DEST/capacity.txt" 2>&1 &
    CAPACITY=$!
    STATUS=0
    wait "$OVERHEAD" || STATUS=$?
    wait "$CAPACITY" || STATUS=$?
    tail -n 20 "$DEST/overhead-io.txt" "$DEST/capacity.txt"
    exit "$STATUS"
    ;;
  squeezenet-lanes)
    python3 -u -m bench.pinned_capacity --models squeezenet --repeats 1 --configs dnnscaler,joint,1x1,1x2,2x1 \
      --lane 0,1+10 --lane 2,3+11 --lane 4,5+12 --lane 6,7+13 --lane 8,9+14 --log-dir "$DEST/lanes" \
      --json "$DEST/capacity-squeezenet.json" 2>&1 | tee "$DEST/capacity-squeezenet.txt"
    ;;
  stall-probe)
    python3 -u -m bench.stall_probe --rate 10 --duration 20 --json "$DEST/stall-probe.json" 2>&1 \
      | tee "$DEST/stall-probe.txt"
    ;;
  *)
    echo "device_run: say overhead, overhead-io, capacity, all, squeezenet-lanes or stall-probe" >&2
    exit 2
    ;;
esac
