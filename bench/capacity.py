#!/usr/bin/env python3
"""Capacity at the SLO, measured with `dnnscaler bench --sweep`: each policy against a sweep of static
configurations, on a fresh server per configuration and run.

For every model: the highest open-loop Poisson rate at which the p-th percentile latency over ALL
requests (shed and failed ones counted as misses, latency from the scheduled send time) stays within
the SLO. Configurations run in turn, `--repeats` rounds; prints the median per configuration and
`policy / best static` (the issue's target: >= 0.95), and the server's final configuration.

    .venv/bin/python -m bench.capacity --models squeezenet --slo-ms 20 --repeats 3 --json bench/results/capacity.json

Standard library only; needs the release build (`make release`).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from bench.serving_overhead import (CLIENT_CPUS, CORES_NOTE, DEFAULT_BIN, Server, describe_configuration, log,
                                    model_repository, pinned)

DEFAULT_SLO = {"squeezenet": 20.0, "resnet50": 150.0, "shufflenet": 20.0}


def sweep(binary, server, model, slo_ms, args):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        path = out.name
    cmd = [binary, "bench", "--url", server.base, "--model", model, "--sweep", "--rate", str(args.start_rate),
           "--slo-ms", str(slo_ms), "--percentile", str(args.percentile), "--duration", str(args.duration),
           "--warmup", str(args.warmup), "--sweep-steps", str(args.refine),
           "--sweep-bracket-steps", str(args.bracket_steps), "--sweep-min-requests",
           str(args.min_requests), "--json", path]
    # DNNSCALER_BENCH_PROGRESS=1 streams the generator's per-second progress and trials to this
    # script's stderr as they happen (pinned_capacity.py --log-dir), so a stalled run shows where.
    streaming = bool(os.environ.get("DNNSCALER_BENCH_PROGRESS"))
    cmd = pinned(cmd if streaming else cmd + ["--quiet"], CLIENT_CPUS)
    if streaming:
        proc = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr, text=True, timeout=3600)
    else:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"bench failed ({proc.returncode}): {(proc.stderr or '').strip()}")
    with open(path) as f:
        result = json.load(f)
    os.unlink(path)
    for line in (proc.stdout or "").strip().splitlines():
        log("    " + line)
    return result


def add_model_arguments(parser):
    """--models, --slo-ms and --percentile, as the capacity benchmarks take them."""
    parser.add_argument("--models", default="squeezenet,resnet50")
    parser.add_argument("--slo-ms", type=float, default=None, help="SLO for every model (default per model: "
                        + ", ".join(f"{m} {s:g}" for m, s in DEFAULT_SLO.items()) + ")")
    parser.add_argument("--percentile", type=float, default=99.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--policies", default="dnnscaler,joint")
    parser.add_argument("--statics", default="1x1,2x1,1x2,1x4,2x2", help="INSTANCESxBATCH static configurations")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per rate")
    parser.add_argument("--warmup", type=float, default=4.0, help="seconds of load before measuring, per rate")
    parser.add_argument("--start-rate", type=float, default=10.0)
    parser.add_argument("--refine", type=int, default=4, help="bisection steps per sweep")
    parser.add_argument("--bracket-steps", type=int, default=4,
                        help="most doublings or halvings from the start rate (a start rate that misses is halved at "
                             "most this often: 4 from 40/s stops at 2.5/s, whose trials already last 120 s)")
    parser.add_argument("--min-requests", type=int, default=500,
                        help="each rate runs until at least this many requests are measured (default 500)")
    parser.add_argument("--bin", default=DEFAULT_BIN)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    configurations = [("policy", p, None, None) for p in args.policies.split(",") if p]
    for spec in args.statics.split(","):
        if spec:
            instances, batch = spec.split("x")
            configurations.append(("static", f"static {instances}x b{batch}", int(instances), int(batch)))
    report = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "args": vars(args), "models": {},
              "note": CORES_NOTE}
    log(CORES_NOTE)
    for model in args.models.split(","):
        slo = args.slo_ms or DEFAULT_SLO.get(model, 100.0)
        runs = {name: [] for _, name, _, _ in configurations}
        finals = {name: [] for _, name, _, _ in configurations}
        modes = {name: [] for _, name, _, _ in configurations}
        with model_repository([model], slo_ms=slo) as repository:
            for round_index in range(args.repeats):
                for kind, name, instances, batch in configurations:
                    log(f"{model} SLO {slo:g} ms: {name} (round {round_index + 1}/{args.repeats})")
                    if kind == "policy":
                        server = Server(args.bin, [model], slo, policy=name, repository=repository)
                    else:
                        server = Server(args.bin, [model], slo, policy="static", batch_size=batch,
                                        instances=instances, repository=repository)
                    with server:
                        result = sweep(args.bin, server, model, slo, args)
                        final = describe_configuration(server.configuration(model))
                        status = server.status(model) or {}
                        modes[name].append((status.get("profile") or {}).get("mode", "-"))
                        if kind == "policy":
                            decisions = status.get("decisions") or []
                            shown = [d for d in decisions if d.get("changed")][-2:] + decisions[-1:]
                            profile = status.get("profile") or {}
                            log(f"    profile chose {modes[name][-1]} (gains: batching "
                                f"{profile.get('batching_gain', 0):.3f}, multi-tenancy "
                                f"{profile.get('multi_tenancy_gain', 0):.3f}); of the last 10 decisions, "
                                "changes and the last:")
                            for decision in shown:
                                log(f"      t={decision.get('time_s', 0):.0f}s {decision.get('reason', '?')}")
                    runs[name].append(result["sustained_rate"])
                    finals[name].append(final)
                    log(f"  -> {result['sustained_rate']:.1f}/s, server ends at {final}")
        medians = {name: statistics.median(values) for name, values in runs.items()}
        statics = {n: v for n, v in medians.items() if n.startswith("static")}
        best_name = max(statics, key=statics.get) if statics else None
        best = statics.get(best_name, 0.0) if best_name else 0.0
        print(f"\n{model}, SLO {slo:g} ms p{args.percentile:g}: capacity (median of {args.repeats})")
        for name, value in medians.items():
            ratio = f"  {value / best:.3f} of best static" if best > 0 and not name.startswith("static") else ""
            print(f"  {name:16s} {value:8.1f}/s   runs {' '.join(f'{v:.1f}' for v in runs[name])}"
                  f"   ends at {', '.join(finals[name])}{ratio}")
        report["models"][model] = {"slo_ms": slo, "runs": runs, "medians": medians, "final_configurations": finals,
                                   "profile_modes": {n: m for n, m in modes.items() if not n.startswith("static")},
                                   "best_static": best_name,
                                   "ratios": {n: (v / best if best else None) for n, v in medians.items()
                                              if not n.startswith("static")}}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
