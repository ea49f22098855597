#!/usr/bin/env python3
"""Where do long single requests come from at low load? A short experiment for a many-core machine.

On a 16-CPU machine every capacity lane (static and policies alike) saw single seconds with a
p99 of 30-55 ms at 4-50 squeezenet requests/s (about 5 ms of inference), where a 2-core machine
serving alone gives 8.6 ms. Suspects, each a variant here, all with the same model and Poisson rate:

- `base`: `serve --policy static --instances 1` (1 instance x 2 threads), ONNX Runtime threads that
  sleep when idle (serve's default), load generator with NIO's default loop count (on Linux NIO
  counts the machine's CPUs, not the affinity mask: 16 loops on the generator's 1 CPU);
- `spin`: the same with `serve --spinning` (idle intra-op threads spin-wait, as ONNX Runtime's
  default does; a VM whose idle vCPUs halt must be woken, which a busy host may delay);
- `loop1`: base with the load generator on one event loop (`NIO_SINGLETON_GROUP_LOOP_COUNT=1`);
- `2x1`: 2 instances x 1 thread (no intra-op thread to wake);
- `spin-2x1`: 2x1 with spinning.

Each variant is a lane: a server on 2 CPUs and its `dnnscaler bench --rate R` on a third. Pass 1
runs every lane at once (as the capacity lanes did); pass 2 runs them one after another on the
first lane's CPUs, alone on the machine. For each it prints the client's p50/p99/max, the p99 of
how late requests were sent, and the server's own p99 (its latency histogram, upper bucket bound),
so a stall can be placed in the server or in the generator.

    python3 -m bench.stall_probe --rate 10 --duration 20          # needs 3 CPUs per lane
    python3 -m bench.stall_probe --lanes 0+1 --variants base,spin --passes alone   # on 2 cores

Standard library only; needs the release build (or --bin / $DNNSCALER_BIN).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request

from bench.serving_overhead import DEFAULT_BIN, Server, log, model_repository, pinned, write_json

VARIANTS = {
    "base": {"instances": 1, "extra": [], "env": {}},
    "spin": {"instances": 1, "extra": ["--spinning"], "env": {}},
    "loop1": {"instances": 1, "extra": [], "env": {"NIO_SINGLETON_GROUP_LOOP_COUNT": "1"}},
    "2x1": {"instances": 2, "extra": [], "env": {}},
    "spin-2x1": {"instances": 2, "extra": ["--spinning"], "env": {}},
}


def default_lanes(count):
    """`count` lanes of 2 server CPUs and 1 generator CPU from the allowed CPUs, servers first."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 3 * count:
        count = len(cpus) // 3
    servers, clients = cpus[:2 * count], cpus[2 * count:3 * count]
    return [(f"{servers[2 * i]},{servers[2 * i + 1]}", str(clients[i])) for i in range(count)]


def latency_histogram(metrics_url, model):
    """The server's cumulative request-latency buckets for `model`: {upper bound s: count}."""
    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        text = response.read().decode()
    buckets = {}
    pattern = re.compile(r'^dnnscaler_request_latency_seconds_bucket\{(.*)\}\s+(\S+)$')
    for line in text.splitlines():
        match = pattern.match(line)
        if not match or f'model="{model}"' not in match.group(1):
            continue
        bound = re.search(r'le="([^"]+)"', match.group(1)).group(1)
        buckets[float("inf") if bound == "+Inf" else float(bound)] = float(match.group(2))
    return buckets


def server_tail(before, after, quantile=0.99):
    """The upper bound (ms) of the bucket holding the server-side `quantile` between two scrapes."""
    deltas = sorted((bound, after.get(bound, 0) - before.get(bound, 0)) for bound in after)
    if not deltas or deltas[-1][1] <= 0:
        return None
    total = deltas[-1][1]
    for bound, count in deltas:
        if count >= quantile * total:
            return bound * 1000
    return None


def start_lane(binary, repository, model, variant, server_cpus):
    spec = VARIANTS[variant]
    return Server(binary, [model], 1000.0, policy="static", batch_size=1, instances=spec["instances"],
                  extra=spec["extra"], repository=repository, cpus=server_cpus)


def launch_bench(binary, server, model, client_cpus, variant, args, seed):
    out = tempfile.NamedTemporaryFile(suffix=".json", delete=False)
    out.close()
    cmd = pinned([binary, "bench", "--url", server.base, "--model", model, "--rate", str(args.rate),
                  "--duration", str(args.duration), "--warmup", str(args.warmup), "--seed", str(seed),
                  "--quiet", "--json", out.name], client_cpus)
    env = dict(os.environ, **VARIANTS[variant]["env"])
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True), out.name


def finish_bench(proc, path):
    _, stderr = proc.communicate(timeout=600)
    try:
        if proc.returncode != 0:
            return {"error": f"bench exited {proc.returncode}: {stderr.strip()[-300:]}"}
        with open(path) as f:
            return json.load(f)["summary"]
    finally:
        os.unlink(path)


def ms(value):
    """A figure in ms for the table, or a dash."""
    return f"{value:7.1f}" if isinstance(value, (int, float)) else f"{'-':>7}"


def run_pass(name, placements, args, repository, seed):
    """Runs every (variant, server CPUs, client CPUs) of `placements` at once; returns their rows."""
    rows = []
    servers = []
    try:
        for variant, server_cpus, _ in placements:
            servers.append(start_lane(args.bin, repository, args.model, variant, server_cpus))
            servers[-1].start()
        before = [latency_histogram(s.metrics_url, args.model) for s in servers]
        launched = [launch_bench(args.bin, server, args.model, client_cpus, variant, args, seed + i)
                    for i, (server, (variant, _, client_cpus)) in enumerate(zip(servers, placements))]
        results = [finish_bench(proc, path) for proc, path in launched]
        after = [latency_histogram(s.metrics_url, args.model) for s in servers]
    finally:
        for server in servers:
            server.stop()
    for (variant, server_cpus, client_cpus), summary, b, a in zip(placements, results, before, after):
        row = {"pass": name, "variant": variant, "server_cpus": server_cpus, "client_cpus": client_cpus,
               "server_p99_bucket_ms": server_tail(b, a)}
        row.update({k: summary.get(k) for k in ("requests", "p50_ms", "p99_ms", "max_ms", "send_lag_p99_ms",
                                                "error")})
        rows.append(row)
        log(f"  {name:<6} {variant:<9} server {server_cpus:<6} client {client_cpus:<3} "
            f"p50 {ms(row['p50_ms'])}  p99 {ms(row['p99_ms'])}  max {ms(row['max_ms'])}  "
            f"send lag p99 {ms(row['send_lag_p99_ms'])}  server p99 <= {ms(row['server_p99_bucket_ms'])} ms"
            + (f"  {row['error']}" if row.get("error") else ""))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="squeezenet")
    parser.add_argument("--rate", type=float, default=10.0, help="Poisson requests/s per lane (default 10)")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"from {','.join(VARIANTS)}")
    parser.add_argument("--lanes", action="append", default=[],
                        help="SERVER_CPUS+CLIENT_CPU, repeatable (default: as many as fit, 3 CPUs each)")
    parser.add_argument("--passes", default="together,alone", help="together, alone or both (default both)")
    parser.add_argument("--bin", default=DEFAULT_BIN)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    lanes = [tuple(spec.split("+")) for spec in args.lanes] or default_lanes(len(variants))
    if not lanes:
        sys.exit("no lane fits: give --lanes SERVER_CPUS+CLIENT_CPU")
    log(f"{args.model} at {args.rate:g}/s Poisson, {args.duration:g} s measured; lanes "
        + " ".join(f"{s}+{c}" for s, c in lanes))
    rows = []
    with model_repository([args.model], slo_ms=1000.0) as repository:
        passes = args.passes.split(",")
        if "together" in passes:
            together = [(v, *lanes[i]) for i, v in enumerate(variants[:len(lanes)])]
            rows += run_pass("together", together, args, repository, seed=1)
        if "alone" in passes:
            for i, variant in enumerate(variants):
                rows += run_pass("alone", [(variant, *lanes[0])], args, repository, seed=100 + i)
    if args.json:
        write_json(args.json, {"args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
