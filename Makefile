# Isthmus: the two commands of the README.
#   make demo  -- the main job (creates .venv and installs what it needs)
#   make test  -- the whole test suite with its static checks
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint typecheck contracts pytest bench clean testbed postgres

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/isthmus demo

test: $(STAMP) lint typecheck contracts pytest

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

# The local Kubernetes testbed (tools/testbed/build.py): builds etcd, kube-*, kwok, the KubeRay
# operator and helm from Go modules into ~/.cache/isthmus/testbed/<version-key>/bin when
# missing (a cold build takes long, see docs/testbed.md), reuses them when present.
# ISTHMUS_SKIP_TESTBED=1 skips the build; the testbed tests then skip with that reason.
testbed: $(STAMP)
	@if [ -n "$$ISTHMUS_SKIP_TESTBED" ]; then echo "testbed: skipped (ISTHMUS_SKIP_TESTBED)"; \
	else $(BIN)/python tools/testbed/build.py; fi

# The PostgreSQL server binaries for the store tests (tools/postgres.py, docs/postgres.md): found
# via pg_config or /usr/lib/postgresql/<newest>/bin; when missing, installs Debian's `postgresql`
# (apt-get, needs root; not root: says what to run and fails). The tests start their own private
# server on 127.0.0.1 (tests/postgres.py), never the Debian cluster service.
# ISTHMUS_SKIP_POSTGRES=1 skips this; the postgres tests then skip (fail when CI=true).
postgres: $(STAMP)
	$(BIN)/python tools/postgres.py install

# pytest exit code 5 means "no tests ran": that is a failure here, never a pass.
pytest: $(STAMP) testbed postgres
	$(BIN)/python -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: $(STAMP)
	$(BIN)/python bench/placement.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
