# tamscope: every developer and CI entry point. `make help` lists them.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATASET ?= data/smoke
PAINTINGS ?= data/smoke-paintings

.PHONY: help setup test test-fast test-e2e test-js demo serve precompute bench bench-tam bench-server bench-explorer bench-cpu site lint smoke-dataset chromium wrk clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# pip's "Location ... is ignored" lines are noise from this machine's local indexes
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	set -o pipefail; $(BIN)/pip install --quiet -e '.[precompute,dev]' 2>&1 | { grep -v 'is ignored: it is neither' || true; }
	touch $(STAMP)

setup: $(STAMP) ## create .venv with the tamscope console script, the model stack and dev tools

chromium: ## install Debian's Chromium for the browser tests if it is missing
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

wrk: ## install Debian's wrk for the server benchmark if it is missing
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null) \
		|| echo "wrk is not installable here: the benchmark falls back to its Python load generator"

test: setup chromium ## every test: Python (unit, tiny models, server, browser) and JS units
	$(BIN)/pytest -q
	$(MAKE) --no-print-directory test-js

test-fast: setup ## tests without the browser
	$(BIN)/pytest -q -m "not e2e"

test-e2e: setup chromium ## browser tests alone
	$(BIN)/pytest -q -m e2e

test-js: setup ## unit tests of the pure JS modules (node's built-in runner), checked against cv2's answers
	$(BIN)/python -m tests.js_golden
	node --test frontend/tests/

demo: setup ## open the explorer on the published dataset (or the embedded smoke dataset offline)
	$(BIN)/tamscope demo

serve: setup ## serve the embedded dataset on 127.0.0.1:8000
	$(BIN)/tamscope serve --data $(DATASET)

precompute: setup ## run every precompute stage over PAINTINGS into OUT
	$(BIN)/tamscope precompute $(PAINTINGS) $(or $(OUT),build/precomputed)

smoke-dataset: setup ## rebuild the embedded smoke dataset byte-for-byte
	$(BIN)/tamscope build-smoke data/smoke

bench: bench-tam bench-server bench-explorer ## every benchmark

bench-tam: setup ## TAM engine vs the plain loops, both variants, at Qwen2-VL-2B sizes
	$(BIN)/python -m precompute.bench_tam

bench-server: setup wrk ## load benchmark of the data server (real server, wrk, 32 connections)
	$(BIN)/python -m backend.bench

bench-explorer: setup chromium ## explorer timings in headless Chromium
	$(BIN)/python -m tests.e2e.bench_explorer

# not part of `bench`: it builds the real-size models (up to 17 GB of RAM) and takes ~15 min on 2 cores
bench-cpu: setup ## CPU time per painting of every stage, real model architectures with random weights (slow: ~15 min, 17 GB RAM)
	$(BIN)/python -m precompute.bench_cpu --json build/bench-cpu.json

site: setup ## static site of DATASET into build/site
	$(BIN)/tamscope export-site $(DATASET) build/site

lint: setup ## ruff
	$(BIN)/ruff check .

clean:
	rm -rf build .pytest_cache
