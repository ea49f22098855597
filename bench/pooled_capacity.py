#!/usr/bin/env python3
"""Capacity at the SLO from pooled, interleaved trials: a comparison that a noisy machine does not decide.

`capacity.py` finds each configuration's highest sustained rate with one bisection per run, each
step judged by one trial's tail; on a shared 2-core machine the same static configuration moved 1.4-2.5x
between runs, more than the differences being measured. Here every configuration gets its own
server, all started at once and kept for the whole model; then, round after round, every rate of a
fixed ladder (ascending) is offered to every configuration in turn (the order rotates each time),
so slow and fast stretches of the machine fall on all configurations alike. Each trial is
`dnnscaler bench --rate R` (open-loop Poisson, latency from the scheduled send time, failures
counted as misses). The trials of one configuration at one rate are pooled: attainment = requests
within the SLO / all requests, over every round. A configuration sustains a rate when its pooled
attainment there, and at every lower rate of the ladder, is at least the percentile (0.99 for p99);
its capacity is the highest such rate. Prints the pooled attainment table, each capacity and
`policy / best static` (the issue's target: >= 0.95). Policies keep their state between trials, so
every step up or down the ladder is also a load change they must follow within the warm-up.

    python3 -m bench.pooled_capacity --models squeezenet --rounds 3 --json bench/results/pooled.json
    DNNSCALER_BENCH_SERVER_CPUS=0 DNNSCALER_BENCH_CLIENT_CPUS=1 python3 -m bench.pooled_capacity

Standard library only; needs the release build (or --bin / $DNNSCALER_BIN).
"""
import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time

from bench.capacity import DEFAULT_SLO, add_model_arguments
from bench.serving_overhead import (CLIENT_CPUS, CORES_NOTE, DEFAULT_BIN, Server, describe_configuration, log,
                                    model_repository, pinned, write_json)

# Rate ladders (requests/s) for a server on one CPU; --rates replaces them.
DEFAULT_RATES = {"squeezenet": [8, 10, 12, 15, 18, 22, 27, 33], "resnet50": [3, 4, 5, 6, 7, 8.5, 10, 12]}


def trial(binary, server, model, rate, slo_ms, args, seed):
    """One open-loop trial: (requests, requests within the SLO, p99 ms, throughput)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        path = out.name
    cmd = pinned([binary, "bench", "--url", server.base, "--model", model, "--rate", str(rate),
                  "--duration", str(args.duration), "--warmup", str(args.warmup), "--slo-ms", str(slo_ms),
                  "--percentile", str(args.percentile), "--seed", str(seed), "--quiet", "--json", path], CLIENT_CPUS)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    try:
        if proc.returncode != 0:
            raise RuntimeError(f"bench failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        with open(path) as f:
            summary = json.load(f)["summary"]
    finally:
        os.unlink(path)
    requests = summary["requests"]
    return requests, round(summary["slo_attainment"] * requests), summary["p99_ms"], summary["throughput"]


def changes_listed(status):
    """The configuration changes a model's status (`Server.status`) lists (its last ten decisions),
    as "t=SECONDS REASON" strings: a change made and undone inside a trial leaves the final
    configuration as it was, and shows only here."""
    return [f"t={d.get('time_s', 0):.0f} {d.get('reason', '')}" for d in (status or {}).get("decisions", [])
            if d.get("changed")]


def capacity(ladder, pooled, target):
    """The highest rate of the ladder whose pooled attainment, and every lower rate's, reaches `target`."""
    best = 0.0
    for rate in ladder:
        requests, within = pooled.get(rate, (0, 0))
        if requests == 0 or within / requests < target:
            break
        best = rate
    return best


def crossing(ladder, pooled, target):
    """Where the pooled attainment first falls below `target`, linearly interpolated between the last
    passing rate and the first failing one (0 when the lowest rate fails, the top rate when none does).

    Finer than `capacity`, which can only name a ladder step: a configuration that passes 310/s at 0.995
    and fails 350/s at 0.96 crosses near 316/s. Still a lower bound for a configuration that never failed."""
    previous_rate, previous_attainment = 0.0, None
    for rate in ladder:
        requests, within = pooled.get(rate, (0, 0))
        if requests == 0:
            break
        attainment = within / requests
        if attainment < target:
            if previous_attainment is None:
                return 0.0
            fraction = (previous_attainment - target) / (previous_attainment - attainment)
            return previous_rate + fraction * (rate - previous_rate)
        previous_rate, previous_attainment = rate, attainment
    return previous_rate


def summarize(model, slo, percentile, rounds, ladder, configurations, trials):
    """Pools the trials per configuration and rate, prints the attainment table with both capacities and
    returns the model's report."""
    target = percentile / 100
    pooled = {}
    for t in trials:
        requests, within = pooled.setdefault(t["config"], {}).get(t["rate"], (0, 0))
        pooled[t["config"]][t["rate"]] = (requests + t["requests"], within + t["within_slo"])
    capacities = {name: capacity(ladder, pooled.get(name, {}), target) for name in configurations}
    crossings = {name: crossing(ladder, pooled.get(name, {}), target) for name in configurations}

    def twin_of(name):
        """The unlabelled configuration a labelled one repeats ("static 2x b1 (twin)" -> "static 2x b1")."""
        return name.rsplit(" (", 1)[0] if name.endswith(")") else None

    def ratios(values):
        # Twins are left out of the best static: the better of two draws of one configuration is
        # biased upwards. They are compared with their sibling instead (printed as A/A).
        statics = {n: v for n, v in values.items() if n.startswith("static") and not twin_of(n)}
        best = max(statics, key=statics.get) if statics else None
        if not best or statics[best] <= 0:
            return best, {}
        return best, {n: values[n] / statics[best] for n in values if not n.startswith("static") and not twin_of(n)}

    best, capacity_ratios = ratios(capacities)
    best_crossing, crossing_ratios = ratios(crossings)
    print(f"\n{model}, SLO {slo:g} ms p{percentile:g}: pooled attainment over {rounds} rounds "
          f"(requests within the SLO / all); capacity = highest rate passing with every lower one; "
          f"crossing = where the attainment first falls below {target:g}, interpolated", flush=True)
    print(f"  {'rate/s':<14}" + "".join(f"{r:>8g}" for r in ladder) + f"{'capacity':>10}{'crossing':>10}",
          flush=True)
    for name in configurations:
        cells = []
        for rate in ladder:
            requests, within = pooled.get(name, {}).get(rate, (0, 0))
            cells.append(f"{within / requests:8.3f}" if requests else f"{'-':>8}")
        ratio = ""
        sibling = twin_of(name)
        if sibling in capacities and capacities[sibling] > 0 and crossings[sibling] > 0:
            ratio = (f"  A/A: {capacities[name] / capacities[sibling]:.3f} of {sibling}; "
                     f"crossing {crossings[name] / crossings[sibling]:.3f}")
        if name in capacity_ratios:
            ratio = f"  {capacity_ratios[name]:.3f} of best static ({best})"
            if name in crossing_ratios:
                ratio += f"; crossing {crossing_ratios[name]:.3f} of best ({best_crossing})"
        print(f"  {name:<14}" + "".join(cells) + f"{capacities[name]:>10g}{crossings[name]:>10.1f}{ratio}",
              flush=True)
    return {"slo_ms": slo, "ladder": ladder, "trials": trials, "capacities": capacities, "best_static": best,
            "crossings": crossings, "best_static_crossing": best_crossing,
            "pooled": {n: {str(r): v for r, v in rates.items()} for n, rates in pooled.items()},
            "ratios": capacity_ratios, "crossing_ratios": crossing_ratios}


def parse_configurations(text):
    """"dnnscaler,joint,1x1,2x1,2x1@twin" as (name, policy, instances, batch) tuples (statics
    INSTANCESxBATCH). A configuration named twice needs a label after `@`: a second server of the
    same configuration (an A/A pair) shows how far identical servers differ on the machine at hand."""
    configurations = []
    for spec in (s for s in text.split(",") if s):
        spec, _, label = spec.partition("@")
        suffix = f" ({label})" if label else ""
        if "x" in spec:
            instances, batch = spec.split("x")
            configurations.append((f"static {instances}x b{batch}{suffix}", "static", int(instances), int(batch)))
        else:
            configurations.append((spec + suffix, spec, None, None))
    names = [c[0] for c in configurations]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        sys.exit(f"configurations named twice: {', '.join(duplicates)} (label the second: 2x1@twin)")
    return configurations


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--configs", default="dnnscaler,joint,1x1,2x1,1x2",
                        help="policies and INSTANCESxBATCH statics, each optionally @LABEL to run it twice "
                             "(default dnnscaler,joint,1x1,2x1,1x2)")
    parser.add_argument("--rates", action="append", default=[],
                        help="MODEL=R1,R2,... a model's rate ladder (repeatable; defaults: "
                             + "; ".join(f"{m} {','.join(f'{r:g}' for r in v)}" for m, v in DEFAULT_RATES.items())
                             + ")")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per trial (default 8)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring (default 3)")
    parser.add_argument("--bin", default=DEFAULT_BIN)
    parser.add_argument("--json", default=None)
    parser.add_argument("--summarize", metavar="FILE", default=None,
                        help="print the tables of an earlier run's --json output again (no trials)")
    args = parser.parse_args()
    if args.summarize:
        with open(args.summarize) as f:
            earlier = json.load(f)
        for model, result in earlier["models"].items():
            names = list(dict.fromkeys(t["config"] for t in result["trials"]))
            rounds = 1 + max(t["round"] for t in result["trials"])
            summarize(model, result["slo_ms"], earlier["args"]["percentile"], rounds, result["ladder"], names,
                      result["trials"])
        return

    ladders = dict(DEFAULT_RATES)
    for spec in args.rates:
        model, _, rates = spec.partition("=")
        ladders[model] = sorted(float(r) for r in rates.split(","))
    configurations = parse_configurations(args.configs)
    log(CORES_NOTE)
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "args": vars(args), "note": CORES_NOTE, "models": {}}
    seed = 1
    for model in args.models.split(","):
        slo = args.slo_ms or DEFAULT_SLO.get(model, 100.0)
        ladder = ladders.get(model)
        if not ladder:
            sys.exit(f"no rate ladder for {model}: give --rates {model}=R1,R2,...")
        trials = []
        with model_repository([model], slo_ms=slo) as repository, contextlib.ExitStack() as stack:
            servers = {}
            for name, policy, instances, batch in configurations:
                servers[name] = stack.enter_context(
                    Server(args.bin, [model], slo, policy=policy, batch_size=batch, instances=instances,
                           repository=repository))
            log(f"{model}, SLO {slo:g} ms p{args.percentile:g}: {len(servers)} servers ready; ladder "
                + " ".join(f"{r:g}" for r in ladder))
            for round_index in range(args.rounds):
                for rate_index, rate in enumerate(ladder):
                    shift = (round_index + rate_index) % len(configurations)
                    for name, _, _, _ in configurations[shift:] + configurations[:shift]:
                        server = servers[name]
                        before = changes_listed(server.status(model))
                        requests, within, p99, throughput = trial(args.bin, server, model, rate, slo, args, seed)
                        seed += 1
                        after = server.status(model)
                        moves = [c for c in changes_listed(after) if c not in before]
                        final = describe_configuration((after or {}).get("configuration"))
                        trials.append({"config": name, "round": round_index, "rate": rate, "requests": requests,
                                       "within_slo": within, "p99_ms": p99, "throughput": throughput,
                                       "server_configuration": final, "changes": moves})
                        log(f"  round {round_index + 1} rate {rate:g}/s {name:14s} p99 {p99:7.1f} ms, "
                            f"{within}/{requests} within, at {final}"
                            + (f"; {len(moves)} change(s): " + " | ".join(moves) if moves else ""))
        report["models"][model] = summarize(model, slo, args.percentile, args.rounds, ladder,
                                            [name for name, _, _, _ in configurations], trials)
    if args.json:
        write_json(args.json, report)


if __name__ == "__main__":
    main()
