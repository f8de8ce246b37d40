# The one entry point for people and CI. `make demo` and `make test` do all the set-up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
DEMO_DB ?= sqlite:///demo.db
DEMO_PORT ?= 8000

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/voronka --db $(DEMO_DB) demo --replace
	@echo
	@echo "Demo workspace: $(DEMO_DB). Try:  $(BIN)/voronka --db $(DEMO_DB) funnel 1 --by owner"
	@echo
	@echo "Web app: http://127.0.0.1:$(DEMO_PORT)/  sign in as  head / voronka-demo  (head of sales; also admin,"
	@echo "manager1 ... manager6 with the same password). Ctrl+C stops the server."
	$(BIN)/voronka --db $(DEMO_DB) serve --host 127.0.0.1 --port $(DEMO_PORT)

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n 2

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/stage_funnel.py
	$(BIN)/python bench/forecast.py

clean:
	rm -rf $(VENV) demo.db demo.db-wal demo.db-shm .pytest_cache

.PHONY: bench-events
bench-events: $(VENV)/.installed-dev
	$(BIN)/python bench/event_funnel.py --sizes 10M,100M
