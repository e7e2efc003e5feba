# Two commands matter: `make demo` and `make test`. Both build or refresh .venv as needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck sandbox bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (found %s); set PYTHON=" % sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lonescale-sync demo

test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check connector tests $(wildcard bench)
	$(BIN)/ruff format --check connector tests $(wildcard bench)

typecheck: $(STAMP)
	$(BIN)/mypy

# Benchmarks (issue 5): not part of `make test`. The issue's sizes are the defaults; override with e.g.
# make bench BENCH_ARGS="--throughput 10000 --memory-large 30000". Writes BENCHMARKS.md.
# GROUP=writeback (or calls, throughput, memory, webhook, cluster; several with commas) runs only those groups
# and keeps the others' last figures (bench/results.json); each row names the command and commit it measured.
# The cluster group needs PostgreSQL (LONESCALE_SYNC_BENCH_POSTGRES_URL) and rewrites only its own section;
# without GROUP every group is run, the cluster's too when a PostgreSQL URL is set.
BENCH_ARGS ?=
GROUP ?=
bench: $(STAMP)
	$(BIN)/python -m bench $(if $(GROUP),--group $(GROUP)) $(BENCH_ARGS)

sandbox: $(STAMP)
	$(BIN)/lonescale-sync sandbox

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
