#!/usr/bin/env bash
# Create (or reuse) .venv and install gradvac_ds with its pinned dependencies.
# torch 2.13.0 is installed first, on its own: pip then finds the CPU wheel on this machine, and the
# package's torch range is already satisfied, so no dependency pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[dev]"
