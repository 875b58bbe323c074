"""The in-memory parallel corpus and the line filters applied while reading it.

A :class:`ParallelCorpus` maps a language pair ``(src, tgt)`` to splits (``"train"``, ``"valid"``,
``"test"``) to a list of ``(src_sentence, tgt_sentence)`` string pairs. Each pair is stored once,
in the orientation its source data had; :meth:`ParallelCorpus.oriented` reads it either way round.

Filters are applied as lines are added. Lengths are measured in UTF-8 **bytes**, which puts
alphabetic and CJK scripts on a comparable scale (a Han character is 3 bytes and carries roughly
as much as 3 Latin letters), so one length-ratio threshold works across scripts. Every rejected
line is counted by reason in :class:`FilterStats`; nothing is dropped silently.
"""

from collections import Counter
from dataclasses import dataclass, field
from enum import Enum

from gradvac_ds.training.data.errors import DataConfigError, DataError

SentencePair = tuple[str, str]
LanguagePair = tuple[str, str]


class FilterReason(str, Enum):
    """Why a line pair was removed."""

    EMPTY = "empty"
    TOO_LONG = "too_long"
    RATIO = "length_ratio"


@dataclass(frozen=True)
class FilterConfig:
    """Line filters. Lengths are UTF-8 byte counts of the stripped sentences.

    Attributes:
        max_bytes: drop a pair if either side is longer than this.
        max_length_ratio: drop a pair if ``max(len_s, len_t) / min(len_s, len_t)`` exceeds this;
            ``None`` disables the test.
    """

    max_bytes: int = 2048
    max_length_ratio: float | None = 3.0

    def __post_init__(self) -> None:
        if self.max_bytes < 1:
            raise DataConfigError(f"filters.max_bytes must be >= 1, got {self.max_bytes}")
        if self.max_length_ratio is not None and self.max_length_ratio < 1.0:
            raise DataConfigError(
                f"filters.max_length_ratio must be >= 1 or null, got {self.max_length_ratio}"
            )

    def reject_reason(self, src: str, tgt: str) -> FilterReason | None:
        """The reason to drop the (already stripped) pair, or ``None`` to keep it."""
        if not src or not tgt:
            return FilterReason.EMPTY
        len_s, len_t = len(src.encode("utf-8")), len(tgt.encode("utf-8"))
        if max(len_s, len_t) > self.max_bytes:
            return FilterReason.TOO_LONG
        if self.max_length_ratio is not None and max(len_s, len_t) > self.max_length_ratio * min(
            len_s, len_t
        ):
            return FilterReason.RATIO
        return None


@dataclass
class FilterStats:
    """Counts of kept and removed line pairs per ``(pair, split)``.

    ``removed[(pair, split)][reason]`` counts removed pairs; ``kept[(pair, split)]`` kept ones.
    Later stages (e.g. dropping sentences with too many SentencePiece tokens) add their own
    reasons as plain strings through :meth:`record_removed`.
    """

    kept: Counter = field(default_factory=Counter)
    removed: dict[tuple[LanguagePair, str], Counter] = field(default_factory=dict)

    def record_kept(self, pair: LanguagePair, split: str, count: int = 1) -> None:
        """Count ``count`` kept line pairs."""
        self.kept[(pair, split)] += count

    def record_removed(self, pair: LanguagePair, split: str, reason: str, count: int = 1) -> None:
        """Count ``count`` removed line pairs under ``reason``."""
        self.removed.setdefault((pair, split), Counter())[reason] += count

    def total_removed(self, reason: str | None = None) -> int:
        """Removed pairs over all pairs and splits, for one reason or all of them."""
        return sum(c[reason] if reason else sum(c.values()) for c in self.removed.values())

    def total_kept(self) -> int:
        """Kept pairs over all pairs and splits."""
        return sum(self.kept.values())

    def report(self) -> str:
        """Human-readable table: one line per (pair, split) with kept and removed counts."""
        keys = sorted(set(self.kept) | set(self.removed))
        lines = [f"kept {self.total_kept()} line pairs, removed {self.total_removed()}"]
        for pair, split in keys:
            removed = self.removed.get((pair, split), Counter())
            detail = ", ".join(f"{reason}={n}" for reason, n in sorted(removed.items())) or "none"
            lines.append(f"  {pair[0]}-{pair[1]} {split}: kept {self.kept[(pair, split)]}, removed {detail}")
        return "\n".join(lines)


@dataclass
class ParallelCorpus:
    """Sentence pairs per language pair and split, plus the filter statistics of how they were read."""

    pairs: dict[LanguagePair, dict[str, list[SentencePair]]] = field(default_factory=dict)
    stats: FilterStats = field(default_factory=FilterStats)

    def add(
        self, pair: LanguagePair, split: str, src: str, tgt: str, filters: FilterConfig
    ) -> FilterReason | None:
        """Strip, filter and store one sentence pair; return the rejection reason if dropped."""
        src, tgt = src.strip(), tgt.strip()
        reason = filters.reject_reason(src, tgt)
        if reason is None:
            self.pairs.setdefault(pair, {}).setdefault(split, []).append((src, tgt))
            self.stats.record_kept(pair, split)
        else:
            self.pairs.setdefault(pair, {}).setdefault(split, [])
            self.stats.record_removed(pair, split, reason.value)
        return reason

    @property
    def languages(self) -> list[str]:
        """All language codes that occur in some pair, sorted."""
        return sorted({code for pair in self.pairs for code in pair})

    def splits(self, pair: LanguagePair) -> list[str]:
        """Split names stored for ``pair`` (in either orientation)."""
        stored = pair if pair in self.pairs else (pair[1], pair[0])
        return sorted(self.pairs.get(stored, {}))

    def oriented(self, src: str, tgt: str, split: str) -> list[SentencePair]:
        """Sentence pairs of ``split`` as ``(src_sentence, tgt_sentence)``, swapping a reversed pair.

        Raises:
            KeyError: if neither orientation of the pair, or the split, is stored.
        """
        if (src, tgt) in self.pairs:
            return list(self.pairs[(src, tgt)][split])
        if (tgt, src) in self.pairs:
            return [(s, t) for t, s in self.pairs[(tgt, src)][split]]
        raise KeyError(f"no data for language pair {src}-{tgt}; stored pairs: {sorted(self.pairs)}")

    def require_nonempty(self, origin: str) -> None:
        """Raise if no training pair survived reading and filtering.

        Args:
            origin: the file or directory to name in the error.
        """
        if not any(splits.get("train") for splits in self.pairs.values()):
            raise DataError(
                f"{origin}: empty corpus, no training sentence pair was read "
                f"(filter report follows)\n{self.stats.report()}"
            )
