# DNNScaler: the two commands a user needs are `make run` and `make test`.
SWIFT ?= swift
MODEL ?= squeezenet
PROFILE_ARGS ?= --batch-sizes 1,2,4,8 --instances 1,2 --duration 3 --slo-ms 20

.PHONY: setup build release run test lint format bench clean

## Python venv with ONNX Runtime and onnx, and the model repository (idempotent).
setup:
	scripts/setup

build: setup
	$(SWIFT) build

release: setup
	$(SWIFT) build -c release

## Sets up, builds and profiles the default model.
run: release profiles
	.build/release/dnnscaler profile $(MODEL) $(PROFILE_ARGS) --json profiles/$(MODEL).json --csv profiles/$(MODEL).csv

## Sets up, builds, runs every test and checks formatting.
test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test
	$(SWIFT) format lint --strict --recursive Sources Tests Package.swift

lint:
	$(SWIFT) format lint --strict --recursive Sources Tests Package.swift

format:
	$(SWIFT) format format --in-place --recursive Sources Tests Package.swift

## Swift in-process throughput against Python's onnxruntime (see bench/README.md).
bench: release
	.venv/bin/python bench/ort_compare.py

clean:
	rm -rf .build

profiles:
	mkdir -p profiles
