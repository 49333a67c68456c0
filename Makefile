# Branch Edge — the two commands: `make demo` and `make test`.
SHELL := /bin/bash
SHARED ?= $(abspath ../shared)
# Tests and the demo find models and photos here unless the environment says otherwise.
export BRANCH_EDGE_MODELS ?= $(SHARED)/models
export BRANCH_EDGE_DATA ?= $(SHARED)/data
VENV := .venv
BIN := $(VENV)/bin
# COMMAND=debian-package pairs the tests need on the machine.
SYSTEM_DEPS ?= mosquitto=mosquitto ffmpeg=ffmpeg fonts-wqy-microhei
DEMO_OUT ?= demo-output
# `mkdocs build --strict` writes the documentation site here (git ignores it).
DOCS_SITE ?= site
# mkdocs-material prints a banner about its successor on every build; the build needs no network.
export NO_MKDOCS_2_WARNING := 1
# The PAD's zh-CN card screenshots need a CJK font; the demo still runs without one.
DEMO_DEPS ?= fonts-wqy-microhei

.PHONY: test demo setup lint typecheck docs clean

$(VENV)/.installed: setup.cfg pyproject.toml scripts/bootstrap.sh
	scripts/bootstrap.sh

setup: $(VENV)/.installed

# Tests never open windows; the demo opens one when a display is present.
test: export QT_QPA_PLATFORM := offscreen
test: $(VENV)/.installed
	scripts/ensure-system-deps.sh $(SYSTEM_DEPS)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/mkdocs build --strict --quiet --site-dir $(DOCS_SITE)
	$(BIN)/pytest

demo: $(VENV)/.installed
	-scripts/ensure-system-deps.sh $(DEMO_DEPS)
	$(BIN)/branch-edge demo --out $(DEMO_OUT)

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: $(VENV)/.installed
	$(BIN)/mypy

# Regenerates the reference pages (config, CLI, MQTT contract, policies), then builds the site.
docs: $(VENV)/.installed
	$(BIN)/python scripts/docgen.py
	$(BIN)/mkdocs build --strict --site-dir $(DOCS_SITE)

clean:
	rm -rf $(VENV) $(DEMO_OUT) $(DOCS_SITE) .pytest_cache .mypy_cache .ruff_cache .grimp_cache \
		.import_linter_cache
