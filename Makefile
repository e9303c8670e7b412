# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
# Both create .venv and install the package into it (editable, with the dev extras).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test venv lint typecheck bench clean kafka-jars

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/safeguarding run

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check streams tests benchmarks
	$(VENV)/bin/ruff format --check streams tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy streams

bench: $(STAMP)
	$(PY) benchmarks/bench_inline.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
