# Takt: `make demo` runs the stack on a simulated line, `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := mosquitto mosquitto-clients influxdb influxdb-client socat docker-compose \
	chromium chromium-driver fonts-wqy-microhei postgresql-15
SERVICE_BINARIES := mosquitto mosquitto_passwd influxd influx socat docker-compose chromium chromedriver \
	pg_ctl
PG_BIN := /usr/lib/postgresql/15/bin
DURATION ?=
PYTEST_ARGS ?=

.PHONY: setup system-deps venv test lint typecheck unit integration bench demo chaos schema clean

setup: system-deps $(STAMP)

# Installs the Debian packages a fresh machine lacks (apt as root, else sudo).
system-deps:
	@missing=""; for b in $(SERVICE_BINARIES); do \
	  command -v $$b >/dev/null 2>&1 || [ -x /usr/sbin/$$b ] || [ -x $(PG_BIN)/$$b ] \
	    || missing="$$missing $$b"; done; \
	if [ -n "$$missing" ]; then \
	  echo "setup: missing$$missing; installing $(APT_PACKAGES)"; \
	  if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "setup: no apt-get here; install Mosquitto 2, InfluxDB 1.x (v1 HTTP API), PostgreSQL 15 and socat by hand" >&2; exit 1; fi; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO=sudo; \
	  else echo "setup: need root or sudo to apt-get install $(APT_PACKAGES)" >&2; exit 1; fi; \
	  $$SUDO apt-get update -qq || { echo "setup: apt-get update failed" >&2; exit 1; }; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	    $(APT_PACKAGES) >/dev/null || { echo "setup: apt-get install failed" >&2; exit 1; }; \
	fi

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "venv: installing Python dependencies into $(VENV) (log: $(VENV)/pip.log)"
	@{ $(BIN)/pip install --upgrade pip && $(BIN)/pip install -e '.[dev]'; } >$(VENV)/pip.log 2>&1 \
	  || { tail -n 60 $(VENV)/pip.log >&2; echo "venv: pip install failed (whole log: $(VENV)/pip.log)" >&2; exit 1; }
	@touch $(STAMP)

venv: $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

schema: setup
	$(BIN)/takt schema export

test: setup lint typecheck
	$(BIN)/takt schema export --check
	$(BIN)/pytest $(PYTEST_ARGS)

unit: setup
	$(BIN)/pytest -m "not integration" $(PYTEST_ARGS)

integration: setup
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m bench $(if $(BENCH),$(BENCH),) $(BENCH_ARGS)

# A seeded fault campaign on a simulated floor (SEED=N; default a random seed): every
# event in InfluxDB exactly once, rollups equal raw data, units equal the ledger.
chaos: setup
	$(BIN)/python -m takt_cli.chaos $(if $(SEED),--seed $(SEED),) $(if $(SHORT),--short,)

demo: setup
	$(BIN)/takt demo $(if $(DURATION),--duration $(DURATION),)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
