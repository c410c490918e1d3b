# pgtq: `make demo` shows the queue working, `make test` runs every test.
# Both set up what they need: system packages (scripts/ensure-system-deps.sh),
# the virtualenv, and a local PostgreSQL cluster (scripts/pgcluster.py).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PGTQ := $(VENV)/bin/pgtq
PG_CONFIG ?= $(shell command -v /usr/lib/postgresql/15/bin/pg_config || command -v pg_config)
EXT_VERSION := $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" pgtq.control)
EXT_DIR = $(shell $(PG_CONFIG) --sharedir)/extension
DEMO_DIR := .pgtq-demo
PYTEST_ARGS ?=

.PHONY: help
help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

.PHONY: system-deps
system-deps: ## install PostgreSQL, pgTAP and pg_prove if missing (apt, as root)
	@bash scripts/ensure-system-deps.sh

$(VENV)/.installed: pyproject.toml pgtq.control
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

.PHONY: venv
venv: $(VENV)/.installed ## create the virtualenv with pgtq and its test tools

.PHONY: install-extension
install-extension: system-deps ## install the extension files (control, scripts) into the server's extension folder
	@$(PYTHON) scripts/build_extension.py "$(EXT_DIR)" || { \
		echo "pgtq: could not install into $(EXT_DIR); as a user who may write it, run: sudo make install-extension" >&2; \
		exit 1; }

.PHONY: install
install: ## install the extension with PGXS (PG_CONFIG=/path/to/pg_config, DESTDIR= to stage): extension/Makefile
	$(MAKE) -C extension install PG_CONFIG="$(PG_CONFIG)" PYTHON="$(PYTHON)"

.PHONY: test
test: system-deps venv ## run every test (schema drift guard, pgTAP, pytest) on a throwaway cluster
	$(PY) scripts/pgcluster.py run -- $(MAKE) --no-print-directory verify test-sql test-py

.PHONY: test-unit
test-unit: venv ## the unit tests alone: no database, a few seconds
	$(PY) -m pytest tests/py/unit $(PYTEST_ARGS)

.PHONY: test-sql
test-sql: ## pgTAP suite with pg_prove, on every install route (needs PGTQ_TEST_DSN; `make test` sets it)
	@$(PY) tests/sql/run.py

.PHONY: test-py
test-py: ## pytest suite (needs PGTQ_TEST_DSN; `make test` sets it)
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: verify
verify: venv ## fail when an install differs from the schema snapshot (sql/catalog.txt) or a released script changed
	$(PY) scripts/pgcluster.py run -- $(PY) scripts/schema_catalog.py verify

.PHONY: generate
generate: venv ## rewrite the schema snapshot sql/catalog.txt from a fresh install of sql/pgtq.sql
	$(PY) scripts/pgcluster.py run -- $(PY) scripts/schema_catalog.py generate

FAILOVER_RUNS ?= 5

.PHONY: test-long
test-long: system-deps venv ## the model-based test with many more, longer examples; each asynchronous failover FAILOVER_RUNS times (5) (minutes)
	PGTQ_HYPOTHESIS_PROFILE=long $(PY) scripts/pgcluster.py run -- $(PY) -m pytest tests/py/test_model.py $(PYTEST_ARGS)
	PGTQ_FAILOVER_RUNS=$(FAILOVER_RUNS) $(PY) scripts/pgcluster.py run -- $(PY) -m pytest -s tests/py/test_failover.py $(PYTEST_ARGS)

.PHONY: chaos
chaos: system-deps venv ## kill workers, PostgreSQL and PgBouncer under load; prove no job is lost and every duplicate is explained
	$(PY) scripts/pgcluster.py run -- $(PY) tests/chaos/run.py --bouncer $(CHAOS_ARGS)

# -- benchmark (bench/README.md): its own virtualenvs, its own throwaway cluster --
BENCH_VENV := bench/.venv
BENCH_PEERS_VENV := bench/.venv-peers
BENCH_ARGS ?=

$(BENCH_VENV)/.installed: pyproject.toml pgtq.control bench/requirements.txt
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e . -r bench/requirements.txt
	@touch $@

$(BENCH_PEERS_VENV)/.installed: pyproject.toml pgtq.control bench/requirements-peers.txt
	@test -x $(BENCH_PEERS_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_PEERS_VENV)
	$(BENCH_PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_PEERS_VENV)/bin/python -m pip install --quiet -e . -r bench/requirements-peers.txt
	@touch $@

.PHONY: bench
bench: system-deps $(BENCH_VENV)/.installed ## benchmark pgtq against the SQL ceiling (under 15 min; bench/results/)
	$(BENCH_VENV)/bin/python -m bench $(BENCH_ARGS)

.PHONY: bench-quick
bench-quick: system-deps $(BENCH_VENV)/.installed ## the same benchmark with small counts (a minute or two)
	$(BENCH_VENV)/bin/python -m bench --quick $(BENCH_ARGS)

.PHONY: bench-bloat
bench-bloat: system-deps $(BENCH_VENV)/.installed ## the load-and-bloat run: 1,000,000 jobs with pruning (about 8 min)
	$(BENCH_VENV)/bin/python -m bench --only bloat $(BENCH_ARGS)

.PHONY: bench-bouncer
bench-bouncer: system-deps $(BENCH_VENV)/.installed ## what PgBouncer and prepared statements cost: push and drain, direct and through bouncers
	$(BENCH_VENV)/bin/python -m bench.bouncer_overhead $(BENCH_ARGS)

.PHONY: bench-claim-cost
bench-claim-cost: system-deps $(BENCH_VENV)/.installed ## where a claim's server time goes: the job table's indexes, its width, pop's own steps (a minute)
	$(BENCH_VENV)/bin/python -m bench.claim_cost $(BENCH_ARGS)

.PHONY: bench-tick-cost
bench-tick-cost: system-deps $(BENCH_VENV)/.installed ## what a tick costs beside a held snapshot: the ready mark's look (a few minutes)
	$(BENCH_VENV)/bin/python -m bench.tick_cost $(BENCH_ARGS)

.PHONY: bench-rate-cost
bench-rate-cost: system-deps $(BENCH_VENV)/.installed ## what a pop of a rate-limited queue costs beside a held snapshot (a few minutes)
	$(BENCH_VENV)/bin/python -m bench.rate_cost $(BENCH_ARGS)

.PHONY: bench-held-limit
bench-held-limit: system-deps $(BENCH_VENV)/.installed ## real workers on a max_running queue while a snapshot is held open, against no limit (three minutes)
	$(BENCH_VENV)/bin/python -m bench.held_limit $(BENCH_ARGS)

.PHONY: bench-metrics-cost
bench-metrics-cost: system-deps $(BENCH_VENV)/.installed ## what metrics(), health() and pgtq.queues cost by live jobs (a minute)
	$(BENCH_VENV)/bin/python -m bench.metrics_cost $(BENCH_ARGS)

.PHONY: bench-idle
bench-idle: system-deps $(BENCH_VENV)/.installed ## what idle workers make the server write: WAL, transaction ids, commits (a minute)
	$(BENCH_VENV)/bin/python -m bench.idle_cost $(BENCH_ARGS)

.PHONY: bench-push-cost
bench-push-cost: system-deps $(BENCH_VENV)/.installed ## where a push's CPU goes: server and clients with 4 clients, and push's own parts (two minutes)
	$(BENCH_VENV)/bin/python -m bench.push_cost $(BENCH_ARGS)

.PHONY: bench-peers
bench-peers: system-deps $(BENCH_VENV)/.installed $(BENCH_PEERS_VENV)/.installed ## the benchmark with Procrastinate and PgQueuer in the same run
	$(BENCH_VENV)/bin/python -m bench --peers all --peers-python $(BENCH_PEERS_VENV)/bin/python $(BENCH_ARGS)

.PHONY: bench-paging
bench-paging: system-deps $(BENCH_VENV)/.installed ## dashboard job lists on 1,000,000 finished jobs: EXPLAIN ANALYZE of first, middle, last page
	$(BENCH_VENV)/bin/python -m bench.paging $(BENCH_ARGS)

.PHONY: docs
docs: venv ## build the documentation site into site/ (MkDocs + Material; any warning fails it)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

.PHONY: docs-serve
docs-serve: venv ## serve the documentation site on 127.0.0.1:8000, rebuilt on each change
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

.PHONY: lint
lint: venv ## ruff (also run by the test suite)
	$(VENV)/bin/ruff check pgtq tests migrations examples scripts $(wildcard bench)
	$(VENV)/bin/ruff format --check pgtq tests migrations examples scripts $(wildcard bench)

.PHONY: demo
demo: system-deps venv ## run the example app on a local cluster (or on $PGTQ_DSN)
	@if [ -n "$$PGTQ_DSN" ]; then dsn="$$PGTQ_DSN"; \
	else dsn="$$($(PY) scripts/pgcluster.py start $(DEMO_DIR))" || exit 1; \
	     dsn="$${dsn/dbname=postgres/dbname=pgtq_demo}"; \
	     $(PY) scripts/createdb.py "$$dsn"; fi; \
	PGTQ_DSN="$$dsn" $(PY) examples/demo.py

.PHONY: demo-stop
demo-stop: ## stop the demo's local cluster
	@$(PY) scripts/pgcluster.py stop $(DEMO_DIR)

.PHONY: clean
clean: demo-stop ## remove the virtualenv, the demo cluster, the built site and the Node.js example's packages
	rm -rf $(VENV) $(DEMO_DIR) site examples/node/node_modules
