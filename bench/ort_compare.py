#!/usr/bin/env python3
"""Swift (dnnscaler profile, in process) against Python's onnxruntime on the same model and
configuration, measured alternately in the same run; prints the median throughput of each and
their ratio. Run it alone on the machine (`make bench`): both sides compete for the same cores.

    .venv/bin/python -m bench.ort_compare [--repeats 3] [--duration 5] [--models resnet50,squeezenet]
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DNNSCALER = os.path.join(ROOT, ".build", "release", "dnnscaler")
PYTHON_SIDE = os.path.join(ROOT, "bench", "ort_python.py")
# (instances, threads per instance, batch size)
CONFIGURATIONS = [(1, 2, 1), (1, 2, 8), (2, 1, 1)]


def swift_run(model, instances, threads, batch, duration):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(
            [DNNSCALER, "profile", model, "--model-repository", os.path.join(ROOT, "model_repository"),
             "--instances", str(instances), "--threads", str(threads), "--batch-sizes", str(batch),
             "--duration", str(duration), "--json", out.name],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        point = json.load(open(out.name))["points"][0]
        return point["throughput"]


def python_run(model, instances, threads, batch, duration):
    path = os.path.join(ROOT, "model_repository", model, "1", "model.onnx")
    result = subprocess.run(
        [sys.executable, PYTHON_SIDE, path, "--instances", str(instances), "--threads", str(threads),
         "--batch-size", str(batch), "--duration", str(duration)],
        check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(result.stdout.strip().splitlines()[-1])["throughput"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--models", default="resnet50,squeezenet")
    parser.add_argument("--json", default=None, help="write the results here too")
    args = parser.parse_args()
    if not os.path.exists(DNNSCALER):
        sys.exit(f"{DNNSCALER} not built: run `make release` first")

    rows = []
    print(f"{'model':<12} {'config':<16} {'swift/s':>9} {'python/s':>9} {'ratio':>6}  runs (swift | python)")
    for model in args.models.split(","):
        for instances, threads, batch in CONFIGURATIONS:
            swift, python = [], []
            for repeat in range(args.repeats):
                # Alternate which side goes first, so drift (thermal, noise) hits both alike.
                order = [("swift", swift_run), ("python", python_run)]
                if repeat % 2 == 1:
                    order.reverse()
                for side, run in order:
                    value = run(model, instances, threads, batch, args.duration)
                    (swift if side == "swift" else python).append(value)
            row = {
                "model": model, "instances": instances, "threads": threads, "batch_size": batch,
                "swift_runs": swift, "python_runs": python,
                "swift_median": statistics.median(swift), "python_median": statistics.median(python),
            }
            row["ratio"] = row["swift_median"] / row["python_median"]
            rows.append(row)
            config = f"{instances}x{threads}T b{batch}"
            runs = " ".join(f"{v:.1f}" for v in swift) + " | " + " ".join(f"{v:.1f}" for v in python)
            print(f"{model:<12} {config:<16} {row['swift_median']:>9.1f} {row['python_median']:>9.1f} "
                  f"{row['ratio']:>6.3f}  {runs}", flush=True)
    print(f"minimum ratio: {min(r['ratio'] for r in rows):.3f} (target >= 0.97)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": datetime.datetime.now().isoformat(), "duration_s": args.duration,
                       "repeats": args.repeats, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
