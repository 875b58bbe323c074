"""The planner's figures against measurements on the real DeepSpeed engine (fp32, CPU, gloo).

One torchrun launch per world size in {1, 2, 4} (the three side by side) runs
tests/workers/planner_cases.py, which measures, without patching any module:

- ``layered_K*_M*``: a small torch module with two optimizer parameter groups (odd sizes, so
  DeepSpeed's padding shows) at ZeRO-2, T = 1, K in {2, 4, 8, 16} with one micro-batch per task and
  K = 4 with two; the planner is given the layout (``layout_of``) and L, as a user of ``plan`` would;
- ``tp{T}_{kind}_s{stage}``: a megatron-core translation model at T = 1 (N = 1, 2) and T = 2
  (N = 1, 2) and ZeRO stages 0 to 3; the planner (``plan_model``) builds the model itself on the
  meta device from the same config and reads L, Ψ and the layout off it.

Exact: the rank's partition and task buffers, L and Ψ, and the engine's one Gram all-reduce (its
bytes, and that it runs over all N·T ranks). Within 10 %: DeepSpeed's gradient reductions, counted
by DeepSpeed's comms logger minus the engine's own all-reduce (observed a few bytes over the
planned payload: DeepSpeed's scalar all-reduces of the gradient norm and overflow flag).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from distributed import WORKERS, free_port

from gradvac_ds.planning import Plan, model_layout, plan, plan_model

LAYERED = ("layered_K2_M1", "layered_K4_M1", "layered_K8_M1", "layered_K16_M1", "layered_K4_M2")
MEGATRON = {
    1: ("tp1_encdec_s2",),
    2: ("tp1_encdec_s2", "tp2_encdec_s2", "tp2_decoder_s1", "tp2_encdec_s3", "tp2_decoder_s0"),
    4: ("tp2_encdec_s2", "tp2_decoder_s1", "tp2_encdec_s3", "tp2_decoder_s0"),
}
WORLDS = tuple(MEGATRON)
CASES = [(world, case) for world in WORLDS for case in (*LAYERED, *MEGATRON[world])]
TOLERANCE = 0.10
TIMEOUT_S = 900


def _launch(world: int, out: Path, log: Path) -> subprocess.Popen:
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(world),
        "--master_port", str(free_port()), str(WORKERS / "planner_cases.py"), "--out", str(out),
    ]  # fmt: skip
    with log.open("w") as handle:
        return subprocess.Popen(cmd, env=env, stdout=handle, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def all_results(tmp_path_factory) -> dict[int, dict[str, dict]]:
    """One torchrun launch per world size, the three side by side (most of a launch is start-up)."""
    root = tmp_path_factory.mktemp("planner")
    outs = {world: root / f"results{world}.jsonl" for world in WORLDS}
    logs = {world: root / f"log{world}.txt" for world in WORLDS}
    procs = {world: _launch(world, outs[world], logs[world]) for world in WORLDS}
    try:
        for proc in procs.values():
            proc.wait(timeout=TIMEOUT_S)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    results = {}
    for world in WORLDS:
        rows = (
            [json.loads(line) for line in outs[world].read_text().splitlines()]
            if outs[world].exists()
            else []
        )
        if procs[world].returncode != 0 or not rows:
            log = logs[world].read_text(errors="replace")[-6000:]
            pytest.fail(
                f"planner_cases.py on {world} processes failed (rc={procs[world].returncode}):\n{log}"
            )
        results[world] = {row["case"]: row for row in rows}
    return results


def _case(all_results, world: int, case: str) -> dict:
    result = all_results[world][case]
    assert "error" not in result, result["error"]
    return result


def _plan(result: dict) -> Plan:
    """The planner's answer from the run's description alone (plus L and the layout for the
    torch module, which the planner cannot build)."""
    run = result["run"]
    common = {
        "dp": run["dp"],
        "zero_stage": run["zero_stage"],
        "precision": "fp32",
        "buffer_dtype": "fp32",
        "optimizer": "adamw",
        "micro_batches_per_task": run["micro_batches_per_task"],
    }
    if "model" in run:
        return plan_model(
            run["model"], run["tasks"], vocab_size=run["vocab"], kind=run["kind"], tp=run["tp"], **common
        )
    layout = tuple(tuple(group) for group in run["layout"])
    return plan(run["params"], run["tasks"], groups=result["measured"]["groups"], layout=layout, **common)


@pytest.mark.parametrize(("world", "case"), CASES)
def test_partition_buffers_and_gram_are_exact(all_results, world, case):
    result = _case(all_results, world, case)
    measured, planned = result["measured"], _plan(result)
    comm = planned.gradvac_ds.communication
    assert measured["local_grad_numel"] == planned.local_grad_numel
    assert measured["task_buffer_bytes"] == planned.gradvac_ds.memory.task_buffers
    assert measured["params_per_tp_rank"] == planned.params_per_tp_rank
    assert measured["groups"] == planned.inputs.groups
    # one all-reduce per step, of L·K² + SIGNATURE_SLOTS float64s, over all N·T ranks
    assert measured["gram_calls_per_step"] == 1
    assert measured["gram_bytes_per_step"] == comm.gram_allreduce_payload_bytes
    assert measured["gram_ranks"] == comm.gram_allreduce_ranks == result["run"]["dp"] * result["run"]["tp"]
    # DeepSpeed's comms logger saw the engine's all-reduce too, so subtracting it is meaningful
    for step in result["per_step_rank0"]:
        assert step["logged"]["all_reduce"] >= step["engine_all_reduce_bytes"] > 0


@pytest.mark.parametrize(("world", "case"), CASES)
def test_gradient_reductions_within_ten_percent(all_results, world, case):
    result = _case(all_results, world, case)
    measured = result["measured"]["grad_reduction_bytes_per_step"]
    planned = _plan(result).gradvac_ds.communication.grad_reduction_payload_bytes
    assert planned > 0
    assert abs(measured - planned) <= TOLERANCE * planned, (measured, planned, result["per_step_rank0"])


@pytest.mark.parametrize("world", [2, 4])
def test_a_layout_taken_at_t1_misses_a_t2_run(all_results, world):
    """Negative control: the T = 2 run's Ψ and partition are not those of the T = 1 model, so the
    exact checks above would catch a planner that ignored T in the meta build."""
    result = _case(all_results, world, "tp2_encdec_s2")
    run = result["run"]
    wrong = model_layout(run["model"], run["vocab"], run["kind"], 1)
    assert result["measured"]["params_per_tp_rank"] < wrong.params_per_tp_rank


@pytest.mark.parametrize("world", WORLDS)
def test_buffers_shrink_with_data_parallel_size(all_results, world):
    """K·n_local: per-rank buffers scale as 1/N (up to padding) and linearly in K."""
    base = _case(all_results, 1, "layered_K4_M1")["measured"]["task_buffer_bytes"]
    here = {case: _case(all_results, world, case)["measured"]["task_buffer_bytes"] for case in LAYERED}
    assert here["layered_K4_M1"] == pytest.approx(base / world, rel=0.01)
    assert here["layered_K16_M1"] == 4 * here["layered_K4_M1"] == 8 * here["layered_K2_M1"]
