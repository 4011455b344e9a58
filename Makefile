# airflow-mlrepo developer entry points. Every target installs what it needs first.
#
#   make demo    install everything, start the local stack, run `mlrepo demo` (the README's first command)
#   make test    install everything, start the local stack, lint, build the docs, run the unit, integration, e2e
#                and framework-example tiers (two lanes at a time; see tests/lanes.py and docs/ci.md)
#   make e2e     the e2e tier with the local runner (`make test` runs it as pods on the cluster)
#   make e2e-kubernetes  the iris journeys as pods on the stack's Kubernetes cluster (deferrable, then sync)
#   make kubernetes  start the stack's single-node Kubernetes cluster (root; builds it the first time) and the iris image
#   make docs    build the docs site into site/ (mkdocs build --strict: warnings fail)
#   make stack   install everything, start the local stack, print its URLs and where its credentials are
#   make frameworks  install the frameworks tier (.venv-frameworks: TensorFlow, Spark, PMML, H2O)
#                    and run tests/frameworks alone with the local runner against the local stack
#   make frameworks-kubernetes  the framework examples as pods of their images on the stack's cluster
#                    (`make test` runs them this way)
#
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9

.PHONY: test-pending install browser stack stack-down kubernetes demo docs lint unit integration e2e e2e-kubernetes test frameworks-install frameworks frameworks-kubernetes benchmark clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(BIN)/uv: $(BIN)/python
	$(BIN)/python -m pip install -q "uv==$(UV_VERSION)"

$(VENV)/.installed: $(BIN)/uv pyproject.toml sdk/pyproject.toml devstack/pyproject.toml docker/iris/pyproject.toml requirements/dev.lock
	$(BIN)/uv pip install -q -p $(BIN)/python -r requirements/dev.lock -e ".[dev]" -e sdk -e devstack -e docker/iris
	touch $@

install: $(VENV)/.installed

# The framework examples' libraries (about 2.5 GB) in their own environment; uv caches the
# downloads under ~/.cache/uv. Java 17 (java, javac) must be on PATH to run them.
FRAMEWORKS_VENV := .venv-frameworks
$(FRAMEWORKS_VENV)/.installed: $(BIN)/uv requirements/frameworks.lock docker/*/pyproject.toml sdk/pyproject.toml
	$(BIN)/uv venv -q --allow-existing -p 3.11 $(FRAMEWORKS_VENV)
	$(BIN)/uv pip install -q -p $(FRAMEWORKS_VENV)/bin/python -r requirements/frameworks.lock
	touch $@

frameworks-install: $(FRAMEWORKS_VENV)/.installed

# Debian's headless Chromium for the browser test (Playwright drives /usr/bin/chromium;
# `playwright install` is never run). Idempotent: installs only when it is missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

stack: install
	$(BIN)/mlrepo stack up

stack-down: install
	$(BIN)/mlrepo stack down

kubernetes: install
	$(BIN)/mlrepo stack up --only kubernetes

demo: stack
	$(BIN)/mlrepo demo

docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

lint: install docs
	$(BIN)/ruff check src sdk devstack tests benchmarks docker dags
	$(BIN)/ruff format --check src sdk devstack tests benchmarks docker dags
	$(BIN)/mypy

unit: install
	$(BIN)/pytest tests/unit -m unit

integration: install
	$(BIN)/mlrepo stack up
	$(BIN)/pytest tests/integration -m integration

e2e: install browser
	$(BIN)/mlrepo stack up
	MLREPO_RUNNER=local $(BIN)/pytest tests/e2e -m e2e

# The iris journeys of tests/e2e with the same DAG files, only the stack's configuration changed: the
# tasks run pods on the stack's Kubernetes cluster (started by the tests), every journey deferrable,
# then every journey synchronous.
e2e-kubernetes: install browser
	MLREPO_RUNNER=kubernetes MLREPO_DEFERRABLE=true $(BIN)/pytest tests/e2e/test_iris_journeys_e2e.py -m e2e
	MLREPO_RUNNER=kubernetes $(BIN)/pytest tests/e2e/test_iris_journeys_e2e.py -m e2e

# The tiers run in three steps of two lanes each (tests/lanes.py; docs/ci.md): the unit tier beside the
# tests that stop lakeFS, the rest of the integration tier in two shards (balanced on
# tests/file_seconds.json), then the e2e tier beside the framework examples. Both run their training and
# inference tasks as pods on the stack's cluster (the iris image and the framework images, built or
# restored from the cache with the cluster before the lanes): the e2e tier with MLREPO_RUNNER=kubernetes
# in synchronous mode (`make e2e-kubernetes` adds the deferrable journeys; `make e2e` is the local runner).
# Every step runs even if an earlier one failed; the exit status says whether any lane failed.
KUBERNETES_IMAGES := iris,tensorflow,spark,pmml,h2o
LANES := $(BIN)/python tests/lanes.py
SELECT = -m '$(1) and not pending'
test: lint browser
	$(BIN)/mlrepo stack up
	MLREPO_KUBERNETES_IMAGES=$(KUBERNETES_IMAGES) $(BIN)/mlrepo stack up --only kubernetes
	$(LANES) "unit=$(BIN)/pytest tests/unit $(call SELECT,unit)" \
		"outage=$(BIN)/pytest tests/integration $(call SELECT,integration and lakefs_outage)"; a=$$?; \
	$(LANES) "integration-1=env MLREPO_SHARD=1/2 $(BIN)/pytest tests/integration $(call SELECT,integration and not lakefs_outage)" \
		"integration-2=env MLREPO_SHARD=2/2 $(BIN)/pytest tests/integration $(call SELECT,integration and not lakefs_outage)"; b=$$?; \
	$(LANES) "e2e=env MLREPO_RUNNER=kubernetes $(BIN)/pytest tests/e2e $(call SELECT,e2e)" \
		"frameworks=env MLREPO_RUNNER=kubernetes $(BIN)/pytest tests/frameworks -m frameworks"; c=$$?; \
	exit $$(( a || b || c ))

# Tests written but not yet green in a whole CI run (marker `pending`, listed in docs/ci.md).
test-pending: install browser
	$(BIN)/mlrepo stack up
	$(BIN)/pytest tests/integration tests/e2e -m pending

frameworks: install frameworks-install
	$(BIN)/mlrepo stack up
	MLREPO_FRAMEWORKS_PYTHON=$(CURDIR)/$(FRAMEWORKS_VENV)/bin/python $(BIN)/pytest tests/frameworks -m frameworks

# The framework examples as pods of their images (docker/<name>, built here the first time and cached)
# on the stack's Kubernetes cluster.
frameworks-kubernetes: install
	$(BIN)/mlrepo stack up
	MLREPO_RUNNER=kubernetes $(BIN)/pytest tests/frameworks -m frameworks

benchmark: install
	$(BIN)/mlrepo stack up
	$(BIN)/python benchmarks/asof_lookup.py --commits 10000 --queries 50

clean:
	rm -rf $(VENV) $(FRAMEWORKS_VENV) .pytest_cache .mypy_cache .ruff_cache site
