"""sacreBLEU's paired tests and the verdict: identical systems are not significant, a planted gap is."""

from __future__ import annotations

import pytest
from compare_corpora import references, system

from gradvac_ds.analysis.compare.significance import (
    BETTER,
    NEGLIGIBLE,
    NOT_SIGNIFICANT,
    WORSE,
    PairedResult,
    holm,
    paired_tests,
    verdict,
)

FAST = {"bootstrap_samples": 300, "randomisation_trials": 1000}


@pytest.fixture(scope="module")
def refs() -> list[str]:
    return references(200)


def test_identical_systems_are_not_significant(refs):
    base = system(refs, 0.3, seed=1)
    for metric, result in paired_tests(base, base, refs, **FAST).items():
        assert result.delta == 0.0
        assert verdict(result, [0.0, 0.0]).outcome == NOT_SIGNIFICANT, metric


def test_one_changed_sentence_is_not_significant(refs):
    base = system(refs, 0.3, seed=1)
    other = [*base[:-1], system(refs[-1:], 0.3, seed=2)[0]]
    for result in paired_tests(base, other, refs, **FAST).values():
        # approximate randomisation ties here (see the significance module); the bootstrap does not
        assert result.delta != 0 and result.p_bootstrap > 0.05
        assert verdict(result, [result.delta]).outcome == NOT_SIGNIFICANT


def test_a_planted_gap_is_significant_in_both_directions(refs):
    weak, strong = system(refs, 0.4, seed=1), system(refs, 0.15, seed=2)
    better = paired_tests(weak, strong, refs, **FAST)
    worse = paired_tests(strong, weak, refs, **FAST)
    for metric in ("BLEU", "chrF"):
        assert better[metric].delta > 5 and better[metric].p_bootstrap < 0.01
        assert better[metric].p_randomisation < 0.01
        assert verdict(better[metric], [better[metric].delta]).outcome == BETTER
        assert verdict(worse[metric], [worse[metric].delta]).outcome == WORSE
    assert "bs:300" in better["BLEU"].signature_bootstrap and "tok:13a" in better["BLEU"].signature_bootstrap
    assert "ar:1000" in better["chrF"].signature_randomisation


def _result(delta: float, p: float) -> PairedResult:
    return PairedResult("BLEU", 20.0, 20.0 + delta, delta, p, p, "bs", "ar")


def test_verdict_needs_both_p_values_and_agreeing_seeds():
    assert verdict(_result(2.0, 0.01), [1.5, 2.5, 2.0]).outcome == BETTER
    judged = verdict(_result(2.0, 0.01), [3.0, 3.1, -0.1])
    assert judged.outcome == NOT_SIGNIFICANT and "1 of 3 seeds" in judged.reason
    judged = verdict(PairedResult("BLEU", 20, 22, 2, 0.01, 0.2, "bs", "ar"), [2.0])
    assert judged.outcome == NOT_SIGNIFICANT and "p = 0.2" in judged.reason
    assert verdict(_result(-2.0, 0.001), [-2.0]).outcome == WORSE


def test_verdict_needs_the_minimum_effect_and_uses_the_adjusted_p():
    judged = verdict(_result(0.004, 0.001), [0.004, 0.003], min_effect=0.1)
    assert judged.outcome == NEGLIGIBLE and "0.004 < 0.1" in judged.reason
    assert verdict(_result(-0.05, 0.001), [-0.05], min_effect=0.1).outcome == NEGLIGIBLE
    assert verdict(_result(0.2, 0.001), [0.2], min_effect=0.1).outcome == BETTER
    judged = verdict(_result(2.0, 0.01), [2.0], p_adjusted=0.06)
    assert judged.outcome == NOT_SIGNIFICANT and "Holm-adjusted p = 0.06" in judged.reason


def test_holm_is_the_step_down_bonferroni_correction():
    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01, max(0.03, 2 x 0.03), max(0.06, 1 x 0.04); back in input order
    assert holm([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0]) and holm([]) == []


def test_paired_tests_reject_misaligned_inputs(refs):
    with pytest.raises(ValueError, match="equally many"):
        paired_tests(refs[:10], refs[:9], refs[:10])
