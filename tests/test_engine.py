"""GradVacEngine on the real DeepSpeed engine (gloo, DS_ACCELERATOR=cpu) on 2 and 4 processes.

One torchrun launch per world size runs every case of tests/workers/engine_cases.py; each test
below asserts on one case's result. The reference is a single-process run of the same model and
data with full per-task gradient vectors, the dense GradVac loop, the same clipping and Adam.

Tolerances: fp32 1e-6 relative (observed ~1e-7: summation order). bf16 keeps 8 significand bits
(unit roundoff 2^-8 = 3.9e-3) in parameters, gradients and, at stage 0, in the combined gradient,
so 2e-2 relative (about five bf16 ulps) bounds the drift over four steps. fp16 has 11 bits
(unit roundoff 4.9e-4): 2e-3 relative.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from distributed import free_port, run_torchrun
from engine_cases import FOUR_RANK_CASES, GRAMIAN_MODES, param_tolerance

# case -> (relative parameter tolerance, adapter DeepSpeed's optimizer type selects)
EQUIVALENCE = {
    "s0_fp32": (1e-6, "Zero0Adapter"),
    "s1_fp32": (1e-6, "Zero12Adapter"),
    "s2_fp32": (1e-6, "Zero12Adapter"),
    "s2_fp32_cg0_oc1": (1e-6, "Zero12Adapter"),
    "s2_fp32_cg1_oc1_rr": (1e-6, "Zero12Adapter"),
    "s3_fp32": (1e-6, "Zero3Adapter"),
    "s3_fp32_p0": (1e-6, "Zero3Adapter"),
    "pcgrad_s2": (1e-6, "Zero12Adapter"),
    "s0_bf16": (2e-2, "Zero0Adapter"),
    "s1_bf16_fp32acc": (2e-2, "BF16OptimizerAdapter"),
    "s2_bf16": (2e-2, "Zero12Adapter"),
    "s2_bf16_fp32acc": (2e-2, "Zero12Adapter"),
    "s3_bf16": (2e-2, "Zero3Adapter"),
    "s2_fp16": (2e-3, "Zero12Adapter"),
    "s3_fp16": (2e-3, "Zero3Adapter"),
    "s2_fp32_offload": (1e-6, "Zero2OffloadAdapter"),
    "s3_fp32_offload": (1e-6, "Zero3OffloadAdapter"),
}


def test_the_gpu_checks_tolerances_are_the_tests():
    """benchmarks/gpu_check.sh judges param_rel_err with engine_cases.param_tolerance."""
    assert all(param_tolerance(case) == tolerance for case, (tolerance, _) in EQUIVALENCE.items())
    assert param_tolerance("upgrad_s3_offload") == 1e-6


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    return run_torchrun("engine_cases.py", 2, tmp_path_factory.mktemp("engine2") / "results.jsonl")


@pytest.fixture(scope="module")
def four_ranks(tmp_path_factory):
    return run_torchrun("engine_cases.py", 4, tmp_path_factory.mktemp("engine4") / "results.jsonl")


def _check_equivalence(result: dict, case: str) -> None:
    tolerance, adapter = EQUIVALENCE[case]
    assert result.get("adapter") == adapter, result
    assert "error" not in result, result.get("error")
    assert result["fired"] > 0, "the case must exercise GradVac corrections"
    assert result["moved"] > 1e-3, "parameters must have moved"
    assert result["param_rel_err"] <= tolerance
    assert result["target_abs_err"] <= (1e-6 if tolerance <= 1e-6 else 5 * tolerance)
    assert result["skipped"] == 0


@pytest.mark.parametrize("case", list(EQUIVALENCE))
def test_equivalence_two_ranks(two_ranks, case):
    _check_equivalence(two_ranks[case], case)


@pytest.mark.parametrize("case", [c for c in FOUR_RANK_CASES if c in EQUIVALENCE])
def test_equivalence_four_ranks(four_ranks, case):
    _check_equivalence(four_ranks[case], case)


GRAMIAN_CASES = [f"{m}_s{stage}" for m in GRAMIAN_MODES for stage in range(4)] + [
    f"{m}_s{stage}_offload" for m in GRAMIAN_MODES for stage in (2, 3)
]


@pytest.mark.parametrize("case", GRAMIAN_CASES)
def test_gramian_methods_match_their_dense_reference(two_ranks, case):
    """UPGrad, MGDA, IMTL-G and Aligned-MTL at every ZeRO stage and with optimizer offload: the
    weights of the all-reduced shard Gram applied on the shards equal the dense method's update."""
    result = two_ranks[case]
    assert "error" not in result, result.get("error")
    assert result["reweighted"] > 1e-3, "the method must change the weights from sum's"
    assert result["moved"] > 1e-3 and result["skipped"] == 0 and result["fired"] == 0
    assert result["param_rel_err"] <= 1e-6
    assert result["target_abs_err"] == 0.0


@pytest.mark.parametrize("case", ["sum_s0", "sum_s2", "sum_s3"])
def test_sum_mode_equals_plain_deepspeed(two_ranks, case):
    assert two_ranks[case]["param_rel_err"] <= 1e-7


@pytest.mark.parametrize("case", ["sum_s2_offload", "sum_s3_offload"])
def test_sum_mode_equals_plain_deepspeed_with_optimizer_offload(two_ranks, case):
    assert "error" not in two_ranks[case], two_ranks[case].get("error")
    assert two_ranks[case]["param_rel_err"] <= 1e-7


def test_unsupported_offload_is_refused_naming_the_field(two_ranks):
    messages = two_ranks["offload_refusals"]["messages"]
    assert "offload_param.device = 'cpu' is not supported" in messages["offload_param"]
    assert "offload_optimizer at ZeRO stage 1 is not supported" in messages["stage1"]


def test_sum_mode_equals_plain_deepspeed_four_ranks(four_ranks):
    assert four_ranks["sum_s2"]["param_rel_err"] <= 1e-7


@pytest.mark.parametrize("case", ["comm_s2", "comm_s3"])
def test_exactly_one_gram_all_reduce_per_step(two_ranks, case):
    result = two_ranks[case]
    assert result["calls"] == [["all_reduce", result["expected_bytes"]]] * result["steps"]


def test_exactly_one_gram_all_reduce_per_step_four_ranks(four_ranks):
    result = four_ranks["comm_s2"]
    assert result["calls"] == [["all_reduce", result["expected_bytes"]]] * result["steps"]


@pytest.mark.parametrize("case", ["resume_s2", "resume_s3"])
def test_checkpoint_resume_continues_exactly(two_ranks, case):
    result = two_ranks[case]
    assert result["param_rel_err"] == 0.0 and result["target_abs_err"] == 0.0 and result["state_step"] == 4


@pytest.mark.parametrize("case", ["overflow_s2_fp16", "overflow_s1_fp32"])
def test_non_finite_task_skips_step_and_keeps_targets(two_ranks, case):
    result = two_ranks[case]
    assert result["skipped_outcome"] and result["ds_skipped_steps"] == 1
    assert result["params_changed"] == 0.0 and result["targets_changed"] == 0.0


@pytest.mark.parametrize(
    "case", ["nan_one_rank_s0_fp32", "nan_one_rank_s2_bf16", "nan_one_rank_s3_fp32", "nan_one_rank_s2_fp16"]
)
def test_non_finite_micro_batch_on_one_rank_makes_the_step_a_no_op(two_ranks, case):
    result = two_ranks[case]
    assert "error" not in result, result.get("error")
    assert result["skip_reason"] == "non-finite task gradient"
    assert result["ds_skipped_steps"] == 1 and result["ds_global_steps"] == 3
    assert result["params_changed"] == 0.0 and result["targets_changed"] == 0.0
    assert result["state_step_unchanged"], "the skipped step must not advance GradVac's step"
    assert result["next_step_applied"] and result["final_finite"] and result["moved_after"] > 0


def test_gradvac_state_follows_deepspeeds_own_skip(two_ranks):
    result = two_ranks["deepspeed_skip_s2_fp32"]
    assert "error" not in result, result.get("error")
    assert result["result_present"] and result["ds_skipped_steps"] == 1
    assert result["skip_reason"] == "DeepSpeed skipped the step (gradient overflow)"
    assert result["targets_changed"] == 0.0 and result["state_step_unchanged"]


@pytest.mark.parametrize("case", ["order_differs_discover", "order_differs_fixed"])
def test_ranks_running_tasks_in_different_orders_are_refused(two_ranks, case):
    result = two_ranks[case]
    message = result["error"]
    assert message is not None, "a different task order per rank must not train silently"
    assert "ranks ran different task sequences" in message
    assert (
        "rank 0: [('de-en', 2), ('fr-en', 2)" in message and "rank 1: [('sw-en', 2), ('ja-en', 2)" in message
    )
    assert result["params_changed"] == 0.0


def test_rank_divergence_is_an_error_naming_the_step(two_ranks):
    assert "GradVac step 0: ranks disagree on the task orders" in two_ranks["divergence"]["error"]


def test_protocol_misuse_is_explained(two_ranks):
    messages = two_ranks["protocol"]["messages"]
    assert "inside `with engine.task" in messages["backward_outside_task"]
    assert "before any task ran" in messages["step_without_tasks"]
    assert "xx-en" in messages["unknown_task"] and "de-en" in messages["unknown_task"]
    assert "declared 2 micro-batches but ran 1" in messages["too_few_backward"]
    assert "gradient_accumulation_steps=8" in messages["gas_mismatch"]


BAD_CONFIG_PROBE = """
import torch, torch.distributed
import gradvac_ds
try:
    gradvac_ds.initialize(model=torch.nn.Linear(2, 2), config={CONFIG})
except gradvac_ds.ConfigError as err:
    print("ERROR", err)
print("STARTED", torch.distributed.is_initialized())
"""


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"gradvac": {"granularity": "block"}}, r"gradvac\.granularity = 'block'"),
        ({"gradvac": None}, r'"gradvac" section is null'),
        ({"gradvac": {}, "fp16": {"enabled": True}, "bf16": {"enabled": True}}, "both true"),
    ],
)
def test_bad_gradvac_config_fails_before_deepspeed_starts(config, message):
    """In a fresh interpreter (no other test's process group): the error comes, and no process
    group was started (a launcher-less deepspeed.initialize would have started one)."""
    env = dict(os.environ, DS_ACCELERATOR="cpu", RANK="0", WORLD_SIZE="1", LOCAL_RANK="0",
               MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))  # fmt: skip
    probe = BAD_CONFIG_PROBE.replace("{CONFIG}", repr(config))
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    assert re.search(message, out.stdout), out.stdout + out.stderr[-3000:]
    assert "STARTED False" in out.stdout


def test_statistics_reach_the_deepspeed_monitor(two_ranks):
    result = two_ranks["monitor"]
    names = " ".join(result["files"])
    assert "cos" in names and "fire" in names, result["files"]
    ours = {name: steps for name, steps in result["steps_logged"].items() if name.startswith("gradvac_")}
    assert len(ours) == 2 * 6 + 2, ours  # cos and fire per task pair, plus the two means
    # on DeepSpeed's x-axis (global samples): the rows of optimizer steps 0 and 2 of its lr series
    lr = result["steps_logged"]["Train_Samples_lr.csv"]
    assert len(lr) == 4 and lr[0] != "0", lr  # one row per step of the 4-step schedule
    assert all(steps == [lr[0], lr[2]] for steps in ours.values()), (ours, lr)


def test_untested_deepspeed_versions_are_refused():
    from gradvac_ds.zero import UnsupportedEngineError, check_deepspeed_version

    check_deepspeed_version("0.19.8")
    for version in ("0.18.9", "0.20.0"):
        with pytest.raises(UnsupportedEngineError, match=r"deepspeed >= 0\.19\.8, < 0\.20"):
            check_deepspeed_version(version)


def test_task_buffers_hold_only_the_tasks_a_step_can_have(two_ranks):
    result = two_ranks["buffer_rows"]
    assert result["rows"] == 2 and result["bytes"] == result["expected_bytes"]


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_fp32_combination_lands_in_a_task_row(two_ranks, stage):
    """At ZeRO-0/1/2 with fp32 task buffers every step combines into row 3 of the 4-row buffer (a
    free row when 3 tasks ran, the last task's row when 4 did), never into a fresh P/N tensor."""
    result = two_ranks[f"in_row_s{stage}"]
    assert "error" not in result, result.get("error")
    assert result["rows"] == 4
    assert result["places"] and len(result["places"]) % 4 == 0  # 4 steps x the adapter's buffers
    assert set(result["places"]) == {3}, result["places"]


@pytest.mark.parametrize("case", ["one_buffer_s1", "one_buffer_s2", "one_buffer_s2_oc1"])
def test_every_task_reduces_into_one_persistent_buffer(two_ranks, case):
    """ZeRO-1/2 allocate their reduction buffer whenever it is None, and the epilogue of every
    backward sets it to None: without the adapter's persistent tensor each task of each step would
    reduce into a fresh P/N allocation and free it in the capture."""
    result = two_ranks[case]
    assert "error" not in result, result.get("error")
    assert result["captures"] == result["tasks"] > 4 and result["skipped"] == 0
    assert result["storages"] == 1, result
