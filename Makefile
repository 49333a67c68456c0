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
# The PAD's zh-CN card screenshots need a CJK font; the demo still runs without one.
DEMO_DEPS ?= fonts-wqy-microhei

.PHONY: test demo setup lint typecheck clean

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
	$(BIN)/pytest

demo: $(VENV)/.installed
	-scripts/ensure-system-deps.sh $(DEMO_DEPS)
	$(BIN)/branch-edge demo --out $(DEMO_OUT)

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: $(VENV)/.installed
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .mypy_cache .ruff_cache
