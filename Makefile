# Every target installs what it needs into .venv first, so a fresh clone needs only
# python3 (3.11+) and, for synth and deploy, node.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install dev test test-unit test-integration test-infra lint format bench cost synth deploy clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

node_modules/.installed-stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## Run the whole platform on 127.0.0.1 with embedded defaults (Ctrl-C stops it).
## Options go in ARGS: make dev ARGS="--keep-state" (python -m devstack --help lists them).
dev: install
	$(PY) -m devstack $(ARGS)

## Run every test tier (unit, integration, infra).
test: install
	$(PY) -m pytest

test-unit: install
	$(PY) -m pytest tests/unit

test-integration: install
	$(PY) -m pytest tests/integration

test-infra: install
	$(PY) -m pytest tests/infra

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	$(PY) -m bench

## Monthly cost of the seed workload: Lambda-only vs Switchboard, and the break-even.
cost: install
	$(PY) -m costmodel examples/workload.toml

## Synthesize the CloudFormation templates into cdk.out (no AWS account, no Docker).
synth: install node_modules/.installed-stamp
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" npx cdk synth --quiet

## Deploy every stack to the account and region of your AWS credentials.
deploy: install node_modules/.installed-stamp
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" npx cdk deploy --all

clean:
	rm -rf $(VENV) node_modules cdk.out .build .pytest_cache .mypy_cache .ruff_cache
