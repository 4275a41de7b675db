# stepspot: every target works from a fresh clone with Python 3.11+, make and the package registries.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ENV    ?= dev
WORKFLOW ?= examples/molecular-dynamics/workflow.json

.PHONY: help venv test lint bench demo clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

venv: $(VENV)/.installed ## create .venv with stepspot and its test tools (exact pins)

$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

test: venv ## run the whole test suite (unit, integration, e2e, terraform)
	$(BIN)/pytest

lint: venv ## ruff and mypy
	$(BIN)/ruff check functions tests bench
	$(BIN)/ruff format --check functions tests bench
	$(BIN)/mypy functions

bench: venv ## benchmarks: planner scale, checkpoints, scheduling
	$(BIN)/python -m bench

demo: venv ## run the molecular dynamics sample locally, no AWS account needed
	$(BIN)/stepspot local $(WORKFLOW)

clean: ## remove the virtualenvs, build output and caches
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
