# ssm-flags: every task a developer or CI runs. `make help` lists them.
SHELL := /bin/bash
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
CARGO ?= cargo
export CARGO_BUILD_JOBS ?= 2
VENV := $(ROOT)/.venv

.PHONY: help demo venv test lint unit vectors bench

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

demo: ## The local demo on the seed article's flags (embedded)
	$(CARGO) run --quiet -p ssm-flags --example demo

venv: $(VENV)/.installed ## Python tools (moto server) in .venv

$(VENV)/.installed: $(ROOT)/requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r $(ROOT)/requirements-dev.txt
	touch $@

test: venv lint vectors unit ## Everything CI runs: lint, bucketing vectors, all tests (moto as SSM)

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

vectors: ## Check the committed bucketing vectors against Python's hashlib
	python3 $(ROOT)/handler-lib/tests/vectors/gen_buckets.py | diff -q - $(ROOT)/handler-lib/tests/vectors/buckets.json

unit: venv ## All unit and integration tests (the integration tests start moto and the Lambda emulator)
	# The integration tests run the example functions' binaries: build them first.
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace

bench: ## Run the benchmarks and regenerate BENCHMARKS.md
	$(CARGO) bench -p ssm-flags --bench lookup
	$(CARGO) bench -p ssm-flags-extension --bench sync
	python3 $(ROOT)/bench/report.py
