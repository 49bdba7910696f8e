# dnft: the only set-up a user needs. `make test` and `make demo` work on a fresh clone.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STATE_DIR ?= .dnft/dev
# torch first, pinned: this pin installs a CPU build from local disk here; any other version
# would pull a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0

.PHONY: help install system-deps test test-unit test-integration lint format contracts demo demo-down bench clean

help:
	@echo "make test    install everything and run lint + all tests against real local servers"
	@echo "make demo    start anvil, tansu and Postgres, deploy the sample collection, mint tokens"
	@echo "make lint | format | contracts | bench | demo-down | clean"

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

demo: install
	$(BIN)/dnft dev up --state-dir $(STATE_DIR)
	eval "$$($(BIN)/dnft dev env --state-dir $(STATE_DIR))" && \
	  $(BIN)/dnft migrate --dsn "$$DNFT_DEV_PG_DSN" && \
	  $(BIN)/dnft deploy-sample --rpc-url "$$DNFT_DEV_RPC_URL" --mint 20 --holders 4 \
	    --out $(STATE_DIR)/deployment.json
	$(BIN)/dnft dev status --state-dir $(STATE_DIR)
	@echo "Services keep running; stop them with: make demo-down"

demo-down:
	$(BIN)/dnft dev down --state-dir $(STATE_DIR)

bench: install
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b; done

clean:
	-$(BIN)/dnft dev down --state-dir $(STATE_DIR) 2>/dev/null
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache .dnft
