# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
# Both create .venv and install the package into it (editable, with the dev extras).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The compiled detection core (native/, Rust): installed into .venv when cargo is on the machine;
# without it the inline backtest runs on the Python reference core (the same alerts, slower).
# CI requires it (CI=true).
NATIVE := $(VENV)/.native
NATIVE_SRC := native/Cargo.toml native/Cargo.lock native/pyproject.toml $(wildcard native/src/*.rs)
# Apache Kafka's broker jars from Maven Central, for the integration tests (Java 17 and Maven).
KAFKA_POM := deploy/kafka/pom.xml
KAFKA_JARS := deploy/kafka/lib/.built

.PHONY: run test venv lint typecheck bench clean kafka-jars native

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) $(NATIVE)

native: $(NATIVE)

$(NATIVE): $(STAMP) $(NATIVE_SRC)
	@if command -v cargo >/dev/null; then \
	  echo "native: building the compiled detection core (cargo, release; about a minute)"; \
	  $(PY) -m pip install --quiet ./native && touch $@; \
	elif [ -n "$$CI" ]; then \
	  echo "native: cargo not found, and CI requires the compiled core: https://rustup.rs" >&2; \
	  exit 1; \
	else \
	  echo "native: cargo not found: the inline backtest runs on the Python reference core" \
	    "(the same alerts, about a third of the speed); install Rust (https://rustup.rs)" \
	    "and run make again" >&2; \
	fi

run: $(STAMP) $(NATIVE)
	$(VENV)/bin/safeguarding run

test: $(STAMP) $(NATIVE) $(KAFKA_JARS)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check streams tests benchmarks
	$(VENV)/bin/ruff format --check streams tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy streams

kafka-jars: $(KAFKA_JARS)

$(KAFKA_JARS): $(KAFKA_POM)
	@command -v java >/dev/null || { echo "kafka-jars: java not found: apt-get install -y openjdk-17-jre-headless" >&2; exit 1; }
	@command -v mvn >/dev/null || { echo "kafka-jars: mvn not found: apt-get install -y maven" >&2; exit 1; }
	mvn -q -B -f $(KAFKA_POM) clean package
	touch $@

bench: $(STAMP) $(NATIVE)
	$(PY) benchmarks/bench_inline.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis native/target
