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

.PHONY: help install system-deps test test-unit test-integration lint format contracts demo demo-headless demo-down bench chaos clean

help:
	@echo "make test    install everything and run lint + all tests against real local servers"
	@echo "make demo    the whole engine on local services, art evolving in the gallery (Ctrl-C stops)"
	@echo "make lint | format | contracts | bench | chaos | demo-headless | demo-down | clean"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_PIN)
	$(BIN)/pip install -q -e '.[render,s3,dev]'
	touch $@

# `npm install --no-save` rather than `npm ci`: npm 11 records only this platform's optional
# anvil binary in the lock, and `npm ci` then refuses the lock as out of sync.
node_modules/.installed: package.json package-lock.json
	npm install --no-save --no-audit --no-fund
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
