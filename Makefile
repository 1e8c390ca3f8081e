# crm-feature-platform: `make help` lists the targets. Logic lives in the `crm` CLI and the tools'
# own CLIs; these targets only wrap them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN := $(UV) run --frozen
PYTEST_ARGS ?=

.PHONY: help setup lint format test test-unit stack-up stack-down stack-status demo pipeline \
	land validate features materialize train serve explorer deploy worker bench-serving clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: ## Install uv if missing, then the locked environment (uv sync --frozen)
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen

lint: setup ## ruff (lint + format), mypy, import-linter (layers, no cycles), deptry (declared imports)
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy crm bench flows serving training feature_tables feature_repo validation ingestion infra
	$(RUN) lint-imports
	$(RUN) deptry .

format: setup ## Apply ruff's fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

test: setup ## The whole suite: unit, then integration against a real local stack
	$(RUN) pytest $(PYTEST_ARGS)

test-unit: setup ## Unit tests only: pure and fast, no services, no pipeline run
	$(RUN) pytest -m unit $(PYTEST_ARGS)

stack-up: setup ## Start PostgreSQL, S3 (SeaweedFS), MLflow and Prefect without Docker
	$(RUN) crm stack up

stack-down: setup ## Stop what stack-up started
	$(RUN) crm stack down

stack-status: setup ## Health of the local stack
	$(RUN) crm stack status

demo: setup ## The whole path on the embedded profile, then the scorer and the explorer until Ctrl-C
	$(RUN) crm demo

pipeline: setup ## land -> validate -> features -> materialize -> train, then exit
	$(RUN) crm pipeline

land: setup ## Land synthetic data into the lake (SOURCE=kaggle|dir:PATH to change)
	$(RUN) crm land --source $(or $(SOURCE),synthetic)

validate: setup ## Validate the latest landed snapshot against the data contracts
	$(RUN) crm validate

features: setup ## Compute point-in-time feature tables into the lake
	$(RUN) crm features

materialize: setup ## feast apply + materialize-incremental into the online store
	$(RUN) crm materialize

train: setup ## Train, log to MLflow, gate the registry
	$(RUN) crm train

serve: setup ## BentoML scoring service on the champion model and the online store (port 3000)
	$(RUN) bentoml serve serving.service:Scorer

explorer: setup ## Streamlit explorer: pipeline, opportunity, features, data quality, models
	$(RUN) streamlit run serving/explorer/app.py

deploy: setup ## Register the Prefect deployments (prefect.yaml) with the stack's Prefect server
	$(RUN) crm deploy

worker: setup ## Start a Prefect process worker for the deployments
	$(RUN) crm worker

bench-serving: setup ## Serving benchmark vs mlflow models serve and an empty BentoML endpoint -> bench/results/
	$(RUN) crm bench serving

clean: ## Remove local state (.crm/, .stack*/), not the environment
	rm -rf .crm .crm-test* .stack-test*
