"""The planner reads P, Ψ, the optimizer-group layout and L off the model built on the meta device.

The build runs in a fresh interpreter under a fake world of T ranks; its figures are checked against
the modeling package's analytic count (an independent derivation) and against the planner's own
arithmetic on the same layout. The engine-side check (the same L, Ψ and partition on a real
DeepSpeed run at T = 1 and T = 2) is in test_planner_validation.py.
"""

from __future__ import annotations

import pytest

from gradvac_ds.planning import plan, plan_model
from gradvac_ds.planning.model_layout import model_layout
from gradvac_ds.training.modeling import MODEL_SPECS, count_parameters, load_preset

VOCAB = 8000


@pytest.mark.parametrize(("kind", "tp"), [("encdec", 1), ("encdec", 2), ("decoder", 2), ("marian", 1)])
def test_layout_matches_the_analytic_count(kind, tp):
    layout = model_layout("tiny", VOCAB, kind, tp)
    cfg = load_preset("tiny")
    assert (layout.name, layout.kind, layout.tp) == ("tiny", kind, tp)
    assert layout.params == count_parameters(cfg, VOCAB, kind)
    fixed = 2 * cfg.max_sequence_length * cfg.hidden_size if kind == "marian" else 0  # sinusoid tables
    assert layout.params_per_tp_rank == count_parameters(cfg, VOCAB, kind, tp) - fixed
    (tensors,) = layout.optimizer_groups  # the application's one optimizer parameter group
    assert layout.num_groups["model"] == 1
    assert layout.num_groups["matrix"] == len(tensors)
    layers = sum(MODEL_SPECS[kind].num_layers(cfg))
    assert layout.num_layers == layers
    # layer: the layers, plus word and position embeddings, the final norm(s) and (T5, tied) the
    # output-layer bias; enc_dec: the stacks plus the same modules outside them. Marian: the shared
    # token embedding alone (post-norm layers, fixed positions, tied output, logit bias a buffer)
    outside = {"encdec": 5, "decoder": 3, "marian": 1}[kind]
    assert layout.num_groups["layer"] == layers + outside
    assert layout.num_groups["enc_dec"] == outside + (2 if kind == "marian" else 0)  # its 2 stacks


def test_tensor_parallel_build_shards_the_tensors_not_the_names():
    """T = 2 keeps every tensor and group (the engine's group names do not depend on T) but halves
    the sharded ones: a layout taken at T = 1 would overstate Ψ and the task buffers."""
    one, two = model_layout("tiny", VOCAB, "encdec", 1), model_layout("tiny", VOCAB, "encdec", 2)
    assert one.num_groups == two.num_groups
    assert len(one.optimizer_groups[0]) == len(two.optimizer_groups[0])
    assert one.params == two.params
    assert two.params_per_tp_rank < one.params_per_tp_rank < 2 * two.params_per_tp_rank
    halved = sum(a == 2 * b for a, b in zip(one.optimizer_groups[0], two.optimizer_groups[0], strict=True))
    assert 0 < halved < len(one.optimizer_groups[0])


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_plan_model_is_plan_on_the_model_layout(stage):
    layout = model_layout("tiny", VOCAB, "encdec", 2)
    got = plan_model("tiny", 4, vocab_size=VOCAB, tp=2, dp=4, zero_stage=stage, granularity="enc_dec")
    want = plan(
        layout.params, 4, dp=4, tp=2, zero_stage=stage, groups=layout.num_groups["enc_dec"],
        layout=layout.optimizer_groups,
    )  # fmt: skip
    assert got.gradvac_ds == want.gradvac_ds
    assert got.local_grad_numel == want.local_grad_numel
    if stage == 3:  # every tensor padded to a multiple of N on its own
        assert got.local_grad_numel == sum(-(-n // 4) for n in layout.optimizer_groups[0])
