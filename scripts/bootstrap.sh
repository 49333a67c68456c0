#!/usr/bin/env bash
# Creates .venv (when missing) and installs Branch Edge with its dev extras.
# Idempotent: re-running only re-installs when setup.cfg changed (the Makefile
# tracks that through .venv/.installed).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip setuptools wheel
.venv/bin/python -m pip install --quiet -e ".[dev]"
# insightface pulls the GUI wheel opencv-python; keep only the headless wheel.
# Both wheels own the same cv2/ folder, so the headless one is reinstalled
# after the GUI one is removed.
if .venv/bin/python -m pip show --quiet opencv-python >/dev/null 2>&1; then
  .venv/bin/python -m pip uninstall --quiet -y opencv-python
  headless=$(grep -oE 'opencv-python-headless==[0-9.]+' setup.cfg)
  .venv/bin/python -m pip install --quiet --force-reinstall --no-deps "$headless"
fi
touch .venv/.installed
