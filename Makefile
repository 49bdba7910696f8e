# dnft: the only set-up a user needs. `make test` and `make demo` work on a fresh clone.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STATE_DIR ?= .dnft/dev
DEMO_DIR ?= .dnft/demo
RENDERER ?= procedural
MODEL_DIR ?=
# torch first, pinned: this pin installs a CPU build from local disk here; any other version
# would pull a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0
# Everything else is installed from requirements.lock (hashes, no resolving): `make lock`
# regenerates it, and deploy/docker/requirements-runtime.lock (no dev tools) for the images.
# torch stays outside the locks (its local CPU build's hash is not PyPI's, and a PyPI resolve
# of torch would lock CUDA libraries); its own requirements (from its wheel's metadata) are
# locked instead, so it installs with --no-deps and `pip check` proves they are met.
TORCH_DEPS := filelock 'typing-extensions>=4.10.0' 'setuptools>=77.0.3' 'sympy>=1.13.3' \
  'networkx>=2.5.1' jinja2 'fsspec>=0.8.5'
LOCK_FLAGS := --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
  --index-url https://pypi.org/simple --excludes $(VENV)/lock-excludes.txt --no-header \
  --annotation-style line --quiet

.PHONY: help install system-deps test test-unit test-integration lint format contracts demo demo-headless demo-down bench chaos clean lock

help:
	@echo "make test    install everything and run lint + all tests against real local servers"
	@echo "make demo    the whole engine on local services, art evolving in the gallery (Ctrl-C stops)"
	@echo "make lint | format | contracts | bench | chaos | demo-headless | demo-down | clean"

$(VENV)/.installed: pyproject.toml requirements.lock examples/dnft-renderer-example/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --no-deps $(TORCH_PIN)
	$(BIN)/pip install -q --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	# The example renderer plugin (examples/), which the tests build a collection with.
	$(BIN)/pip install -q --no-deps --no-build-isolation -e examples/dnft-renderer-example
	$(BIN)/pip check
	touch $@

# Regenerate the locks from pyproject.toml (after changing a dependency); commit both.
lock:
	test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/pip install -q uv; }
	printf '%s\n' $(TORCH_DEPS) > $(VENV)/lock-torch-deps.in
	printf 'torch\n' > $(VENV)/lock-excludes.txt
	$(BIN)/uv pip compile pyproject.toml $(VENV)/lock-torch-deps.in \
	  --extra render --extra s3 --extra dev $(LOCK_FLAGS) -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml $(VENV)/lock-torch-deps.in \
	  --extra render --extra s3 $(LOCK_FLAGS) -o deploy/docker/requirements-runtime.lock

# package-lock.json records every platform's optional anvil binary, so `npm ci` accepts it on
# any machine. npm 11 drops the other platforms' entries when it updates the lock beside an
# installed node_modules: regenerate it from scratch instead (after changing package.json):
#   rm package-lock.json && npm install --package-lock-only --no-audit --no-fund
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	test -x node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil || npm rebuild @foundry-rs/anvil
	touch $@

system-deps:
	bash scripts/install-system-deps.sh

install: $(VENV)/.installed node_modules/.installed system-deps

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(VENV)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: install lint
	$(BIN)/pytest

test-unit: $(VENV)/.installed
	$(BIN)/pytest tests/unit

test-integration: install
	$(BIN)/pytest tests/integration

contracts: node_modules/.installed
	node scripts/build_contracts.mjs

# The demo runs in the foreground: local services, the sample collection, a replayed price
# series and holders' transactions, every daemon; Ctrl-C stops all of it.
# `make demo RENDERER=diffusion MODEL_DIR=path` renders with a local diffusers model.
demo: install
	$(BIN)/dnft demo --state-dir $(DEMO_DIR) --renderer $(RENDERER) \
	  $(if $(MODEL_DIR),--model-dir "$(MODEL_DIR)")

# What CI checks: 60 s of the demo, then every token evolved and `dnft audit` is clean.
demo-headless: install
	$(BIN)/dnft demo --headless --duration 60 --state-dir $(DEMO_DIR) --renderer $(RENDERER) \
	  $(if $(MODEL_DIR),--model-dir "$(MODEL_DIR)")

# Only needed after a demo was killed rather than stopped (the next demo also clears it).
demo-down:
	$(BIN)/dnft demo --down --state-dir $(DEMO_DIR)
	$(BIN)/dnft dev down --state-dir $(STATE_DIR)

# The long fault suite (CI runs the bounded one with the tests): ten rounds of kill -9 of every
# daemon, longer broker, database, RPC and feed faults, a longer reorg storm. CHAOS_SEED=N repeats.
chaos: install
	CHAOS_LONG=1 $(BIN)/pytest tests/chaos -s

bench: install
	@for m in decode indexer_backfill indexer_head_latency render regenerator_fanout load; do \
	  echo "== bench.$$m"; $(BIN)/python -m bench.$$m; done

clean:
	-$(BIN)/dnft dev down --state-dir $(STATE_DIR) 2>/dev/null
	-$(BIN)/dnft demo --down --state-dir $(DEMO_DIR) 2>/dev/null
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache .dnft
