#!/usr/bin/env python3
"""The README's plot: throughput, p99 and the server's configuration over time while the controller
settles after an SLO change, measured with `dnnscaler bench --plot` against `dnnscaler serve`.

A fresh server runs MODEL under POLICY with SLO `--slo-ms`; `dnnscaler bench` sends an open-loop
Poisson load at `--rate` for `--duration` seconds; at `--change-at` seconds the SLO becomes
`--new-slo-ms` through `POST /v2/repository/models/{m}/load` (no restart).

    .venv/bin/python -m bench.settle_plot --plot docs/plots/settle-measured.svg
"""
import argparse
import subprocess
import sys
import time

from bench.serving_overhead import DEFAULT_BIN, Server, log, model_repository


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="squeezenet")
    parser.add_argument("--policy", default="joint")
    parser.add_argument("--slo-ms", type=float, default=40.0)
    parser.add_argument("--new-slo-ms", type=float, default=25.0)
    parser.add_argument("--rate", type=float, default=150.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--change-at", type=float, default=25.0)
    parser.add_argument("--plot", default="docs/plots/settle-measured.svg")
    parser.add_argument("--json", default=None)
    parser.add_argument("--bin", default=DEFAULT_BIN)
    args = parser.parse_args()
    with model_repository([args.model], slo_ms=args.slo_ms) as repository:
        with Server(args.bin, [args.model], args.slo_ms, policy=args.policy, repository=repository) as server:
            cmd = [args.bin, "bench", "--url", server.base, "--model", args.model, "--rate", str(args.rate),
                   "--duration", str(args.duration), "--slo-ms", str(args.new_slo_ms), "--plot", args.plot]
            if args.json:
                cmd += ["--json", args.json]
            log(" ".join(cmd))
            bench = subprocess.Popen(cmd)
            time.sleep(args.change_at)
            status, _ = server.load(args.model, {"dnnscaler": {"slo_ms": args.new_slo_ms}})
            log(f"t={args.change_at:.0f} s: SLO {args.slo_ms:g} -> {args.new_slo_ms:g} ms (HTTP {status})")
            if bench.wait() != 0:
                sys.exit("bench failed")
            for decision in (server.status(args.model) or {}).get("decisions", []):
                log(f"  {decision['time_s']:7.1f} s  batch {decision['batch_limit']} x {decision['instances']}  "
                    f"{decision['reason']}")


if __name__ == "__main__":
    main()
