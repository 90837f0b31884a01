# The README's two commands: `make demo` and `make test`.  Both set up .venv first (once).
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.logwarden-installed
DEMO    = demo-output

.PHONY: demo test test-all test-pubsub lint format bench clean setup

setup: $(STAMP)

# Reinstall only when the package definition changes, so a second call is quick.
$(STAMP): setup.py pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@# Bytecode for our own packages too (pip compiles only site-packages): every command starts ~0.1 s sooner
	@# where PYTHONDONTWRITEBYTECODE is set.
	$(PY) -m compileall -q alerts parsers pipelines retention schemas bench >/dev/null
	@touch $(STAMP)

demo: $(STAMP)
	@rm -rf $(DEMO)
	$(VENV)/bin/logwarden batch --config examples/logwarden.yaml --input examples/logs --output $(DEMO)
	$(VENV)/bin/logwarden archive verify --deep --role custodian --reason demo $(DEMO)
	@echo
	@echo "demo outputs in $(DEMO)/:"
	@find $(DEMO) -type f -not -path '*/.tmp/*' | sort | sed 's/^/  /'

# The Pub/Sub graph test needs apache-beam[gcp], which makes `import apache_beam` (so every command's start)
# about 0.8 s of CPU slower (measured: 1.0 s -> 1.8 s); it gets a venv of its own, used for that test only.
PUBSUB_VENV  ?= .venv-pubsub
PUBSUB_STAMP  = $(PUBSUB_VENV)/.logwarden-installed

$(PUBSUB_STAMP): setup.py pyproject.toml
	@test -x $(PUBSUB_VENV)/bin/python || $(PYTHON) -m venv $(PUBSUB_VENV)
	$(PUBSUB_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev,pubsub]'
	@touch $(PUBSUB_STAMP)

test-pubsub: $(PUBSUB_STAMP)
	$(PUBSUB_VENV)/bin/python -m pytest -q tests/stream/test_stream_sources.py

# One pytest worker per core (pytest-xdist), each test file on one worker so module fixtures are built once.
test: $(STAMP) $(PUBSUB_STAMP)
	$(PY) -m pytest -q -n auto --dist loadfile
	$(PUBSUB_VENV)/bin/python -m pytest -q tests/stream/test_stream_sources.py

test-all: $(STAMP)
	$(PY) -m pytest -q -m ''

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP)
	@test -f bench/data/bench-1m.log || (mkdir -p bench/data && $(PY) -m bench generate bench/data/bench-1m.log --lines 1000000)
	$(PY) -m bench throughput bench/data/bench-1m.log

clean:
	rm -rf $(DEMO) build *.egg-info .pytest_cache .ruff_cache
