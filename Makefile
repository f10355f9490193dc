# The two commands a new machine needs: `make demo` and `make test`.
# Both create .venv on first use (only Python 3.11 is assumed) and install what they need.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test test-fast lint typecheck pytest reliability bench test-system test-matrix clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[test]'
	touch $@

demo: $(INSTALLED)
	$(BIN)/python scripts/demo.py

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(INSTALLED)
	$(BIN)/mypy

# Unit, emulator integration, DAG end-to-end and the CI sample of the fault campaign; two workers
# (pytest-xdist, each with its own Airflow home), tests stolen by whichever is free.
pytest: $(INSTALLED)
	$(BIN)/pytest -q -n 2 --dist worksteal

test: lint typecheck pytest

# The quick loop while developing: everything but the real-DAG and real-service tests (marker `slow`).
test-fast: lint typecheck $(INSTALLED)
	$(BIN)/pytest -q -n 2 --dist worksteal -m "not slow"

# The full fault campaign: 500 create -> run -> sense cycles under 30 % injected faults.
reliability: $(INSTALLED)
	RELIABILITY_CYCLES=500 $(BIN)/pytest -q -s tests/reliability/test_campaign.py

BENCH_INSTALLED := $(VENV)/.installed-bench
$(BENCH_INSTALLED): pyproject.toml | $(INSTALLED)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[test,bench]'
	touch $@

bench: $(BENCH_INSTALLED)
	$(BIN)/python bench/run_all.py

# Real Airflow services and the web UI in Debian's headless Chromium (installed here if missing).
SYSTEM_INSTALLED := $(VENV)/.installed-system
$(SYSTEM_INSTALLED): pyproject.toml | $(INSTALLED)
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[test,system]'
	touch $@

test-system: $(SYSTEM_INSTALLED)
	$(BIN)/python tests/system/run_system.py --ui

# Every Airflow x Python corner pyproject.toml claims, each in its own venv (.matrix/), two at a time.
test-matrix: | $(BIN)/python
	$(BIN)/python scripts/test_matrix.py

clean:
	rm -rf $(VENV) .airflow .demo .matrix .pytest_cache .mypy_cache .ruff_cache
