#!/usr/bin/env python3
"""Hardening runs against `dnnscaler serve` (release build), written up as docs/reliability.md.

    .venv-client/bin/python -m bench.reliability                 # everything: ~45 min
    .venv-client/bin/python -m bench.reliability --soak-minutes 2 --out /tmp/r.md   # a quick pass

Runs, each against a fresh server on free ports:
 1. bad inputs: a catalogue of malformed requests over HTTP and gRPC (shared-memory mistakes
    included, against a server with --allow-client-shm); each must get the expected
    4xx / gRPC status with a message naming the problem, and a valid request right after must
    still succeed;
 2. the decoder fuzz tests (`swift test --filter DecoderFuzzTests`: 100,000 mutated HTTP bodies and
    100,000 mutated protobuf messages), quoting their counts;
 3. capacity: `dnnscaler bench --sweep` finds the sustainable rate R of MODEL at SLO (open-loop
    Poisson, p99 over all requests with refusals counted as misses);
 4. overload: R/2 for 10 s, 3R for 60 s, then R/2 for 30 s; the server's resident memory is
    sampled every 0.5 s; reports shed share, p99 of admitted requests, peak memory and how long
    after the overload the per-second p99 is back under the SLO with nothing shed; plus a gRPC
    burst at 3R that must see RESOURCE_EXHAUSTED, not queueing;
 5. faults: a corrupt model file next to a good model; a model whose batches fail inside ONNX
    Runtime for some inputs, under concurrent good traffic; SIGTERM in the middle of a load run
    (every request answered or counted as a connection error, the counts add up, exit status 0);
 6. soak: 0.7 R for --soak-minutes with invalid requests (HTTP and gRPC) mixed in; resident memory
    growth from minute 2 to the end, valid requests failed.
Results go to --json (default docs/data/reliability.json) and the report to --out.
"""
import argparse
import contextlib
import datetime
import http.client
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing import shared_memory

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc

from bench.serving_overhead import DEFAULT_BIN, ROOT, Server, link_tree, log, model_repository

REPOSITORY = os.path.join(ROOT, "model_repository")


# ---- helpers -------------------------------------------------------------------------------

def rss_kib(pid):
    """(VmRSS, VmHWM) of a process in KiB."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                values[key] = int(value.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


class MemorySampler:
    """Samples a process's resident memory every `interval` seconds in a thread."""

    def __init__(self, pid, interval):
        self.pid, self.interval = pid, interval
        self.samples = []  # (t, rss KiB)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.start = time.monotonic()

    def run(self):
        while not self.stop_event.is_set():
            try:
                rss, _ = rss_kib(self.pid)
            except OSError:
                return
            self.samples.append((time.monotonic() - self.start, rss))
            self.stop_event.wait(self.interval)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join()


def raw_http(url, method, path, body=b"", headers=None, timeout=30):
    """(status, text) of one request with an exact body; status 0 if the connection failed."""
    host, port = url.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    except OSError as exc:
        return 0, str(exc)
    finally:
        conn.close()


def bench(binary, base, model, out_json, *, rate, duration, slo_ms, warmup=0.0, extra=()):
    cmd = [binary, "bench", "--url", base, "--model", model, "--rate", f"{rate:.3f}", "--duration", str(duration),
           "--warmup", str(warmup), "--slo-ms", str(slo_ms), "--json", out_json, "--quiet", "--timeout", "10",
           *extra]
    log(" ".join(cmd))
    subprocess.run(cmd, check=True, cwd=ROOT)
    with open(out_json) as f:
        return json.load(f)


def error_text(text):
    try:
        return json.loads(text).get("error", text)
    except (ValueError, AttributeError):
        return text


# ---- 1. bad inputs -------------------------------------------------------------------------

def binary_body(header, payload):
    head = json.dumps(header).encode()
    return head + payload, {"Inference-Header-Content-Length": str(len(head)),
                            "Content-Type": "application/octet-stream"}


def http_bad_cases(max_body, shm_key=None):
    """(name, path, body, headers, expected status, a word the message must contain). With `shm_key`
    (a 4096-byte POSIX shared-memory object the caller made), the shared-memory mistakes too."""
    infer = "/v2/models/linear_hand/infer"
    good_input = {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}
    floats = np.zeros(3, dtype=np.float32).tobytes()
    cases = [
        ("malformed JSON", infer, b'{"inputs": [', {}, 400, "JSON"),
        ("deeply nested JSON (100,000 levels)", infer, b"[" * 100_000 + b"]" * 100_000, {}, 400, ""),
        ("nested data deeper than the shape", infer,
         json.dumps({"inputs": [{**good_input, "data": [[[[[1]]]]]}]}).encode(), {}, 400, "x"),
        ("not an object", infer, b"[1, 2, 3]", {}, 400, "object"),
        ("no inputs", infer, b"{}", {}, 400, "inputs"),
        ("non-UTF-8 text", infer, b'{"inputs": [{"name": "\xff\xfe", "shape": [1], "datatype": "FP32", "data": [1]}]}',
         {}, 400, ""),
        ("truncated binary body", infer,
         *binary_body({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32",
                                   "parameters": {"binary_data_size": 12}}]}, floats[:7]), 400, "short"),
        ("header length larger than the body", infer, b'{"inputs": []}',
         {"Inference-Header-Content-Length": "9999"}, 400, "Inference-Header-Content-Length"),
        ("header length not a number", infer, b'{"inputs": []}',
         {"Inference-Header-Content-Length": "ten"}, 400, "Inference-Header-Content-Length"),
        ("binary bytes no input claims", infer,
         *binary_body({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32",
                                   "parameters": {"binary_data_size": 12}}]}, floats + b"extra"), 400, "claims"),
        ("wrong datatype", infer,
         json.dumps({"inputs": [{**good_input, "datatype": "INT64"}]}).encode(), {}, 400, "x"),
        ("wrong shape", infer, json.dumps({"inputs": [{**good_input, "shape": [1, 4], "data": [1, 2, 3, 4]}]}).encode(),
         {}, 400, "shape"),
        ("element count disagrees with the shape", infer,
         json.dumps({"inputs": [{**good_input, "data": [1, 2]}]}).encode(), {}, 400, "x"),
        ("shape whose element count overflows", infer,
         json.dumps({"inputs": [{**good_input, "shape": [2**40, 2**40, 2**40]}]}).encode(), {}, 400, "x"),
        ("negative dimension", infer, json.dumps({"inputs": [{**good_input, "shape": [-1, 3]}]}).encode(), {}, 400, "shape"),
        ("unsupported datatype", infer, json.dumps({"inputs": [{**good_input, "datatype": "FP8"}]}).encode(),
         {}, 400, "datatype"),
        ("BYTES for an FP32 input", infer,
         json.dumps({"inputs": [{**good_input, "datatype": "BYTES", "data": ["1", "2", "3"]}]}).encode(), {}, 400, "FP32"),
        ("BYTES length past the end", "/v2/models/string_echo/infer",
         *binary_body({"inputs": [{"name": "text", "shape": [1, 2], "datatype": "BYTES",
                                   "parameters": {"binary_data_size": 5}},
                                  {"name": "digits", "shape": [1, 2], "datatype": "BYTES", "data": ["1", "2"]}]},
                      b"\x09\0\0\0a"), 400, "declares 9 bytes"),
        ("BYTES element with a NUL", "/v2/models/string_echo/infer",
         json.dumps({"inputs": [{"name": "text", "shape": [1, 2], "datatype": "BYTES", "data": ["a\u0000b", "c"]},
                                {"name": "digits", "shape": [1, 2], "datatype": "BYTES", "data": ["1", "2"]}]}).encode(),
         {}, 400, "NUL"),
        ("BYTES that the model cannot parse", "/v2/models/string_echo/infer",
         json.dumps({"inputs": [{"name": "text", "shape": [1, 2], "datatype": "BYTES", "data": ["a", "b"]},
                                {"name": "digits", "shape": [1, 2], "datatype": "BYTES", "data": ["one", "2"]}]}).encode(),
         {}, 500, "Cast"),
        ("unknown input name", infer, json.dumps({"inputs": [{**good_input, "name": "nope"}]}).encode(), {}, 400, "nope"),
        ("unknown output name", infer,
         json.dumps({"inputs": [good_input], "outputs": [{"name": "nope"}]}).encode(), {}, 400, "nope"),
        ("unknown model", "/v2/models/nope/infer", json.dumps({"inputs": [good_input]}).encode(), {}, 404, "nope"),
        ("unknown version", "/v2/models/linear_hand/versions/7/infer", json.dumps({"inputs": [good_input]}).encode(),
         {}, 404, "version"),
        ("body over the size limit", infer, b" " * (max_body + 1), {}, 413, "limit"),
        ("timeout parameter not a number", infer,
         json.dumps({"inputs": [good_input], "parameters": {"timeout": "soon"}}).encode(), {}, 400, "timeout"),
    ]
    if shm_key:
        register = "/v2/systemsharedmemory/region/bad/register"
        shm_input = {"name": "x", "shape": [1, 3], "datatype": "FP32",
                     "parameters": {"shared_memory_region": "reliability", "shared_memory_byte_size": 12}}
        cases += [
            ("shared memory: key that does not exist", register,
             json.dumps({"key": "/dnnscaler-no-such-object", "byte_size": 64}).encode(), {}, 400, "cannot open"),
            ("shared memory: region beyond its object", register,
             json.dumps({"key": shm_key, "offset": 4000, "byte_size": 200}).encode(), {}, 400, "exceeds"),
            ("shared memory: region name registered twice", "/v2/systemsharedmemory/region/reliability/register",
             json.dumps({"key": shm_key, "byte_size": 64}).encode(), {}, 400, "already registered"),
            ("shared memory: input in an unregistered region", infer,
             json.dumps({"inputs": [{**shm_input, "parameters": {**shm_input["parameters"],
                                                                 "shared_memory_region": "nope"}}]}).encode(),
             {}, 400, "not registered"),
            ("shared memory: input beyond its region", infer,
             json.dumps({"inputs": [{**shm_input, "parameters": {**shm_input["parameters"],
                                                                 "shared_memory_offset": 60}}]}).encode(),
             {}, 400, "exceeds"),
            ("shared memory: byte size not matching the shape", infer,
             json.dumps({"inputs": [{**shm_input, "parameters": {**shm_input["parameters"],
                                                                 "shared_memory_byte_size": 8}}]}).encode(),
             {}, 400, "does not match"),
            ("shared memory: output region too small", infer,
             json.dumps({"inputs": [good_input], "outputs": [
                 {"name": "y", "parameters": {"shared_memory_region": "reliability",
                                              "shared_memory_byte_size": 4}}]}).encode(), {}, 400, "too small"),
        ]
    return cases


def grpc_bad_cases(max_body):
    """(name, request, expected status code, a word the message must contain)."""
    def request(model="linear_hand", name="x", datatype="FP32", shape=(1, 3), raw=None, version=""):
        message = service_pb2.ModelInferRequest(model_name=model, model_version=version)
        message.inputs.add(name=name, datatype=datatype, shape=list(shape))
        message.raw_input_contents.append(raw if raw is not None else np.zeros(3, dtype=np.float32).tobytes())
        return message

    typed = service_pb2.ModelInferRequest(model_name="linear_hand")
    typed.inputs.add(name="x", datatype="FP32", shape=[1, 3]).contents.int_contents.extend([1, 2, 3])
    both = request()
    both.inputs[0].contents.fp32_contents.extend([1, 2, 3])
    huge = request()
    huge.id = "x" * (max_body + 1)
    code = grpc.StatusCode
    return [
        ("unknown model", request(model="nope"), code.NOT_FOUND, "nope"),
        ("unknown version", request(version="7"), code.NOT_FOUND, "version"),
        ("no model name", service_pb2.ModelInferRequest(), code.INVALID_ARGUMENT, "model"),
        ("unknown input name", request(name="nope"), code.INVALID_ARGUMENT, "nope"),
        ("wrong datatype", request(datatype="INT32"), code.INVALID_ARGUMENT, "x"),
        ("wrong shape", request(shape=(1, 4), raw=np.zeros(4, dtype=np.float32).tobytes()), code.INVALID_ARGUMENT, "shape"),
        ("truncated raw contents", request(raw=b"\0" * 7), code.INVALID_ARGUMENT, "7 bytes"),
        ("shape whose element count overflows", request(shape=(2**40, 2**40, 2**40), raw=b""), code.INVALID_ARGUMENT, "x"),
        ("negative dimension", request(shape=(-1, 3)), code.INVALID_ARGUMENT, "shape"),
        ("unsupported datatype", request(datatype="FP8"), code.INVALID_ARGUMENT, "datatype"),
        ("BYTES for an FP32 input", request(datatype="BYTES", raw=b"\x01\0\0\0a" * 3), code.INVALID_ARGUMENT, "FP32"),
        ("typed contents of the wrong type", typed, code.INVALID_ARGUMENT, "fp32_contents"),
        ("both contents and raw contents", both, code.INVALID_ARGUMENT, "both"),
        ("message over the size limit", huge, code.RESOURCE_EXHAUSTED, "limit"),
        ("undecodable protobuf bytes", b"\x0a\xff\xff\xff\xff\x0f", code.INVALID_ARGUMENT, ""),
    ]


def grpc_call(channel, message, timeout=30):
    """(status code, details) of one ModelInfer; a bytes message is sent as is."""
    if isinstance(message, bytes):
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                   request_serializer=lambda raw: raw,
                                   response_deserializer=service_pb2.ModelInferResponse.FromString)
    else:
        call = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer
    try:
        call(message, timeout=timeout)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""


def valid_http(url):
    body = json.dumps({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}).encode()
    status, text = raw_http(url, "POST", "/v2/models/linear_hand/infer", body)
    # y = x @ W + b for x = [1, 2, 3] (scripts/make_models.py): [-3.5, 10.0]
    return status == 200 and json.loads(text)["outputs"][0]["data"] == [-3.5, 10.0]


@contextlib.contextmanager
def shm_cleanup(shm):
    try:
        yield shm
    finally:
        shm.close()
        shm.unlink()


def bad_inputs(args):
    max_body = 1 << 20
    rows = []
    # A client's shared-memory object, registered as "reliability" (64 bytes) for the shared-memory cases.
    shm = shared_memory.SharedMemory(create=True, size=4096)
    shm_key = "/" + shm.name.lstrip("/")
    with shm_cleanup(shm), Server(args.bin, ["linear_hand", "simple", "string_echo"], 1000,
                                  extra=["--max-body-bytes", str(max_body), "--allow-client-shm"]) as server:
        status, text = raw_http(server.url, "POST", "/v2/systemsharedmemory/region/reliability/register",
                                json.dumps({"key": shm_key, "byte_size": 64}).encode())
        if status != 200:
            raise RuntimeError(f"registering shared memory failed: {status} {text}")
        channel = grpc.insecure_channel(server.grpc_url, options=[("grpc.max_send_message_length", 64 << 20)])
        for name, path, body, headers, want, needle in http_bad_cases(max_body, shm_key):
            status, text = raw_http(server.url, "POST", path, body, headers)
            message = error_text(text)
            served = valid_http(server.url)
            ok = status == want and needle.lower() in str(message).lower() and bool(message) and served
            rows.append({"protocol": "HTTP", "case": name, "expected": want, "status": status,
                         "message": str(message)[:160], "served_after": served, "ok": ok})
        for name, message, want, needle in grpc_bad_cases(max_body):
            code, details = grpc_call(channel, message)
            served = valid_http(server.url) and grpc_call(channel, grpc_bad_cases(0)[0][1])[0] == grpc.StatusCode.NOT_FOUND
            ok = code == want and needle.lower() in details.lower() and bool(details) and served
            rows.append({"protocol": "gRPC", "case": name, "expected": want.name, "status": code.name,
                         "message": details[:160], "served_after": served, "ok": ok})
        channel.close()
        alive = valid_http(server.url)
    for row in rows:
        log(f"{'ok  ' if row['ok'] else 'FAIL'} {row['protocol']:4} {row['case']}: {row['status']} {row['message'][:80]}")
    return {"cases": rows, "passed": sum(r["ok"] for r in rows), "total": len(rows), "alive_after_all": alive}


# ---- 2. fuzz -------------------------------------------------------------------------------

def fuzz(args):
    log("swift test --filter DecoderFuzzTests")
    proc = subprocess.run(["swift", "test", "--filter", "DecoderFuzzTests"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "DNNSCALER_FUZZ_LEAK_CHECK": "1"})
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "decoder fuzz:" in line]
    memory = [line.strip() for line in lines if "resident memory" in line]
    lines = [line for line in lines if "resident memory" not in line]
    runs = []
    for line in lines:
        m = re.search(r"(gRPC )?decoder fuzz: (\d+) inputs in (\d+) s, (\d+) decoded", line)
        if m:
            runs.append({"decoder": "gRPC (protobuf)" if m.group(1) else "HTTP (JSON and binary)",
                         "inputs": int(m.group(2)), "seconds": int(m.group(3)), "decoded": int(m.group(4)),
                         "line": line.strip()})
    return {"passed": proc.returncode == 0, "runs": runs, "memory": memory}


# ---- 3. capacity ---------------------------------------------------------------------------

def capacity(args, workdir):
    with model_repository([args.model], slo_ms=args.slo_ms) as repository:
        with Server(args.bin, [args.model], args.slo_ms, repository=repository) as server:
            out = os.path.join(workdir, "sweep.json")
            cmd = [args.bin, "bench", "--url", server.base, "--model", args.model, "--sweep", "--rate",
                   str(args.start_rate), "--duration", "10", "--warmup", "5", "--slo-ms", str(args.slo_ms),
                   "--sweep-min-requests", "500", "--json", out, "--quiet"]
            log(" ".join(cmd))
            subprocess.run(cmd, check=True, cwd=ROOT)
    with open(out) as f:
        sweep = json.load(f)
    rate = sweep.get("sustained_rate")
    if not rate:
        sys.exit(f"the sweep found no sustainable rate: {json.dumps(sweep)[:400]}")
    return {"rate": rate, "sweep": sweep}


# ---- 4. overload ---------------------------------------------------------------------------

def grpc_burst(grpc_url, model, rate, seconds):
    """Open-loop gRPC ModelInfer at `rate` for `seconds` with random inputs; counts by status."""
    channel = grpc.insecure_channel(grpc_url, options=[("grpc.max_send_message_length", 64 << 20)])
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    metadata = stub.ModelMetadata(service_pb2.ModelMetadataRequest(name=model))
    spec = metadata.inputs[0]
    shape = [1 if d < 0 else d for d in spec.shape]
    request = service_pb2.ModelInferRequest(model_name=model)
    request.inputs.add(name=spec.name, datatype=spec.datatype, shape=shape)
    request.raw_input_contents.append(np.random.default_rng(1).standard_normal(shape).astype(np.float32).tobytes())
    counts, examples, lock, futures = {}, {}, threading.Lock(), []

    def done(future):
        code = future.code()
        with lock:
            counts[code.name] = counts.get(code.name, 0) + 1
            examples.setdefault(code.name, (future.details() or "")[:160])

    start = time.monotonic()
    n = 0
    rng = random.Random(7)
    next_at = start
    while next_at - start < seconds:
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        future = stub.ModelInfer.future(request, timeout=10)
        future.add_done_callback(done)
        futures.append(future)
        n += 1
        next_at += rng.expovariate(rate)
    for future in futures:
        try:
            future.result()
        except grpc.RpcError:
            pass
    channel.close()
    return {"sent": n, "rate": rate, "seconds": seconds, "status_counts": counts, "examples": examples}


RECOVERY_WINDOW_SECONDS = 5


def recovery_seconds(series, slo_ms):
    """Seconds from the start of `series` until the server serves normally: from then on nothing is refused or
    failed, and in every window of RECOVERY_WINDOW_SECONDS seconds at most 1% of the requests take longer than the
    SLO (p99 <= SLO over the window). A window, not a single second: at half the capacity a second holds about 70
    requests, and its "p99" is its slowest one, which one Poisson burst can push over the SLO at any time."""
    last_bad = -1.0
    for point in series:
        if point.get("failed", 0) > 0 or point.get("shed", 0) > 0:
            last_bad = point["time"]
    for start in range(max(1, len(series) - RECOVERY_WINDOW_SECONDS + 1)):
        window = series[start:start + RECOVERY_WINDOW_SECONDS]
        answered = sum(p.get("succeeded", 0) + p.get("failed", 0) for p in window)
        if "over_slo" in window[0]:
            late = sum(p.get("over_slo", 0) for p in window)
        else:  # series from a bench without per-second SLO counts: fall back to each second's p99
            late = answered if any((p.get("p99_ms") or 0) > slo_ms for p in window) else 0
        if late > 0.01 * answered:
            last_bad = max(last_bad, window[-1]["time"])
    return last_bad + 1 if last_bad >= 0 else 0.0


def overload(args, workdir, rate):
    result = {}
    with model_repository([args.model], slo_ms=args.slo_ms) as repository:
        with Server(args.bin, [args.model], args.slo_ms, repository=repository) as server:
            pid = server.proc.pid
            with MemorySampler(pid, 0.5) as memory:
                before = bench(args.bin, server.base, args.model, os.path.join(workdir, "ov-before.json"),
                               rate=rate / 2, duration=10, slo_ms=args.slo_ms)
                rss_before = memory.samples[-1][1]
                t_overload = time.monotonic() - memory.start
                during = bench(args.bin, server.base, args.model, os.path.join(workdir, "ov-during.json"),
                               rate=3 * rate, duration=args.overload_seconds, slo_ms=args.slo_ms)
                t_after = time.monotonic() - memory.start
                after = bench(args.bin, server.base, args.model, os.path.join(workdir, "ov-after.json"),
                              rate=rate / 2, duration=30, slo_ms=args.slo_ms)
            burst = grpc_burst(server.grpc_url, args.model, 3 * rate, 10)
            _, hwm = rss_kib(pid)
    peak_during = max(rss for t, rss in memory.samples if t_overload <= t <= t_after)
    s = during["summary"]
    result = {
        "rate": rate, "overload_rate": 3 * rate, "seconds": args.overload_seconds,
        "before": before["summary"], "during": s, "after": after["summary"],
        "shed_share": (s["requests"] - s["succeeded"]) / max(1, s["requests"]),
        "admitted_p99_ms": s.get("p99_ms"),
        "rss_before_mib": rss_before / 1024, "rss_peak_during_mib": peak_during / 1024, "rss_hwm_mib": hwm / 1024,
        "recovery_seconds": recovery_seconds(after["series"], args.slo_ms),
        "after_series": after["series"], "grpc_burst": burst,
        "memory_mib": [(round(t, 1), round(rss / 1024, 1)) for t, rss in memory.samples],
    }
    log(f"overload: shed {result['shed_share']:.1%}, admitted p99 {s.get('p99_ms')} ms, peak RSS "
        f"{result['rss_peak_during_mib']:.0f} MiB (before {result['rss_before_mib']:.0f}), recovered after "
        f"{result['recovery_seconds']:.0f} s; gRPC burst {burst['status_counts']}")
    return result


# ---- 5. faults -----------------------------------------------------------------------------

def corrupt_model(args, workdir):
    repo = os.path.join(workdir, "corrupt-repo")
    os.makedirs(os.path.join(repo, "broken", "1"))
    link_tree(os.path.join(REPOSITORY, "linear_hand"), os.path.join(repo, "linear_hand"))
    with open(os.path.join(repo, "broken", "1", "model.onnx"), "wb") as f:
        f.write(b"this is not an ONNX model" * 100)
    with Server(args.bin, ["broken", "linear_hand"], 1000, repository=repo) as server:
        status, text = raw_http(server.url, "POST", "/v2/repository/index", b"{}")
        index = {row["name"]: row for row in json.loads(text)}
        channel = grpc.insecure_channel(server.grpc_url)
        grpc_index = service_pb2_grpc.GRPCInferenceServiceStub(channel).RepositoryIndex(
            service_pb2.RepositoryIndexRequest())
        channel.close()
        grpc_broken = next(m for m in grpc_index.models if m.name == "broken")
        infer_status, infer_text = raw_http(server.url, "POST", "/v2/models/broken/infer", b"{}")
        served = valid_http(server.url)
    broken = index.get("broken", {})
    ok = (broken.get("state") == "UNAVAILABLE" and broken.get("reason") and grpc_broken.state == "UNAVAILABLE"
          and infer_status == 503 and served)
    log(f"corrupt model: {broken}; infer on it {infer_status}; good model served: {served}")
    return {"index_row": broken, "grpc_state": grpc_broken.state, "grpc_reason": grpc_broken.reason,
            "infer_status": infer_status, "infer_message": error_text(infer_text), "good_model_served": served,
            "ok": bool(ok)}


def runtime_error(args):
    """reshape_rows_of_three fails inside ONNX Runtime when the element count is not a multiple of 3."""
    results = {"good_ok": 0, "good_wrong": 0, "bad_500": 0, "bad_other": 0, "message": ""}
    lock = threading.Lock()
    with Server(args.bin, ["reshape_rows_of_three"], 1000) as server:
        def worker(i):
            for j in range(20):
                bad = (i + j) % 3 == 0
                n = 2 if bad else 3
                values = [float(i * 100 + j * n + k) for k in range(n)]
                body = json.dumps({"inputs": [{"name": "x", "shape": [1, n], "datatype": "FP32", "data": values}]})
                status, text = raw_http(server.url, "POST", "/v2/models/reshape_rows_of_three/infer", body.encode())
                with lock:
                    if bad:
                        if status == 500:
                            results["bad_500"] += 1
                            results["message"] = error_text(text)
                        else:
                            results["bad_other"] += 1
                    elif status == 200 and json.loads(text)["outputs"][0]["data"] == values:
                        results["good_ok"] += 1
                    else:
                        results["good_wrong"] += 1
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    results["ok"] = results["good_wrong"] == 0 and results["bad_other"] == 0 and results["bad_500"] > 0
    log(f"runtime error: {results}")
    return results


def sigterm_under_load(args, workdir, rate):
    with model_repository([args.model], slo_ms=args.slo_ms) as repository:
        server = Server(args.bin, [args.model], args.slo_ms, repository=repository)
        server.start()
        out = os.path.join(workdir, "sigterm.json")
        cmd = [args.bin, "bench", "--url", server.base, "--model", args.model, "--rate", f"{0.7 * rate:.3f}",
               "--duration", "20", "--slo-ms", str(args.slo_ms), "--json", out, "--quiet", "--timeout", "10"]
        log(" ".join(cmd))
        proc = subprocess.Popen(cmd, cwd=ROOT)
        time.sleep(8)
        sent_at = time.monotonic()
        server.proc.send_signal(15)
        code = server.proc.wait(timeout=60)
        exit_seconds = time.monotonic() - sent_at
        server.proc = None
        server.stop()
        proc.wait()
    with open(out) as f:
        summary = json.load(f)["summary"]
    errors = summary.get("errors", {})
    accounted = summary["succeeded"] + sum(errors.values())
    result = {"exit_code": code, "exit_seconds": exit_seconds, "requests": summary["requests"],
              "succeeded": summary["succeeded"], "errors": errors, "accounted": accounted,
              "ok": code == 0 and accounted == summary["requests"]}
    log(f"SIGTERM under load: {result}")
    return result


# ---- 6. soak -------------------------------------------------------------------------------

def soak(args, workdir, rate):
    seconds = int(args.soak_minutes * 60)
    invalid = {"sent": 0, "expected_status": 0, "unexpected": []}
    stop = threading.Event()
    with model_repository([args.model, "linear_hand"], slo_ms=args.slo_ms) as repository:
        with Server(args.bin, [args.model, "linear_hand"], args.slo_ms, repository=repository,
                    extra=["--max-body-bytes", str(4 << 20)]) as server:
            http_cases = http_bad_cases(4 << 20)
            grpc_cases = grpc_bad_cases(4 << 20)
            channel = grpc.insecure_channel(server.grpc_url, options=[("grpc.max_send_message_length", 64 << 20)])

            def invalid_traffic():
                rng = random.Random(11)
                while not stop.wait(1 / args.invalid_rate):
                    if rng.random() < 0.5:
                        name, path, body, headers, want, _ = rng.choice(http_cases)
                        status, _ = raw_http(server.url, "POST", path, body, headers)
                    else:
                        name, message, want, _ = rng.choice(grpc_cases)
                        status, _ = grpc_call(channel, message)
                    invalid["sent"] += 1
                    if status == want:
                        invalid["expected_status"] += 1
                    elif len(invalid["unexpected"]) < 20:
                        invalid["unexpected"].append(f"{name}: {status}")

            thread = threading.Thread(target=invalid_traffic, daemon=True)
            with MemorySampler(server.proc.pid, 5) as memory:
                thread.start()
                result_json = bench(args.bin, server.base, args.model, os.path.join(workdir, "soak.json"),
                                    rate=0.7 * rate, duration=seconds, slo_ms=args.slo_ms)
                stop.set()
                thread.join()
            channel.close()
    samples = memory.samples
    settle = min(120, seconds / 4)
    base = next((rss for t, rss in samples if t >= settle), samples[0][1])
    end = samples[-1][1]
    s = result_json["summary"]
    result = {
        "minutes": args.soak_minutes, "rate": 0.7 * rate, "invalid_rate": args.invalid_rate,
        "valid_requests": s["requests"], "valid_succeeded": s["succeeded"], "valid_errors": s.get("errors", {}),
        "p99_ms": s.get("p99_ms"), "slo_attainment": s.get("slo_attainment"),
        "invalid": invalid, "rss_at_settle_mib": base / 1024, "rss_end_mib": end / 1024,
        "rss_peak_mib": max(rss for _, rss in samples) / 1024, "settle_seconds": settle,
        "growth": (end - base) / base, "memory_mib": [(round(t), round(rss / 1024, 1)) for t, rss in samples],
    }
    log(f"soak: {s['succeeded']}/{s['requests']} valid ok, invalid {invalid['expected_status']}/{invalid['sent']} "
        f"as expected, RSS {result['rss_at_settle_mib']:.0f} -> {result['rss_end_mib']:.0f} MiB "
        f"({result['growth']:+.1%})")
    return result


# ---- report --------------------------------------------------------------------------------

def fmt(value, spec=".1f"):
    return "-" if value is None else format(value, spec)


def report(results, args):
    lines = []
    add = lines.append
    meta = results["meta"]
    add("# Reliability: bad input, overload, faults, soak")
    add("")
    add(f"Generated by `{meta['command']}` on {meta['date']} ({meta['machine']}), release build. "
        "Every figure below is measured on that machine, with the load generator on the same cores as the "
        "server; rerun the command to regenerate this file and docs/data/reliability.json.")
    if len(meta.get("commands", [])) > 1:
        add("")
        add("Runs merged into this report (`--merge` reruns some parts and keeps the others):")
        add("")
        for line in meta["commands"]:
            add(f"- {line}")
    add("")
    bad = results.get("bad_inputs")
    if bad:
        add("## Bad input")
        add("")
        add(f"{bad['passed']} of {bad['total']} malformed requests got the expected status with a message naming "
            f"the problem, and a valid request right after each one succeeded; the server was "
            f"{'still serving' if bad['alive_after_all'] else 'NOT serving'} at the end.")
        add("")
        add("| protocol | input | expected | got | message |")
        add("|---|---|---|---|---|")
        for row in bad["cases"]:
            message = row["message"].replace("|", "\\|").replace("\n", " ")[:110]
            mark = "" if row["ok"] else " **(unexpected)**"
            add(f"| {row['protocol']} | {row['case']} | {row['expected']} | {row['status']}{mark} | {message} |")
        add("")
    fz = results.get("fuzz")
    if fz:
        add("## Decoder fuzzing")
        add("")
        add("Seeded mutation fuzzing (`swift test --filter DecoderFuzzTests`, Tests/DNNScalerServerTests/"
            "DecoderFuzzTests.swift): valid requests are mutated (bit flips, interesting bytes, truncation, "
            "repeated chunks, deep nesting, wrong header lengths) and decoded as the server does, then checked "
            "against the model's metadata. Every input must be refused with a 4xx / INVALID_ARGUMENT and a "
            f"message, or decode into tensors that agree with the model. Result: "
            f"{'passed' if fz['passed'] else 'FAILED'}, no crash and no hang.")
        add("")
        for run in fz["runs"]:
            add(f"- {run['decoder']}: {run['inputs']:,} inputs in {run['seconds']} s, {run['decoded']:,} decoded. "
                f"`{run['line']}`")
        if fz.get("memory"):
            add("- Leak check (the suite alone in its process; it fails above 48 MiB of growth, which a leak of "
                "1 KB per input would pass): " + "; ".join(f"`{line}`" for line in fz["memory"]))
        add("")
    cap = results.get("capacity")
    ov = results.get("overload")
    if cap and ov:
        add("## Overload")
        add("")
        add(f"Model `{args.model}`, SLO p99 {args.slo_ms:g} ms, policy joint. Sustainable rate R found by "
            f"`dnnscaler bench --sweep` (open-loop Poisson, p99 over all requests with refusals as misses): "
            f"**{cap['rate']:.1f} req/s**. Then R/2 for 10 s, **3R = {ov['overload_rate']:.1f} req/s for "
            f"{ov['seconds']} s**, then R/2 for 30 s, one server throughout.")
        add("")
        d = ov["during"]
        add("| | requests | succeeded | refused (503) | p50 ms | p99 ms (admitted) | throughput /s |")
        add("|---|---|---|---|---|---|---|")
        for label, key in (("R/2 before", "before"), ("3R overload", "during"), ("R/2 after", "after")):
            s = ov[key]
            add(f"| {label} | {s['requests']} | {s['succeeded']} | {s['requests'] - s['succeeded']} | "
                f"{fmt(s.get('p50_ms'))} | {fmt(s.get('p99_ms'))} | {fmt(s.get('throughput'))} |")
        add("")
        add(f"- Shed during the overload: {ov['shed_share']:.1%} of requests, answered 503 at once; the admitted "
            f"ones had p99 {fmt(ov['admitted_p99_ms'])} ms against the {args.slo_ms:g} ms SLO"
            f" ({'met' if (ov['admitted_p99_ms'] or 1e9) <= args.slo_ms else 'NOT met'}).")
        add(f"- Resident memory: {ov['rss_before_mib']:.0f} MiB before, peak {ov['rss_peak_during_mib']:.0f} MiB "
            f"during the overload (high-water mark over the whole run {ov['rss_hwm_mib']:.0f} MiB).")
        add(f"- Back to normal: from {ov['recovery_seconds']:.0f} s after the overload ended, nothing was refused and "
            f"every {RECOVERY_WINDOW_SECONDS}-second window had p99 under the SLO (at most 1% of its requests over it).")
        b = ov["grpc_burst"]
        add(f"- gRPC: {b['sent']} ModelInfer calls at {b['rate']:.1f}/s for {b['seconds']} s (Python grpcio, open "
            f"loop): {', '.join(f'{k} {v}' for k, v in sorted(b['status_counts'].items()))}.")
        for code, example in sorted(b.get("examples", {}).items()):
            if code != "OK":
                add(f"  - {code}, e.g. \"{example}\"")
        add("")
    faults = results.get("faults")
    if faults:
        add("## Faults")
        add("")
        cm = faults["corrupt_model"]
        add(f"- **Corrupt model file** (`broken/1/model.onnx` holds text) next to `linear_hand`: the repository index "
            f"shows `broken` {cm['index_row'].get('state')} with reason \"{cm['index_row'].get('reason')}\" (gRPC "
            f"index: {cm['grpc_state']}); inference on it answers {cm['infer_status']} \"{cm['infer_message']}\"; "
            f"`linear_hand` {'serves' if cm['good_model_served'] else 'does NOT serve'}.")
        rt = faults["runtime_error"]
        add(f"- **Runtime error in a batch** (`reshape_rows_of_three`, 8 concurrent clients, 1 request in 3 has an "
            f"element count ONNX Runtime cannot reshape): {rt['bad_500']} failing requests answered 500 with "
            f"\"{rt['message'][:140]}\"; {rt['good_ok']} good requests answered with their own correct outputs, "
            f"{rt['good_wrong']} wrong, {rt['bad_other']} failing requests answered otherwise.")
        st = faults["sigterm"]
        errs = ", ".join(f"{k} {v}" for k, v in sorted(st["errors"].items())) or "none"
        add(f"- **SIGTERM under load** (0.7 R, signal 8 s into a 20 s run): the server exited with status "
            f"{st['exit_code']} {st['exit_seconds']:.1f} s after the signal; of {st['requests']} requests sent, "
            f"{st['succeeded']} succeeded and the rest failed as counted by the client ({errs}): "
            f"{st['accounted']} accounted for ({'all' if st['ok'] else 'NOT all'}).")
        add("")
    sk = results.get("soak")
    if sk:
        add("## Soak")
        add("")
        add(f"{sk['minutes']:g} minutes at 0.7 R = {sk['rate']:.1f} valid req/s (`{args.model}`, open-loop Poisson) "
            f"with invalid requests mixed in at {sk['invalid_rate']:g}/s (drawn from the bad-input catalogue above, "
            "half HTTP, half gRPC).")
        add("")
        verrs = ", ".join(f"{k} {v}" for k, v in sorted(sk["valid_errors"].items())) or "none"
        add(f"- Valid requests: {sk['valid_succeeded']} of {sk['valid_requests']} succeeded (failures: {verrs}); "
            f"p99 {fmt(sk['p99_ms'])} ms, SLO attainment {fmt((sk['slo_attainment'] or 0) * 100, '.2f')}%.")
        inv = sk["invalid"]
        add(f"- Invalid requests: {inv['sent']} sent, {inv['expected_status']} got their expected error status"
            + (f"; unexpected: {', '.join(inv['unexpected'])}" if inv["unexpected"] else "") + ".")
        add(f"- Resident memory: {sk['rss_at_settle_mib']:.1f} MiB at {sk['settle_seconds']:.0f} s, "
            f"{sk['rss_end_mib']:.1f} MiB at the end ({sk['growth']:+.1%}; limit +10%), peak {sk['rss_peak_mib']:.1f} MiB.")
        settled = [m for t, m in sk.get("memory_mib", []) if t >= sk["settle_seconds"]]
        if len(settled) >= 4:
            quarters = [settled[i * len(settled) // 4:(i + 1) * len(settled) // 4] for i in range(4)]
            add("  After the settling time, the median of each quarter of the run: "
                + ", ".join(f"{statistics.median(q):.1f}" for q in quarters) + " MiB.")
        add("")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=DEFAULT_BIN)
    ap.add_argument("--model", default="squeezenet")
    ap.add_argument("--slo-ms", type=float, default=50.0)
    ap.add_argument("--start-rate", type=float, default=20.0, help="first rate of the capacity sweep")
    ap.add_argument("--rate", type=float, default=None, help="skip the sweep: use this sustainable rate")
    ap.add_argument("--overload-seconds", type=int, default=60)
    ap.add_argument("--soak-minutes", type=float, default=30)
    ap.add_argument("--invalid-rate", type=float, default=5.0, help="invalid requests per second in the soak")
    ap.add_argument("--only", default="bad,fuzz,overload,faults,soak", help="comma-separated parts to run")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other parts' results from --json and rerun only the --only parts")
    ap.add_argument("--json", default=os.path.join(ROOT, "docs", "data", "reliability.json"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "reliability.md"))
    ap.add_argument("--report-only", action="store_true", help="rewrite --out from --json without running anything")
    args = ap.parse_args()
    if args.report_only:
        with open(args.json) as f:
            results = json.load(f)
        with open(args.out, "w") as f:
            f.write(report(results, args))
        log(f"wrote {args.out} from {args.json}")
        return
    parts = set(args.only.split(","))
    if not os.path.exists(args.bin):
        sys.exit(f"{args.bin} not found: run `make release`")
    results = {}
    if args.merge and os.path.exists(args.json):
        with open(args.json) as f:
            results = json.load(f)
    command = "make reliability (.venv-client/bin/python -m bench.reliability" + "".join(
        f" {a}" for a in sys.argv[1:]) + ")"
    earlier = results.get("meta", {}).get("commands", []) if args.merge else []
    results["meta"] = {
        "command": command,
        "commands": earlier + [f"{datetime.date.today().isoformat()}: {command}"],
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
    }
    with tempfile.TemporaryDirectory(prefix="dnnscaler-reliability-") as workdir:
        if "bad" in parts:
            results["bad_inputs"] = bad_inputs(args)
        if "fuzz" in parts:
            results["fuzz"] = fuzz(args)
        rate = args.rate
        if parts & {"overload", "faults", "soak"} and rate is None:
            results["capacity"] = capacity(args, workdir)
            rate = results["capacity"]["rate"]
        elif rate is not None and results.get("capacity", {}).get("rate") != rate:
            results["capacity"] = {"rate": rate, "sweep": None}
        if "overload" in parts:
            results["overload"] = overload(args, workdir, rate)
        if "faults" in parts:
            results["faults"] = {"corrupt_model": corrupt_model(args, workdir), "runtime_error": runtime_error(args),
                                 "sigterm": sigterm_under_load(args, workdir, rate)}
        if "soak" in parts:
            results["soak"] = soak(args, workdir, rate)
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=1)
    with open(args.out, "w") as f:
        f.write(report(results, args))
    log(f"wrote {args.out} and {args.json}")


if __name__ == "__main__":
    main()
