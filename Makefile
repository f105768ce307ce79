# Every target installs what it needs into .venv first, so a fresh clone needs only
# python3 (3.11+) and, for synth and deploy, node.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# The browser tests (tests/browser) drive Debian's Chromium headless through playwright.
CHROMIUM := /usr/bin/chromium
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install dev test test-unit test-integration test-infra test-browser lint format bench cost synth deploy clean openapi reference-assets

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Installed once, from the distribution's packages (playwright's own downloads are never
# used); as root, or through sudo.
$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "make: $(CHROMIUM) is missing and there is no apt-get: install Chromium there (the browser tests drive it)" >&2; exit 1; }
	@echo "Installing chromium (Debian packages) for the browser tests..."
	@run=""; [ "$$(id -u)" = 0 ] || run="sudo"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  { $$run apt-get update -qq && $$run apt-get install -y -qq chromium chromium-driver >/dev/null; } \
	  || { echo "make: could not install chromium with apt-get; run 'apt-get install chromium chromium-driver' as root, then make again" >&2; exit 1; }
	@test -x $(CHROMIUM) || { echo "make: apt-get installed chromium but $(CHROMIUM) is missing" >&2; exit 1; }

node_modules/.installed-stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## Run the whole platform on 127.0.0.1 with embedded defaults (Ctrl-C stops it).
## Options go in ARGS: make dev ARGS="--keep-state" (python -m devstack --help lists them).
dev: install
	$(PY) -m devstack $(ARGS)

## Run every test tier (unit, conformance, integration, infra, browser).
test: install $(CHROMIUM)
	$(PY) -m pytest

test-unit: install
	$(PY) -m pytest tests/unit

test-integration: install
	$(PY) -m pytest tests/integration

test-infra: install
	$(PY) -m pytest tests/infra

test-browser: install $(CHROMIUM)
	$(PY) -m pytest tests/browser

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	$(PY) -m bench

## Write services/contract/openapi.json from the code (the route table and the models).
openapi: install
	$(PY) -m services.contract.openapi

## Copy Swagger UI (pinned in package.json) into the package that serves /docs.
REFERENCE_FILES := swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css LICENSE NOTICE
reference-assets: node_modules/.installed-stamp
	cp $(addprefix node_modules/swagger-ui-dist/,$(REFERENCE_FILES)) services/contract/reference/

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
	rm -rf $(VENV) node_modules cdk.out .build .pytest_cache .mypy_cache .ruff_cache test-artifacts
