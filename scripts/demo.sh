#!/usr/bin/env bash
# Set up the environment and run the main job: a small multilingual GradVac training with the
# DeepSpeed launcher on 2 CPU processes (synthetic language families, tiny megatron-core model),
# comparing the modes of the run config, then the gradient-similarity report of the GradVac run.
# Data path: synthetic corpus -> gradvac-prepare (indexed datasets) -> training on the prepared data.
# CONFIG=configs/demo_lm.yaml runs the multilingual LM pretraining demo instead; --set KEY=VALUE
# arguments go to data generation, gradvac-prepare and training alike.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
. .venv/bin/activate
. scripts/forward_signals.sh
export DS_ACCELERATOR=${DS_ACCELERATOR:-cpu} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
CONFIG=${CONFIG:-configs/demo.yaml}
SETS=()
VALUES=()
previous=""
for arg in "$@"; do
  if [ "$previous" = "--set" ]; then SETS+=(--set "$arg"); VALUES+=("$arg"); fi
  previous=$arg
done
read -r RUN_DIR SOURCE CORPUS < <(python -c "
import sys
from gradvac_ds.training.config_file import parse_overrides
from gradvac_ds.training.run_config import RunConfig
config = RunConfig.load(sys.argv[1], parse_overrides(sys.argv[2:]))
print(config.run_dir, config.data.source, config.data.path)" "$CONFIG" "${VALUES[@]}")
if [ "$SOURCE" = monolingual ] && [ ! -e "$CORPUS" ]; then
  python -m gradvac_ds.training.data.writers --config "$CONFIG" "${SETS[@]}" --layout monolingual "$CORPUS"
fi
gradvac-prepare --config "$CONFIG" "${SETS[@]}"
case " $* " in
  *" --resume "*) ;;
  *) set -- --overwrite "$@" ;;  # the demo starts again from scratch unless told to resume
esac
run_forwarding_signals deepspeed --num_gpus "${NUM_PROCS:-2}" launch/train.py --config "$CONFIG" "$@"
if [ -f "$RUN_DIR/families.csv" ]; then
  gradvac-analyze "$RUN_DIR/gradvac" --families "$RUN_DIR/families.csv"
else
  gradvac-analyze "$RUN_DIR/gradvac"
fi
if [ -f "$RUN_DIR/bleu.json" ]; then echo "BLEU table: $RUN_DIR/bleu.json"; fi
echo "validation: $RUN_DIR/gradvac/validation.json   similarity report: $RUN_DIR/gradvac/analysis/report.txt"
