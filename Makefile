# Every command a user needs. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash
UV ?= uv
PYTEST_ARGS ?=

.PHONY: help install dev demo test lint fmt cov services docs bench coverage-floors

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install: ## install the workspace (all packages and dev tools) from uv.lock
	$(UV) sync --locked

dev: ## run the whole platform natively (migrations, users, orders, gateway, worker); Ctrl-C stops it
	$(UV) sync
	$(UV) run chassis-dev

demo: ## one user's journey through the running platform (`make dev` in another terminal)
	$(UV) run chassis-demo

test: ## run the whole test suite against real Postgres and Redis, with the coverage floors
	$(UV) run coverage erase
	$(UV) run coverage run -m pytest $(PYTEST_ARGS)
	$(UV) run coverage combine -q
	$(UV) run coverage report
	@$(MAKE) --no-print-directory coverage-floors

coverage-floors: ## each package's coverage against its floor (chassis 90 %, services and devkit 85 %)
	$(UV) run python .ci/coverage_floors.py

cov: test ## the test suite plus an HTML coverage report in htmlcov/
	$(UV) run coverage html

lint: ## ruff (lint + format check) and mypy (strict on libs/chassis)
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy

fmt: ## format and autofix
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

services: ## check that Postgres and Redis answer on 127.0.0.1, start them if not
	bash .ci/services.sh

SERVICE_SETTINGS := users.settings:UsersSettings orders.settings:OrdersSettings \
	gateway.settings:GatewaySettings worker.settings:WorkerSettings

docs: ## regenerate docs/settings.md from the settings models (chassis and services)
	$(UV) run python -m chassis.settings_reference $(SERVICE_SETTINGS) > docs/settings.md

bench: ## chassis request-path cost vs bare FastAPI, side by side (wrk if installed); JSON in reports/
	$(UV) run python bench/chassis_overhead.py
