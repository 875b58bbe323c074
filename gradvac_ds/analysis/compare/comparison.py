"""The statistics of a comparison of modes over seeds, as plain mappings (no text).

Scores: corpus BLEU and chrF of each (seed, mode, pair), then mean and sample standard deviation
(ddof 1) over the S seeds, per pair and for the average over pairs (:func:`seed_scores`).
Comparisons (:func:`compare_modes`): every mode against the baseline, per pair and for all pairs
concatenated, with the pooled sacreBLEU tests and the verdict rules of :mod:`.significance`, and a
Student-t interval over seeds of each difference (:func:`seed_interval`; the average over pairs is
the headline: does the mode beat the baseline beyond seed-to-seed variation). Per-pair verdicts
use p-values Holm-corrected over the pairs of the comparison, and need an effect of at least
``min_effect`` (metric points; ``min_loss_effect`` nats for the loss) to count as better or worse.
When every run folder holds the trainer's ``validation.json``, the final validation losses are
compared the same way over seeds (:func:`compare_validation`), and, when the histories share two or
more validation steps, the comparison is repeated at each (:func:`validation_by_step`) with
:func:`source_spread`, which tells whether the models read their source yet.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from sacrebleu.metrics import BLEU, CHRF
from scipy.stats import t as student_t
from scipy.stats import ttest_1samp

from gradvac_ds.analysis.compare.runs import RunSet
from gradvac_ds.analysis.compare.significance import (
    BETTER,
    METRICS,
    NEGLIGIBLE,
    NOT_SIGNIFICANT,
    OUTCOMES,
    WORSE,
    holm,
    paired_tests,
    verdict,
)

ALL_PAIRS = "all"


"""The row of all pairs concatenated into one test set."""


def mean_sd(values: Sequence[float]) -> dict[str, Any]:
    """Mean and sample standard deviation (None for one value) of the per-seed values."""
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "sd": float(array.std(ddof=1)) if len(array) > 1 else None}


def _finding(mean: float, significant: bool, min_effect: float) -> str:
    """``not significant`` unless ``significant``; then ``negligible`` when |mean| < min_effect,
    else ``better`` (mean > 0) or ``worse``."""
    if not significant or mean == 0:
        return NOT_SIGNIFICANT
    if abs(mean) < min_effect:
        return NEGLIGIBLE
    return BETTER if mean > 0 else WORSE


def seed_interval(deltas: Sequence[float], level: float = 0.95, min_effect: float = 0.0) -> dict[str, Any]:
    """Student-t interval of the mean per-seed difference: mean ± t_{S-1} · sd / √S over the S
    seeds (seeds are the independent replicates of a run; low/high/p None with one seed), the
    two-sided one-sample t-test p of mean 0 (0 when every seed has the same non-zero difference),
    and the finding: ``better`` / ``worse`` when the interval excludes 0 and |mean| >= min_effect,
    ``negligible`` when it excludes 0 with a smaller mean, else ``not significant``."""
    spread = mean_sd(deltas)
    if spread["sd"] is None:
        return {**spread, "low": None, "high": None, "p": None, "level": level, "finding": NOT_SIGNIFICANT}
    half = float(student_t.ppf((1 + level) / 2, len(deltas) - 1)) * spread["sd"] / np.sqrt(len(deltas))
    low, high = spread["mean"] - half, spread["mean"] + half
    if spread["sd"] == 0:
        p_value = 1.0 if spread["mean"] == 0 else 0.0
    else:
        p_value = float(ttest_1samp(np.asarray(deltas, dtype=np.float64), 0.0).pvalue)
    finding = _finding(spread["mean"], low > 0 or high < 0, min_effect)
    return {**spread, "low": low, "high": high, "p": p_value, "level": level, "finding": finding}


def holm_findings(rows: dict[str, dict[str, Any]], alpha: float, min_effect: float) -> None:
    """Add ``p_holm`` (Holm over the pairs, the ``all`` row excluded: it is one test of its own) to
    each per-pair :func:`seed_interval` of ``rows`` and judge its finding by it; in place."""
    pairs = [pair for pair, row in rows.items() if pair != ALL_PAIRS and row["p"] is not None]
    for pair, p_holm in zip(pairs, holm([rows[pair]["p"] for pair in pairs]), strict=True):
        rows[pair]["p_holm"] = p_holm
        rows[pair]["finding"] = _finding(rows[pair]["mean"], p_holm < alpha, min_effect)


def seed_scores(runs: RunSet, tokenize: str) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """``[mode][pair][metric][seed]`` corpus scores (pair ``all`` = the average over pairs)."""
    bleu, chrf = BLEU(tokenize=tokenize), CHRF()
    out: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for mode in runs.modes:
        table = {pair: {m: {} for m in METRICS} for pair in [*runs.pairs, ALL_PAIRS]}
        for seed in runs.seeds:
            for pair in runs.pairs:
                hyp, refs = runs.hypotheses[(seed, mode)][pair], [runs.references[pair]]
                table[pair]["BLEU"][seed] = bleu.corpus_score(hyp, refs).score
                table[pair]["chrF"][seed] = chrf.corpus_score(hyp, refs).score
            for metric in METRICS:
                table[ALL_PAIRS][metric][seed] = float(np.mean([table[p][metric][seed] for p in runs.pairs]))
        out[mode] = table
    return out


def _pooled(runs: RunSet, mode: str, pairs: Sequence[str]) -> tuple[list[str], list[str]]:
    """The mode's hypotheses and the references over all seeds and ``pairs``, concatenated."""
    hyps, refs = [], []
    for seed in runs.seeds:
        for pair in pairs:
            hyps += runs.hypotheses[(seed, mode)][pair]
            refs += runs.references[pair]
    return hyps, refs


def compare_modes(
    runs: RunSet,
    scores: dict[str, Any],
    baseline: str,
    alpha: float,
    bootstrap_samples: int,
    randomisation_trials: int,
    tokenize: str,
    min_effect: float = 0.0,
) -> dict[str, dict[str, dict[str, Any]]]:
    """``[mode][pair][metric]``: pooled paired tests of mode vs baseline, seed deltas and verdict.

    The per-pair p-values (the larger of the two tests) of one mode and metric are Holm-corrected
    over the pairs (``p_holm``) before the verdict; the ``all`` row is one test and keeps its p."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for mode in (m for m in runs.modes if m != baseline):
        tests = {}
        for pair in [*runs.pairs, ALL_PAIRS]:
            chosen = runs.pairs if pair == ALL_PAIRS else [pair]
            base_hyps, refs = _pooled(runs, baseline, chosen)
            sys_hyps, _ = _pooled(runs, mode, chosen)
            tests[pair] = paired_tests(
                base_hyps, sys_hyps, refs, bootstrap_samples, randomisation_trials, tokenize
            )
        out[mode] = {pair: {} for pair in tests}
        for metric in METRICS:
            raw = [max(tests[p][metric].p_bootstrap, tests[p][metric].p_randomisation) for p in runs.pairs]
            adjusted = dict(zip(runs.pairs, holm(raw), strict=True))
            for pair, by_metric in tests.items():
                result = by_metric[metric]
                deltas = [
                    scores[mode][pair][metric][s] - scores[baseline][pair][metric][s] for s in runs.seeds
                ]
                judged = verdict(
                    result, deltas if pair != ALL_PAIRS else [], alpha,
                    min_effect=min_effect, p_adjusted=adjusted.get(pair),
                )  # fmt: skip
                out[mode][pair][metric] = {
                    **vars(result),
                    "p_holm": adjusted.get(pair),
                    "seed_deltas": dict(zip(runs.seeds, deltas, strict=True)),
                    "seed_delta": seed_interval(deltas, 1 - alpha, min_effect),
                    "verdict": judged.outcome,
                    "reason": judged.reason,
                }
    return out


VALIDATION_FILE = "validation.json"


"""The trainer's validation history in each mode folder: a list of {"step", "valid_loss": {pair: loss}}."""


Histories = dict[tuple[str, str], dict[int, dict[str, float]]]


"""``[(seed, mode)][step][pair]`` validation losses of every run folder."""


def validation_histories(runs: RunSet) -> Histories | None:
    """``[(seed, mode)][step][pair]`` validation losses, or None when a (seed, mode) folder has no
    validation history or one of its entries does not cover exactly the runs' pairs."""
    out = {}
    for mode in runs.modes:
        for seed in runs.seeds:
            path = runs.folders[seed] / mode / VALIDATION_FILE
            if not path.is_file():
                return None
            entries = json.loads(path.read_text())
            if not entries or any(sorted(e["valid_loss"]) != sorted(runs.pairs) for e in entries):
                return None
            out[(seed, mode)] = {
                int(e["step"]): {pair: float(v) for pair, v in e["valid_loss"].items()} for e in entries
            }
    return out


def _by_mode_pair_seed(
    runs: RunSet, losses_at: dict[tuple[str, str], dict[str, float]]
) -> dict[str, dict[str, dict[str, float]]]:
    """``{(seed, mode): {pair: loss}}`` -> ``[mode][pair][seed]`` with pair ``all`` = mean over pairs."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (seed, mode), by_pair in losses_at.items():
        table = out.setdefault(mode, {})
        for pair, loss in by_pair.items():
            table.setdefault(pair, {})[seed] = loss
        table.setdefault(ALL_PAIRS, {})[seed] = float(np.mean(list(by_pair.values())))
    return {mode: out[mode] for mode in runs.modes}


def validation_losses(runs: RunSet, histories: Histories) -> dict[str, dict[str, dict[str, float]]] | None:
    """``[mode][pair][seed]`` final validation loss (pair ``all`` = the mean over pairs), or None when
    the last entries of the :func:`validation_histories` disagree on their step."""
    if len({max(h) for h in histories.values()}) != 1:
        return None
    return _by_mode_pair_seed(runs, {key: h[max(h)] for key, h in histories.items()})


def source_spread(losses: dict[str, float]) -> float | None:
    """Mean over target languages with two or more sources of the standard deviation (ddof 0) of
    the validation losses ``{"src-tgt": loss}`` into that target; None when no target has two.

    About 0 means the model predicts a target the same way whatever the source: a language model
    of the target that does not read its input yet (when the sources' dev sets share references)."""
    by_target: dict[str, list[float]] = {}
    for pair, loss in losses.items():
        by_target.setdefault(pair.rpartition("-")[2], []).append(loss)
    spreads = [float(np.std(values)) for values in by_target.values() if len(values) > 1]
    return float(np.mean(spreads)) if spreads else None


def validation_by_step(
    runs: RunSet, histories: Histories, baseline: str, level: float
) -> list[dict[str, Any]] | None:
    """One row per validation step that every (seed, mode) history holds, in step order (None when
    there are fewer than two such steps): ``loss[mode]`` the mean over
    pairs and seeds, ``reduction[mode]`` the :func:`seed_interval` of baseline - mode of that mean,
    ``pairs_lower[mode]`` the pairs whose seed-mean loss is below the baseline's, and
    ``source_spread[mode]`` the seed mean of :func:`source_spread`."""
    steps = sorted(set.intersection(*(set(h) for h in histories.values())))
    if len(steps) < 2:
        return None
    rows = []
    for step in steps:
        table = _by_mode_pair_seed(runs, {key: h[step] for key, h in histories.items()})
        mean = {m: {p: float(np.mean(list(v.values()))) for p, v in t.items()} for m, t in table.items()}
        spreads = {
            mode: [source_spread(histories[(seed, mode)][step]) for seed in runs.seeds] for mode in runs.modes
        }
        rows.append({
            "step": step,
            "loss": {mode: mean[mode][ALL_PAIRS] for mode in runs.modes},
            "reduction": {
                mode: seed_interval(
                    [table[baseline][ALL_PAIRS][s] - table[mode][ALL_PAIRS][s] for s in runs.seeds], level
                )
                for mode in runs.modes if mode != baseline
            },
            "pairs_lower": {
                mode: sum(mean[mode][p] < mean[baseline][p] for p in runs.pairs)
                for mode in runs.modes if mode != baseline
            },
            "source_spread": {
                mode: None if None in values else float(np.mean(values)) for mode, values in spreads.items()
            },
        })  # fmt: skip
    return rows


def compare_validation(
    losses: dict[str, dict[str, dict[str, float]]],
    seeds: Sequence[str],
    baseline: str,
    alpha: float,
    min_effect: float = 0.0,
) -> dict[str, dict[str, dict[str, Any]]]:
    """``[mode][pair]``: the per-seed loss reduction baseline - mode (> 0: the mode is better) with
    its :func:`seed_interval` at level 1 - alpha, per-pair findings by :func:`holm_findings`.
    Validation loss still separates modes when BLEU is near 0 everywhere (short runs), but only
    over seeds: there is no sentence-level paired test of a loss here."""
    out = {}
    for mode, by_pair in losses.items():
        if mode == baseline:
            continue
        out[mode] = {
            pair: seed_interval(
                [losses[baseline][pair][s] - by_pair[pair][s] for s in seeds], 1 - alpha, min_effect
            )
            for pair in by_pair
        }
        holm_findings(out[mode], alpha, min_effect)
    return out


def outcome_counts(outcomes: Sequence[str]) -> dict[str, int]:
    """How many of ``outcomes`` are better / worse / negligible / not significant."""
    return {outcome: list(outcomes).count(outcome) for outcome in OUTCOMES}


def summary(comparisons: dict[str, Any], pairs: Sequence[str]) -> dict[str, dict[str, dict[str, int]]]:
    """``[mode][metric]``: number of pairs judged better / worse / negligible / not significant."""
    return {
        mode: {metric: outcome_counts([by_pair[p][metric]["verdict"] for p in pairs]) for metric in METRICS}
        for mode, by_pair in comparisons.items()
    }
