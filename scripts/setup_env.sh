#!/usr/bin/env bash
# Create (or reuse) .venv and install gradvac_ds with the exact versions of constraints.txt.
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
python -m pip install -q -c constraints.txt "torch==2.13.0"
python -m pip install -q -c constraints.txt -e ".[dev]"
# DeepSpeed compiles its CPU communication op (deepspeed_shm_comm) at a run's first start unless it is
# built: build it now, so that no run compiles it (a run killed while compiling would leave torch's build
# lock behind; gradvac-train reports such a stale lock with its path instead of waiting on it).
DS_ACCELERATOR=${DS_ACCELERATOR:-cpu} python -m gradvac_ds.training.jit_ops
