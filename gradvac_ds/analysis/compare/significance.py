"""Paired significance of a system against a baseline on one test set, with sacreBLEU's own tests.

For each metric (BLEU, chrF) :func:`paired_tests` runs ``sacrebleu.significance.PairedTest`` twice:
paired bootstrap resampling (``bs``, the Moses test: resample test sentences with replacement,
p = share of resamples whose centred score difference exceeds the observed one) and paired
approximate randomisation (``ar``: swap the two systems' outputs sentence by sentence at random).
Both are two-sided; sacreBLEU's signatures record the metric, seed and number of samples.

With several seeds the verdict of a pair uses the systems pooled over seeds: the test sets of all
seeds concatenated (sentence n of seed s of the system paired with sentence n of seed s of the
baseline), so the corpus score is the score of the seeds' outputs together. :func:`verdict`:

- ``not significant``: p >= alpha, where p is the larger of the two pooled p-values, after the
  Holm correction over the pairs of one comparison when the caller passes it (:func:`holm`), or
  with two or more seeds, some seed's own difference has the other sign (or is 0);
- ``negligible``: significant, but the pooled difference is smaller in magnitude than the minimum
  effect (in metric points; a difference that prints as +0.00 is never ``better``);
- ``better`` / ``worse``: otherwise, by the sign of the pooled difference.

The pooled tests resample (or swap) sentences of the concatenated seeds; they do not resample
seeds. Seed-to-seed variation enters only through the sign rule above and the Student-t intervals
over seeds of :mod:`.report`.

Why both tests and a non-zero difference: sacreBLEU (like MultEval, which it follows) counts only
resampled differences strictly larger than the observed one. Identical systems therefore get
p = 1 / (n + 1) from both tests, and approximate randomisation gives the same for two systems that
differ in a single sentence (every trial ties the observed difference); the bootstrap does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.significance import PairedTest
from statsmodels.stats.multitest import multipletests

METRICS = ("BLEU", "chrF")
BETTER, WORSE, NEGLIGIBLE, NOT_SIGNIFICANT = "better", "worse", "negligible", "not significant"
OUTCOMES = (BETTER, WORSE, NEGLIGIBLE, NOT_SIGNIFICANT)


@dataclass(frozen=True)
class PairedResult:
    """One metric, system vs baseline: corpus scores, difference (system - baseline), two-sided
    p-values of paired bootstrap and approximate randomisation, and their sacreBLEU signatures."""

    metric: str
    baseline: float
    system: float
    delta: float
    p_bootstrap: float
    p_randomisation: float
    signature_bootstrap: str
    signature_randomisation: str


def _metrics(tokenize: str) -> dict[str, BLEU | CHRF]:
    return {"BLEU": BLEU(tokenize=tokenize), "chrF": CHRF()}


def paired_tests(
    baseline: Sequence[str],
    system: Sequence[str],
    references: Sequence[str],
    bootstrap_samples: int = 1000,
    randomisation_trials: int = 10000,
    tokenize: str = "13a",
) -> dict[str, PairedResult]:
    """Paired bootstrap and approximate randomisation of ``system`` against ``baseline`` (per metric).

    All three sequences are aligned sentence by sentence (N each, N >= 1). sacreBLEU's RNG seed is
    its ``SACREBLEU_SEED`` (12345 unless set), so results are reproducible.
    """
    if not len(baseline) == len(system) == len(references) or not references:
        raise ValueError(
            f"paired tests need equally many baseline, system and reference sentences (>= 1), got "
            f"{len(baseline)}, {len(system)}, {len(references)}"
        )
    systems = [("baseline", list(baseline)), ("system", list(system))]
    runs = {}
    for test, samples in (("bs", bootstrap_samples), ("ar", randomisation_trials)):
        test_run = PairedTest(
            systems, _metrics(tokenize), [list(references)], test_type=test, n_samples=samples
        )
        runs[test] = test_run()
    out = {}
    (bs_signatures, bs_scores), (ar_signatures, ar_scores) = runs["bs"], runs["ar"]
    # sacreBLEU keys its results by score name ("BLEU", "chrF2"), in the order of _metrics().
    for metric, key in zip(METRICS, bs_signatures, strict=True):
        base, sys_result = bs_scores[key]
        out[metric] = PairedResult(
            metric=metric,
            baseline=float(base.score),
            system=float(sys_result.score),
            delta=float(sys_result.score - base.score),
            p_bootstrap=float(sys_result.p_value),
            p_randomisation=float(ar_scores[key][1].p_value),
            signature_bootstrap=str(bs_signatures[key]),
            signature_randomisation=str(ar_signatures[key]),
        )
    return out


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values of m tests (statsmodels): with p sorted ascending,
    p'_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)). Rejecting p' < alpha bounds the family-wise
    error rate by alpha under any dependence between the tests (here: pairs that share a language)."""
    if not p_values:
        return []
    return [float(p) for p in multipletests(list(p_values), method="holm")[1]]


@dataclass(frozen=True)
class Verdict:
    """``better``, ``worse`` or ``not significant`` with the reason in words."""

    outcome: str
    reason: str


def verdict(
    pooled: PairedResult,
    seed_deltas: Sequence[float],
    alpha: float = 0.05,
    *,
    min_effect: float = 0.0,
    p_adjusted: float | None = None,
) -> Verdict:
    """The verdict of one pair and metric (rules in the module docstring); ``p_adjusted`` replaces
    the larger pooled p-value when the caller corrected it for multiple comparisons."""
    p = max(pooled.p_bootstrap, pooled.p_randomisation)
    label = "p"
    if p_adjusted is not None:
        p, label = p_adjusted, "Holm-adjusted p"
    if p >= alpha:
        return Verdict(
            NOT_SIGNIFICANT,
            f"{label} = {p:.3g} >= {alpha} (larger of paired bootstrap {pooled.p_bootstrap:.3g} and "
            f"approximate randomisation {pooled.p_randomisation:.3g})",
        )
    if pooled.delta == 0:
        return Verdict(NOT_SIGNIFICANT, "the pooled difference is 0")
    sign = 1 if pooled.delta > 0 else -1
    disagreeing = [d for d in seed_deltas if d * sign <= 0]
    if len(seed_deltas) >= 2 and disagreeing:
        return Verdict(
            NOT_SIGNIFICANT,
            f"{label} = {p:.3g} < {alpha} pooled, but {len(disagreeing)} of {len(seed_deltas)} seeds "
            "differ in the other direction (or not at all)",
        )
    if abs(pooled.delta) < min_effect:
        return Verdict(
            NEGLIGIBLE, f"{label} = {p:.3g} < {alpha}, but |delta| {abs(pooled.delta):.3g} < {min_effect}"
        )
    return Verdict(BETTER if sign > 0 else WORSE, f"{label} = {p:.3g} < {alpha}; delta {pooled.delta:+.2f}")
