# The two commands a newcomer needs: `make run` and `make test`. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CRM_HOME ?= $(CURDIR)/data
CYCLES ?= 6
export CRM_HOME
# No usage tracking from dbt, Dagster or anything else that honours DO_NOT_TRACK.
export DO_NOT_TRACK := 1
export DAGSTER_DISABLE_TELEMETRY := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := false

.PHONY: install run test ui lint docs clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed
	$(BIN)/crm-loop prepare

run: install  ## run CYCLES (default 6) months of the loop on the simulated world
	$(BIN)/crm-loop run --cycles $(CYCLES)

test: install  ## the whole test suite (as CI runs it)
	$(BIN)/python -m pytest -q

ui: install  ## Dagster UI and daemon, instance under $(CRM_HOME)/dagster
	mkdir -p $(CRM_HOME)/dagster
	test -f $(CRM_HOME)/dagster/dagster.yaml || $(BIN)/crm-loop status >/dev/null
	DAGSTER_HOME=$(CRM_HOME)/dagster $(BIN)/dagster dev -w workspace.yaml

lint: install
	$(BIN)/ruff check .

clean:  ## forget the simulated world, warehouse and run history under CRM_HOME
	rm -rf $(CRM_HOME)
