# The two quick-start commands: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test services lint bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/probe run -c probes.example.yaml

# Installs and starts what the tests talk to (etcd, InfluxDB, Chromium, a PostgreSQL role),
# idempotently; whatever cannot be had here is said, and its tests are skipped with the reason.
services:
	bash scripts/services.sh

test: $(STAMP) services
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check probe tests bench
	$(BIN)/ruff format --check probe tests bench
	$(BIN)/mypy probe

bench: $(STAMP)
	$(BIN)/python bench/scheduler.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
