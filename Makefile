# probe: the two commands are `make demo` and `make test`; both install what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install test lint demo bench schemas clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,fleet]'
	touch $(STAMP)

test: install
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check probe tests bench migrations
	$(VENV)/bin/ruff format --check probe tests bench migrations
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

demo: install
	$(VENV)/bin/probe demo

# Rewrite the JSON Schemas of the JSON outputs from their shapes (docs/contracts.md).
schemas: install
	$(PY) -m probe.contracts.generate

bench: install
	$(PY) bench/store_ingest.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache probe.egg-info
