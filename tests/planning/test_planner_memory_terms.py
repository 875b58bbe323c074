"""The planner's DeepSpeed terms (buffers, backward and optimizer-step transients) against
hand-computed bytes, and how they enter the peak totals."""

from __future__ import annotations

import pytest

from gradvac_ds.config import FieldError
from gradvac_ds.planning import plan

TWO_TENSORS = ((600_000, 400_000),)
"""One optimizer group of two tensors: Ψ = 1 000 000, largest tensor t = 600 000."""
TWO_GROUPS = ((600_000,), (400_000,))
"""Two optimizer groups of one tensor each."""


def _memory(**options):
    options.setdefault("precision", "fp32")
    options.setdefault("dp", 2)
    return plan(1_000_000, options.pop("tasks", 4), **options).gradvac_ds.memory


@pytest.mark.parametrize(("stage", "expected"), [(0, 0), (1, 4 * 500_000), (2, 4 * 500_000)])
def test_deepspeed_buffers_fp32_partition_copy(stage, expected):
    """ZeRO-1/2 step on an fp32 copy of the partition even for an fp32 model: 4·n_local."""
    assert _memory(zero_stage=stage, layout=TWO_TENSORS).deepspeed_buffers == expected


def test_deepspeed_buffers_none_besides_the_master_in_16_bit():
    assert _memory(zero_stage=2, precision="bf16", layout=TWO_TENSORS).deepspeed_buffers == 0


def test_deepspeed_buffers_zero3_copy_bucket_and_persistent_tensors():
    """n_local = 300 000 + 25 000 + 175 000; bucket 100 000 elements; the 50 000-element tensor is
    under the persistence threshold (1e5), so every rank keeps it whole."""
    layout = ((600_000, 50_000, 350_000),)
    mem = _memory(zero_stage=3, layout=layout, reduce_bucket_size=100_000)
    assert mem.deepspeed_buffers == 4 * 500_000 + 4 * 100_000 + 4 * 50_000
    bf16 = _memory(zero_stage=3, layout=layout, reduce_bucket_size=100_000, precision="bf16")
    assert bf16.deepspeed_buffers == 2 * 100_000 + 2 * 50_000
    none_persistent = _memory(
        zero_stage=3, layout=layout, reduce_bucket_size=100_000, param_persistence_threshold=0
    )
    assert none_persistent.deepspeed_buffers == 4 * 500_000 + 4 * 100_000


def test_bucket_never_counts_more_than_psi():
    """A reduce bucket larger than the model is only ever filled up to Ψ elements."""
    assert _memory(zero_stage=3, layout=TWO_TENSORS).deepspeed_buffers == 4 * 500_000 + 4 * 1_000_000
    assert _memory(zero_stage=1, layout=TWO_TENSORS).backward_transient == 4 * 1_000_000


@pytest.mark.parametrize(
    ("stage", "overlap", "expected"),
    [
        (0, False, 0),
        (1, False, 4 * 100_000),
        (1, True, 4 * 200_000),
        (2, False, 4 * (100_000 + 600_000)),
        (2, True, 4 * (200_000 + 600_000)),
        (3, False, 2 * 4 * 600_000),
    ],
)
def test_backward_transient(stage, overlap, expected):
    """Buckets (two with overlap_comm at ZeRO-1/2), the largest tensor's full gradient at ZeRO-2,
    the largest tensor gathered whole and its gradient at ZeRO-3."""
    mem = _memory(zero_stage=stage, layout=TWO_TENSORS, reduce_bucket_size=100_000, overlap_comm=overlap)
    assert mem.backward_transient == expected


def test_backward_transient_second_partition_when_deepspeed_accumulates():
    """ZeRO-2 accumulating M = 2 micro-batches holds a second gradient partition (n_local = 500 000)."""
    one = _memory(zero_stage=2, layout=TWO_TENSORS, reduce_bucket_size=100_000)
    two = _memory(zero_stage=2, layout=TWO_TENSORS, reduce_bucket_size=100_000, micro_batches_per_task=2)
    assert two.backward_transient - one.backward_transient == 4 * 500_000


@pytest.mark.parametrize(
    ("impl", "optimizer", "expected"),
    [
        ("single_tensor", "adam", 2 * 4 * 300_000),
        ("foreach", "adam", 4 * 300_000),
        ("fused", "adam", 0),
        ("single_tensor", "sgd", 0),
    ],
)
def test_optimizer_step_transient_zero2_fp32(impl, optimizer, expected):
    """In fp32 the flattened gradient replaces the freed partition, so only Adam's temporaries of
    the largest group partition (n_g = 600 000 / 2) remain, with GradVac and without."""
    mem = _memory(zero_stage=2, layout=TWO_GROUPS, optimizer_impl=impl, optimizer=optimizer)
    assert mem.optimizer_step_transient == expected


def test_optimizer_step_transient_flattened_gradient():
    """ZeRO-3 keeps its gradient buffer, so the group's fp32 copy adds 4·n_g. In 16-bit ZeRO-2 the
    fp32 copy of the largest group outgrows the freed bf16 partition by 2 bytes an element without
    GradVac; with GradVac the combined fp32 gradient lands in an fp32 task row (nothing added), or
    with bf16 task buffers in a new fp32 tensor over every group (2 bytes an element of n_local =
    500 000)."""
    fp32 = _memory(zero_stage=3, layout=TWO_GROUPS, optimizer_impl="fused")
    assert fp32.optimizer_step_transient == 4 * 300_000
    settings = dict(
        dp=2, zero_stage=2, precision="bf16", layout=TWO_GROUPS, optimizer_impl="single_tensor",
        reduce_bucket_size=1,
    )  # fmt: skip
    in_row = plan(1_000_000, 1, **settings).gradvac_ds.memory
    assert in_row.optimizer_step_transient == 2 * 4 * 300_000
    # without GradVac: 2·n_g + 2·4·n_g = 3 000 000, above the backward's 2·(1 + 600 000)
    assert in_row.plain_total == in_row.total - in_row.task_buffers + 2 * 300_000
    bf16_buffers = plan(1_000_000, 1, buffer_dtype="bf16", **settings).gradvac_ds.memory
    assert bf16_buffers.optimizer_step_transient == 2 * 500_000 + 2 * 4 * 300_000
    assert (
        bf16_buffers.plain_total == bf16_buffers.total - bf16_buffers.task_buffers - 2 * 500_000 + 2 * 300_000
    )


def test_optimizer_step_transient_stage0_follows_the_tensors():
    """Stage 0 steps the model's tensors: single-tensor Adam on the largest (600 000), foreach on the
    whole group (1 000 000)."""
    assert _memory(
        zero_stage=0, layout=TWO_TENSORS, optimizer_impl="single_tensor"
    ).optimizer_step_transient == (2 * 4 * 600_000)
    assert _memory(zero_stage=0, layout=TWO_TENSORS).optimizer_step_transient == 4 * 1_000_000


def test_total_takes_the_larger_of_backward_and_step():
    """total = model states + DeepSpeed buffers + task buffers + max(activations + backward, step);
    plain_total drops the task buffers and lets DeepSpeed accumulate all K micro-batches (a second
    ZeRO-2 partition in the backward)."""
    mem = _memory(zero_stage=2, layout=TWO_GROUPS, reduce_bucket_size=100_000, optimizer_impl="single_tensor")
    states = 4_000_000 + 2_000_000 + 4_000_000 + 2_000_000
    assert mem.task_buffers == 4 * 500_000 * 4
    assert mem.backward_transient == 4 * (100_000 + 600_000)
    assert mem.optimizer_step_transient == 2 * 4 * 300_000
    assert mem.total == states + mem.task_buffers + 4 * 700_000
    plain_backward = 4 * (100_000 + 600_000 + 500_000)
    assert mem.plain_total == states + max(plain_backward, 2 * 4 * 300_000)


def test_naive_ddp_has_no_deepspeed_terms():
    mem = plan(1_000_000, 4, dp=2, precision="fp32", layout=TWO_TENSORS).naive_ddp.memory
    assert (mem.deepspeed_buffers, mem.backward_transient) == (0, 0)
    assert mem.optimizer_step_transient == 4 * 1_000_000
    assert mem.plain_total == mem.total - mem.task_buffers


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"optimizer_impl": "apex"}, "optimizer_impl = 'apex'"),
        ({"reduce_bucket_size": 0}, "reduce_bucket_size = 0"),
        ({"param_persistence_threshold": -1}, "param_persistence_threshold = -1"),
        ({"overlap_comm": "yes"}, "overlap_comm = 'yes'"),
    ],
)
def test_new_inputs_are_validated(options, message):
    with pytest.raises(FieldError, match=message):
        plan(1000, 2, **options)
