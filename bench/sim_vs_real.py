#!/usr/bin/env python3
"""Cross-check of the simulator against the real server on the machine it runs on.

For each model: `dnnscaler profile` measures it in process (the profile the simulator runs on), then
for each static configuration and open-loop Poisson rate, `dnnscaler simulate` predicts throughput and
p99 and the real server, loaded by `dnnscaler bench` at the same rate, measures them. Prints
`real / simulated` for throughput (target: within 10%; each side's throughput is divided by the
arrival rate it actually drew, since a short Poisson window deviates from the nominal rate by several
percent) and p99 (target: within 20%). Runs alone: the
load generator and the server share the cores.

    .venv/bin/python -m bench.sim_vs_real --json bench/results/sim_vs_real.json
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

from bench.serving_overhead import DEFAULT_BIN, Server, log, model_repository

# (model, SLO for the server's admission, [(instances, batch)], [rates as fractions of capacity])
DEFAULT_CASES = {
    "resnet50": (150.0, [(1, 1), (2, 1)], [0.3, 0.6, 0.8]),
    "squeezenet": (1000.0, [(1, 1), (2, 1)], [0.1, 0.3, 0.6]),
}


def run(cmd, timeout=1800):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(DEFAULT_CASES))
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per real run")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--profile-seconds", type=float, default=4.0)
    parser.add_argument("--bin", default=DEFAULT_BIN)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="dnnscaler-simreal-") as tmp:
        for model in args.models.split(","):
            slo, configurations, fractions = DEFAULT_CASES[model]
            profile_path = os.path.join(tmp, f"{model}.json")
            instances = sorted({k for k, _ in configurations})
            batches = sorted({b for _, b in configurations})
            log(f"{model}: profiling in process")
            run([args.bin, "profile", model, "--instances", ",".join(map(str, instances)), "--batch-sizes",
                 ",".join(map(str, batches)), "--duration", str(args.profile_seconds), "--json", profile_path])
            with open(profile_path) as f:
                profile = json.load(f)
            with model_repository([model], slo_ms=slo) as repository:
                for k, b in configurations:
                    point = next(p for p in profile["points"] if p["instances"] == k and p["batchSize"] == b)
                    capacity = point["throughput"] / b
                    with Server(args.bin, [model], slo, policy="static", batch_size=b, instances=k,
                                repository=repository) as server:
                        for fraction in fractions:
                            rate = round(capacity * fraction, 1)
                            sim_path = os.path.join(tmp, "sim.json")
                            requests = max(2000, int(rate * 60))
                            run([args.bin, "simulate", "--profile", profile_path, "--policy", "static",
                                 "--batch-size", str(b), "--instances", str(k), "--slo-ms", str(slo), "--rate",
                                 str(rate), "--requests", str(requests), "--json", sim_path])
                            with open(sim_path) as f:
                                sim = json.load(f)
                            real_path = os.path.join(tmp, "real.json")
                            run([args.bin, "bench", "--url", server.base, "--model", model, "--rate", str(rate),
                                 "--duration", str(args.duration), "--warmup", str(args.warmup), "--quiet",
                                 "--json", real_path])
                            with open(real_path) as f:
                                real = json.load(f)["summary"]
                            sim_p99 = sim["latencyMs"]["p99"]
                            # Normalise by the arrivals each side actually drew: over a short window a
                            # Poisson count differs from rate x duration by several percent.
                            sim_offered = (sim["completed"] + sim["shed"]) / sim["durationSeconds"]
                            row = {"model": model, "instances": k, "batch": b, "rate": rate,
                                   "sim_throughput": sim["throughput"], "real_throughput": real["throughput"],
                                   "sim_offered": sim_offered, "real_offered": real["offered_rate"],
                                   "sim_p50": sim["latencyMs"]["p50"], "real_p50": real["p50_ms"],
                                   "sim_p99": sim_p99, "real_p99": real["p99_ms"]}
                            row["throughput_ratio"] = ((row["real_throughput"] / row["real_offered"])
                                                       / (row["sim_throughput"] / sim_offered))
                            row["p99_ratio"] = row["real_p99"] / sim_p99 if sim_p99 else None
                            rows.append(row)
                            log(f"  {model} {k}x b{b} at {rate}/s: throughput real {row['real_throughput']:.1f} "
                                f"sim {row['sim_throughput']:.1f} ({row['throughput_ratio']:.3f}), p99 real "
                                f"{row['real_p99']:.1f} sim {sim_p99:.1f} ms ({row['p99_ratio']:.2f})")
    print(f"{'model':11s} {'config':7s} {'rate/s':>7s} {'thr real':>9s} {'thr sim':>8s} {'ratio':>6s}   "
          f"{'p50 real':>8s} {'p50 sim':>8s}   {'p99 real':>8s} {'p99 sim':>8s} {'ratio':>6s}")
    for r in rows:
        print(f"{r['model']:11s} {r['instances']}x b{r['batch']:<3d} {r['rate']:7.1f} {r['real_throughput']:9.1f} "
              f"{r['sim_throughput']:8.1f} {r['throughput_ratio']:6.3f}   {r['real_p50']:8.2f} {r['sim_p50']:8.2f}   "
              f"{r['real_p99']:8.2f} {r['sim_p99']:8.2f} {r['p99_ratio']:6.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
