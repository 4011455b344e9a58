# airflow-mlrepo developer entry points. Every target installs what it needs first.
#
#   make test    install everything, start the local stack, lint, run unit + integration + e2e tests
#   make stack   install everything, start the local stack, print its URLs and credentials
#
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9

.PHONY: install stack stack-down lint unit integration e2e test benchmark clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(BIN)/uv: $(BIN)/python
	$(BIN)/python -m pip install -q "uv==$(UV_VERSION)"

$(VENV)/.installed: $(BIN)/uv pyproject.toml docker/iris/pyproject.toml requirements/dev.lock
	$(BIN)/uv pip install -q -p $(BIN)/python -r requirements/dev.lock -e ".[dev,stack]" -e docker/iris
	touch $@

install: $(VENV)/.installed

stack: install
	$(BIN)/mlrepo stack up

stack-down: install
	$(BIN)/mlrepo stack down

lint: install
	$(BIN)/ruff check airflow_mlrepo tests benchmarks docker
	$(BIN)/ruff format --check airflow_mlrepo tests benchmarks docker
	$(BIN)/mypy

unit: install
	$(BIN)/pytest tests/unit -m unit

integration: install
	$(BIN)/mlrepo stack up
	$(BIN)/pytest tests/integration -m integration

e2e: install
	$(BIN)/mlrepo stack up
	$(BIN)/pytest tests/e2e -m e2e

test: lint
	$(BIN)/mlrepo stack up
	$(BIN)/pytest tests/unit tests/integration tests/e2e -m "unit or integration or e2e"

benchmark: install
	$(BIN)/mlrepo stack up
	$(BIN)/python benchmarks/asof_lookup.py --commits 10000 --queries 50

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
