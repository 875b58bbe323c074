#!/usr/bin/env bash
# Set up the environment, lint, and run the whole test suite.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
bash scripts/setup_env.sh || exit 1
. .venv/bin/activate
export DS_ACCELERATOR=cpu
ruff check . || exit 1
shellcheck --exclude=SC1091 scripts/*.sh .ci/run launch/slurm.sbatch docker/entrypoint.sh || exit 1
hadolint docker/Dockerfile || exit 1
python -m pytest -q --hypothesis-profile=ci "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
