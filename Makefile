# Branch Edge — the two commands: `make demo` and `make test`.
SHELL := /bin/bash
SHARED ?= $(abspath ../shared)
# Tests and the demo find models and photos here unless the environment says otherwise.
export BRANCH_EDGE_MODELS ?= $(SHARED)/models
export BRANCH_EDGE_DATA ?= $(SHARED)/data
VENV := .venv
BIN := $(VENV)/bin
# COMMAND=debian-package pairs the tests need on the machine.
# What Qt's xcb platform plugin (a real X display) loads, and the X server the PAD's display test runs.
QT_XCB_DEPS ?= libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-randr0 \
	libxcb-render-util0 libxcb-shape0 libxcb-shm0 libxcb-sync1 libxcb-xfixes0 libxcb-xkb1 \
	libxkbcommon-x11-0 libx11-xcb1 libegl1 libfontconfig1
# The tests' IP camera (tests/rtsp_camera_server.py, run by the system Python) is GStreamer's RTSP
# server: its Python bindings, x264 (ugly), x265 and the valve (bad), JPEG and RTP (good), decoders (libav).
RTSP_CAMERA_DEPS ?= gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-good \
	gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
SYSTEM_DEPS ?= mosquitto=mosquitto ffmpeg=ffmpeg fonts-wqy-microhei $(QT_XCB_DEPS) $(RTSP_CAMERA_DEPS) \
	Xvfb=xvfb xauth=xauth \
	postgresql
DEMO_OUT ?= demo-output
# `mkdocs build --strict` writes the documentation site here (git ignores it).
DOCS_SITE ?= site
# mkdocs-material prints a banner about its successor on every build; the build needs no network.
export NO_MKDOCS_2_WARNING := 1
# The PAD's zh-CN card screenshots need a CJK font; the demo still runs without one.
# The PAD window on a real display needs the xcb libraries too.
DEMO_DEPS ?= fonts-wqy-microhei $(QT_XCB_DEPS)

.PHONY: test demo setup lint typecheck docs mutate screenshots clean

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

# Mutation testing, slow and so not part of `make test`: survival rates for edge/core, mqtt and the
# wiring functions (a sample of the mutants; MUTATE_ARGS="--sample 1" runs all), and the named wiring
# mutations, which must all be killed. Writes reports/mutation.json.
mutate: $(VENV)/.installed
	scripts/ensure-system-deps.sh mosquitto=mosquitto
	$(BIN)/python scripts/mutate.py $(MUTATE_ARGS)

# The documentation's pictures of the PAD app, from the real widgets with fictional data (offscreen).
screenshots: $(VENV)/.installed
	$(BIN)/branch-pad screenshots --out docs/screenshots

clean:
	rm -rf $(VENV) $(DEMO_OUT) $(DOCS_SITE) .pytest_cache .mypy_cache .ruff_cache .grimp_cache \
		.import_linter_cache
