"""Every Gramian method against TorchJD's weighting of the same Gram (TorchJD 0.18, pinned in the
dev extra), on random, conflicting, rank-deficient, zero-task, antiparallel and single-task inputs,
one group at a time and batched over groups.

Tolerance: 1e-12 absolute on weights normalised to at most 1 in magnitude, and 1e-9 relative on
the update. Both implementations follow the same mathematics in float64; observed differences
are <= 5e-14, except Aligned-MTL on a Gram of condition ~1e8 (1.5e-10 relative), which the update
tolerance covers by scaling with the condition number. Where the two differ by design, inputs here
stay away from it: TorchJD zeroes a UPGrad Gram whose trace is below 1e-4 (we scale any trace to 1)
and calls IMTL-G's sum of v vanished below an absolute 1e-12 (we: relative).
"""

from __future__ import annotations

import pytest
import torch
from torchjd import aggregation

from gradvac_ds.weighting import make_weighting

TORCHJD = {
    "upgrad": aggregation.UPGradWeighting,
    "mgda": aggregation.MGDAWeighting,
    "imtl_g": aggregation.IMTLGWeighting,
    "aligned_mtl": aggregation.AlignedMTLWeighting,
}


def _jacobians() -> dict[str, torch.Tensor]:
    """Task gradients X [k, d] (float64) of the cases, named."""
    gen = torch.Generator().manual_seed(0)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    scales = torch.logspace(-1, 1, 16, dtype=torch.float64).unsqueeze(1)
    rank_deficient = randn(3, 40)
    zero_task = randn(5, 40)
    zero_task[2] = 0
    antiparallel = randn(4, 40)
    antiparallel[1] = -antiparallel[0]
    return {
        "single": randn(1, 40),
        "random_k4": randn(4, 40),
        "random_k16": randn(16, 40),
        "conflicting_k8_d3": randn(8, 3),
        "conflicting_k16_d4_scaled": randn(16, 4) * scales,
        "rank_deficient": torch.cat([rank_deficient, rank_deficient[:1] + 2 * rank_deficient[1:2]]),
        "zero_task": zero_task,
        "antiparallel": antiparallel,
    }


JACOBIANS = _jacobians()


@pytest.mark.parametrize("case", list(JACOBIANS))
@pytest.mark.parametrize("mode", list(TORCHJD))
def test_weights_and_update_match_torchjd(mode, case):
    jacobian = JACOBIANS[case]
    gram = jacobian @ jacobian.T
    ours = make_weighting(mode).weights(gram.unsqueeze(0))[0]
    theirs = TORCHJD[mode]()(gram)
    scale = theirs.abs().max().clamp_min(1.0)
    assert (ours - theirs).abs().max() <= 1e-12 * scale
    update, expected = ours @ jacobian, theirs @ jacobian
    assert (update - expected).norm() <= 1e-9 * expected.norm().clamp_min(1e-30)


@pytest.mark.parametrize("mode", list(TORCHJD))
def test_groups_are_solved_independently_in_one_batch(mode):
    grams = torch.stack([x @ x.T for x in (JACOBIANS["random_k4"], JACOBIANS["antiparallel"],
                                           JACOBIANS["conflicting_k8_d3"][:4])])  # fmt: skip
    batched = make_weighting(mode).weights(grams)
    one_by_one = torch.stack([TORCHJD[mode]()(g) for g in grams])
    assert batched.shape == (3, 4)
    assert (batched - one_by_one).abs().max() <= 1e-12
