# Palier — the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
PORT ?= 8000

.PHONY: install demo test check lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP) $@

## Install palier in .venv (no demo): then `. .venv/bin/activate` and see "Your own program" in README.md.
install: $(STAMP)

## Build a demo program on SQLite and serve the API, docs, portal and console on localhost (make demo PORT=8001).
demo: $(STAMP)
	$(BIN)/palier demo --port $(PORT)

## Run the whole suite (SQLite, plus PostgreSQL when PALIER_TEST_DATABASE_URL is set); the slowest tests are
## listed at the end, so that the suite stays well under 15 minutes.
test: $(DEV_STAMP)
	$(BIN)/pytest -n 2 -q --durations=20

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

## Every gate: ruff, mypy and the tests.
check: lint typecheck test

## Benchmarks against the raw database limits (see bench/README.md).
bench: $(DEV_STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache palier.db palier.db-*
