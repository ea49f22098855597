#!/usr/bin/env python3
"""Python onnxruntime side of bench/ort_compare.py: the same closed-loop measurement as
`dnnscaler profile` (k sessions with t intra-op threads each, one thread per session running
batches of size b for D seconds after 2 warm-up batches per session). Prints one JSON object."""
import argparse
import json
import threading
import time

import numpy as np
import onnxruntime as ort


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--instances", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sessions = [
        ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
        for _ in range(args.instances)
    ]
    spec = sessions[0].get_inputs()[0]
    shape = [args.batch_size] + [d if isinstance(d, int) else 1 for d in spec.shape[1:]]
    data = np.random.default_rng(0x5EED).random(shape, dtype=np.float32)
    feeds = {spec.name: data}
    for session in sessions:
        for _ in range(args.warmup):
            session.run(None, feeds)

    latencies = []
    ends = []
    lock = threading.Lock()
    start = time.perf_counter()
    deadline = start + args.duration

    def drive(session):
        own = []
        while time.perf_counter() < deadline:
            before = time.perf_counter()
            session.run(None, feeds)
            own.append((time.perf_counter() - before) * 1000)
        end = time.perf_counter()
        with lock:
            latencies.extend(own)
            ends.append(end)

    threads = [threading.Thread(target=drive, args=(s,)) for s in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = max(ends) - start
    latencies.sort()
    p99 = latencies[min(len(latencies), max(1, int(np.ceil(0.99 * len(latencies))))) - 1]
    print(json.dumps({
        "throughput": len(latencies) * args.batch_size / elapsed,
        "batches": len(latencies),
        "p99_ms": p99,
    }))


if __name__ == "__main__":
    main()
