# Weightsmith: `make run` starts everything embedded, `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# `make run PORT=8080` (or HOST=0.0.0.0) serves elsewhere: weightsmith serve's --port/--host.
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test lint typecheck fuzz load bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall whenever the project's dependencies change.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/weightsmith serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy --strict core config store worker export

fuzz: $(STAMP)
	$(BIN)/python -m pytest tests/service/test_fuzz.py -m fuzz -p no:cacheprovider $(PYTEST_ARGS)

# 1,000 small jobs through 2 workers on PostgreSQL + Redis (about a minute; see docs/reliability.md).
load: $(STAMP)
	$(BIN)/python -m pytest tests/reliability/test_load.py -m load -s -p no:cacheprovider $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
