# The two commands a newcomer needs: `make run` and `make test`. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CRM_HOME ?= $(CURDIR)/data
CYCLES ?= 6
UI_HOST ?= 127.0.0.1
UI_PORT ?= 3000
BENCH_SIZES ?= 100000,1000000
export CRM_HOME
# No usage tracking from dbt, Dagster or anything else that honours DO_NOT_TRACK.
export DO_NOT_TRACK := 1
export DAGSTER_DISABLE_TELEMETRY := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := false

.PHONY: install run test test-fast proof ui backfill test-browser lint lint-sql docs clean bench

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,spark]'
	touch $@

install: $(BIN)/.installed
	$(BIN)/crm-loop prepare

run: install  ## run CYCLES (default 6) months of the loop on the simulated world
	$(BIN)/crm-loop run --cycles $(CYCLES)

test: install  ## the test suite, two test files at a time (CI runs it, then `make proof`); the 15 slowest tests at the end
	$(BIN)/python -m pytest -q -m "not proof" -n 2 --dist loadfile --no-loadscope-reorder --durations=15

test-fast: install  ## the tests that run no loop through Dagster (library, dbt, gates), in a few minutes
	$(BIN)/python -m pytest -q -m "not slow and not proof" -n 2 --dist loadfile --no-loadscope-reorder

proof: install  ## the long proofs: 12 cycles on three simulated years (coverage, profit), the loop on Spark = on DuckDB
	$(BIN)/python -m pytest -q -m proof --durations=5

ui: install  ## Dagster UI and daemon on http://$(UI_HOST):$(UI_PORT), instance under $(CRM_HOME)/dagster
	PATH="$(CURDIR)/$(BIN):$$PATH" DAGSTER_HOME=$(CRM_HOME)/dagster \
		$(BIN)/dagster dev -w workspace.yaml -h $(UI_HOST) -p $(UI_PORT)

backfill: install  ## run the months FROM..TO (YYYY-MM) in order: months reached are re-run, later ones advance
	@test -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make backfill FROM=2025-01 TO=2025-06"; exit 2; }
	$(BIN)/crm-loop backfill --from $(FROM) --to $(TO)

test-browser: install  ## only the browser test (Chromium on the UI); screenshots in test-artifacts/browser/
	$(BIN)/python -m pytest -q tests/test_browser.py

bench: install  ## one monthly cycle at BENCH_SIZES customers: time and memory per stage, vs lifetimes and raw SQL
	$(BIN)/python -m orchestration.benchmark --sizes $(BENCH_SIZES)

lint: install lint-sql
	$(BIN)/ruff check .

lint-sql: install  ## sqlfluff with the dbt templater (.sqlfluff) on the dbt models and tests
	tmp=$$(mktemp -d) && CRM_WAREHOUSE=$$tmp/lint.duckdb DBT_TARGET_PATH=$$tmp/target \
		$(BIN)/sqlfluff lint dbt_project/models dbt_project/tests

# The docs show the models compiled as of $CRM_AS_OF_MONTH, else 2025-01-01 (dbt_project/macros/as_of_month.sql).
docs: install  ## warehouse docs (dbt docs generate) as one page: dbt_project/target/docs/static_index.html
	@warehouse=$(CRM_HOME)/warehouse.duckdb; \
	if [ ! -f "$$warehouse" ]; then \
		echo "no warehouse at $$warehouse yet: documenting the models without a catalogue (run the loop first)"; \
		warehouse=$$(mktemp -d)/empty.duckdb; \
	fi; \
	CRM_AS_OF_MONTH=$${CRM_AS_OF_MONTH:-2025-01-01} CRM_WAREHOUSE=$$warehouse \
		$(BIN)/dbt docs generate --static --project-dir dbt_project \
		--profiles-dir dbt_project --target-path target/docs
	@echo "open dbt_project/target/docs/static_index.html"

clean:  ## forget the simulated world, warehouse and run history under CRM_HOME
	rm -rf $(CRM_HOME)
