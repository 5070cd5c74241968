# Golden Hour: `make demo` runs the main job, `make test` the tests. Each sets up .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo test lint run stack bench chaos browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/goldenhour demo

# The console's browser tests drive Debian's Chromium; install it when it is missing.
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/mypy contracts streams/escalation.py streams/watchers.py streams/messages.py services/access.py
	$(BIN)/pytest -q

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/goldenhour bench

chaos: $(STAMP)
	$(BIN)/goldenhour chaos

run: $(STAMP)
	$(BIN)/goldenhour run

stack: $(STAMP)
	$(BIN)/goldenhour stack up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache tests/artifacts
