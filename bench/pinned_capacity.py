#!/usr/bin/env python3
"""Capacity at the SLO on a machine with many cores: every configuration in its own lane of pinned
CPUs, all lanes at once, so the policies and the static configurations they are compared with run
side by side under the same conditions and no load generator shares a core with a server.

Each lane is 2 server CPUs (distinct physical cores when the machine has SMT) plus 1 CPU for the
load generator (`dnnscaler bench --sweep`, through bench/capacity.py with
DNNSCALER_BENCH_SERVER_CPUS / DNNSCALER_BENCH_CLIENT_CPUS). A lane runs its configurations for each
model in turn, `--repeats` rounds. Prints per model the median sustained rate per configuration and
`policy / best static` (the issue's target: >= 0.95).

    python3 -m bench.pinned_capacity --models squeezenet,resnet50 --repeats 2 --json capacity.json

Standard library only; needs the release build (or --bin / $DNNSCALER_BIN) and at least 6 CPUs.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from bench.capacity import DEFAULT_SLO
from bench.serving_overhead import DEFAULT_BIN, ROOT

DEFAULT_START = {"squeezenet": 40.0, "resnet50": 16.0}
DEFAULT_MIN_REQUESTS = {"squeezenet": 300, "resnet50": 200}


def physical_layout():
    """CPUs this process may use, as (one CPU per physical core, the other SMT siblings)."""
    allowed = sorted(os.sched_getaffinity(0))
    seen, primary, secondary = set(), [], []
    for cpu in allowed:
        base = f"/sys/devices/system/cpu/cpu{cpu}/topology/"
        try:
            with open(base + "core_id") as f:
                core = f.read().strip()
            with open(base + "physical_package_id") as f:
                package = f.read().strip()
        except OSError:
            core, package = str(cpu), "0"
        key = (package, core)
        (secondary if key in seen else primary).append(cpu)
        seen.add(key)
    return primary, secondary


def plan_lanes(wanted):
    """Up to `wanted` lanes of (server CPUs "a,b", client CPU "c")."""
    primary, secondary = physical_layout()
    lanes = []
    spare = list(secondary)
    pool = list(primary)
    while len(lanes) < wanted and len(pool) >= 2:
        server = pool[:2]
        pool = pool[2:]
        if spare:
            client = spare.pop(0)
        elif pool:
            client = pool.pop()
        else:
            break
        lanes.append((f"{server[0]},{server[1]}", str(client)))
    return lanes, primary, secondary


def run_lane(lane_index, lane, jobs, args, results, lock):
    server_cpus, client_cpus = lane
    # bench.capacity runs as a module of the bench package, found from the repository root.
    python_path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, DNNSCALER_BENCH_SERVER_CPUS=server_cpus, DNNSCALER_BENCH_CLIENT_CPUS=client_cpus,
               PYTHONPATH=python_path)
    for model, round_index, config in jobs:
        slo = args.slo_ms or DEFAULT_SLO.get(model, 100.0)
        kind_args = (["--policies", config, "--statics", ""] if "x" not in config
                     else ["--policies", "", "--statics", config])
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
            path = out.name
        cmd = [sys.executable, "-m", "bench.capacity", "--models", model, "--slo-ms", str(slo),
               "--repeats", "1", "--duration", str(args.duration), "--warmup", str(args.warmup),
               "--start-rate", str(DEFAULT_START.get(model, 20.0)), "--refine", str(args.refine),
               "--bracket-steps", str(args.bracket_steps),
               "--min-requests", str(DEFAULT_MIN_REQUESTS.get(model, 300)), "--bin", args.bin,
               "--json", path] + kind_args
        started = time.monotonic()
        if args.log_dir:
            # Progress as it happens, one file per lane: what a run cut short by a time limit leaves.
            with open(os.path.join(args.log_dir, f"lane{lane_index}.log"), "a") as lane_log:
                lane_log.write(f"== {model} round {round_index + 1} {config}\n")
                lane_log.flush()
                proc = subprocess.run(cmd, env=dict(env, DNNSCALER_BENCH_PROGRESS="1"), stdout=subprocess.PIPE,
                                      stderr=lane_log, text=True)
            with open(os.path.join(args.log_dir, f"lane{lane_index}.log")) as lane_log:
                proc.stderr = lane_log.read()
        else:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        elapsed = time.monotonic() - started
        rate, final = None, "-"
        if proc.returncode == 0:
            with open(path) as f:
                report = json.load(f)["models"][model]
            name = next(iter(report["runs"]))
            rate = report["runs"][name][0]
            final = report["final_configurations"][name][0]
        os.unlink(path)
        with lock:
            results.append({"model": model, "round": round_index, "config": config, "rate": rate,
                            "final": final, "lane": lane_index, "cpus": f"{server_cpus}+{client_cpus}",
                            "seconds": round(elapsed, 1), "log": proc.stderr[-4000:]})
            shown = "failed" if rate is None else f"{rate:.1f}/s"
            print(f"[lane {lane_index} cpus {server_cpus}+{client_cpus}] {model} round {round_index + 1} "
                  f"{config}: {shown}, ends at {final} ({elapsed:.0f} s)", flush=True)
            if proc.returncode != 0:
                print(proc.stderr[-1500:], flush=True)
            elif "x" not in config:
                for line in proc.stderr.splitlines():
                    if "profile chose" in line or " t=" in line:
                        print("    " + line.strip(), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="squeezenet,resnet50")
    parser.add_argument("--slo-ms", type=float, default=None, help="one SLO for every model (default per model)")
    parser.add_argument("--configs", default="dnnscaler,joint,1x1,2x1,1x2",
                        help="policies and INSTANCESxBATCH statics, one lane each")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--refine", type=int, default=3)
    parser.add_argument("--bracket-steps", type=int, default=4, help="as capacity.py's")
    parser.add_argument("--bin", default=DEFAULT_BIN)
    parser.add_argument("--lane", action="append", default=[],
                        help="a lane given by hand, SERVER_CPUS+CLIENT_CPUS such as 0,1+2 (repeatable)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--log-dir", default=None,
                        help="write each lane's progress (servers' sweeps, per second) to DIR/laneN.log as it runs")
    args = parser.parse_args()
    if args.log_dir:
        os.makedirs(args.log_dir, exist_ok=True)

    configs = [c for c in args.configs.split(",") if c]
    lanes, primary, secondary = plan_lanes(len(configs))
    if args.lane:
        lanes = [tuple(spec.split("+", 1)) for spec in args.lane]
    print(f"{len(primary)} physical cores, {len(secondary)} SMT siblings; lanes (server CPUs + client CPU): "
          + ", ".join(f"{s}+{c}" for s, c in lanes), flush=True)
    if not lanes:
        sys.exit("need at least 3 CPUs for one lane")
    # Configuration i runs in lane i % lanes; each lane goes model by model, round by round.
    jobs = [[] for _ in lanes]
    for round_index in range(args.repeats):
        for model in args.models.split(","):
            for index, config in enumerate(configs):
                jobs[index % len(lanes)].append((model, round_index, config))
    results, lock = [], threading.Lock()
    threads = [threading.Thread(target=run_lane, args=(i, lane, jobs[i], args, results, lock))
               for i, lane in enumerate(lanes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    summary = {}
    for model in args.models.split(","):
        rates = {c: [r["rate"] for r in results if r["model"] == model and r["config"] == c and r["rate"] is not None]
                 for c in configs}
        medians = {c: statistics.median(v) for c, v in rates.items() if v}
        statics = {c: v for c, v in medians.items() if "x" in c}
        best = max(statics, key=statics.get) if statics else None
        print(f"\n{model}, SLO {args.slo_ms or DEFAULT_SLO.get(model, 100.0):g} ms p99 (median of {args.repeats})")
        for c in configs:
            if c not in medians:
                print(f"  {c:10s} no result")
                continue
            ratio = (f"   {medians[c] / statics[best]:.3f} of best static ({best})"
                     if best and "x" not in c and statics[best] > 0 else "")
            print(f"  {c:10s} {medians[c]:7.1f}/s   runs {' '.join(f'{v:.1f}' for v in rates[c])}{ratio}")
        summary[model] = {"runs": rates, "medians": medians, "best_static": best,
                          "ratios": {c: medians[c] / statics[best] for c in medians
                                     if best and "x" not in c and statics[best] > 0}}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%d"), "lanes": lanes, "physical_cores": len(primary),
                       "smt_siblings": len(secondary), "args": vars(args), "summary": summary,
                       "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
