"""Planner figures against hand-computed cases and the scaling laws of DESIGN.md §2."""

from __future__ import annotations

import pytest
import torch

from gradvac_ds.gram import SIGNATURE_SLOTS
from gradvac_ds.planning import ActivationInputs, PlanError, layout_of, plan


def test_hand_computed_zero2_fp32():
    p = plan(1_000_000, 4, dp=2, zero_stage=2, precision="fp32")
    assert p.local_grad_numel == 500_000
    mem = p.gradvac_ds.memory
    assert mem.task_buffers == 4 * 500_000 * 4
    assert (mem.weights, mem.gradients, mem.optimizer_states) == (4_000_000, 2_000_000, 4_000_000)
    assert mem.activations is None
    # + the fp32 partition copy; the backward's bucket (min(5e8, Ψ) elements) and full gradient of
    # the one Ψ-element tensor outweigh the step's foreach temporary (4·n_local)
    assert (mem.deepspeed_buffers, mem.backward_transient, mem.optimizer_step_transient) == (
        2_000_000,
        8_000_000,
        2_000_000,
    )
    assert mem.total == 4_000_000 + 2_000_000 + 4_000_000 + 2_000_000 + 8_000_000 + 8_000_000


@pytest.mark.parametrize(
    ("stage", "weights", "grads", "optimizer"),
    [(0, 2, 2, 12), (1, 2, 2, 3), (2, 2, 0.5, 3), (3, 0.5, 0.5, 3)],
)
def test_zero_paper_accounting_mixed_precision(stage, weights, grads, optimizer):
    """2 + 2 + 12 bytes per parameter, partitioned over N = 4 as the stage says."""
    mem = plan(1_000_000, 2, dp=4, zero_stage=stage, precision="bf16").gradvac_ds.memory
    assert (mem.weights, mem.gradients, mem.optimizer_states) == (
        weights * 1_000_000,
        grads * 1_000_000,
        optimizer * 1_000_000,
    )


def test_sgd_and_fp32_optimizer_bytes():
    assert (
        plan(1000, 1, zero_stage=0, precision="fp32", optimizer="sgd").gradvac_ds.memory.optimizer_states
        == 4000
    )
    assert (
        plan(1000, 1, zero_stage=0, precision="fp16", optimizer="sgd").gradvac_ds.memory.optimizer_states
        == 8000
    )


def test_layout_replaces_p_over_t():
    """A TP rank's layout (replicated tensors counted in full) gives Ψ exactly, not ceil(P/T)."""
    p = plan(1000, 2, tp=2, zero_stage=0, layout=((500, 10),), precision="fp32")
    assert p.params_per_tp_rank == 510
    assert p.gradvac_ds.memory.task_buffers == 2 * 510 * 4
    assert plan(1001, 2, tp=2).params_per_tp_rank == 501


def test_stage0_buffers_hold_full_tp_shard_gradients():
    p = plan(1_000_000, 3, dp=8, tp=2, zero_stage=0, buffer_dtype="bf16")
    assert p.gradvac_ds.memory.task_buffers == 3 * 500_000 * 2


def test_zero12_pads_each_flat_group_to_twice_dp():
    """DeepSpeed pads a ZeRO-1/2 group to a multiple of 2·N: 1001 elements on N = 4 -> 1008 / 4."""
    assert plan(1001, 1, dp=4, zero_stage=1).local_grad_numel == 252
    assert plan(1001, 1, dp=1, zero_stage=2).local_grad_numel == 1002
    # groups of 8 and 7 elements on N = 2: each padded to a multiple of 4
    assert plan(15, 1, dp=2, zero_stage=2, layout=((3, 5), (7,))).local_grad_numel == 4 + 4


def test_zero3_pads_each_tensor_to_dp():
    p = plan(15, 2, dp=2, zero_stage=3, layout=((3, 5), (7,)), buffer_dtype="bf16")
    assert p.local_grad_numel == 2 + 3 + 4
    assert p.gradvac_ds.memory.task_buffers == 2 * 9 * 2


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_task_buffers_proportional_to_k_over_n(stage):
    params = 2**20
    for tasks in (1, 2, 4, 8):
        for dp in (1, 2, 4, 8):
            buffers = plan(params, tasks, dp=dp, zero_stage=stage).gradvac_ds.memory.task_buffers
            assert buffers == tasks * params // dp * 4


@pytest.mark.parametrize("dp", [1, 2, 8, 64])
def test_naive_task_memory_is_n_times_ours(dp):
    p = plan(2**24, 6, dp=dp, zero_stage=2)
    assert p.naive_ddp.memory.task_buffers == dp * p.gradvac_ds.memory.task_buffers


def test_one_gram_allreduce_over_dp_times_tp():
    """The engine's one all-reduce: float64 [L·K² + 4 signature slots] over N·T = 8 ranks."""
    assert SIGNATURE_SLOTS == 4
    comm = plan(10**6, 5, dp=4, tp=2, groups=7).gradvac_ds.communication
    payload = (7 * 25 + 4) * 8
    assert (comm.gram_allreduce_ranks, comm.gram_allreduce_payload_bytes) == (8, payload)
    assert comm.gram_allreduce_wire_bytes == round(2 * 7 * payload / 8)
    # not a DP all-reduce plus a TP one: the wire is that of one ring over all eight ranks
    assert comm.gram_allreduce_wire_bytes < round(2 * 3 * payload / 4) + round(2 * 1 * payload / 2)
    single = plan(10**6, 5, dp=1, tp=1, groups=7).gradvac_ds.communication
    assert (single.gram_allreduce_ranks, single.gram_allreduce_wire_bytes) == (1, 0)
    assert single.gram_allreduce_payload_bytes == payload
    tp_only = plan(10**6, 5, dp=1, tp=4, groups=7).gradvac_ds.communication
    assert (tp_only.gram_allreduce_ranks, tp_only.gram_allreduce_wire_bytes) == (4, round(1.5 * payload))
    naive = plan(10**6, 5, dp=4, tp=2, groups=7).naive_ddp.communication
    assert (naive.gram_allreduce_ranks, naive.gram_allreduce_payload_bytes) == (0, 0)


def test_gradient_reductions_per_stage():
    """Stage 0/1 reduce once per step without GradVac, K times with it; stage 2/3 every micro-batch."""
    for stage, reductions, plain in ((0, 4, 1), (1, 4, 1), (2, 12, 12), (3, 12, 12)):
        comm = plan(8000, 4, dp=2, zero_stage=stage, micro_batches_per_task=3).gradvac_ds.communication
        assert (comm.grad_reductions_per_step, comm.plain_grad_reductions_per_step) == (reductions, plain)
    stage1 = plan(8000, 4, dp=2, zero_stage=1, groups=1).gradvac_ds.communication
    assert stage1.extra_payload_bytes == 3 * 8000 * 2 + (4 * 4 + 4) * 8
    assert stage1.grad_reduction_wire_bytes == 4 * 8000  # reduce-scatter: (N-1)/N of 16 000 bytes
    stage2 = plan(8000, 4, dp=2, zero_stage=2, groups=1).gradvac_ds.communication
    assert stage2.extra_payload_bytes == (4 * 4 + 4) * 8


def test_naive_communication_and_compute():
    p = plan(10**6, 4, dp=4, precision="fp32")
    comm = p.naive_ddp.communication
    assert comm.grad_reduction_payload_bytes == 4 * 4 * 10**6
    assert comm.grad_reduction_wire_bytes == 4 * 2 * 3 * 4 * 10**6 // 4
    assert comm.extra_wire_bytes == 3 * 2 * 3 * 4 * 10**6 // 4
    assert p.naive_ddp.compute.gram_flops == 2 * 16 * 10**6
    assert p.gradvac_ds.compute.gram_flops == 2 * 16 * 10**6 // 4
    assert p.gradvac_ds.compute.combine_flops == 2 * 4 * 10**6 // 4


def test_activation_estimate():
    act = ActivationInputs(
        micro_batch_tokens=8, seq_length=4, hidden_size=4, num_attention_heads=2, num_layers=2
    )
    # per layer: 8·4·(10 + 24) + 5·2·4·8 = 1408 bytes
    assert plan(100, 1, activations=act).gradvac_ds.memory.activations == 2 * 1408
    assert plan(100, 1, activations=act, precision="fp32").naive_ddp.memory.activations == 4 * 1408
    # T = 2: 8·4·(10 + 12) + 5·2·4·8 / 2 = 864
    assert plan(100, 1, activations=act, tp=2).gradvac_ds.memory.activations == 2 * 864


def test_params_accept_counts_with_suffixes():
    assert plan("1.3B", 2).inputs.params == 1_300_000_000
    assert plan("375M", 2).inputs.params == 375_000_000
    assert plan("1e6", 2).inputs.params == 1_000_000


def test_layout_of_skips_frozen_and_reads_ds_numel():
    frozen = torch.zeros(5, requires_grad=False)
    a, b = torch.zeros(2, 3, requires_grad=True), torch.zeros(4, requires_grad=True)
    b.ds_numel = 40
    assert layout_of([{"params": [a, frozen]}, [b], [frozen]]) == ((6,), (40,))
    with pytest.raises(PlanError, match="no trainable"):
        layout_of([[frozen]])
