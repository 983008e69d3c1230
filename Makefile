# Chorus developer tasks; `make help` lists them.
#
# Every target that runs Django, Celery or pytest first makes sure of the virtualenv
# (.venv, reinstalled only when pyproject.toml changes) and of a project-local
# PostgreSQL and Redis (data in .local/, listening on 127.0.0.1 only), see
# scripts/services.sh. These are exported unless you set them yourself:
#   DATABASE_URL      postgres://chorus:chorus@127.0.0.1:$(CHORUS_PG_PORT)/chorus
#   REDIS_URL         redis://127.0.0.1:$(CHORUS_REDIS_PORT)/0
#   CELERY_BROKER_URL redis://127.0.0.1:$(CHORUS_REDIS_PORT)/1
#   DJANGO_SETTINGS_MODULE config.settings.local (run, bench, lint; tests use pyproject's)
# Ports: CHORUS_PG_PORT (15432), CHORUS_REDIS_PORT (16379), PORT (8000, make run).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

VENV := .venv
# The Python that builds the virtualenv, found before .venv/bin goes first on PATH.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
PYTHON_BIN := $(shell command -v $(PYTHON) 2>/dev/null)
PYPROJECT_HASH := $(shell sha256sum pyproject.toml 2>/dev/null | cut -c1-12)
VENV_STAMP := $(VENV)/.installed-$(PYPROJECT_HASH)

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export VIRTUAL_ENV := $(CURDIR)/$(VENV)

SERVICES := bash scripts/services.sh
LOCAL_SETTINGS := DJANGO_SETTINGS_MODULE="$${DJANGO_SETTINGS_MODULE:-config.settings.local}"

.PHONY: help venv run test bench bench-integrity lint services services-stop services-status clean-data

help:
	@printf '%s\n' \
	  'Chorus - make targets' \
	  '  make run              install, start PostgreSQL + Redis, migrate, seed demo data, and serve' \
	  '                        (gunicorn on http://127.0.0.1:$(or $(PORT),8000), Celery worker + beat) until Ctrl-C' \
	  '  make test             run the test suite (PYTEST_ARGS="tests/core -x" to narrow it)' \
	  '  make bench            run the benchmarks (python -m bench)' \
	  '  make bench-integrity  the integrity detector on generated streams (python -m bench.integrity)' \
	  '  make lint             ruff check, ruff format --check, mypy, makemigrations --check' \
	  '  make services         start the local PostgreSQL and Redis and leave them running' \
	  '  make services-stop    stop them' \
	  '  make services-status  show whether they run' \
	  '  make clean-data       stop them and delete all local data (.local/)' \
	  '  make venv             only (re)install the virtualenv .venv'

venv: $(VENV_STAMP)

$(VENV_STAMP):
	@if [[ -z "$(PYTHON_BIN)" ]]; then
	    echo "==> ERROR: no python3 found (Python 3.11 is needed: sudo apt-get install python3 python3-venv)" >&2
	    exit 1
	fi
	if ! "$(VENV)/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
	    if ! "$(PYTHON_BIN)" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
	        echo "==> ERROR: $(PYTHON_BIN) is not Python 3.11; run with PYTHON=/path/to/python3.11" >&2
	        exit 1
	    fi
	    echo "==> Creating the virtualenv $(VENV) with $(PYTHON_BIN)"
	    "$(PYTHON_BIN)" -m venv --clear "$(VENV)"
	fi
	if ! "$(VENV)/bin/python" -m pip --version >/dev/null 2>&1; then
	    "$(VENV)/bin/python" -m ensurepip --upgrade >/dev/null
	fi
	echo "==> Installing the project and its dev tools into $(VENV) (pip install -e '.[dev]')"
	# (the grep drops pip's notes about configured-but-absent local package folders)
	"$(VENV)/bin/python" -m pip install --quiet --progress-bar off -e '.[dev]' 2>&1 |
	    { grep -v "is ignored: it is neither a file nor a directory" || true; }
	rm -f "$(VENV)"/.installed-*
	touch "$@"

run: venv
	@bash scripts/run.sh

test: venv
	@rc=0
	$(SERVICES) with python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS) || rc=$$?
	if ((rc == 5)); then
	    echo "==> ERROR: pytest collected no tests (exit code 5): nothing ran, counted as a failure" >&2
	fi
	exit $$rc

bench: venv
	@$(LOCAL_SETTINGS) $(SERVICES) with python -m bench $(BENCH_ARGS)

# BENCH_ARGS="--quick" (one seed at 1M), "--no-large", "--keep"; docs/integrity-bench.md
bench-integrity: venv
	@$(LOCAL_SETTINGS) $(SERVICES) with python -m bench.integrity $(BENCH_ARGS)

lint: venv
	@export $(LOCAL_SETTINGS)
	$(SERVICES) with bash -c '
	    failed=()
	    echo "==> ruff check .";           ruff check . || failed+=("ruff check")
	    echo "==> ruff format --check .";  ruff format --check . || failed+=("ruff format")
	    echo "==> mypy .";                 mypy . || failed+=(mypy)
	    echo "==> makemigrations --check"; python manage.py makemigrations --check --dry-run || failed+=(makemigrations)
	    if (($${#failed[@]})); then echo "==> lint failed: $${failed[*]}" >&2; exit 1; fi
	    echo "==> lint passed"'

services:
	@$(SERVICES) start

services-stop:
	@$(SERVICES) stop

services-status:
	@$(SERVICES) status

clean-data:
	@$(SERVICES) clean
