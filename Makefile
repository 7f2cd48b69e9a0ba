# Two commands matter: `make run` (the embedded stack with sample data) and `make test`.
# Everything else here is what those two are made of.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NPM    ?= npm
CHARTS := build/static/chart.umd.js

.PHONY: run test check bench lint forms static schemas kafka-jars topics worker intake query clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

forms: $(STAMP)  ## build the XForms (ODK Validate on; needs Java)
	$(PY) -m services.intake.forms odk-forms build/forms

static: $(CHARTS)  ## the dashboard's chart library (Chart.js, npm registry, package-lock.json) into build/static

$(CHARTS): package.json package-lock.json
	$(NPM) ci --no-audit --no-fund --loglevel=error
	mkdir -p build/static
	cp node_modules/chart.js/dist/chart.umd.js node_modules/chart.js/LICENSE.md build/static/

run: $(STAMP) forms static  ## the one-process embedded stack on http://127.0.0.1:8000, loaded with sample data
	$(PY) -m services.embedded --load-samples

test: $(STAMP) kafka-jars static  ## lint, then every test (a real Kafka broker is started by the harness)
	$(VENV)/bin/ruff check services tests bench
	$(PY) -m pytest

# The inner loop, under a minute: lint, the domain, the intake's refusals, the query API's security.
CHECK_TESTS := tests/test_domain.py tests/test_reference_data.py tests/test_schemas.py tests/test_config_docs.py \
               tests/test_bad_input.py tests/test_openrosa.py tests/test_security_query.py \
               tests/test_intake_service.py tests/test_rotation_fold.py

check: $(STAMP)  ## lint and the fast tests (make test stays the whole suite)
	$(VENV)/bin/ruff check services tests bench
	$(PY) -m pytest -q $(CHECK_TESTS)

BENCH_STAMP := $(VENV)/.installed-bench
BENCH_ARGS  ?= --scale full

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP) kafka-jars  ## benchmarks + long fuzzing (never in `make test`): bench/results/, README's table
	$(PY) -m bench $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check services tests bench

schemas: $(STAMP)  ## regenerate schemas/events/*.json from the event models
	$(PY) -m services.tools.export_schemas

kafka-jars: $(STAMP)  ## Apache Kafka's jars from Maven Central (tests/kafka/pom.xml), for the test broker
	$(PY) -c "from tests.kafka.broker import ensure_jars; ensure_jars()"

# Distributed mode by hand (docker-compose.yml does the same with containers).
topics: $(STAMP)
	BUS=kafka $(PY) -m services.bus.admin
intake: $(STAMP) forms
	BUS=kafka $(PY) -m services.intake
worker: $(STAMP)
	BUS=kafka $(PY) -m services.processors.worker
query: $(STAMP)
	$(PY) -m services.query

clean:
	rm -rf build var .pytest_cache .ruff_cache
