#!/usr/bin/env python3
"""Graceful drain under load: SIGTERM flips readiness at once, serving goes on for the grace.

Starts its own server (simple, --drain-grace-seconds GRACE), measures its closed-loop throughput
with `dnnscaler bench --concurrency`, then offers half of it open loop (`dnnscaler bench --rate`)
and sends SIGTERM a second into the load, with one idle keep-alive connection open. Checks:
- /v2/health/ready answers 503 within 100 ms of the signal, /v2/health/live stays 200;
- every request of the open-loop run (all inside the grace) succeeds;
- the server exits 0 soon after the grace, although the idle keep-alive connection was open;
- with a long grace, SIGINT, and a second SIGTERM during the grace, end it at once (exit 0).
Prints `ok <check>` / `FAIL <check>` lines and `N passed, M failed` last; exits 1 on a failure.
"""
import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def status(url, timeout=1.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default=os.path.join(ROOT, ".build/debug/dnnscaler"))
    parser.add_argument("--repository", default=os.path.join(ROOT, "model_repository"))
    parser.add_argument("--grace", type=float, default=4.0, help="drain grace of the server, s")
    parser.add_argument("--load-seconds", type=float, default=3.0, help="open-loop load, s (inside the grace)")
    args = parser.parse_args()

    checks = []

    def check(name, ok, detail=""):
        checks.append(ok)
        print(("ok " if ok else "FAIL ") + name + (f" ({detail})" if detail else ""), flush=True)

    log = tempfile.NamedTemporaryFile(prefix="dnnscaler-drain-", suffix=".log", delete=False)

    def start(grace):
        http_port, grpc_port, metrics_port = free_ports(3)
        server = subprocess.Popen(
            [args.bin, "serve", "--model-repository", args.repository, "--models", "simple", "--host", "127.0.0.1",
             "--http-port", str(http_port), "--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port),
             "--drain-grace-seconds", str(grace), "--slo-ms", "100"],
            stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{http_port}"
        deadline = time.monotonic() + 120
        while status(f"{base}/v2/health/ready") != 200:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError(f"the server did not become ready (exit {server.poll()})")
            time.sleep(0.2)
        return server, base, http_port

    # Signals that skip a long grace.
    for name, signals in [("SIGINT", [signal.SIGINT]), ("a second SIGTERM", [signal.SIGTERM, signal.SIGTERM])]:
        server, _, _ = start(grace=60)
        began = time.monotonic()
        for sent in signals:
            server.send_signal(sent)
            time.sleep(0.5)
        try:
            rc = server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            rc = None
        elapsed = time.monotonic() - began
        check(f"{name} skips the 60 s grace", rc == 0 and elapsed < 10, f"rc {rc} after {elapsed:.1f} s")

    server, base, http_port = start(grace=args.grace)
    bench = None
    try:

        # Capacity: closed loop, 8 requests in flight.
        with tempfile.TemporaryDirectory() as work:
            probe_json = os.path.join(work, "probe.json")
            subprocess.run(
                [args.bin, "bench", "--url", base, "--model", "simple", "--concurrency", "8", "--duration", "2",
                 "--quiet", "--json", probe_json], check=True, stdout=subprocess.DEVNULL)
            with open(probe_json) as f:
                capacity = json.load(f)["summary"]["throughput"]
            rate = max(10.0, capacity / 2)
            print(f"closed-loop throughput {capacity:.0f}/s; offering {rate:.0f}/s open loop", flush=True)

            idle = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
            idle.request("GET", "/v2/health/live")
            idle.getresponse().read()

            load_json = os.path.join(work, "load.json")
            bench = subprocess.Popen(
                [args.bin, "bench", "--url", base, "--model", "simple", "--rate", f"{rate:.1f}", "--duration",
                 str(args.load_seconds), "--quiet", "--json", load_json], stdout=subprocess.DEVNULL)
            time.sleep(1.0)
            server.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            flipped = None
            while time.monotonic() - signalled < 2:
                if status(f"{base}/v2/health/ready", timeout=0.5) == 503:
                    flipped = time.monotonic() - signalled
                    break
                time.sleep(0.005)
            check("readiness 503 within 100 ms of SIGTERM", flipped is not None and flipped <= 0.1,
                  f"{flipped * 1000:.1f} ms" if flipped is not None else "never")
            check("liveness 200 during the grace", status(f"{base}/v2/health/live") == 200)
            bench.wait(timeout=args.load_seconds + 60)
            bench = None
            within_grace = time.monotonic() - signalled < args.grace
            check("the open-loop run ended inside the grace", within_grace)
            with open(load_json) as f:
                summary = json.load(f)["summary"]
            check("no request failed during the grace", summary["requests"] > 0 and
                  summary["succeeded"] == summary["requests"],
                  f"{summary['succeeded']} of {summary['requests']} succeeded at {rate:.0f}/s")

            try:
                rc = server.wait(timeout=args.grace + 10)
            except subprocess.TimeoutExpired:
                rc = None
            elapsed = time.monotonic() - signalled
            check("exit 0 after the grace with an idle keep-alive connection open",
                  rc == 0 and elapsed >= args.grace and elapsed < args.grace + 5,
                  f"rc {rc} after {elapsed:.1f} s, grace {args.grace} s")
            idle.close()
    finally:
        if bench is not None:
            bench.kill()
        if server.poll() is None:
            server.kill()
            server.wait()
    return finish(checks, log.name)


def finish(checks, log_path):
    failed = checks.count(False)
    if failed:
        with open(log_path) as f:
            print("--- server log (last 30 lines) ---\n" + "".join(f.readlines()[-30:]))
    print(f"{checks.count(True)} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
