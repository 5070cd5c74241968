# Golden Hour: `make demo` runs the main job, `make test` the tests. Each sets up .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint run stack clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/goldenhour demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy contracts streams/escalation.py streams/watchers.py streams/messages.py services/access.py
	$(BIN)/pytest -q

run: $(STAMP)
	$(BIN)/goldenhour run

stack: $(STAMP)
	$(BIN)/goldenhour stack up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache tests/artifacts
