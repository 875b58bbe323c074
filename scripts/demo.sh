#!/usr/bin/env bash
# Set up the environment and run the main job: a small multilingual GradVac training with the
# DeepSpeed launcher on 2 CPU processes (synthetic language families, tiny megatron-core model),
# comparing sum / pcgrad / gradvac, then the gradient-similarity report of the GradVac run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
. .venv/bin/activate
export DS_ACCELERATOR=${DS_ACCELERATOR:-cpu} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
CONFIG=${CONFIG:-configs/demo.yaml}
RUN_DIR=$(python -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['run_dir'])" "$CONFIG")
case " $* " in
  *" --resume "*) ;;
  *) set -- --overwrite "$@" ;;  # the demo starts again from scratch unless told to resume
esac
deepspeed --num_gpus "${NUM_PROCS:-2}" launch/train.py --config "$CONFIG" "$@"
gradvac-analyze "$RUN_DIR/gradvac" --families "$RUN_DIR/families.csv"
echo "BLEU table: $RUN_DIR/bleu.json   similarity report: $RUN_DIR/gradvac/analysis/report.txt"
