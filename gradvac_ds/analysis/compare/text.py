"""The text of a comparison (:func:`format_report`): per metric a table of mean ± sd per mode and
each comparison's verdicts, then the validation-loss comparison and its trajectory. Counts of
pairs name the languages the pairs share (:func:`shared_languages`): such pairs are not
independent results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gradvac_ds.analysis.compare.comparison import ALL_PAIRS, mean_sd, outcome_counts
from gradvac_ds.analysis.compare.significance import BETTER, METRICS, NEGLIGIBLE, NOT_SIGNIFICANT, WORSE


def shared_languages(pairs: Sequence[str]) -> str:
    """A note naming the languages that two or more of the ``"src-tgt"`` pairs share (their
    outcomes are then correlated, so a count "on k of N pairs" is not k independent results);
    empty when no language is shared."""
    uses: dict[str, int] = {}
    for pair in pairs:
        for language in set(pair.split("-")):
            uses[language] = uses.get(language, 0) + 1
    shared = sorted((lang for lang, n in uses.items() if n > 1), key=lambda lang: (-uses[lang], lang))
    if not shared:
        return ""
    named = ", ".join(f"{lang} ({uses[lang]} of {len(pairs)})" for lang in shared)
    return f"  (the pairs share languages, {named}: they are not independent)"


def _bounds(interval: dict[str, Any]) -> str:
    """A :func:`seed_interval`'s bounds as text ("n/a" with one seed)."""
    return "n/a" if interval["low"] is None else f"[{interval['low']:+.4f}, {interval['high']:+.4f}]"


def _format_validation(results: dict[str, Any]) -> list[str]:
    """Text of the validation-loss comparison: mean ± sd per mode, then each mode's reductions."""
    validation, pairs, baseline = results["validation"], results["pairs"], results["baseline"]
    width = max(len(p) for p in [*pairs, "average"]) + 2
    lines = ["", "validation loss".ljust(width) + "".join(f"{m:>16}" for m in results["modes"])]
    for pair in [*pairs, ALL_PAIRS]:
        label = "average" if pair == ALL_PAIRS else pair
        cells = (_cell(mean_sd(list(validation["losses"][m][pair].values()))) for m in results["modes"])
        lines.append(f"{label:<{width}}" + "".join(f"{cell:>16}" for cell in cells))
    for mode, by_pair in validation["comparisons"].items():
        lines += ["", f"validation loss: {baseline} - {mode} (> 0: {mode} lower)".ljust(width + 2)
                  + "     mean   t interval               p   p_holm  finding"]  # fmt: skip
        for pair in [*pairs, ALL_PAIRS]:
            row, label = by_pair[pair], "average" if pair == ALL_PAIRS else pair
            lines.append(
                f"{label:<{width + 2}}{row['mean']:+9.4f}   {_bounds(row):<22}{_p(row['p'])}"
                f"{_p(row.get('p_holm'))}  {row['finding']}"
            )
        counts = outcome_counts([by_pair[p]["finding"] for p in pairs])
        lines.append(
            f"{mode} vs {baseline} (validation loss): lower on {counts[BETTER]}, higher on {counts[WORSE]}, "
            f"negligible on {counts[NEGLIGIBLE]}, not significant on {counts[NOT_SIGNIFICANT]} "
            f"of {len(pairs)} pairs after Holm correction (minimum effect "
            f"{results['min_loss_effect']:g} nats){shared_languages(pairs)}"
        )
    return lines


def _p(value: float | None) -> str:
    """A p-value column cell ("n/a" when there is none)."""
    return f"{'n/a':>9}" if value is None else f"{value:9.4f}"


def _format_trajectory(results: dict[str, Any]) -> list[str]:
    """Text of :func:`validation_by_step`: one line per validation step."""
    modes, baseline = results["modes"], results["baseline"]
    others = [m for m in modes if m != baseline]
    lines = [
        "",
        "validation loss along training: mean over pairs and seeds; reduction = "
        f"{baseline} - mode with its t interval over seeds; lower on = pairs below {baseline}; "
        "spread = sd of the losses into one target over its sources (about 0: the source is not read)"
        + shared_languages(results["pairs"]),
        "  step" + "".join(f"{m:>10}" for m in modes)
        + "".join(f"{'reduction ' + m:>22}{'t interval':>22}{'lower on':>10}" for m in others)
        + "".join(f"{'spread ' + m:>16}" for m in modes),
    ]  # fmt: skip
    for row in results["validation_by_step"]:
        line = f"{row['step']:6d}" + "".join(f"{row['loss'][m]:10.4f}" for m in modes)
        for mode in others:
            cut = row["reduction"][mode]
            lower = f"{row['pairs_lower'][mode]}/{len(results['pairs'])}"
            line += f"{cut['mean']:+22.4f}{_bounds(cut):>22}{lower:>10}"
        spreads = (row["source_spread"][m] for m in modes)
        line += "".join(f"{'n/a':>16}" if v is None else f"{v:16.4f}" for v in spreads)
        lines.append(line)
    return lines


def _cell(spread: dict[str, Any]) -> str:
    return (
        f"{spread['mean']:6.2f} ± {spread['sd']:4.2f}"
        if spread["sd"] is not None
        else f"{spread['mean']:6.2f}"
    )


def format_report(results: dict[str, Any]) -> str:
    """The text report: per metric a table of mean ± sd per mode, then each comparison's verdicts."""
    modes, pairs, baseline = results["modes"], results["pairs"], results["baseline"]
    width = max(len(p) for p in [*pairs, "average"]) + 2
    lines = [
        f"{len(results['seeds'])} seed(s) {', '.join(results['seeds'])}; modes {', '.join(modes)}; "
        f"baseline {baseline}; alpha {results['alpha']}; minimum effect {results['min_effect']:g} points",
        "mean ± sd over seeds; p: pooled paired bootstrap / approximate randomisation (sacreBLEU) over the",
        "sentences of all seeds concatenated (they resample sentences, not seeds: seed variation is in the",
        "t intervals over seeds); p_holm: the larger p, Holm-corrected over the pairs",
    ]
    for metric in METRICS:
        lines += ["", f"{metric}".ljust(width) + "".join(f"{m:>16}" for m in modes)]
        for pair in [*pairs, ALL_PAIRS]:
            label = "average" if pair == ALL_PAIRS else pair
            lines.append(
                f"{label:<{width}}"
                + "".join(f"{_cell(results['scores'][m][pair][metric]):>16}" for m in modes)
            )
        for mode, by_pair in results["comparisons"].items():
            lines += [
                "",
                f"{metric}: {mode} vs {baseline}".ljust(width + 2)
                + "   delta     p_bs     p_ar   p_holm  verdict",
            ]
            for pair in [*pairs, ALL_PAIRS]:
                row = by_pair[pair][metric]
                label = "all pairs" if pair == ALL_PAIRS else pair
                lines.append(
                    f"{label:<{width + 2}}{row['delta']:+8.2f} {row['p_bootstrap']:8.4f} "
                    f"{row['p_randomisation']:8.4f}{_p(row['p_holm'])}  {row['verdict']}"
                )
            average = by_pair[ALL_PAIRS][metric]["seed_delta"]
            if average["low"] is not None:
                lines.append(
                    f"average {metric} difference over seeds: {average['mean']:+.2f}, "
                    f"{average['level']:.0%} t interval [{average['low']:+.2f}, {average['high']:+.2f}]: "
                    f"{mode} vs {baseline}: {average['finding']}"
                )
            counts = results["summary"][mode][metric]
            lines.append(
                f"{mode} vs {baseline} ({metric}): better on {counts[BETTER]}, worse on {counts[WORSE]}, "
                f"negligible on {counts[NEGLIGIBLE]}, not significant on {counts[NOT_SIGNIFICANT]} "
                f"of {len(pairs)} pairs after Holm correction{shared_languages(pairs)}"
            )
        if results["comparisons"]:
            first = next(iter(results["comparisons"].values()))[pairs[0]][metric]
            lines += [
                f"signature: {first['signature_bootstrap']}",
                f"signature: {first['signature_randomisation']}",
            ]
    if "validation" in results:
        lines += _format_validation(results)
    if "validation_by_step" in results:
        lines += _format_trajectory(results)
    return "\n".join(lines) + "\n"
