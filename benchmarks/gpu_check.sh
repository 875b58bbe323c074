#!/usr/bin/env bash
# GPU check of gradvac_ds on one CUDA device, <= 8 minutes (the step timeouts sum to 480 s); everything
# it produces goes under $OUT.
#
#   OUT=/path bash benchmarks/gpu_check.sh             # on a machine with one GPU
#   OUT=/path bash benchmarks/gpu_check.sh --dry-run   # the same steps at toy sizes on CPU (CI)
#
# Steps (each logs to $OUT/<step>.log; a failed step is recorded and the next one still runs):
#   env       python, torch, CUDA, NCCL, DeepSpeed, megatron-core and Transformer Engine versions
#   install   pip install -e .[train] only if torch/deepspeed/megatron-core do not import
#             ($WHEELS: a local wheel directory for machines without a package index)
#   exact_w1  the engine exactness cases (tests/workers/engine_cases.py) on CUDA/NCCL, world size 1
#   exact_w2  the same on 2 processes sharing the one GPU (NCCL may refuse a shared device: recorded)
#   bf16_mcore  bf16 ZeRO-2 training steps of a megatron-core GPT (Transformer Engine's layer spec
#             when it imports) through benchmarks/bench_scale.py
#   engine    benchmarks/bench_engine.py at a GPU-sized model (world size 1)
#   kernels   benchmarks/bench_kernels.py: the Gram/combine kernels against the copy bandwidth
# $OUT/summary.json holds every step's exit status and the last JSON line of each benchmark.
set -uo pipefail

DRY_RUN=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY_RUN=1; fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-$ROOT/runs/gpu_check}"
mkdir -p "$OUT"
cd "$ROOT" || exit 1
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONWARNINGS=ignore
PY="${PYTHON:-python}"

if [[ $DRY_RUN == 1 ]]; then
  export DS_ACCELERATOR=cpu OMP_NUM_THREADS=1
  CASES="s2_fp32,sum_s2,s3_fp32_offload"
  BF16_ARGS=(--sizes "toy=64:2:128:2:512" --stages 2 --k-sweep "" --steps 1 --warmup 0 --world 1 --seq 8
             --precision bf16)
  ENGINE_ARGS=(--world 1 --tasks 3 --naive-tasks 3 --steps 1 --warmup 0 --phase-steps 1 --layers 1
               --d-model 32 --heads 2 --ffn 64 --vocab 64 --seq 16 --batch 2)
  KERNEL_ARGS=(--tasks 4 --numel 100000 --repeats 1)
  W2_BACKEND_NOTE="gloo on CPU"
  TIMEOUT_SCALE=5  # two shared CPU cores, not a GPU
else
  export DS_ACCELERATOR=cuda
  CASES="s0_fp32,s1_fp32,s2_fp32,s2_fp32_cg1_oc1_rr,s3_fp32,s3_fp32_p0,pcgrad_s2,s0_bf16,s1_bf16_fp32acc,s2_bf16,s2_bf16_fp32acc,s3_bf16,s2_fp16,s3_fp16,sum_s0,sum_s2,sum_s3,s2_fp32_offload,s3_fp32_offload,sum_s2_offload,sum_s3_offload,comm_s2,comm_s3,overflow_s2_fp16"
  BF16_ARGS=(--sizes "gpt110m" --stages 2 --k-sweep "" --steps 2 --warmup 1 --world 1
             --precision bf16 --batch 8 --seq 256 --bucket 50000000)
  ENGINE_ARGS=(--world 1 --tasks 16 --naive-tasks 16 --steps 4 --warmup 1 --phase-steps 2 --layers 8
               --d-model 1024 --heads 16 --ffn 4096 --vocab 32000 --seq 256 --batch 8)
  KERNEL_ARGS=(--tasks 16 --numel 50000000 --repeats 5)
  W2_BACKEND_NOTE="NCCL, 2 ranks on one GPU"
  TIMEOUT_SCALE=1
fi

declare -A STATUS
step() {  # step NAME TIMEOUT_S COMMAND...
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  echo "[gpu_check] $name: $*" | tee -a "$OUT/steps.txt"
  timeout "$((limit * TIMEOUT_SCALE))" bash -c '"$@"' _ "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  STATUS[$name]=$rc
  echo "[gpu_check] $name: rc=$rc in $((SECONDS - start)) s" | tee -a "$OUT/steps.txt"
}

env_report() {
  "$PY" - <<'EOF'
import importlib, json, platform, sys
out = {"python": sys.version.split()[0], "platform": platform.platform()}
for name in ("torch", "deepspeed", "megatron.core", "transformer_engine"):
    try:
        out[name] = getattr(importlib.import_module(name), "__version__", "importable")
    except Exception as err:  # a missing optional package is a finding, not a failure
        out[name] = f"not importable: {type(err).__name__}: {err}"
try:
    import torch
    out["cuda"] = torch.version.cuda
    out["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        out["device"] = torch.cuda.get_device_name(0)
        out["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
except Exception as err:
    out["cuda_error"] = str(err)
print(json.dumps(out, indent=1))
EOF
}

install_if_missing() {
  if "$PY" -c "import torch, deepspeed, megatron.core" 2>/dev/null; then
    echo "torch, deepspeed and megatron-core import: nothing to install"
    return 0
  fi
  if [[ -n "${WHEELS:-}" ]]; then
    "$PY" -m pip install --no-index --find-links "$WHEELS" -e ".[train]"
  else
    "$PY" -m pip install -e ".[train]"
  fi
}

exact() {  # exact WORLD RESULT_FILE
  rm -f "$2"
  "$PY" -m torch.distributed.run --nproc_per_node "$1" --master_addr 127.0.0.1 --master_port "$((29500 + RANDOM % 1000))" \
    tests/workers/engine_cases.py --out "$2" --cases "$CASES"
  "$PY" - "$2" <<'EOF'
import json, sys
sys.path.insert(0, "tests/workers")
from engine_cases import judge
summary, ok = judge([json.loads(line) for line in open(sys.argv[1])])
print(json.dumps(summary))
sys.exit(0 if ok else 1)
EOF
}

export -f env_report install_if_missing exact
export PY CASES
step env 30 env_report
if [[ $DRY_RUN == 1 ]]; then
  echo "dry run: no installation" >"$OUT/install.log"; STATUS[install]=0
else
  step install 120 install_if_missing
fi
step exact_w1 90 exact 1 "$OUT/exact_w1.jsonl"
step exact_w2 60 exact 2 "$OUT/exact_w2.jsonl"
step bf16_mcore 90 "$PY" benchmarks/bench_scale.py "${BF16_ARGS[@]}" --plot "$OUT/bf16_mcore.png"
step engine 80 "$PY" benchmarks/bench_engine.py "${ENGINE_ARGS[@]}"
step kernels 10 "$PY" benchmarks/bench_kernels.py "${KERNEL_ARGS[@]}"

"$PY" - "$OUT" "$DRY_RUN" "$W2_BACKEND_NOTE" "$(for k in "${!STATUS[@]}"; do echo "$k=${STATUS[$k]}"; done)" <<'EOF'
import json, sys
from pathlib import Path
out, dry_run, w2_note, statuses = Path(sys.argv[1]), sys.argv[2] == "1", sys.argv[3], sys.argv[4]
status = dict(item.split("=") for item in statuses.split())
summary = {"dry_run": dry_run, "exit_status": {k: int(v) for k, v in sorted(status.items())}, "exact_w2_backend": w2_note}
for name in ("exact_w1", "exact_w2", "bf16_mcore", "engine", "kernels"):
    log = out / f"{name}.log"
    lines = [l for l in log.read_text().splitlines() if l.startswith("{")] if log.exists() else []
    summary[name] = json.loads(lines[-1]) if lines else None
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary["exit_status"]))
EOF
# exact_w2 may fail where NCCL refuses two ranks on one device; every other step must succeed
for name in env install exact_w1 bf16_mcore engine kernels; do
  [[ "${STATUS[$name]}" == 0 ]] || exit 1
done
