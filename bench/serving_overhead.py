#!/usr/bin/env python3
"""What serving over HTTP costs: `dnnscaler serve` measured with perf_analyzer against the same
configuration run in process by `dnnscaler profile`.

(a) Latency floor: perf_analyzer at concurrency 1 on `simple` (two INT32 [1,16] inputs, trivial
    compute) against `serve --policy static --batch-size 1 --instances 1`; client p50/p99, the
    median of --repeats runs (a fresh server each run).
(b) Throughput: for resnet50 and squeezenet, the saturated server throughput (perf_analyzer closed
    loop at --concurrency, binary tensors, batch-1 requests) of a static configuration against the
    in-process throughput of the same configuration with the server's session options
    (`dnnscaler profile ... --no-spinning --json`; --inprocess-spinning for ONNX Runtime's default),
    points[0].throughput), run alternately --repeats times each; medians and ratio
    server / in-process (target >= 0.95). Configurations (server static k x b; in process k
    instances x t threads, batch b):
        1 instance,  batch 1  (in process --instances 1 --threads 2 --batch-sizes 1), concurrency 4
        2 instances, batch 1  (in process --instances 2 --threads 1 --batch-sizes 1), concurrency 4
        1 instance,  batch 4  (in process --instances 1 --threads 2 --batch-sizes 4), concurrency 8
    With --shared-memory (default on) each server run is measured twice: tensors in the HTTP
    body (binary), then in system shared memory (`perf_analyzer --shared-memory system`, the
    server started with --allow-client-shm), so the cost of moving the tensor bytes shows apart.
    The server gets a huge SLO (600000 ms, written into a temporary copy of the repository's
    config.json, which wins over `serve --slo-ms`) so that its deadline-based admission control
    never refuses a request of the closed loop: perf_analyzer stops at the first failed request.
    With --io-cores N the servers run `serve --io-cores N` (the front end's event loops on the last
    N CPUs, the instances pinned to the rest) and the in-process side runs on those compute CPUs
    only: the same compute cores on both sides, and N more for serving. For example, on 2 CPUs:
        DNNSCALER_BENCH_SERVER_CPUS=0,1 DNNSCALER_BENCH_CLIENT_CPUS=1 \
            python3 -m bench.serving_overhead --io-cores 1 --configs 1x1:1:2 --models squeezenet

On a 2-core machine perf_analyzer and the server share the cores: the client's CPU time is part
of what the server-side figure pays, the in-process figure does not pay it. Run it alone.

Standard library only; run it with either venv, e.g.
    .venv-client/bin/python -m bench.serving_overhead [--repeats 3] [--json bench/results/serving_overhead.json]
    .venv-client/bin/python -m bench.serving_overhead --quick        # smoke run, about 3 minutes
Needs scripts/setup (models, ONNX Runtime), scripts/setup_clients (perf_analyzer) and the release
build (.build/release/dnnscaler, or --bin / $DNNSCALER_BIN).

The helpers here (Server, perf_analyzer runs, CSV parsing) are also used by serving_tuning.py.
"""
import argparse
import contextlib
import csv
import datetime
import glob
import json
import os
import re
import signal
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_BIN = os.environ.get("DNNSCALER_BIN", os.path.join(ROOT, ".build", "release", "dnnscaler"))
DEFAULT_CLIENT_VENV = os.environ.get("DNNSCALER_CLIENT_VENV", os.path.join(ROOT, ".venv-client"))
DEFAULT_REPOSITORY = os.path.join(ROOT, "model_repository")

# Optional CPU pinning (`taskset -c`), for a machine with cores to spare: the server and the
# in-process runs on DNNSCALER_BENCH_SERVER_CPUS (e.g. "0,1"), the load generators on
# DNNSCALER_BENCH_CLIENT_CPUS (e.g. "2-5"). Unset, nothing is pinned.
SERVER_CPUS = os.environ.get("DNNSCALER_BENCH_SERVER_CPUS") or None
CLIENT_CPUS = os.environ.get("DNNSCALER_BENCH_CLIENT_CPUS") or None

if SERVER_CPUS and CLIENT_CPUS:
    CORES_NOTE = (f"note: server pinned to CPUs {SERVER_CPUS}, load generator to CPUs {CLIENT_CPUS} "
                  f"(of {os.cpu_count()})")
else:
    CORES_NOTE = (f"note: {os.cpu_count()} CPU cores; perf_analyzer and the server share them, so the "
                  "client's CPU time is part of what the server-side figures pay")


def expand_cpus(text):
    """"0-2,4" as [0, 1, 2, 4]."""
    cpus = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


def compute_cpus(io_cores):
    """The CPUs `serve --io-cores N` computes on (all its CPUs but the last N, as the server splits
    them), as a taskset list; None when nothing is split off."""
    if not io_cores:
        return SERVER_CPUS
    cpus = sorted(expand_cpus(SERVER_CPUS) if SERVER_CPUS else os.sched_getaffinity(0))
    if io_cores >= len(cpus):
        sys.exit(f"--io-cores {io_cores}: the server has only {len(cpus)} CPU(s)")
    return ",".join(str(cpu) for cpu in cpus[:-io_cores])


def pinned(cmd, cpus):
    """`cmd` run under `taskset -c CPUS`, or as it is when `cpus` is None."""
    return ["taskset", "-c", cpus] + list(cmd) if cpus else list(cmd)


def write_json(path, data):
    """Writes `data` to `path` (its folder made if needed) and says so."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=2)
    print(f"wrote {path}", flush=True)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, spec=".1f", missing="-"):
    return missing if value is None else format(value, spec)


# ---------------------------------------------------------------------------------------------
# Client tools


class ClientTools:
    """perf_analyzer from the client venv (scripts/setup_clients) and the environment it needs."""

    def __init__(self, venv=DEFAULT_CLIENT_VENV):
        self.perf_analyzer = os.path.join(venv, "bin", "perf_analyzer")
        if not os.access(self.perf_analyzer, os.X_OK):
            sys.exit(f"no perf_analyzer at {self.perf_analyzer}: run scripts/setup_clients")
        libs = sorted(glob.glob(os.path.join(venv, "lib", "python3*", "site-packages", "nvidia", "cuda_runtime", "lib")))
        if not libs:
            sys.exit(f"nvidia-cuda-runtime-cu12 missing in {venv}: run scripts/setup_clients")
        self.env = dict(os.environ)
        self.env["LD_LIBRARY_PATH"] = libs[0] + (":" + self.env["LD_LIBRARY_PATH"] if self.env.get("LD_LIBRARY_PATH") else "")


class PAResult:
    """One perf_analyzer run: exit status, the CSV rows (one per load level), what stdout said."""

    def __init__(self, rc, rows, output):
        self.rc = rc
        self.rows = rows
        self.output = output
        self.errors = re.findall(r"Thread \[\d+\] had error: (.*)", output)
        self.unstable = "Failed to obtain stable measurement" in output
        delayed = re.findall(r"([0-9.]+)% of the requests were delayed", output)
        self.delayed_pct = max(float(d) for d in delayed) if delayed else 0.0

    @property
    def ok(self):
        return self.rc == 0 and bool(self.rows) and not self.errors

    def why(self):
        if self.errors:
            return f"request error: {self.errors[0]}"
        if self.unstable:
            return "no stable measurement"
        if self.rc != 0:
            tail = [line for line in self.output.strip().splitlines() if line.strip()][-1:]
            return f"perf_analyzer exit {self.rc}: {tail[0] if tail else ''}"
        if not self.rows:
            return "no result row"
        return "ok"


def read_pa_csv(path):
    """perf_analyzer -f FILE --verbose-csv: a header line, one row per load level, then maybe a
    blank line and extra sections. Numbers become floats; latencies are in microseconds."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        lines = f.read().splitlines()
    block = []
    for line in lines:
        if not line.strip():
            if block:
                break
            continue
        block.append(line)
    if len(block) < 2:
        return []
    rows = []
    for raw in csv.DictReader(block):
        row = {}
        for key, value in raw.items():
            if key is None:
                continue
            try:
                row[key.strip()] = float(value)
            except (TypeError, ValueError):
                row[key.strip()] = value
        rows.append(row)
    return rows


def run_perf_analyzer(tools, url, model, args, timeout=600):
    """Runs perf_analyzer with -f/--verbose-csv added; never raises on its failure."""
    with tempfile.TemporaryDirectory(prefix="dnnscaler-pa-") as tmp:
        csv_path = os.path.join(tmp, "out.csv")
        cmd = pinned([tools.perf_analyzer, "-m", model, "-u", url, "-f", csv_path, "--verbose-csv"]
                     + [str(a) for a in args], CLIENT_CPUS)
        try:
            proc = subprocess.run(cmd, env=tools.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  timeout=timeout)
            rc, output = proc.returncode, proc.stdout
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout or ""
            rc, output = 124, (out.decode() if isinstance(out, bytes) else out) + "\n(timed out)"
        rows = read_pa_csv(csv_path) if rc == 0 else []
        return PAResult(rc, rows, output)


# ---------------------------------------------------------------------------------------------
# The server


def free_ports(count):
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def http(method, url, body=None, timeout=10.0):
    """(status, parsed JSON or text); status 0 when the connection failed."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError):
        return 0, None
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


class Server:
    """`dnnscaler serve` on free ports, logging to a temporary file; a context manager that always
    stops it (SIGTERM, then SIGKILL after 30 s)."""

    def __init__(self, binary, models, slo_ms, policy=None, batch_size=None, instances=None, extra=(),
                 repository=DEFAULT_REPOSITORY, ready_timeout=180, cpus=SERVER_CPUS):
        self.binary, self.models, self.slo_ms, self.cpus = binary, models, slo_ms, cpus
        self.policy, self.batch_size, self.instances = policy, batch_size, instances
        self.extra, self.repository, self.ready_timeout = list(extra), repository, ready_timeout
        self.proc = None
        self.exit_code = None
        self.log_file = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        http_port, grpc_port, metrics_port = free_ports(3)
        self.url = f"127.0.0.1:{http_port}"
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        self.grpc_url = f"127.0.0.1:{grpc_port}"
        self.base = f"http://{self.url}"
        cmd = [self.binary, "serve", "--model-repository", self.repository, "--models", ",".join(self.models),
               "--host", "127.0.0.1", "--http-port", str(http_port), "--grpc-port", str(grpc_port),
               "--metrics-port", str(metrics_port),
               "--slo-ms", str(self.slo_ms),
               # The benchmarks reconfigure models through load (a config override), and stop
               # servers with SIGTERM without waiting for a load balancer.
               "--model-control-mode", "explicit", "--drain-grace-seconds", "0"]
        if self.policy:
            cmd += ["--policy", self.policy]
        if self.batch_size is not None:
            cmd += ["--batch-size", str(self.batch_size)]
        if self.instances is not None:
            cmd += ["--instances", str(self.instances)]
        cmd = pinned(cmd + self.extra, self.cpus)
        self.log_file = tempfile.NamedTemporaryFile(prefix="dnnscaler-serve-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(cmd, stdout=self.log_file, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with status {self.proc.returncode} before it was ready:\n{self.log_tail()}")
            status, _ = http("GET", self.base + "/v2/health/ready", timeout=2)
            if status == 200:
                return
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"server not ready within {self.ready_timeout} s:\n{self.log_tail()}")

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log("server did not stop within 30 s of SIGTERM: killing it")
                self.proc.kill()
                self.proc.wait()
        self.exit_code = self.proc.returncode
        self.proc = None
        if self.log_file is not None:
            self.log_file.close()
            with contextlib.suppress(OSError):
                os.unlink(self.log_file.name)
            self.log_file = None

    def log_tail(self, lines=20):
        if self.log_file is None:
            return ""
        self.log_file.flush()
        with open(self.log_file.name, errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    def status(self, model):
        status, body = http("GET", self.base + "/dnnscaler/status", timeout=5)
        if status != 200 or not isinstance(body, dict):
            return None
        for m in body.get("models", []):
            if m.get("name") == model:
                return m
        return None

    def configuration(self, model):
        st = self.status(model)
        return None if st is None else st.get("configuration")

    def load(self, model, config):
        """POST /v2/repository/models/{model}/load with a config override (a dict)."""
        return http("POST", f"{self.base}/v2/repository/models/{model}/load",
                    {"parameters": {"config": json.dumps(config)}}, timeout=120)


def link_tree(source, destination):
    """Copies a folder as hard links (a copy where the file system cannot link). Not symlinks: the
    server refuses model files that resolve outside its repository."""
    if not os.path.isdir(source):
        try:
            os.link(source, destination)
        except OSError:
            shutil.copy2(source, destination)
        return
    os.makedirs(destination)
    for entry in os.listdir(source):
        link_tree(os.path.join(source, entry), os.path.join(destination, entry))


@contextlib.contextmanager
def model_repository(models, source=DEFAULT_REPOSITORY, **dnnscaler):
    """A temporary repository serving `models` from `source` (files hard-linked, not copied),
    with each model's config.json updated with the given `dnnscaler` fields (e.g. slo_ms=20): the
    models' own config.json (e.g. squeezenet's slo_ms 20) wins over `serve --slo-ms`, so a
    benchmark that needs another SLO sets it here."""
    with tempfile.TemporaryDirectory(prefix="dnnscaler-repo-") as tmp:
        for model in models:
            src = os.path.join(source, model)
            if not os.path.isdir(src):
                sys.exit(f"model {model} not in {source}: run scripts/setup")
            dst = os.path.join(tmp, model)
            os.makedirs(dst)
            config = {}
            for entry in os.listdir(src):
                path = os.path.join(src, entry)
                if entry == "config.json":
                    with open(path) as f:
                        config = json.load(f)
                else:
                    link_tree(path, os.path.join(dst, entry))
            if dnnscaler:
                config.setdefault("dnnscaler", {}).update(dnnscaler)
            with open(os.path.join(dst, "config.json"), "w") as f:
                json.dump(config, f)
        yield tmp


def describe_configuration(cfg):
    if not cfg:
        return "?"
    return f"{cfg.get('instances')}x{cfg.get('threads_per_instance')}T b{cfg.get('batch_limit')}"


# ---------------------------------------------------------------------------------------------
# In process


def profile_throughput(binary, model, instances, threads, batch, duration, repository=DEFAULT_REPOSITORY,
                       spinning=False, cpus=SERVER_CPUS):
    """In-process throughput on `cpus`; `spinning` False profiles the sessions as `serve` runs them
    (no spin-wait)."""
    with tempfile.TemporaryDirectory(prefix="dnnscaler-profile-") as tmp:
        out = os.path.join(tmp, "profile.json")
        subprocess.run(pinned([binary, "profile", model, "--model-repository", repository, "--instances",
                               str(instances), "--threads", str(threads), "--batch-sizes", str(batch), "--duration",
                               str(duration), "--json", out, "--spinning" if spinning else "--no-spinning"],
                              cpus), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        with open(out) as f:
            return json.load(f)["points"][0]["throughput"]


# ---------------------------------------------------------------------------------------------
# (a) latency at concurrency 1 on `simple`


def latency_floor(args, tools):
    runs = []
    print("(a) latency floor: perf_analyzer concurrency 1 on simple, binary tensors over HTTP, "
          "server --policy static --batch-size 1 --instances 1", flush=True)
    print(f"{'run':<6} {'p50 us':>8} {'p90 us':>8} {'p99 us':>8} {'avg us':>8} {'server us':>10} {'infer/s':>9}  config",
          flush=True)
    for repeat in range(args.repeats):
        row = None
        cfg = None
        why = ""
        try:
            with model_repository(["simple"], args.model_repository, slo_ms=args.slo_ms) as repo, \
                    Server(args.bin, ["simple"], args.slo_ms, policy="static", batch_size=1, instances=1,
                           repository=repo) as server:
                cfg = server.configuration("simple")
                # no --percentile: stabilize on the average; the CSV has p50..p99 anyway
                base = ["--concurrency-range", "1", "-p", args.window_ms, "--max-trials", args.max_trials]
                res = run_perf_analyzer(tools, server.url, "simple", base + ["-s", args.stability])
                if not res.ok and res.unstable and not res.errors:
                    res = run_perf_analyzer(tools, server.url, "simple", base + ["-s", "50"])
                if res.ok:
                    row = res.rows[0]
                else:
                    why = res.why()
        except RuntimeError as exc:
            why = str(exc).splitlines()[0]
        if row is None:
            print(f"{repeat + 1:<6} failed: {why}", flush=True)
            runs.append(None)
            continue
        server_us = sum(row.get(k, 0.0) for k in ("Server Queue", "Server Compute Input", "Server Compute Infer",
                                                 "Server Compute Output"))
        r = {"p50_us": row.get("p50 latency"), "p90_us": row.get("p90 latency"), "p99_us": row.get("p99 latency"),
             "avg_us": row.get("Avg latency"), "server_us": server_us, "throughput": row.get("Inferences/Second"),
             "configuration": cfg}
        runs.append(r)
        print(f"{repeat + 1:<6} {fmt(r['p50_us'], '.0f'):>8} {fmt(r['p90_us'], '.0f'):>8} {fmt(r['p99_us'], '.0f'):>8} "
              f"{fmt(r['avg_us'], '.0f'):>8} {fmt(server_us, '.0f'):>10} {fmt(r['throughput']):>9}  "
              f"{describe_configuration(cfg)}", flush=True)
    good = [r for r in runs if r]
    result = {"runs": runs}
    for key in ("p50_us", "p90_us", "p99_us", "avg_us", "server_us", "throughput"):
        result[key + "_median"] = median([r[key] for r in good])
    print(f"{'median':<6} {fmt(result['p50_us_median'], '.0f'):>8} {fmt(result['p90_us_median'], '.0f'):>8} "
          f"{fmt(result['p99_us_median'], '.0f'):>8} {fmt(result['avg_us_median'], '.0f'):>8} "
          f"{fmt(result['server_us_median'], '.0f'):>10} {fmt(result['throughput_median']):>9}", flush=True)
    print("  (server us: perf_analyzer's server-side queue + compute from the statistics extension; "
          "the rest of avg is HTTP, parsing and the client)", flush=True)
    return result


# ---------------------------------------------------------------------------------------------
# (b) saturated server throughput against in process


# (instances, in-process threads per instance, batch size, perf_analyzer concurrency)
CONFIGURATIONS = [(1, 2, 1, 4), (2, 1, 1, 4)]
BATCH_CONFIGURATION = (1, 2, 4, 8)


SHARED_MEMORY_ARGS = ["--shared-memory", "system", "--output-shared-memory-size", str(1 << 20)]


def server_throughput(args, tools, model, instances, batch, concurrency):
    """({transport: throughput or None}, configuration the server reports, why-nots) for one fresh
    server: "binary" (tensors in the HTTP body), and "shm" (system shared memory) with --shared-memory."""
    transports = {"binary": []}
    if args.shared_memory:
        transports["shm"] = SHARED_MEMORY_ARGS
    values, notes = {name: None for name in transports}, []
    try:
        with model_repository([model], args.model_repository, slo_ms=args.slo_ms) as repo, \
                Server(args.bin, [model], args.slo_ms, policy="static", batch_size=batch, instances=instances,
                       repository=repo,
                       extra=(["--allow-client-shm"] if args.shared_memory else [])
                       + (["--io-cores", str(args.io_cores)] if args.io_cores else [])) as server:
            cfg = server.configuration(model)
            for name, extra in transports.items():
                base = (["--concurrency-range", str(concurrency), "-p", args.window_ms, "--max-trials", args.max_trials]
                        + extra)
                res = run_perf_analyzer(tools, server.url, model, base + ["-s", args.stability])
                if not res.ok and res.unstable and not res.errors:
                    # A shared machine with few cores is noisy; a looser criterion still gives an honest average.
                    res = run_perf_analyzer(tools, server.url, model, base + ["-s", "50"])
                if res.ok:
                    values[name] = res.rows[0]["Inferences/Second"]
                else:
                    notes.append(f"{name}: {res.why()}")
            return values, cfg, notes
    except RuntimeError as exc:
        return values, None, [str(exc).splitlines()[0]]


def parse_configurations(text):
    """"INSTANCESxTHREADS:BATCH:CONCURRENCY,..." (such as 1x1:1:2) as CONFIGURATIONS tuples."""
    configs = []
    for item in text.split(","):
        try:
            shape, batch, concurrency = item.split(":")
            instances, threads = shape.lower().split("x")
            configs.append((int(instances), int(threads), int(batch), int(concurrency)))
        except ValueError:
            sys.exit(f"--configs: '{item}' is not INSTANCESxTHREADS:BATCH:CONCURRENCY (such as 1x1:1:2)")
    return configs


def throughput_comparison(args, tools):
    if args.configs:
        configs = parse_configurations(args.configs)
    else:
        configs = list(CONFIGURATIONS)
        if not args.no_batch4:
            configs.append(BATCH_CONFIGURATION)
    rows = []
    print(f"\n(b) saturated throughput: server (perf_analyzer closed loop, batch-1 requests, -p {args.window_ms}; "
          f"tensors in the body{', then in system shared memory' if args.shared_memory else ''}) "
          f"vs in process (dnnscaler profile --duration {args.duration}); {args.repeats} alternating runs each", flush=True)
    print(f"{'model':<12} {'config':<14} {'conc':>4} {'server/s':>9} {'shm/s':>7} {'in-proc/s':>10} {'ratio':>6} "
          f"{'shm':>6}  runs (server | shm | in-process)", flush=True)
    for model in args.models.split(","):
        for instances, threads, batch, concurrency in configs:
            served, shared, inproc, cfgs, notes = [], [], [], [], []
            for repeat in range(args.repeats):
                order = ["server", "inproc"] if repeat % 2 == 0 else ["inproc", "server"]
                for side in order:
                    if side == "server":
                        values, cfg, why = server_throughput(args, tools, model, instances, batch, concurrency)
                        served.append(values.get("binary"))
                        if args.shared_memory:
                            shared.append(values.get("shm"))
                        cfgs.append(describe_configuration(cfg))
                        notes.extend(why)
                    else:
                        try:
                            inproc.append(profile_throughput(args.bin, model, instances, threads, batch, args.duration,
                                                             args.model_repository, spinning=args.inprocess_spinning,
                                                             cpus=compute_cpus(args.io_cores)))
                        except subprocess.CalledProcessError as exc:
                            inproc.append(None)
                            notes.append(f"profile failed: exit {exc.returncode}")
            row = {"model": model, "instances": instances, "threads": threads, "batch_size": batch,
                   "concurrency": concurrency, "server_runs": served, "shared_memory_runs": shared,
                   "inprocess_runs": inproc, "server_configurations": cfgs, "server_median": median(served),
                   "shared_memory_median": median(shared), "inprocess_median": median(inproc), "notes": notes}
            for key, source in (("ratio", "server_median"), ("shared_memory_ratio", "shared_memory_median")):
                row[key] = (row[source] / row["inprocess_median"]
                            if row[source] and row["inprocess_median"] else None)
            rows.append(row)
            config = f"{instances}x{threads}T b{batch}"
            runs = " | ".join(" ".join(fmt(v) for v in values) for values in (served, shared, inproc))
            print(f"{model:<12} {config:<14} {concurrency:>4} {fmt(row['server_median']):>9} "
                  f"{fmt(row['shared_memory_median']):>7} {fmt(row['inprocess_median']):>10} "
                  f"{fmt(row['ratio'], '.3f'):>6} {fmt(row['shared_memory_ratio'], '.3f'):>6}  {runs}", flush=True)
            expected = f"{instances}x{threads}T b{batch}"
            odd = sorted({c for c in cfgs if c != expected})
            if odd:
                print(f"  warning: the server reported configuration(s) {', '.join(odd)}, expected {expected}", flush=True)
            for note in sorted(set(notes)):
                print(f"  note: {note}", flush=True)
    for key, label in (("ratio", "tensors in the body"), ("shared_memory_ratio", "system shared memory")):
        ratios = [r[key] for r in rows if r[key] is not None]
        if ratios:
            print(f"minimum ratio server/in-process, {label}: {min(ratios):.3f} (target >= 0.95)", flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs per side and configuration (default 3)")
    parser.add_argument("--window-ms", type=int, default=5000, help="perf_analyzer -p for throughput (default 5000)")
    parser.add_argument("--latency-window-ms", type=int, default=3000, help="perf_analyzer -p for (a) (default 3000)")
    parser.add_argument("--duration", type=float, default=5.0, help="in-process seconds per run (default 5)")
    parser.add_argument("--stability", default="15", help="perf_analyzer -s, in percent (default 15; "
                        "an unstable throughput run is retried once with 50)")
    parser.add_argument("--max-trials", default="8", help="perf_analyzer --max-trials (default 8)")
    parser.add_argument("--models", default="resnet50,squeezenet")
    parser.add_argument("--no-batch4", action="store_true", help="skip static batch 4 at concurrency 8")
    parser.add_argument("--configs", default=None,
                        help="configurations instead of the default ones: INSTANCESxTHREADS:BATCH:CONCURRENCY,... "
                             "(such as 1x1:1:2 for a server pinned to one CPU)")
    parser.add_argument("--inprocess-spinning", action="store_true",
                        help="profile in process with ONNX Runtime's spin-waiting threads (its default) instead of "
                             "the session options `serve` uses (no spinning); matters for instances with several threads")
    parser.add_argument("--io-cores", type=int, default=0,
                        help="start the servers of (b) with `serve --io-cores N` and run the in-process side on "
                             "their compute CPUs only (all but the last N of DNNSCALER_BENCH_SERVER_CPUS, or of this "
                             "process's CPUs): the same compute cores, plus N for the front end (default 0)")
    parser.add_argument("--no-shared-memory", dest="shared_memory", action="store_false",
                        help="measure tensors in the HTTP body only, not also in system shared memory")
    parser.add_argument("--skip-latency", action="store_true", help="skip (a)")
    parser.add_argument("--skip-throughput", action="store_true", help="skip (b)")
    parser.add_argument("--slo-ms", type=float, default=600000,
                        help="the server's SLO; huge so that deadline admission never refuses (default 600000)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 repeat, 1 s windows, 2 s in process, no batch 4")
    parser.add_argument("--bin", default=DEFAULT_BIN, help="dnnscaler binary (default .build/release/dnnscaler)")
    parser.add_argument("--client-venv", default=DEFAULT_CLIENT_VENV)
    parser.add_argument("--model-repository", default=DEFAULT_REPOSITORY)
    parser.add_argument("--json", default=None, help="write the results here too")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.window_ms, args.latency_window_ms, args.duration = 1, 1000, 1000, 2.0
        args.max_trials, args.no_batch4 = "5", True
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"{args.bin} not built: run `make release` first (or pass --bin)")
    tools = ClientTools(args.client_venv)
    latency_args = argparse.Namespace(**vars(args))
    latency_args.window_ms = args.latency_window_ms

    print(CORES_NOTE, flush=True)
    if args.io_cores:
        print(f"note: (b) servers run with --io-cores {args.io_cores}; in process on CPUs {compute_cpus(args.io_cores)}",
              flush=True)
    started = time.monotonic()
    result = {"date": datetime.datetime.now().isoformat(), "cpu_count": os.cpu_count(), "repeats": args.repeats,
              "window_ms": args.window_ms, "duration_s": args.duration, "quick": args.quick,
              "io_cores": args.io_cores, "server_cpus": SERVER_CPUS, "client_cpus": CLIENT_CPUS}
    if not args.skip_latency:
        result["latency"] = latency_floor(latency_args, tools)
    if not args.skip_throughput:
        result["throughput"] = throughput_comparison(args, tools)
    print(f"({time.monotonic() - started:.0f} s; {CORES_NOTE})", flush=True)
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
