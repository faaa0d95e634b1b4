# tamscope: every developer and CI entry point. `make help` lists them.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BASE_STAMP := $(VENV)/.installed-base
DATASET ?= data/smoke
PAINTINGS ?= data/smoke-paintings

.PHONY: help setup setup-serve test test-fast test-e2e test-js js-tools demo serve precompute bench bench-tam bench-server bench-explorer bench-align bench-cpu site lint smoke-dataset chromium wrk clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# Two installs into one .venv: the base package (server, explorer, importer: no torch) for `make
# demo`/`serve`/`site`, and the model stack + dev tools for `make test`/`precompute`/`bench`.
# pip's "Location ... is ignored" lines are noise from this machine's local indexes
PIP_QUIET = 2>&1 | { grep -v 'is ignored: it is neither' || true; }
$(BASE_STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	set -o pipefail; $(BIN)/pip install --quiet -e . $(PIP_QUIET)
	touch $(BASE_STAMP)

$(STAMP): $(BASE_STAMP)
	set -o pipefail; $(BIN)/pip install --quiet -e '.[precompute,dev]' $(PIP_QUIET)
	touch $(STAMP)

setup-serve: $(BASE_STAMP) ## create .venv with the tamscope command for serving (no torch)

setup: $(STAMP) ## create .venv with the tamscope command, the model stack and dev tools

# the browser tests use the system Chromium (TAMSCOPE_CHROMIUM, or `chromium` on PATH); only
# when there is none is it installed from Debian, which needs root
chromium: ## install Debian's Chromium for the browser tests if it is missing
	@if [ -n "$$TAMSCOPE_CHROMIUM" ] && [ -x "$$TAMSCOPE_CHROMIUM" ] || command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	else echo "no Chromium: install Debian's (sudo apt-get install chromium) or set TAMSCOPE_CHROMIUM" >&2; exit 1; fi

# axe-core (the browser tests' accessibility checks) from the npm registry, pinned by
# frontend/tests/package-lock.json into frontend/tests/node_modules (never committed); reinstalled
# only when the lock changes. Without npm the checks skip with a message (the rest still runs).
AXE := frontend/tests/node_modules/axe-core/axe.min.js
js-tools: ## install the browser tests' JS tools (axe-core) with npm ci, if npm is there
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory $(AXE); \
	else echo "npm is missing: the accessibility checks (axe-core) will be skipped; install Node.js with npm to run them" >&2; fi

$(AXE): frontend/tests/package-lock.json
	npm ci --prefix frontend/tests --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(AXE)

wrk: ## install Debian's wrk for the server benchmark if it is missing
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null) \
		|| echo "wrk is not installable here: the benchmark falls back to its Python load generator"

test: setup chromium js-tools ## every test: Python (unit, tiny models, server, browser) and JS units
	$(BIN)/pytest -q
	$(MAKE) --no-print-directory test-js

test-fast: setup ## tests without the browser
	$(BIN)/pytest -q -m "not e2e"

test-e2e: setup chromium js-tools ## browser tests alone
	$(BIN)/pytest -q -m e2e

test-js: setup ## unit tests of the pure JS modules (node's built-in runner), checked against cv2's answers
	$(BIN)/python -m tests.js_golden
	node --test frontend/tests/

demo: setup-serve ## open the explorer on the published dataset (or the embedded smoke dataset offline)
	$(BIN)/tamscope demo

serve: setup-serve ## serve the embedded dataset on 127.0.0.1:8000
	$(BIN)/tamscope serve --data $(DATASET)

precompute: setup ## run every precompute stage over PAINTINGS into OUT
	$(BIN)/tamscope precompute $(PAINTINGS) $(or $(OUT),build/precomputed)

smoke-dataset: setup ## rebuild the embedded smoke dataset byte-for-byte
	$(BIN)/tamscope build-smoke data/smoke

bench: bench-tam bench-server bench-explorer bench-align ## every benchmark

bench-tam: setup ## TAM engine vs loop reference at Qwen2-VL-2B sizes
	$(BIN)/python -m bench.tam

bench-server: setup wrk ## load benchmark of the data server (real server, wrk, 32 connections)
	$(BIN)/python -m bench.server

bench-explorer: setup chromium ## explorer timings in headless Chromium
	$(BIN)/python -m bench.explorer

bench-align: setup-serve ## where the published phrases land in their captions, now and before issue 12
	$(BIN)/python -m bench.alignment

# not part of `bench`: it builds the real-size models (up to 17 GB of RAM) and takes ~15 min on 2 cores
bench-cpu: setup ## CPU time per painting of every stage, real model architectures with random weights (slow: ~15 min, 17 GB RAM)
	$(BIN)/python -m bench.cpu --json build/bench-cpu.json

site: setup-serve ## static site of DATASET into build/site
	$(BIN)/tamscope export-site $(DATASET) build/site

lint: setup ## ruff
	$(BIN)/ruff check .

clean:
	rm -rf build .pytest_cache frontend/tests/node_modules
