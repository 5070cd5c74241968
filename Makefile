# Golden Hour: `make demo` runs the main job, `make test` the tests. Each sets up .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
# The SSDA903 validator pins pandas<2 and numpy<1.25: it gets an environment of its own.
VALIDATOR := .venv-903
VALIDATOR_STAMP := $(VALIDATOR)/.installed

.PHONY: demo test lint run stack bench chaos debian clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

$(VALIDATOR_STAMP): tests/ssda903/requirements.txt
	$(PYTHON) -m venv $(VALIDATOR)
	$(VALIDATOR)/bin/pip install --quiet --upgrade pip
	$(VALIDATOR)/bin/pip install --quiet -r tests/ssda903/requirements.txt
	touch $(VALIDATOR_STAMP)

demo: $(STAMP)
	$(BIN)/goldenhour demo

# Debian's packages the tests drive, installed when missing: Chromium for the console's browser
# tests, libfaketime to run a dispatcher whose clock is ahead of the others'.
debian:
	@{ command -v chromium >/dev/null && dpkg -s libfaketime >/dev/null 2>&1; } || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		chromium chromium-driver libfaketime >/dev/null; }

test: $(STAMP) $(VALIDATOR_STAMP) debian
	$(BIN)/ruff check .
	$(BIN)/mypy goldenhour/contracts goldenhour/streams/escalation.py goldenhour/streams/watchers.py goldenhour/wording/messages.py goldenhour/services/access.py goldenhour/wording/rotas.py
	$(BIN)/pytest -q

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/goldenhour bench

chaos: $(STAMP) debian
	$(BIN)/goldenhour chaos

run: $(STAMP)
	$(BIN)/goldenhour run

stack: $(STAMP)
	$(BIN)/goldenhour stack up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) $(VALIDATOR) .pytest_cache .ruff_cache tests/artifacts
