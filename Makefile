# The front door. `make serve` serves the API locally; `make test` runs every test. Both install what they need.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PORT ?= 3000
CASSANDRA_PORT ?= 9042
REDIS_PORT ?= 6379
CASSANDRA_STORAGE_PORT ?= 7000
# NODES=3: a three-node Cassandra cluster (127.0.0.1, .2 and .3, same ports) instead of the one node, with the
# keyspace replicated three times (NetworkTopologyStrategy); `make up NODES=3`, `make serve NODES=3`.
NODES ?= 1
export PORT CASSANDRA_PORT CASSANDRA_STORAGE_PORT REDIS_PORT NODES
# The service's own settings follow the ports the local services were started on.
export PLAYER_SESSIONS_CASSANDRA_PORT ?= $(CASSANDRA_PORT)
export PLAYER_SESSIONS_REDIS_URL ?= redis://127.0.0.1:$(REDIS_PORT)/0
# Where the local Cassandra's roles keep their passwords (tools/local_services.sh credentials-dir).
export CASSANDRA_CREDENTIALS_DIR ?= $(CURDIR)/.local/$(if $(filter 1,$(NODES)),cassandra,cluster)/credentials
ifneq ($(NODES),1)
export PLAYER_SESSIONS_CASSANDRA_CONTACT_POINTS ?= $(shell seq -s, -f '127.0.0.%g' 1 $(NODES))
export PLAYER_SESSIONS_REPLICATION_STRATEGY ?= NetworkTopologyStrategy
export PLAYER_SESSIONS_REPLICATION_FACTOR ?= $(NODES)
endif

# The pool of execution environments behind `make serve`: at most this many invocations at once, across functions.
MAX_CONCURRENCY ?=
SERVE_FLAGS = $(if $(MAX_CONCURRENCY),--max-concurrency $(MAX_CONCURRENCY))

.PHONY: help install prerequisites up down status schema openapi lint format test test-unit test-integration \
	test-e2e test-tools test-faults test-infra test-cluster test-deep serve synth bench bench-concurrency

help:
	@echo "make serve      serve the API on http://127.0.0.1:$(PORT) (installs, starts Cassandra and Redis)"
	@echo "make test       run the whole test suite against a real Cassandra and Redis"
	@echo "make lint       ruff, mypy and the template checks (what CI runs before the tests)"
	@echo "make test-unit / test-integration / test-e2e / test-faults / test-infra / test-cluster   one tier"
	@echo "make test-tools the local tooling's own tests (gateway, loaders, meter, benchmark, cost)"
	@echo "make test-deep  the property tests with twenty times their examples (minutes)"
	@echo "make up / down  start / stop the local Cassandra and Redis (idempotent; down also stops the tests' own)"
	@echo "NODES=3         with up, serve: a three-node Cassandra cluster, the keyspace replicated three times"
	@echo "make bench      generate and load $(EVENTS) events, then measure every route and write path"

install:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen

# Redis (apt-get as root on Debian, else the command to run), readelf, and the Lambda Runtime Interface
# Emulator built with Go into .build/tools/bin; quick when all is there.
prerequisites: install
	tools/install_prerequisites.sh

up: prerequisites
	tools/local_services.sh up
	$(UV) run python -m player_sessions_local.schema_tool apply

down:
	tools/local_services.sh down
	tools/test_services.sh down

status:
	tools/local_services.sh status

schema:
	$(UV) run python -m player_sessions_local.schema_tool print

serve: up
	$(UV) run python -m player_sessions_local.gateway --port $(PORT) $(SERVE_FLAGS)

openapi: install
	$(UV) run python -m player_sessions_local.openapi --write

# The quality gate CI runs before the tests: ruff (lint and format), mypy (strict on the deployed code), and
# checkov on the synthesized template (cdk-nag and cfn-guard run inside the synthesis itself).
lint: install
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	$(UV) run python -m player_sessions_local.build.layer
	$(UV) run python -m infra_cdk.app
	$(UV) tool run --from checkov==3.3.30 checkov --quiet --compact --framework cloudformation --skip-download \
		--config-file .checkov.yaml -f cdk.out/PlayerSessions.template.json

format: install
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

# The tests run on a Cassandra and Redis of their own (tools/test_services.sh: .local/test/, free ports), never
# on `make up`'s nor anyone else's. One target per tier; `make test` runs them all, the cluster tier last, on a
# three-node cluster of its own (.local/test-cluster/). PYTEST_ARGS narrows the one-node run.
PYTEST_ARGS ?=
test: prerequisites
	$(UV) run python -m player_sessions_local.build.target
	tools/test_services.sh run -- $(UV) run pytest --ignore=tests/cluster $(PYTEST_ARGS)
	@# The one node's 2 GiB and its compactions are the cluster's to have on two cores.
	tools/test_services.sh stop
	$(MAKE) --no-print-directory test-cluster

# Domain logic, models and the gateway's pieces, in memory, with sockets blocked: no service needed.
test-unit: install
	$(UV) run pytest tests/unit

# The property tests with twenty times their usual examples (minutes): a nightly job, or before a change to the
# builder or the readers lands.
test-deep: install
	PROPERTY_DEPTH=20 $(UV) run pytest tests/unit/test_start_counts_properties.py \
		tests/unit/test_live_ops_properties.py tests/unit/test_hostile_events.py

test-integration: prerequisites
	tools/test_services.sh run -- $(UV) run pytest tests/integration

test-e2e: prerequisites
	tools/test_services.sh run -- $(UV) run pytest tests/e2e

# The tooling's own tests: the local gateway and its execution environments, loaders, work meter, benchmark,
# cost model. The three tiers above are the product alone.
test-tools: prerequisites
	tools/test_services.sh run -- $(UV) run pytest tests/tools

test-faults: prerequisites
	tools/test_services.sh run -- $(UV) run pytest tests/faults

# Faults of a replicated cluster: replicas killed under load, two of three down, one coming back, two
# coordinators completing one session (tests/cluster, docs/faults.md).
test-cluster: prerequisites
	TEST_NODES=3 tools/test_services.sh run -- $(UV) run pytest tests/cluster $(CLUSTER_PYTEST_ARGS)

test-infra: install
	$(UV) run python -m player_sessions_local.build.target
	$(UV) run pytest tests/infra

# The CloudFormation template, offline (no AWS credentials, no Docker): builds the dependency layer into
# .build/layer (aarch64 wheels, cached), then runs the CDK app, cdk-nag included, which writes cdk.out/.
synth: install
	$(UV) run python -m player_sessions_local.build.layer
	$(UV) run python -m infra_cdk.app

# The benchmark (docs/benchmarks.md): generates and loads EVENTS events into keyspaces of its own, then measures
# latency per route, the loader's and HTTP ingest's throughput against a bare loop of inserts, and counts rows.
# Results go to bench-results/<date>/ (summary.md, latency.png, results.json). `make bench EVENTS=200000`.
EVENTS ?= 1000000
bench: up
	$(UV) run python -m player_sessions_local.bench --events $(EVENTS)

# The gateway's pool of execution environments against the one-environment gateway (--in-process), as many
# clients as the pool's environments and one, then each route's open-model capacity, in one run (docs/benchmarks.md, "Concurrency"): bench-results/concurrency-<time>/summary.md.
CONCURRENCY_EVENTS ?= 100000
bench-concurrency: up
	$(UV) run python -m player_sessions_local.concurrency_bench --events $(CONCURRENCY_EVENTS)
