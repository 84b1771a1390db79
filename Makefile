# Hybridex developer entry points. `make dev` and `make test` do all their own set-up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: setup lock dev test native-test lint typecheck unit integration contracts contracts-check bench bench-smoke soak clean

## setup: create .venv, install the locked dependencies and the package, the pinned npm toolchain
setup: $(VENV)/.installed $(VENV)/checkov/.installed $(VENV)/openapi-client/.installed \
	contracts/node_modules/.installed

# The dependencies come only from the hashed lock (requirements-dev.lock: runtime + dev extra);
# the project itself is installed apart, without dependencies. Its build backend, maturin, comes
# from the same lock (no build isolation) and compiles the native engine core with cargo into
# backend/_native*.so, again whenever the crate changes.
NATIVE_SRC := $(addprefix backend/native/,Cargo.toml Cargo.lock build.rs) $(wildcard backend/native/src/*.rs)
$(VENV)/.installed: pyproject.toml client/pyproject.toml requirements-dev.lock $(NATIVE_SRC)
	@command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs) to build backend/native"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.lock
	PATH="$(CURDIR)/$(BIN):$$PATH" $(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip install --quiet --no-deps -e client
	touch $@

# checkov, which tests/unit/docker runs over docker/, in a virtualenv of its own: its pins
# conflict with the runtime's (requirements-checkov.in says which).
$(VENV)/checkov/.installed: requirements-checkov.lock | $(VENV)/.installed
	$(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/python -m pip install --quiet --require-hashes -r requirements-checkov.lock
	touch $@

# openapi-python-client, which tests/unit/api/test_generated_client.py runs over /openapi.json,
# in a virtualenv of its own as well (requirements-openapi-client.in says why).
$(VENV)/openapi-client/.installed: requirements-openapi-client.lock | $(VENV)/.installed
	$(PYTHON) -m venv $(VENV)/openapi-client
	$(VENV)/openapi-client/bin/python -m pip install --quiet --require-hashes \
		-r requirements-openapi-client.lock
	touch $@

## lock: re-resolve pyproject.toml into the hashed lock files (python 3.11, linux x86_64);
## the image installs requirements.lock (and requirements-build.lock to build the project),
## `make setup` requirements-dev.lock
LOCK_ARGS := --generate-hashes --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
	--custom-compile-command 'make lock' --quiet $(LOCK_UPGRADE)
lock: $(VENV)/.installed
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra kafka $(LOCK_ARGS) -o requirements-dev.lock
	$(BIN)/uv pip compile pyproject.toml -c requirements-dev.lock $(LOCK_ARGS) -o requirements.lock
	$(BIN)/uv pip compile requirements-checkov.in $(LOCK_ARGS) -o requirements-checkov.lock
	$(BIN)/uv pip compile requirements-openapi-client.in $(LOCK_ARGS) \
		-o requirements-openapi-client.lock
	$(BIN)/uv pip compile requirements-build.in -c requirements-dev.lock $(LOCK_ARGS) -o requirements-build.lock

contracts/node_modules/.installed: contracts/package.json contracts/package-lock.json
	cd contracts && npm ci --no-audit --no-fund --loglevel=error
	touch $@

## contracts: compile contracts/src into backend/chain/artifacts (commit the result)
contracts: setup
	$(BIN)/hybridex contracts-build

## contracts-check: fail if the committed artifacts differ from a fresh compile
contracts-check: setup
	$(BIN)/hybridex contracts-build --check

## dev: the whole stack on the embedded default (SQLite + local anvil)
dev: contracts
	$(BIN)/hybridex dev

## test: lint, type check, architecture contracts, the native crate's own tests, then every
## test (unit + integration)
test: setup lint typecheck native-test
	$(BIN)/pytest $(PYTEST_ARGS)

## native-test: the Rust unit tests of backend/native (codecs, parsing edges)
native-test: setup
	cd backend/native && cargo test --release --lib --quiet

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

integration: setup
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

## bench: run every benchmark in bench/
bench: setup
	@set -e; for b in bench/[!_]*.py; do echo "== $$b"; $(PY) $$b; done

## bench-smoke: every benchmark in bench/ with --quick, so that none breaks unseen;
## BENCH_SMOKE_SKIP names benchmarks to leave out (CI: those the test suite already runs)
BENCH_SMOKE_SKIP ?=
bench-smoke: setup
	@set -e; for b in bench/[!_]*.py; do \
	  case " $(BENCH_SMOKE_SKIP) " in *" $$(basename $$b) "*) echo "== $$b: skipped"; continue;; esac; \
	  echo "== $$b --quick"; start=$$(date +%s); $(PY) $$b --quick; \
	  echo "== $$b --quick: $$(( $$(date +%s) - start ))s"; done

## soak: the crash loop, 20 rounds (bench/soak.py; CI runs --quick in the tests)
## soak: the crash loop (20 rounds), then the differential and decoder fuzz tests at length
soak: setup
	$(PY) bench/soak.py --rounds 20
	HYBRIDEX_TEST_SOAK=1 $(BIN)/pytest tests/unit/matching/test_differential.py \
		tests/unit/matching/test_fuzz_decoders.py -q

clean:
	rm -rf $(VENV) contracts/node_modules .mypy_cache .ruff_cache .pytest_cache var
