# The two quick-start commands: `make run` and `make test`. Both set up .venv first.
# `make test-fast`: the tests that need no service, no browser and no time (under a minute).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast services lint bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/probe run -c probes.example.yaml

# Installs and starts what the tests talk to (etcd, InfluxDB, Chromium, Prometheus, a PostgreSQL role),
# idempotently; whatever cannot be had here is said, and its tests are skipped with the reason.
services:
	bash scripts/services.sh

test: $(STAMP) services
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Markers: tests/conftest.py and pyproject.toml ([tool.pytest.ini_options] markers).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not service and not browser and not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check probe tests bench
	$(BIN)/ruff format --check probe tests bench
	$(BIN)/mypy probe
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python bench/scheduler.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
