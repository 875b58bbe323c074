"""The end-of-mode and end-of-run summaries: validation loss next to BLEU (chrF) per language pair,
the rankings of the modes by each, and a few sample translations per pair."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

Scores = Mapping[str, Mapping[str, Any]]
"""{pair: {"bleu": float, "chrf": float, "bleu_signature": str, ...}} of one mode."""

_LOSS, _SCORE = 12, 15
"""Widths of the validation-loss and the "BLEU (chrF)" cells."""


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _ranking(averages: Mapping[str, float], higher_first: bool, digits: int) -> str:
    """Modes by their shown (rounded) average, best first: e.g. "a 12.30 > b 11.95 = c 11.95"."""
    shown = {mode: round(value, digits) for mode, value in averages.items()}
    order = sorted(shown, key=lambda mode: -shown[mode] if higher_first else shown[mode])
    text = f"{order[0]} {shown[order[0]]:.{digits}f}"
    for before, mode in pairwise(order):
        sign = "=" if shown[mode] == shown[before] else (">" if higher_first else "<")
        text += f" {sign} {mode} {shown[mode]:.{digits}f}"
    return text


def _disagree(bleu: Mapping[str, float], loss: Mapping[str, float]) -> bool:
    """Some two modes where the one with the higher shown BLEU also has the higher shown loss."""
    b = {mode: round(value, 2) for mode, value in bleu.items()}
    v = {mode: round(value, 3) for mode, value in loss.items()}
    return any(b[m] > b[n] and v[m] > v[n] for m in b for n in b)


def comparison_table(
    results: Mapping[str, Scores],
    valid_loss: Mapping[str, Mapping[str, float]] | None = None,
    note: str | None = None,
    source_gap: Mapping[str, Mapping[str, float] | None] | None = None,
) -> str:
    """One table: a row per language pair and the average row; per mode the final validation loss
    (when ``valid_loss`` = {mode: {pair: loss}} is given) and test BLEU (chrF).

    Below it: the sacreBLEU signature, and with two or more modes their ranking by average BLEU
    (higher first) and by average validation loss (lower first), saying when the two disagree (some
    mode has both the higher BLEU and the higher loss of a pair of modes, at the shown precision);
    ``source_gap`` = {mode: {pair: gap}} adds the line of average source gaps (validation loss with
    each target scored against another sentence's source, minus the true loss): about 0 while a
    model ignores its source. ``note`` (e.g. the seeds) ends the table.
    """
    modes = list(results)
    pairs = sorted({pair for scores in results.values() for pair in scores})
    width = max(len(p) for p in [*pairs, "average", "pair"]) + 2
    cell = _SCORE + (_LOSS if valid_loss is not None else 0)
    sub = (f"{'valid loss':>{_LOSS}}" if valid_loss is not None else "") + f"{'BLEU (chrF)':>{_SCORE}}"
    lines = [" " * width + "".join(f"{m:>{cell}}" for m in modes), f"{'pair':<{width}}" + sub * len(modes)]
    bleu_avg, loss_avg = {}, {}
    for pair in [*pairs, "average"]:
        cells = []
        for mode in modes:
            scores = results[mode]
            losses = valid_loss.get(mode, {}) if valid_loss is not None else {}
            if pair == "average":
                bleu = bleu_avg[mode] = _mean([s["bleu"] for s in scores.values()])
                chrf = _mean([s["chrf"] for s in scores.values()])
                loss = loss_avg[mode] = _mean([losses[p] for p in scores if p in losses])
            else:
                bleu, chrf = scores[pair]["bleu"], scores[pair]["chrf"]
                loss = losses.get(pair, float("nan"))
            loss_cell = f"{loss:>{_LOSS}.3f}" if valid_loss is not None else ""
            cells.append(loss_cell + f"{bleu:>{_SCORE - 8}.2f} ({chrf:5.1f})")
        lines.append(f"{pair:<{width}}" + "".join(cells))
    signature = next(iter(next(iter(results.values())).values()))["bleu_signature"]
    lines.append(f"BLEU (chrF): {signature}")
    if len(modes) > 1:
        lines.append("ranking by average BLEU (higher first): " + _ranking(bleu_avg, True, 2))
        if valid_loss is not None:
            lines.append("ranking by average validation loss (lower first): " + _ranking(loss_avg, False, 3))
            if _disagree(bleu_avg, loss_avg):
                lines.append(
                    "BLEU and validation loss rank the modes differently: BLEU scores the decoded test "
                    "sentences, the loss every reference token; one run per mode cannot tell such "
                    "differences from seed noise."
                )
    shown_gaps = {mode: gaps for mode, gaps in (source_gap or {}).items() if gaps}
    if shown_gaps:
        cells = ", ".join(f"{mode} {_mean(list(gaps.values())):.3f}" for mode, gaps in shown_gaps.items())
        lines.append(
            "source gap (validation loss with mismatched sources minus the true one; "
            f"about 0 when a model ignores its source): {cells}"
        )
    if note:
        lines.append(note)
    return "\n".join(lines)


def mode_summary(
    mode: str,
    label: str,
    step: int,
    scores: Scores,
    valid_loss: Mapping[str, float],
    source_gap: Mapping[str, float] | None = None,
) -> str:
    """The end-of-mode table (:func:`comparison_table` of one mode) under a line naming the mode
    (``label``, e.g. "gradvac (mode 3 of 3)") and the step its numbers are from."""
    table = comparison_table({mode: scores}, {mode: valid_loss}, source_gap={mode: source_gap})
    return f"{label} after {step} steps: validation loss and test BLEU (chrF) per pair\n{table}"


def write_samples(
    path: Path, outputs: Mapping[str, tuple[Sequence[str], Sequence[str], Sequence[str]]], count: int = 3
) -> Path:
    """``path`` (text): the first ``count`` test sentences per pair of
    ``{pair: (sources, references, hypotheses)}``, each as source, reference and hypothesis lines."""
    lines = []
    for pair, (sources, references, hypotheses) in sorted(outputs.items()):
        lines.append(f"== {pair}")
        for source, reference, hypothesis in list(zip(sources, references, hypotheses, strict=False))[:count]:
            lines += [f"SRC: {source}", f"REF: {reference}", f"HYP: {hypothesis}", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
