# Entry points; the README documents each. PYTHON is the interpreter everything runs under.
PYTHON ?= python3
TORCH ?= 2.13.0

.PHONY: install test lint format

# torch is pinned first: the local CPU wheel. An unpinned torch pulls a 5.4 GB CUDA build.
install:
	$(PYTHON) -m pip install -q "torch==$(TORCH)"
	$(PYTHON) -m pip install -q -e ".[dev]"

test: install
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m ruff check .

format:
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .
