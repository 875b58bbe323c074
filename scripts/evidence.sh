#!/usr/bin/env bash
# The evidence experiment of configs/evidence_bible.yaml: sum and gradvac x 3 seeds on the Bible
# corpus (8 languages of 5 branches into English), then the seed-aware comparison with paired
# significance and the similarity-vs-distance intervals (Mantel tests, vocabulary control).
#
#   bash scripts/evidence.sh                       # all of it; rerun to resume after an interruption
#   BIBLE=/data/bible bash scripts/evidence.sh --set training.steps=500   # extra args go to training
#
# The Bible text comes from scripts/fetch_bible.py (source, checksums and licences: data/eval/README.md);
# it runs here when $BIBLE/en.txt is missing. BIBLE defaults to data/eval/bible.
#
# Every mode x seed resumes from its latest checkpoint (--resume), so the script can be stopped and
# restarted; a finished mode is not retrained. On a shared box wrap it in the box's lock, e.g.
#   nohup flock /tmp/gradvac-heavy.lock bash scripts/evidence.sh > evidence.log 2>&1 &
#
# Expected wall time on a 2-core CPU box with nothing else running (2 processes): 3 h 30 min to 4 h
# (the header of configs/evidence_bible.yaml has the measurements). Printed at the start.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
. .venv/bin/activate
. scripts/forward_signals.sh
export DS_ACCELERATOR=${DS_ACCELERATOR:-cpu} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
CONFIG=${CONFIG:-configs/evidence_bible.yaml}
BIBLE=${BIBLE:-data/eval/bible}
DISTANCES=${DISTANCES:-$(dirname "$BIBLE")/distances.csv}
LANGUAGES=${LANGUAGES:-$(dirname "$BIBLE")/languages.csv}
RUN_DIR=$(python -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['run_dir'])" "$CONFIG")
EXPECTED="3 h 30 min to 4 h on 2 CPU cores: 6 trainings x (1500 steps x 1.2 s + validation + beam decoding)"
if [ ! -f "$BIBLE/en.txt" ]; then
  python scripts/fetch_bible.py --out "$BIBLE"
fi
for path in "$BIBLE/en.txt" "$DISTANCES" "$LANGUAGES"; do
  [ -f "$path" ] || { echo "evidence.sh: $path not found (set BIBLE=<dir with en.txt ...>)" >&2; exit 2; }
done
echo "evidence.sh: $CONFIG -> $RUN_DIR ($EXPECTED)"
# SentencePiece and the indexed datasets once (reused when the data section is unchanged)
gradvac-prepare --config "$CONFIG" --set "data.path=$BIBLE"
run_forwarding_signals deepspeed --num_gpus "${NUM_PROCS:-2}" launch/train.py --config "$CONFIG" \
  --set "data.path=$BIBLE" --resume "$@"
python -m gradvac_ds.analysis.compare "$RUN_DIR" --out "$RUN_DIR/compare" \
  --distances "$DISTANCES" --distance-column glottolog_tree
for seed_dir in "$RUN_DIR"/seed*; do
  gradvac-analyze "$seed_dir/gradvac" --distances "$DISTANCES" --distance-column glottolog_tree \
    --families "$LANGUAGES" --family-column family > /dev/null
done
echo "comparison: $RUN_DIR/compare/compare.txt (json, png beside it); per-seed reports: $RUN_DIR/seed*/gradvac/analysis/"
