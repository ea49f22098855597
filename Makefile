# DNNScaler: the two commands a user needs are `make run` and `make test`.
SWIFT ?= swift
MODEL ?= squeezenet
PROFILE_ARGS ?= --batch-sizes 1,2,4,8 --instances 1,2 --duration 3 --slo-ms 20
# The default model set `make run` serves; per-model SLOs come from model_repository/<m>/config.json.
SERVE_MODELS ?= squeezenet,resnet50,shufflenet,simple
SERVE_ARGS ?=

# Test suites with wall-clock latency bounds (run in a process of their own by `make test`).
TIMED_SUITES ?= "LoadGeneratorTests|DeadlinePolicyTests"

.PHONY: setup clients build release run profile test interop lint format bench evaluation reliability clean

## Python venv with ONNX Runtime and onnx, and the model repository (idempotent).
setup:
	scripts/setup

build: setup
	$(SWIFT) build

release: setup
	$(SWIFT) build -c release

## Client tools for the interoperability tests and benchmarks: tritonclient and perf_analyzer.
clients:
	scripts/setup_clients

## Sets up, builds and serves the default model set on :8000 (metrics on :8002) until Ctrl-C.
run: release
	@echo "DNNScaler: KServe v2 on http://localhost:8000/v2, status on http://localhost:8000/dnnscaler/status, metrics on http://localhost:8002/metrics"
	.build/release/dnnscaler serve --models $(SERVE_MODELS) $(SERVE_ARGS)

## Profiles one model (MODEL=...) and writes profiles/MODEL.json and .csv.
profile: release profiles
	.build/release/dnnscaler profile $(MODEL) $(PROFILE_ARGS) --json profiles/$(MODEL).json --csv profiles/$(MODEL).csv

## Sets up, builds, runs every test (Swift, then perf_analyzer and tritonclient against the server) and checks formatting.
test: setup clients
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip DecoderFuzzTests --skip $(TIMED_SUITES)
	# Suites that judge latencies against wall-clock bounds run alone: on a machine with few cores
	# the other suites' model loads and servers would otherwise decide their outcome.
	$(SWIFT) test --filter $(TIMED_SUITES)
	# The decoder fuzz tests alone in their own process, so that their memory check sees only them.
	DNNSCALER_FUZZ_LEAK_CHECK=1 $(SWIFT) test --filter DecoderFuzzTests
	DNNSCALER_BIN=.build/debug/dnnscaler Tests/Interop/run_interop.sh
	$(SWIFT) format lint --strict --recursive Sources Tests Package.swift

interop: clients
	$(SWIFT) build
	DNNSCALER_BIN=.build/debug/dnnscaler Tests/Interop/run_interop.sh

lint:
	$(SWIFT) format lint --strict --recursive Sources Tests Package.swift

format:
	$(SWIFT) format format --in-place --recursive Sources Tests Package.swift

## Swift in-process throughput against Python's onnxruntime (see bench/README.md).
bench: release
	.venv/bin/python -m bench.ort_compare

## The simulated comparison over the imported GPU profiles: docs/evaluation.md and docs/plots/.
evaluation:
	$(SWIFT) build -c release --product dnnscaler
	.build/release/dnnscaler evaluate --gpu-profiles profiles/gpu --output docs/evaluation.md --plots docs/plots

## Bad input, fuzzing, overload, faults and a 30-minute soak against the release server:
## regenerates docs/reliability.md and docs/data/reliability.json (about 45 minutes; RELIABILITY_ARGS
## such as --soak-minutes 2 shorten it).
RELIABILITY_ARGS ?=
reliability: release clients
	.venv-client/bin/python -m bench.reliability $(RELIABILITY_ARGS)

clean:
	rm -rf .build

profiles:
	mkdir -p profiles
