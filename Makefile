# Every command a user needs. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash
UV ?= uv
PYTEST_ARGS ?=

.PHONY: alerts-check k8s-check help install dev demo test lint fmt cov services docs bench coverage-floors console \
	loadtest loadtest-local loadtest-smoke capacity compose-smoke replicas sbom chart-package secrets

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

install: ## install the workspace (all packages and dev tools) from uv.lock
	$(UV) sync --locked

dev: ## run the whole platform natively (migrations, users, orders, gateway, worker); Ctrl-C stops it
	$(UV) sync
	@# The console is a convenience: without npm (or if its build fails) the platform still starts.
	@if command -v npm >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory console || echo "make dev: the console did not build; /console stays empty"; \
	else echo "make dev: npm not found, the console is not built (Node 20 and npm, then make console)"; fi
	$(UV) run chassis-dev

console: ## build the web console into console/dist (the gateway serves it at /console); Node 20 + npm
	@# npm ci only when the lockfile changed since the last install: it deletes node_modules first.
	cd console && { [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund; } \
		&& npm run build

demo: ## one user's journey through the running platform (`make dev` in another terminal)
	$(UV) run chassis-demo

test: ## run the whole test suite against real Postgres and Redis, with the coverage floors
	$(UV) run coverage erase
	@# Hypothesis builds its UTF-8 table once per checkout (.hypothesis/); under coverage's tracer
	@# that took minutes and ran the schemathesis tests past their timeout, so build it untraced.
	-@$(UV) run python -c "from hypothesis.internal.charmap import intervals_from_codec as f; f('utf-8')"
	$(UV) run coverage run -m pytest --durations=15 $(PYTEST_ARGS)
	$(UV) run coverage combine -q
	$(UV) run coverage report
	@$(MAKE) --no-print-directory coverage-floors

coverage-floors: ## each package's coverage against its floor (chassis 90 %, services and devkit 85 %)
	$(UV) run python .ci/coverage_floors.py

cov: test ## the test suite plus an HTML coverage report in htmlcov/
	$(UV) run coverage html

lint: ## ruff (lint + format check), mypy (strict), import-linter (the import boundaries), module sizes
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	$(UV) run lint-imports --no-cache
	$(UV) run python .ci/module_sizes.py

fmt: ## format and autofix
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

services: ## check that Postgres and Redis answer on 127.0.0.1, start them if not
	bash .ci/services.sh

SERVICE_SETTINGS := users.settings:UsersSettings orders.settings:OrdersSettings \
	gateway.settings:GatewaySettings worker.settings:WorkerSettings

docs: ## regenerate docs/settings.md from the settings models (chassis and services)
	$(UV) run python -m chassis.settings_reference $(SERVICE_SETTINGS) > docs/settings.md

replicas: ## two replicas of every service behind nginx, a rolling restart; figures in docs/reliability.md
	$(UV) run pytest tests/replicas -q $(PYTEST_ARGS)

secrets: ## the secret files docker-compose.yml mounts (./secrets or CHASSIS_SECRETS_DIR; random, never overwritten)
	bash scripts/compose-secrets.sh

compose-smoke: ## the images built and docker-compose.yml's core up on podman, the demo through it, SIGTERM drains (root; podman, debootstrap, runc, dnsname from Debian)
	$(UV) run python -m tests.containers.smoke

SBOM_DIR ?= reports/sbom
sbom: ## a CycloneDX 1.5 SBOM per service image from uv.lock (what the image installs): $(SBOM_DIR)/<service>.cdx.json
	@mkdir -p $(SBOM_DIR)
	@for service in users orders gateway worker; do \
		$(UV) export --quiet --frozen --no-dev --package $$service --format cyclonedx1.5 \
			--output-file $(SBOM_DIR)/$$service.cdx.json || exit 1; \
		echo "$(SBOM_DIR)/$$service.cdx.json"; \
	done

CHART_DIR ?= reports/chart
chart-package: ## `helm package` of deploy/helm/chassis (Helm's own engine, no helm binary) into $(CHART_DIR)/
	$(UV) run python -m tests.deploy.package_chart $(CHART_DIR)

alerts-check: ## Prometheus rules and their promtool tests, runbook links, Alertmanager config (promtool, amtool)
	$(UV) run pytest tests/deploy/test_observability.py tests/deploy/test_runbooks.py \
		tests/deploy/test_alertmanager.py -q

k8s-check: ## the Helm chart (lint, render, kubernetes-validate 1.29/1.33) and Tiltfile checks alone
	$(UV) run pytest tests/deploy/test_helm.py tests/deploy/test_helm_network.py \
		tests/deploy/test_helm_secrets.py tests/deploy/test_tiltfile.py -q

bench: ## chassis cost, gateway cost, writes, event latency (wrk if installed); BENCH_ARGS="--only gateway"
	$(UV) run python bench/run.py $(BENCH_ARGS)

# --- load tests (loadtests/; reports in reports/, git-ignored) --------------------------------
HOST ?=
SUITE ?= journey
USERS ?= 20
SPAWN_RATE ?= 2
RUN_TIME ?= 2m
SHAPE ?=
STEP_USERS ?= 10
STEP_TIME ?= 30s
STEPS ?= 6
LOCUST_ARGS ?=
LOCAL_GATEWAY := http://127.0.0.1:8000
# make dev's gateway trusts loopback as a proxy: one X-Forwarded-For address per simulated
# user (RFC 2544 benchmarking range, never routed) gives each its own per-IP limits.
LOCAL_CLIENT_IPS := 198.18.0.0/15

loadtest: ## load-test any target: HOST=<url> [SUITE= USERS= SPAWN_RATE= RUN_TIME= SHAPE= LOCUST_ARGS=]
	@test -n "$(HOST)" || { echo "usage: make loadtest HOST=https://staging.example.com [USERS=20 RUN_TIME=2m ...]" >&2; exit 2; }
	$(UV) run python -m loadtests.run --host "$(HOST)" --suite $(SUITE) --users $(USERS) \
		--spawn-rate $(SPAWN_RATE) --run-time $(RUN_TIME) $(if $(SHAPE),--shape $(SHAPE)) -- $(LOCUST_ARGS)

loadtest-local: ## the journey against `make dev` (10 users, 1 min; same variables as loadtest)
	@$(MAKE) --no-print-directory loadtest HOST=$(LOCAL_GATEWAY) USERS=$(if $(filter command line,$(origin USERS)),$(USERS),10) \
		SPAWN_RATE=$(if $(filter command line,$(origin SPAWN_RATE)),$(SPAWN_RATE),1) \
		RUN_TIME=$(if $(filter command line,$(origin RUN_TIME)),$(RUN_TIME),1m) \
		LOCUST_ARGS="--client-ips $(LOCAL_CLIENT_IPS) $(LOCUST_ARGS)"

loadtest-smoke: ## the CI smoke: 6 users for 20 s, SLO gates on (HOST defaults to make dev's gateway)
	$(UV) run python -m loadtests.run --host "$(or $(HOST),$(LOCAL_GATEWAY))" --smoke -- $(LOCUST_ARGS)

capacity: ## step load until an SLO breaks: summary.md + capacity.png in reports/capacity-<ts>/ (HOST= STEP_USERS= STEP_TIME= STEPS=)
	$(UV) run python -m loadtests.capacity --host "$(or $(HOST),$(LOCAL_GATEWAY))" --suite $(SUITE) \
		--step-users $(STEP_USERS) --step-time $(STEP_TIME) --steps $(STEPS) --spawn-rate $(SPAWN_RATE) \
		-- $(if $(HOST),,--client-ips $(LOCAL_CLIENT_IPS)) $(LOCUST_ARGS)
