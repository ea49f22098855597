#!/usr/bin/env python3
"""How well the online policies tune: capacity at the SLO of `dnnscaler serve` under the
`dnnscaler` and `joint` policies against the best static configuration, and the settle time
after an SLO change.

Capacity at the SLO (per model and configuration; a fresh server each): the highest open-loop
Poisson request rate at which the client-measured p99 latency stays within the SLO. Each rate is
one perf_analyzer run (`--request-rate-range R --request-distribution poisson --percentile=99
-p WINDOW -f out.csv --verbose-csv`, sync HTTP, binary tensors, batch-1 requests). A rate passes
when perf_analyzer finishes without a failed request, the p99 of its last three windows is
<= SLO, and it kept up with the schedule (< 1% of the requests sent late). The server refuses
requests it predicts to miss their deadline (= the SLO) and perf_analyzer 2.51 stops at the first
failed request (no option tolerates errors; over HTTP it cannot send a longer `timeout` either),
so a rate with any shed request fails: "errors/shed < 1%" is met as "no error at all". Shed
and failed counts are also read from /dnnscaler/status around each run and reported.
Search: the rates 0.3, 0.5, 0.65, 0.8, 0.9, 1.0, 1.1 x the model's in-process maximum
(`dnnscaler profile`, or --max-rate), up to the first failure, then --refine bisection steps
between the last pass and the first failure. Before measuring, a warm-up step at 0.5 x the
maximum for --warmup-s lets the controller adapt (perf_analyzer's stabilization then waits out
each change of rate).

Configurations: the policies (--policies, default dnnscaler,joint) and the static sweep
(--statics, default instances 1,2 x batch 1,2,4,8); reports each capacity and
policy / best static (target >= 0.95).

Settle time after an SLO change and after a step change of the rate (--settle-policy, default joint): under a fixed Poisson load at
--settle-load (0.7) x that policy's measured capacity, the SLO is changed with
`POST /v2/repository/models/{m}/load` and {"parameters": {"config": "{\"dnnscaler\": {\"slo_ms\":
NEW}}"}}, first loosened (x --settle-factor, default 2) and then back; /dnnscaler/status is polled
every 200 ms. Settle time = seconds from the change to the start of the first stretch of
--settle-hold-s with no configuration change and window_tail_latency_ms <= the new SLO (the
server's window is 3 s, so a tail above the SLO shows for up to 3 s more). The load here comes
from a small Python open-loop Poisson generator in this script (latency from the scheduled send
time), because perf_analyzer would stop at the first request the server refuses during the
transition.

Defaults: squeezenet at 20 ms p99 and resnet50 at 150 ms p99 (--models, --slo-ms). A full run
takes about an hour on 2 cores; --quick is a smoke run of a few minutes (squeezenet, static
2x b1 and 1x b4, short windows, one bisection step, short settle phases). Run it alone on the
machine: perf_analyzer, the load generator and the server share the cores.

    .venv-client/bin/python -m bench.serving_tuning --json bench/results/serving_tuning.json
    .venv-client/bin/python -m bench.serving_tuning --quick
Standard library only (any Python 3.9+); needs scripts/setup, scripts/setup_clients and the
release build.
"""
import argparse
import datetime
import http.client as http_client
import json
import os
import queue
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from bench.serving_overhead import (
    CORES_NOTE, DEFAULT_BIN, DEFAULT_CLIENT_VENV, DEFAULT_REPOSITORY, ClientTools, Server, describe_configuration,
    fmt, model_repository, run_perf_analyzer)
from bench.serving_overhead import http as http_call

DEFAULT_SLO_MS = {"squeezenet": 20.0, "resnet50": 150.0}
COARSE_FACTORS = [0.3, 0.5, 0.65, 0.8, 0.9, 1.0, 1.1]
QUICK_FACTORS = [0.4, 0.7, 0.9, 1.1]
DTYPE_BYTES = {"BOOL": 1, "UINT8": 1, "INT8": 1, "UINT16": 2, "INT16": 2, "FP16": 2, "BF16": 2, "UINT32": 4,
               "INT32": 4, "FP32": 4, "UINT64": 8, "INT64": 8, "FP64": 8}


def say(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------------
# Configurations


class Config:
    def __init__(self, policy, instances=None, batch=None):
        self.policy, self.instances, self.batch = policy, instances, batch

    @property
    def name(self):
        return f"static {self.instances}x b{self.batch}" if self.policy == "static" else self.policy

    def dnnscaler_fields(self, slo_ms):
        fields = {"slo_ms": slo_ms, "policy": self.policy}
        if self.policy == "static":
            fields.update(instances=self.instances, batch_size=self.batch)
        return fields


def parse_statics(text):
    configs = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        m = re.fullmatch(r"(\d+)x(\d+)", item)
        if not m:
            sys.exit(f"--statics: '{item}' is not INSTANCESxBATCH (e.g. 2x4)")
        configs.append(Config("static", int(m.group(1)), int(m.group(2))))
    return configs


# ---------------------------------------------------------------------------------------------
# One rate


class Level:
    def __init__(self, rate):
        self.rate = rate
        self.passed = False
        self.p99_ms = None
        self.throughput = None
        self.delayed_pct = 0.0
        self.shed = self.failed = 0
        self.reason = ""
        self.configuration = None

    def as_dict(self):
        return {"rate": self.rate, "passed": self.passed, "p99_ms": self.p99_ms, "throughput": self.throughput,
                "delayed_pct": self.delayed_pct, "shed": self.shed, "failed": self.failed, "reason": self.reason,
                "configuration": self.configuration}


PASS_RE = re.compile(r"Pass \[\d+\] throughput: ([0-9.]+) infer/sec\. p99 latency: (\d+) usec")


def counters(server, model):
    st = server.status(model) or {}
    return {k: int(st.get(k) or 0) for k in ("succeeded", "failed", "shed")}


def measure_rate_python(args, server, model, slo_ms, rate):
    """One Poisson rate from this script's open-loop generator, which carries on through refused
    requests: the p99 is taken over all requests sent in the measured stretch, a refused or failed
    request counting as later than any answer. So the rate passes when at most 1% of the requests
    were shed, failed or late - "p99 <= SLO" with shedding counted as missing the SLO."""
    level = Level(rate)
    before = counters(server, model)
    load = PoissonLoad(server.url, model, rate, workers=args.settle_workers, seed=int(rate * 1000))
    load.start()
    try:
        time.sleep(args.python_settle_s)
        t0 = time.monotonic()
        time.sleep(args.python_measure_s)
        t1 = time.monotonic()
        # let the requests sent in the stretch finish before reading it
        time.sleep(min(5.0, 3 * slo_ms / 1000.0))
    finally:
        load.stop()
    after = counters(server, model)
    with load.lock:
        recs = [r for r in load.records if t0 <= r[0] < t1]
    answered = sorted((f - sched) * 1000.0 for sched, f, ok in recs if ok)
    errors = sum(1 for r in recs if not r[2])
    total = len(answered) + errors
    level.shed = after["shed"] - before["shed"]
    level.failed = after["failed"] - before["failed"]
    level.configuration = describe_configuration(server.configuration(model))
    if total == 0:
        level.reason = "no request in the measured stretch"
        return level
    rank = max(1, -(-99 * total // 100))  # nearest rank of p99 over all requests
    level.p99_ms = answered[rank - 1] if rank <= len(answered) else float("inf")
    level.throughput = len(answered) / (t1 - t0)
    if level.p99_ms > slo_ms:
        level.reason = (f"p99 over all requests {level.p99_ms:.1f} ms > SLO ({errors} of {total} refused or failed)"
                        if level.p99_ms != float("inf") else f"{errors} of {total} refused or failed (> 1%)")
        return level
    if load.rate > 0 and total < 0.85 * rate * (t1 - t0):  # Poisson counts vary; 0.85 is ~3 sigma at 30 req/s
        level.reason = f"the generator sent only {total} of ~{rate * (t1 - t0):.0f} requests"
        return level
    level.reason = f"{errors} of {total} refused or failed" if errors else ""
    level.passed = True
    return level


def measure_rate(args, tools, server, model, slo_ms, rate):
    """Runs perf_analyzer at one Poisson rate (retrying a run that did not stabilize) and judges it."""
    if args.client == "python":
        return measure_rate_python(args, server, model, slo_ms, rate)
    level = Level(rate)
    # at low rates a window must still hold enough requests for a p99 and a stable figure
    window_ms = int(max(args.window_ms, 1000.0 * args.min_requests / rate))
    for attempt in range(1 + args.retries):
        before = counters(server, model)
        res = run_perf_analyzer(
            tools, server.url, model,
            ["--request-rate-range", f"{rate:.2f}", "--request-distribution", "poisson", "--percentile=99",
             "-p", window_ms, "-s", args.stability, "--max-trials", args.max_trials,
             "--max-threads", args.max_threads, "-v"],
            timeout=60 + int(args.max_trials) * window_ms / 1000 * 3)
        after = counters(server, model)
        level.shed = after["shed"] - before["shed"]
        level.failed = after["failed"] - before["failed"]
        level.delayed_pct = res.delayed_pct
        level.configuration = describe_configuration(server.configuration(model))
        passes = [(float(t), int(p) / 1000.0) for t, p in PASS_RE.findall(res.output)]
        if res.ok:
            row = res.rows[0]
            level.p99_ms = row["p99 latency"] / 1000.0
            level.throughput = row["Inferences/Second"]
        elif res.errors:
            level.reason = f"failed request ({res.errors[0]})"
            return level
        elif res.unstable and len(passes) >= 3:
            # No 3 windows within --stability of each other: judge the last three as they are.
            last = passes[-3:]
            level.p99_ms = max(p for _, p in last)
            level.throughput = statistics.mean(t for t, _ in last)
            if level.p99_ms > slo_ms:
                level.reason = f"p99 {level.p99_ms:.1f} ms > SLO (unstable windows)"
                return level
            level.reason = "unstable windows, all within SLO"
        else:
            level.reason = res.why()
            if attempt < args.retries:
                continue
            return level
        if level.p99_ms > slo_ms:
            level.reason = f"p99 {level.p99_ms:.1f} ms > SLO"
            return level
        if level.delayed_pct >= 1.0:
            level.reason = f"perf_analyzer could not keep up ({level.delayed_pct:.1f}% sent late)"
            return level
        total = (after["succeeded"] - before["succeeded"]) + level.failed + level.shed
        if total and (level.failed + level.shed) / total >= 0.01:
            level.reason = f"{level.failed + level.shed} of {total} requests failed or shed"
            return level
        level.passed = True
        return level
    return level


def warm_up(args, tools, server, model, rate):
    """A rate step the result of which is thrown away: lets the policy adapt after start."""
    if args.warmup_s <= 0:
        return
    run_perf_analyzer(tools, server.url, model,
                      ["--request-rate-range", f"{rate:.2f}", "--request-distribution", "poisson",
                       "-p", int(args.warmup_s * 1000 / 3), "-s", "100000", "--max-trials", "3",
                       "--max-threads", args.max_threads],
                      timeout=60 + args.warmup_s * 2)


def capacity(args, tools, model, slo_ms, config, max_rate):
    """Capacity at the SLO of one configuration on a fresh server: (capacity or None, levels, note)."""
    levels = []
    cache = {}

    def evaluate(server, rate):
        rate = round(rate, 2)
        if rate not in cache:
            level = measure_rate(args, tools, server, model, slo_ms, rate)
            cache[rate] = level
            levels.append(level)
            verdict = "pass" if level.passed else "FAIL"
            say(f"    {config.name:<16} {rate:8.1f}/s  {verdict}  p99 {fmt(level.p99_ms, '.1f'):>7} ms  "
                f"{fmt(level.throughput, '.1f'):>7} infer/s  shed {level.shed:<4} server {level.configuration:<12} "
                f"{level.reason}")
        return cache[rate].passed

    with model_repository([model], args.model_repository, **config.dnnscaler_fields(slo_ms)) as repo, \
            Server(args.bin, [model], slo_ms, repository=repo) as server:
        st = server.status(model) or {}
        if st.get("policy") != config.policy:
            say(f"    warning: the server runs policy {st.get('policy')!r}, expected {config.policy!r}")
        if st.get("slo_ms") != slo_ms:
            say(f"    warning: the server's SLO is {st.get('slo_ms')} ms, expected {slo_ms}")
        warm_up(args, tools, server, model, args.warmup_factor * max_rate)
        lo = hi = None
        for factor in args.factors:
            rate = factor * max_rate
            if evaluate(server, rate):
                lo = rate
            else:
                hi = rate
                break
        if lo is None:
            rate = hi
            while rate / 2 >= 0.02 * max_rate:
                rate /= 2
                if evaluate(server, rate):
                    lo = rate
                    break
                hi = rate
        if lo is not None and hi is not None:
            for _ in range(args.refine):
                mid = (lo + hi) / 2
                if evaluate(server, mid):
                    lo = mid
                else:
                    hi = mid
        final = describe_configuration(server.configuration(model))
    note = ""
    if hi is None:
        note = f">= (every rate passed up to {args.factors[-1]} x the in-process maximum)"
    return (None if lo is None else round(lo, 2)), levels, final, note


def in_process_max(args, model):
    """The highest in-process throughput over instances 1,2 x batch sizes: a ceiling for the rates."""
    with tempfile.TemporaryDirectory(prefix="dnnscaler-profile-") as tmp:
        out = os.path.join(tmp, "p.json")
        subprocess.run([args.bin, "profile", model, "--model-repository", args.model_repository, "--instances", "1,2",
                        "--batch-sizes", args.profile_batch_sizes, "--duration", str(args.profile_duration),
                        "--json", out], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(out) as f:
            points = json.load(f)["points"]
    best = max(points, key=lambda p: p["throughput"])
    return best["throughput"], f"{best['instances']}x{best['threadsPerInstance']}T b{best['batchSize']}"


# ---------------------------------------------------------------------------------------------
# Settle time after an SLO change


class PoissonLoad:
    """Open-loop Poisson load over HTTP (binary tensors, batch 1) that, unlike perf_analyzer,
    carries on through refused requests. Latency counts from the scheduled send time."""

    def __init__(self, url, model, rate, workers=32, seed=1):
        host, port = url.split(":")
        self.host, self.port, self.model, self.rate = host, int(port), model, rate
        self.workers, self.rng = workers, random.Random(seed)
        status, md = http_call("GET", f"http://{url}/v2/models/{model}")
        if status != 200:
            raise RuntimeError(f"model metadata of {model}: HTTP {status}")
        inputs, blobs = [], []
        for t in md["inputs"]:
            shape = [1] + [d for d in t["shape"][1:]]
            if any(d < 0 for d in shape):
                raise RuntimeError(f"input {t['name']} has a variable dimension: {t['shape']}")
            n = DTYPE_BYTES[t["datatype"]]
            for d in shape:
                n *= d
            inputs.append({"name": t["name"], "shape": shape, "datatype": t["datatype"],
                           "parameters": {"binary_data_size": n}})
            blobs.append(bytes(n))
        outputs = [{"name": t["name"], "parameters": {"binary_data": True}} for t in md["outputs"]]
        header = json.dumps({"inputs": inputs, "outputs": outputs}).encode()
        self.body = header + b"".join(blobs)
        self.headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))}
        self.path = f"/v2/models/{model}/infer"
        self.queue = queue.Queue()
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.records = []  # (scheduled, finished, ok)
        self.threads = []

    def start(self):
        self.threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.workers)]
        self.threads.append(threading.Thread(target=self._dispatch, daemon=True))
        for t in self.threads:
            t.start()

    def stop(self):
        self.stop_event.set()
        for _ in range(self.workers):
            self.queue.put(None)
        for t in self.threads:
            t.join(timeout=35)

    def _dispatch(self):
        t = time.monotonic()
        while not self.stop_event.is_set():
            t += self.rng.expovariate(self.rate)
            delay = t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.queue.put(t)

    def _worker(self):
        conn = None
        while True:
            scheduled = self.queue.get()
            if scheduled is None:
                break
            ok = False
            try:
                if conn is None:
                    conn = http_client.HTTPConnection(self.host, self.port, timeout=30)
                conn.request("POST", self.path, body=self.body, headers=self.headers)
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except (OSError, http_client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
            with self.lock:
                self.records.append((scheduled, time.monotonic(), ok))
        if conn is not None:
            conn.close()

    def summary(self, t_from, t_to):
        with self.lock:
            recs = [r for r in self.records if t_from <= r[1] < t_to]
        lat = sorted((f - s) * 1000.0 for s, f, ok in recs if ok)
        errors = sum(1 for r in recs if not r[2])
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else None
        return {"completed": len(lat), "errors": errors, "p99_ms": p99,
                "throughput": len(recs) / (t_to - t_from) if t_to > t_from else None}


def observe(server, model, slo_ms, t_change, seconds, poll_s=0.2):
    samples = []
    end = t_change + seconds
    while time.monotonic() < end:
        st = server.status(model)
        now = time.monotonic()
        if st is not None:
            cfg = st.get("configuration") or {}
            samples.append({"t": round(now - t_change, 3), "slo_ms": st.get("slo_ms"),
                            "configuration": describe_configuration(cfg), "tail_ms": st.get("window_tail_latency_ms")})
        time.sleep(max(0.0, poll_s - (time.monotonic() - now)))
    return samples


def settle_time(samples, slo_ms, hold_s):
    """Seconds to the start of the first stretch of hold_s with the configuration unchanged and the
    window tail within the SLO; also the number of configuration changes after it."""
    start = None
    prev_cfg = None
    for s in samples:
        good = s["tail_ms"] is not None and s["tail_ms"] <= slo_ms and s["slo_ms"] == slo_ms
        changed = prev_cfg is not None and s["configuration"] != prev_cfg
        prev_cfg = s["configuration"]
        if not good or changed:
            start = None
            if good:
                start = s["t"]  # a change to a good state starts a stretch
            continue
        if start is None:
            start = s["t"]
        if s["t"] - start >= hold_s:
            later = samples[samples.index(s) + 1:]
            changes_after = sum(1 for a, b in zip([s] + later, later) if a["configuration"] != b["configuration"])
            return start, changes_after
    return None, None


def settle_experiment(args, model, slo_ms, rate, rate_source):
    results = []
    policy = Config(args.settle_policy)
    new_slo = round(slo_ms * args.settle_factor, 3)
    say(f"\nsettle time after an SLO change: {model}, policy {policy.name}, Poisson load {rate:.1f}/s "
        f"({rate_source}), SLO {slo_ms:g} -> {new_slo:g} -> {slo_ms:g} ms")
    with model_repository([model], args.model_repository, **policy.dnnscaler_fields(slo_ms)) as repo, \
            Server(args.bin, [model], slo_ms, repository=repo) as server:
        load = PoissonLoad(server.url, model, rate, workers=args.settle_workers)
        load.start()
        try:
            t0 = time.monotonic()
            time.sleep(args.settle_pre_s)
            for target in (new_slo, slo_ms):
                before_cfg = describe_configuration(server.configuration(model))
                t_change = time.monotonic()
                status, body = server.load(model, {"dnnscaler": {"slo_ms": target}})
                if status != 200:
                    say(f"  load request failed: HTTP {status} {body}")
                    results.append({"slo_ms": target, "error": f"HTTP {status}: {body}"})
                    continue
                samples = observe(server, model, target, t_change, args.settle_observe_s)
                settle, changes_after = settle_time(samples, target, args.settle_hold_s)
                t_end = time.monotonic()
                client = load.summary(t_end - args.settle_hold_s, t_end)
                during = load.summary(t_change, t_end)
                changes = sum(1 for a, b in zip(samples, samples[1:]) if a["configuration"] != b["configuration"])
                r = {"slo_from_ms": slo_ms if target == new_slo else new_slo, "slo_ms": target,
                     "load_response_s": round(samples[0]["t"], 3) if samples else None, "settle_s": settle,
                     "configuration_changes": changes, "changes_after_settle": changes_after,
                     "configuration_before": before_cfg, "configuration_after": samples[-1]["configuration"] if samples else None,
                     "client_p99_ms_last_hold": client["p99_ms"], "client_errors_during": during["errors"],
                     "client_completed_during": during["completed"], "samples": samples}
                results.append(r)
                settled = (f"{settle:.1f} s" if settle is not None
                           else f"not settled within {args.settle_observe_s:g} s")
                say(f"  SLO {r['slo_from_ms']:g} -> {target:g} ms: settle {settled}; {changes} configuration change(s) "
                    f"({before_cfg} -> {r['configuration_after']}); client p99 over the last {args.settle_hold_s:g} s "
                    f"{fmt(client['p99_ms'], '.1f')} ms; {during['errors']} of "
                    f"{during['completed'] + during['errors']} requests refused or failed while observed")
            # A step change of the rate (up, then back), SLO unchanged: same settle criterion.
            for factor in (args.settle_rate_step, 1.0):
                before_cfg = describe_configuration(server.configuration(model))
                before_rate = load.rate
                load.rate = rate * factor  # read by the dispatcher at every arrival
                t_change = time.monotonic()
                samples = observe(server, model, slo_ms, t_change, args.settle_observe_s)
                settle, changes_after = settle_time(samples, slo_ms, args.settle_hold_s)
                t_end = time.monotonic()
                client = load.summary(t_end - args.settle_hold_s, t_end)
                during = load.summary(t_change, t_end)
                changes = sum(1 for a, b in zip(samples, samples[1:]) if a["configuration"] != b["configuration"])
                r = {"rate_from": round(before_rate, 2), "rate_to": round(load.rate, 2), "slo_ms": slo_ms,
                     "settle_s": settle, "configuration_changes": changes, "changes_after_settle": changes_after,
                     "configuration_before": before_cfg,
                     "configuration_after": samples[-1]["configuration"] if samples else None,
                     "client_p99_ms_last_hold": client["p99_ms"], "client_errors_during": during["errors"],
                     "client_completed_during": during["completed"], "samples": samples}
                results.append(r)
                settled = (f"{settle:.1f} s" if settle is not None
                           else f"not settled within {args.settle_observe_s:g} s")
                say(f"  rate {before_rate:.1f} -> {load.rate:.1f}/s: settle {settled}; {changes} configuration change(s) "
                    f"({before_cfg} -> {r['configuration_after']}); client p99 over the last {args.settle_hold_s:g} s "
                    f"{fmt(client['p99_ms'], '.1f')} ms; {during['errors']} of "
                    f"{during['completed'] + during['errors']} requests refused or failed while observed")
            overall = load.summary(t0, time.monotonic())
            say(f"  load generator: {overall['throughput']:.1f} req/s offered and answered on average")
        finally:
            load.stop()
    return results


# ---------------------------------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="squeezenet,resnet50")
    p.add_argument("--slo-ms", type=float, default=None,
                   help="SLO for every model (default: squeezenet 20, resnet50 150, else 100)")
    p.add_argument("--policies", default="dnnscaler,joint")
    p.add_argument("--statics", default="1x1,1x2,1x4,1x8,2x1,2x2,2x4,2x8", help="INSTANCESxBATCH list")
    p.add_argument("--max-rate", type=float, default=None,
                   help="the rate the search factors scale (default: the in-process maximum from dnnscaler profile)")
    p.add_argument("--profile-duration", type=float, default=2.0)
    p.add_argument("--profile-batch-sizes", default="1,2,4,8")
    p.add_argument("--window-ms", type=int, default=5000, help="perf_analyzer -p (default 5000)")
    p.add_argument("--min-requests", type=float, default=50,
                   help="lengthen a rate's window to hold at least this many requests (default 50)")
    p.add_argument("--stability", default="30", help="perf_analyzer -s in percent (default 30)")
    p.add_argument("--max-trials", default="6", help="perf_analyzer --max-trials (default 6)")
    p.add_argument("--max-threads", default="16", help="perf_analyzer --max-threads (default 16)")
    p.add_argument("--retries", type=int, default=1, help="reruns of a rate whose run failed to measure (default 1)")
    p.add_argument("--refine", type=int, default=2, help="bisection steps after the coarse search (default 2)")
    p.add_argument("--warmup-s", type=float, default=15.0, help="warm-up rate step after start (default 15 s)")
    p.add_argument("--warmup-factor", type=float, default=0.5, help="warm-up rate / max rate (default 0.5)")
    p.add_argument("--repeats", type=int, default=1, help="capacity searches per configuration; median (default 1)")
    p.add_argument("--skip-capacity", action="store_true", help="only the settle experiment (needs --settle-rate)")
    p.add_argument("--skip-settle", action="store_true")
    p.add_argument("--settle-policy", default="joint")
    p.add_argument("--settle-load", type=float, default=0.7, help="load / capacity (default 0.7)")
    p.add_argument("--settle-rate", type=float, default=None, help="the settle load in req/s (overrides --settle-load)")
    p.add_argument("--settle-factor", type=float, default=2.0, help="new SLO / SLO for the first change (default 2)")
    p.add_argument("--client", choices=["perf_analyzer", "python"], default="perf_analyzer",
                   help="capacity load: perf_analyzer (stops at the first refused request, so any shed request "
                        "fails the rate) or this script's Poisson generator (shed requests count as SLO misses: "
                        "a rate passes with up to 1%% of requests shed, failed or late)")
    p.add_argument("--python-settle-s", type=float, default=4.0, help="--client python: seconds before measuring")
    p.add_argument("--python-measure-s", type=float, default=12.0, help="--client python: measured seconds")
    p.add_argument("--settle-rate-step", type=float, default=1.4,
                   help="rate step factor after the SLO changes (default 1.4: 0.7 -> ~1.0 of capacity), then back")
    p.add_argument("--settle-pre-s", type=float, default=20.0, help="load before the first change (default 20 s)")
    p.add_argument("--settle-observe-s", type=float, default=40.0, help="observation after each change (default 40 s)")
    p.add_argument("--settle-hold-s", type=float, default=5.0, help="quiet stretch that counts as settled (default 5 s)")
    p.add_argument("--settle-workers", type=int, default=32)
    p.add_argument("--quick", action="store_true", help="smoke run of a few minutes")
    p.add_argument("--bin", default=DEFAULT_BIN)
    p.add_argument("--client-venv", default=DEFAULT_CLIENT_VENV)
    p.add_argument("--model-repository", default=DEFAULT_REPOSITORY)
    p.add_argument("--json", default=None, help="write the results here too")
    args = p.parse_args()
    args.factors = COARSE_FACTORS
    if args.quick:
        if "--models" not in sys.argv:
            args.models = "squeezenet"
        if "--statics" not in sys.argv:
            args.statics = "2x1,1x4"
        args.factors = QUICK_FACTORS
        args.window_ms, args.max_trials, args.refine, args.warmup_s, args.min_requests = 1000, "4", 1, 3.0, 20
        args.profile_duration, args.profile_batch_sizes = 1.0, "1,4"
        args.settle_pre_s, args.settle_observe_s, args.settle_hold_s = 5.0, 12.0, 3.0
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"{args.bin} not built: run `make release` first (or pass --bin)")
    tools = ClientTools(args.client_venv)
    configs = [Config(pol.strip()) for pol in args.policies.split(",") if pol.strip()] + parse_statics(args.statics)

    say(CORES_NOTE + "; the settle load generator runs in this Python process")
    started = time.monotonic()
    out = {"date": datetime.datetime.now().isoformat(), "cpu_count": os.cpu_count(), "quick": args.quick,
           "window_ms": args.window_ms, "models": []}
    for model in args.models.split(","):
        slo_ms = args.slo_ms if args.slo_ms is not None else DEFAULT_SLO_MS.get(model, 100.0)
        entry = {"model": model, "slo_ms": slo_ms, "configurations": []}
        if args.max_rate:
            max_rate, max_cfg = args.max_rate, "given"
        elif args.skip_capacity and args.settle_rate:
            max_rate, max_cfg = None, "not needed"
        else:
            max_rate, max_cfg = in_process_max(args, model)
        entry["max_rate"], entry["max_rate_source"] = max_rate, max_cfg
        if not args.skip_capacity:
            say(f"\n{model}: capacity at SLO {slo_ms:g} ms p99 (open-loop Poisson, perf_analyzer -p {args.window_ms}); "
                f"rates scale the in-process maximum {max_rate:.1f}/s ({max_cfg})")
            for repeat in range(args.repeats):
                order = configs if repeat % 2 == 0 else list(reversed(configs))
                for config in order:
                    say(f"  {config.name} (run {repeat + 1}/{args.repeats})")
                    try:
                        cap, levels, final, note = capacity(args, tools, model, slo_ms, config, max_rate)
                    except RuntimeError as exc:
                        say(f"    server failed: {str(exc).splitlines()[0]}")
                        cap, levels, final, note = None, [], None, "server failed"
                    rec = next((c for c in entry["configurations"] if c["name"] == config.name), None)
                    if rec is None:
                        rec = {"name": config.name, "policy": config.policy, "instances": config.instances,
                               "batch_size": config.batch, "runs": []}
                        entry["configurations"].append(rec)
                    rec["runs"].append({"capacity": cap, "final_configuration": final, "note": note,
                                        "levels": [lv.as_dict() for lv in levels]})
            for rec in entry["configurations"]:
                caps = [r["capacity"] for r in rec["runs"] if r["capacity"] is not None]
                rec["capacity"] = statistics.median(caps) if caps else None
            statics = [c for c in entry["configurations"] if c["policy"] == "static" and c["capacity"] is not None]
            best = max(statics, key=lambda c: c["capacity"]) if statics else None
            entry["best_static"] = best["name"] if best else None
            say(f"\n{model}, SLO {slo_ms:g} ms p99: capacity at the SLO")
            say(f"  {'configuration':<18} {'capacity/s':>10} {'vs best static':>15}  runs; server configuration at the end")
            for rec in entry["configurations"]:
                ratio = rec["capacity"] / best["capacity"] if best and rec["capacity"] else None
                rec["ratio_to_best_static"] = ratio
                runs = " ".join(fmt(r["capacity"]) for r in rec["runs"])
                finals = ", ".join(sorted({r["final_configuration"] or "?" for r in rec["runs"]}))
                notes = "; ".join(sorted({r["note"] for r in rec["runs"] if r["note"]}))
                say(f"  {rec['name']:<18} {fmt(rec['capacity']):>10} {fmt(ratio, '.3f'):>15}  {runs}; {finals}"
                    + (f"  ({notes})" if notes else ""))
            if best:
                say(f"  best static: {best['name']} at {best['capacity']:.1f}/s")
                for rec in entry["configurations"]:
                    if rec["policy"] != "static":
                        say(f"  {rec['name']} / best static = {fmt(rec['ratio_to_best_static'], '.3f')} (target >= 0.95)")
        if not args.skip_settle:
            if args.settle_rate:
                rate, source = args.settle_rate, "given"
            else:
                pol = next((c for c in entry["configurations"] if c["name"] == args.settle_policy), None)
                best = max((c["capacity"] for c in entry["configurations"] if c.get("capacity")), default=None)
                if pol and pol.get("capacity"):
                    base, source = pol["capacity"], f"{args.settle_load:.0%} of {args.settle_policy}'s capacity"
                elif best:
                    base, source = best, f"{args.settle_load:.0%} of the best measured capacity"
                else:
                    base, source = 0.5 * max_rate, f"{args.settle_load:.0%} of half the in-process maximum"
                rate = args.settle_load * base
            entry["settle_rate"] = rate
            try:
                entry["settle"] = settle_experiment(args, model, slo_ms, rate, source)
            except RuntimeError as exc:
                say(f"  settle experiment failed: {str(exc).splitlines()[0]}")
                entry["settle"] = {"error": str(exc)}
        out["models"].append(entry)
    say(f"\n({time.monotonic() - started:.0f} s; {CORES_NOTE})")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
        say(f"wrote {args.json}")


if __name__ == "__main__":
    main()
