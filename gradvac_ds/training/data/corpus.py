"""Line filters with their counts, and the in-memory parallel corpus of the synthetic generator.

A :class:`ParallelCorpus` maps a language pair ``(src, tgt)`` to splits (``"train"``, ``"valid"``,
``"test"``) to a list of ``(src_sentence, tgt_sentence)`` string pairs.

Filters are applied as lines are read. Lengths are Unicode **characters** (code points), so
Latin, Cyrillic or Greek text of the same content has about the same length (UTF-8 bytes would
count a Cyrillic letter twice and drop good Russian-English pairs on the length ratio). A Han or
kana character carries more than a letter: for pairs with CJK on one side raise
``max_length_ratio`` (e.g. 5) or disable it. Every rejected line is counted by reason in
:class:`FilterStats`; nothing is dropped silently.
"""

from collections import Counter
from dataclasses import dataclass, field
from enum import Enum

from gradvac_ds.training.data.errors import DataConfigError

SentencePair = tuple[str, str]
LanguagePair = tuple[str, str]


class FilterReason(str, Enum):
    """Why a line pair was removed."""

    EMPTY = "empty"
    TOO_LONG = "too_long"
    RATIO = "length_ratio"


@dataclass(frozen=True)
class FilterConfig:
    """Line filters. Lengths are character counts of the stripped sentences.

    Attributes:
        max_chars: drop a pair if either side has more characters than this.
        max_length_ratio: drop a pair if ``max(len_s, len_t) / min(len_s, len_t)`` exceeds this;
            ``None`` disables the test.
    """

    max_chars: int = 1024
    max_length_ratio: float | None = 3.0

    def __post_init__(self) -> None:
        if self.max_chars < 1:
            raise DataConfigError(f"filters.max_chars must be >= 1, got {self.max_chars}")
        if self.max_length_ratio is not None and self.max_length_ratio < 1.0:
            raise DataConfigError(
                f"filters.max_length_ratio must be >= 1 or null, got {self.max_length_ratio}"
            )

    def reject_reason(self, src: str, tgt: str) -> FilterReason | None:
        """The reason to drop the (already stripped) pair, or ``None`` to keep it."""
        if not src or not tgt:
            return FilterReason.EMPTY
        len_s, len_t = len(src), len(tgt)
        if max(len_s, len_t) > self.max_chars:
            return FilterReason.TOO_LONG
        if self.max_length_ratio is not None and max(len_s, len_t) > self.max_length_ratio * min(
            len_s, len_t
        ):
            return FilterReason.RATIO
        return None

    def reject_document(self, text: str) -> FilterReason | None:
        """The reason to drop a (stripped) monolingual line, or ``None`` to keep it."""
        if not text:
            return FilterReason.EMPTY
        return FilterReason.TOO_LONG if len(text) > self.max_chars else None


@dataclass
class FilterStats:
    """Counts of kept and removed lines per ``(task, split)``.

    ``removed[(task, split)][reason]`` counts removed lines (pairs, or documents for a language
    model); ``kept[(task, split)]`` kept ones. Later stages (e.g. dropping pairs with too many
    SentencePiece pieces) add their own reasons as plain strings through :meth:`record_removed`.
    """

    kept: Counter = field(default_factory=Counter)
    removed: dict[tuple[str, str], Counter] = field(default_factory=dict)

    def record_kept(self, task: str, split: str, count: int = 1) -> None:
        """Count ``count`` kept lines."""
        self.kept[(task, split)] += count

    def record_removed(self, task: str, split: str, reason: str, count: int = 1) -> None:
        """Count ``count`` removed lines under ``reason``."""
        self.removed.setdefault((task, split), Counter())[reason] += count

    def total_removed(self, reason: str | None = None) -> int:
        """Removed lines over all tasks and splits, for one reason or all of them."""
        return sum(c[reason] if reason else sum(c.values()) for c in self.removed.values())

    def total_kept(self) -> int:
        """Kept lines over all tasks and splits."""
        return sum(self.kept.values())

    def report(self) -> str:
        """Human-readable table: one line per (task, split) with kept and removed counts."""
        keys = sorted(set(self.kept) | set(self.removed))
        lines = [f"kept {self.total_kept()} lines, removed {self.total_removed()}"]
        for task, split in keys:
            removed = self.removed.get((task, split), Counter())
            detail = ", ".join(f"{reason}={n}" for reason, n in sorted(removed.items())) or "none"
            lines.append(f"  {task} {split}: kept {self.kept[(task, split)]}, removed {detail}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, dict[str, dict]]:
        """``{task: {split: {"kept": n, "removed": {reason: n}}}}`` for the manifest."""
        out: dict[str, dict[str, dict]] = {}
        for task, split in sorted(set(self.kept) | set(self.removed)):
            removed = dict(sorted(self.removed.get((task, split), Counter()).items()))
            out.setdefault(task, {})[split] = {"kept": self.kept[(task, split)], "removed": removed}
        return out


@dataclass
class ParallelCorpus:
    """Sentence pairs per language pair and split held in memory (the synthetic generator's output)."""

    pairs: dict[LanguagePair, dict[str, list[SentencePair]]] = field(default_factory=dict)
    stats: FilterStats = field(default_factory=FilterStats)

    def add(
        self, pair: LanguagePair, split: str, src: str, tgt: str, filters: FilterConfig
    ) -> FilterReason | None:
        """Strip, filter and store one sentence pair; return the rejection reason if dropped."""
        src, tgt = src.strip(), tgt.strip()
        reason = filters.reject_reason(src, tgt)
        name = f"{pair[0]}-{pair[1]}"
        if reason is None:
            self.pairs.setdefault(pair, {}).setdefault(split, []).append((src, tgt))
            self.stats.record_kept(name, split)
        else:
            self.pairs.setdefault(pair, {}).setdefault(split, [])
            self.stats.record_removed(name, split, reason.value)
        return reason

    @property
    def languages(self) -> list[str]:
        """All language codes that occur in some pair, sorted."""
        return sorted({code for pair in self.pairs for code in pair})
