"""The library core is light and layered: importing gradvac_ds and building an engine pulls none
of the application's or the tools' dependencies, and each layer imports only the layers below."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from distributed import free_port

PACKAGE = Path(__file__).resolve().parents[1] / "gradvac_ds"
HEAVY = ("megatron", "sentencepiece", "sacrebleu", "matplotlib", "scipy", "sklearn")

ENGINE_PROBE = """
import json, sys, torch
import gradvac_ds

model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))
# a torch optimizer: DeepSpeed's "optimizer" section would JIT-compile its fused Adam op here
config = {"train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 2,
          "zero_optimization": {"stage": 2}, "zero_allow_untested_optimizer": True,
          "gradvac": {"tasks": ["a", "b"], "granularity": "matrix"}}
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
engine, *_ = gradvac_ds.initialize(model=model, optimizer=optimizer, config=config)
for task in ("a", "b"):
    with engine.task(task):
        engine.backward(engine(torch.randn(2, 4)).pow(2).mean())
outcome = engine.step()
print(json.dumps({"skipped": outcome.skipped, "groups": len(outcome.group_names),
                  "heavy": sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))}))
"""


def test_building_an_engine_imports_nothing_heavy():
    env = dict(os.environ, DS_ACCELERATOR="cpu", RANK="0", WORLD_SIZE="1", LOCAL_RANK="0",
               MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), OMP_NUM_THREADS="1")  # fmt: skip
    probe = f"HEAVY = {HEAVY!r}\n" + ENGINE_PROBE
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"skipped": False, "groups": 4, "heavy": []}


# layer -> the gradvac_ds layers it may import (besides itself)
ALLOWED = {
    "core": {"core"},
    "analysis.log": {"core", "analysis.log"},
    "analysis.report": {"core", "analysis.log", "analysis.report", "analysis"},
    "analysis": {"core", "analysis.log", "analysis.report", "analysis"},
    "training": {"core", "analysis.log", "analysis.report", "analysis", "training"},
    "planning": {"core", "training", "planning"},
}


def _layer(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts or parts[0] not in ("training", "analysis", "planning"):
        return "core"
    if parts[0] == "analysis" and len(parts) > 1 and parts[1] in ("log", "report"):
        return f"analysis.{parts[1]}"
    return parts[0]


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gradvac_ds"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("gradvac_ds"))
    return found


def test_each_layer_imports_only_downward():
    violations = []
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(("gradvac_ds", *path.relative_to(PACKAGE).with_suffix("").parts))
        layer = _layer(module)
        for imported in _imports(path):
            if _layer(imported) not in ALLOWED[layer]:
                violations.append(f"{module} ({layer}) imports {imported} ({_layer(imported)})")
    assert violations == []


def test_core_modules_import_no_heavy_dependency_at_top_level():
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        names = {a.name.split(".")[0] for n in top if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module.split(".")[0] for n in top if isinstance(n, ast.ImportFrom) and n.module}
        assert not names & set(HEAVY), (path.name, names & set(HEAVY))


# inside the application: the data and model layers sit below the run config, the trainer and the
# command line; config_file (YAML with extends and --set) is a leaf every layer may read files with
TRAINING_UPPER = ("__main__", "run_config", "trainer", "checkpointing", "outputs", "evaluation")


def test_the_applications_data_and_model_layers_import_nothing_above_them():
    violations = []
    for sub in ("data", "modeling"):
        for path in (PACKAGE / "training" / sub).rglob("*.py"):
            for imported in _imports(path):
                parts = imported.split(".")
                if parts[:2] == ["gradvac_ds", "training"] and len(parts) > 2 and parts[2] in TRAINING_UPPER:
                    violations.append(f"training/{sub}/{path.name} imports {imported}")
    assert violations == []
