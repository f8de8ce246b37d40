# The one entry point for people and CI. `make demo` and `make test` do all the set-up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
DEMO_DB ?= sqlite:///demo.db
DEMO_PORT ?= 8000

.PHONY: demo test lint bench clean

# Python caches compiled modules (.pyc) on first import unless PYTHONDONTWRITEBYTECODE is set; where the shell
# sets it, every start would compile pandas, SciPy and the rest again (seconds each). uv does not compile at
# install (pip does, for every module, plotly's thousands included), so the cache fills with what is imported.
unexport PYTHONDONTWRITEBYTECODE

# uv installs from its cache in seconds where pip takes about a minute; pip stays the fallback.
INSTALL = if [ -x $(BIN)/uv ]; then $(BIN)/uv pip install -q --python $(BIN)/python $(1); \
	else $(BIN)/pip install -q $(1); fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q uv || echo "uv is not available: installing with pip (slower)"

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(call INSTALL,-e .)
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(call INSTALL,-e '.[dev]')
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/voronka --db $(DEMO_DB) demo --replace
	@echo
	@echo "Demo workspace: $(DEMO_DB). Try:  $(BIN)/voronka --db $(DEMO_DB) funnel 1 --by owner"
	@echo
	@echo "Web app: http://127.0.0.1:$(DEMO_PORT)/  sign in as  head / voronka-demo  (head of sales; also admin,"
	@echo "manager1 ... manager6 with the same password). Ctrl+C stops the server."
	$(BIN)/voronka --db $(DEMO_DB) serve --host 127.0.0.1 --port $(DEMO_PORT)

# Work stealing: an idle worker takes tests from a busy one, so no long tail of slow tests on one core.
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n 2 --dist worksteal

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
