# Entry points of the harness. `make experiment NAME=circuit-breaker` installs what it needs
# on first use; `make test` runs the test suite.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
APT_PACKAGES := nginx-light redis-server postgresql prometheus haproxy
NAME ?= circuit-breaker
# Flags for `harness run`, such as ARGS="--seed 7".
ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup system-packages test test-all experiment gameday lint bench clean status down

setup: $(STAMP)

system-packages:
	@missing=""; for bin in nginx redis-server prometheus haproxy; do \
	  command -v $$bin >/dev/null 2>&1 || [ -x /usr/sbin/$$bin ] || missing=1; done; \
	  [ -d /usr/lib/postgresql ] || missing=1; \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	      $(APT_PACKAGES); \
	  fi

$(STAMP): pyproject.toml
	$(MAKE) system-packages
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,fast]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

experiment: $(STAMP)
	$(VENV)/bin/harness run $(NAME) $(ARGS)

gameday: $(STAMP)
	$(VENV)/bin/harness gameday

status: $(STAMP)
	$(VENV)/bin/harness status

down: $(STAMP)
	$(VENV)/bin/harness down

lint: $(STAMP)
	$(VENV)/bin/ruff check harness targets tests bench
	$(VENV)/bin/ruff format --check harness targets tests bench
	$(VENV)/bin/mypy --strict harness

bench: $(STAMP)
	$(PY) bench/proxy_bench.py
	$(PY) bench/load_bench.py

clean:
	-$(VENV)/bin/harness down 2>/dev/null
	rm -rf .harness results .pytest_cache .mypy_cache .ruff_cache build *.egg-info
