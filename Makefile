# tamscope: every developer and CI entry point. `make help` lists them.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BASE_STAMP := $(VENV)/.installed-base
DATASET ?= data/smoke
PAINTINGS ?= data/smoke-paintings
# pytest-xdist: test files spread over this many processes (one file stays in one process:
# its module fixtures, tiny models and servers are built once). Most tests wait on one core
# (a tiny model, a server, Chromium); two processes keep both cores busy. 1 runs them serially.
TEST_WORKERS ?= 2
PYTEST = $(BIN)/pytest -q $(if $(filter-out 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)

.PHONY: help setup setup-serve test test-fast test-e2e test-js test-slurm slurm js-tools demo serve precompute bench bench-tam bench-server bench-explorer bench-align bench-scale bench-live bench-cpu bench-faithfulness site site-demo lint smoke-dataset chromium wrk podman image image-precompute image-test clean

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

# the SLURM test (tests/test_slurm.py) starts a private single-node cluster from Debian's slurm-wlm and
# munge; only when they are missing are they installed, which needs root. Without them it skips.
SLURM_PROGRAMS = slurmctld slurmd munged munge sbatch
slurm: ## install Debian's slurm-wlm and munge for the real-cluster test if they are missing (root; else it skips)
	@PATH="$$PATH:/usr/sbin:/sbin"; missing=; for p in $(SLURM_PROGRAMS); do command -v $$p >/dev/null || missing=$$p; done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends slurm-wlm munge >/dev/null) || echo "slurm-wlm and munge could not be installed: the SLURM test will skip" >&2; \
	else echo "no SLURM: the real-cluster test will skip (as root, \`make slurm\` installs Debian's slurm-wlm and munge)" >&2; fi

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

# podman for the image test, and mmdebstrap for a base image where no registry answers; from
# Debian when root. Elsewhere a podman already there is enough (the base is pulled), and without
# one the image test says why it skips.
PODMAN_PACKAGES := podman runc mmdebstrap netavark aardvark-dns iptables catatonit uidmap slirp4netns fuse-overlayfs
podman: ## install podman (and mmdebstrap) from Debian for the image test if they are missing
	@if command -v podman >/dev/null && { command -v mmdebstrap >/dev/null || [ "$$(id -u)" != 0 ]; }; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $(PODMAN_PACKAGES) >/dev/null; \
	else echo "no podman: the image test will skip (sudo apt-get install podman mmdebstrap)" >&2; fi

wrk: ## install Debian's wrk for the server benchmark if it is missing
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null) \
		|| echo "wrk is not installable here: the benchmark falls back to its Python load generator"

test: setup chromium js-tools podman slurm ## every test: Python (unit, tiny models, server, browser, container image, a real SLURM cluster) and JS units
	$(PYTEST)
	$(MAKE) --no-print-directory test-js

test-fast: setup ## tests without the browser, the container image and the SLURM cluster
	$(PYTEST) -m "not e2e and not image and not slurm"

test-slurm: setup slurm ## the real-cluster test alone: a private single-node SLURM cluster runs `tamscope submit`
	$(BIN)/pytest -q -m slurm

test-e2e: setup chromium js-tools ## browser tests alone
	$(PYTEST) -m e2e

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

bench: bench-tam bench-server bench-explorer bench-align bench-live ## every benchmark

bench-tam: setup ## TAM engine vs the plain loops, both variants, at Qwen2-VL-2B sizes
	$(BIN)/python -m bench.tam

bench-server: setup wrk ## load benchmark of the data server (real server, wrk, 32 connections)
	$(BIN)/python -m bench.server

bench-explorer: setup chromium ## explorer timings in headless Chromium
	$(BIN)/python -m bench.explorer

bench-align: setup-serve ## where the published phrases land in their captions, now and before issue 12
	$(BIN)/python -m bench.alignment

# not part of `bench`: it builds 10,000- and 100,000-painting datasets (hard links, ~3 GB of records) and runs long
bench-scale: setup chromium ## tamscope at 10,000 and 100,000 paintings: index, validate, stats, start, RSS, API p95, browser, static site
	$(BIN)/python -m bench.scale --json build/bench-scale.json

bench-live: setup ## serve --live on the tiny models: upload to first streamed token, tokens/s, record p99 while a question runs
	$(BIN)/python -m bench.live

# not part of `bench`: it builds the real-size models (up to 17 GB of RAM) and takes ~15 min on 2 cores
bench-cpu: setup ## CPU time per painting of every stage, real model architectures with random weights, and describe + reliance on the smallest Qwen2.5-VL, Qwen3-VL, Qwen3.5, InternVL and LLaVA-OneVision (slow: about 60 min on 2 cores, 17 GB RAM)
	$(BIN)/python -m bench.cpu --families all --json build/bench-cpu.json

bench-faithfulness: setup ## cost of the faithfulness stage per span on real Qwen2-VL-2B (random weights; ~10 GB RAM, under /tmp/bench-cpu.lock)
	flock /tmp/bench-cpu.lock $(BIN)/python -m bench.faithfulness --json build/bench-faithfulness.json

site: setup-serve ## static site of DATASET into build/site
	$(BIN)/tamscope export-site $(DATASET) build/site

# what .github/workflows/pages.yml publishes: the published dataset (downloaded and imported as
# `make demo` does, kept in data/downloads) and the embedded one. SITE_URL: the address it will
# have (absolute preview-image links); DEMO_SOURCE: another copy of the authors' page
SITE_DEMO ?= build/site-demo
site-demo: setup-serve ## the hosted demo's static site into build/site-demo (needs the network)
	$(BIN)/tamscope demo --site $(SITE_DEMO) $(if $(SITE_URL),--site-url $(SITE_URL)) $(if $(DEMO_SOURCE),--base-url $(DEMO_SOURCE))

# the container images with podman, registry or not (docs/deploy.md); plain docker works too
image: setup-serve podman ## the serve image `tamscope` (podman; offline and proxied builds: docs/deploy.md)
	$(BIN)/python -m deploy.image build

# never part of a test run: torch and its CUDA libraries, 6.6 GB
image-precompute: image ## the precompute image `tamscope-precompute` on top of it (about 3 minutes, 6.6 GB)
	$(BIN)/python -m deploy.image build --target precompute

image-test: setup podman ## build the serve image from the tracked files and test it in podman
	$(BIN)/pytest -q -m image

lint: setup ## ruff
	$(BIN)/ruff check .

clean:
	rm -rf build .pytest_cache frontend/tests/node_modules
