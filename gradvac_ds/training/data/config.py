"""The ``data`` section of a run configuration, as a typed, validated dataclass.

Example (YAML)::

    data:
      source: synthetic          # synthetic | fairseq | tsv | multiway
      pivot: en
      direction: many-to-one     # many-to-one | one-to-many | both
      vocab: {vocab_size: 1000, temperature: 5.0}   # languages mixed by T in the SentencePiece text
      batching: {max_tokens: 2048, micro_batches_per_step: 4, temperature: 5.0}
      synthetic: {num_families: 3, languages_per_family: 2}

``path`` is the directory for ``fairseq`` and ``multiway``; ``tsv`` maps ``"src-tgt"`` to
``{split: file}``. Errors name the field (``data.direction``) and the allowed values.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gradvac_ds.config import load_section
from gradvac_ds.training.data.corpus import FilterConfig
from gradvac_ds.training.data.errors import DataConfigError
from gradvac_ds.training.data.languages import check_language_code
from gradvac_ds.training.data.sampling import BatchingConfig
from gradvac_ds.training.data.synthetic import SyntheticConfig
from gradvac_ds.training.data.vocabulary import VocabularyOptions

SOURCES = ("synthetic", "fairseq", "tsv", "multiway")
DIRECTIONS = ("many-to-one", "one-to-many", "both")
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class DataConfig:
    """Where the data comes from and how it is prepared.

    Attributes:
        source: one of ``SOURCES``.
        path: directory of a ``fairseq`` or ``multiway`` corpus.
        tsv: for ``tsv``: ``{"src-tgt": {split: file}}``.
        languages: non-pivot languages to use; empty means every language found.
        pivot: the language every task translates from or into (for ``synthetic`` it replaces
            ``synthetic.pivot``).
        direction: one of ``DIRECTIONS``: xx->pivot, pivot->xx, or both.
        splits: splits to read; must contain ``train``; values from ``SPLITS``.
        max_positions: longest allowed encoded side, special tokens included; longer pairs are
            removed and counted as ``too_many_pieces``. Must not exceed ``batching.max_tokens``.
        cache_dir: where trained SentencePiece models are cached.
        encode_workers: worker processes for encoding (``None`` = automatic).
        seed: seed of the step schedule (identical on every rank).
    """

    source: str = "synthetic"
    path: str | None = None
    tsv: dict[str, dict[str, str]] = field(default_factory=dict)
    languages: tuple[str, ...] = ()
    pivot: str = "en"
    direction: str = "many-to-one"
    splits: tuple[str, ...] = SPLITS
    max_positions: int = 256
    cache_dir: str = ".cache/gradvac_ds"
    encode_workers: int | None = None
    seed: int = 1234
    vocab: VocabularyOptions = field(default_factory=VocabularyOptions)
    filters: FilterConfig = field(default_factory=FilterConfig)
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def __post_init__(self) -> None:
        _choice("data.source", self.source, SOURCES)
        _choice("data.direction", self.direction, DIRECTIONS)
        for split in self.splits:
            _choice("data.splits[]", split, SPLITS)
        if "train" not in self.splits:
            raise DataConfigError(f"data.splits: must contain 'train', got {list(self.splits)}")
        if self.source in ("fairseq", "multiway") and not self.path:
            raise DataConfigError(f"data.path: required for source {self.source!r} (the corpus directory)")
        if self.source == "tsv" and not self.tsv:
            raise DataConfigError(
                "data.tsv: required for source 'tsv', e.g. {'de-en': {'train': 'train.tsv'}}"
            )
        if self.source != "tsv" and self.tsv:
            raise DataConfigError(f"data.tsv: only used with source 'tsv', not {self.source!r}")
        check_language_code(self.pivot, "data.pivot", error=DataConfigError)
        for lang in self.languages:
            check_language_code(lang, "data.languages[]", error=DataConfigError)
        if self.pivot in self.languages:
            raise DataConfigError(f"data.languages: must not contain the pivot {self.pivot!r}")
        if not 3 <= self.max_positions <= self.batching.max_tokens:
            raise DataConfigError(
                f"data.max_positions: must be in [3, batching.max_tokens={self.batching.max_tokens}], "
                f"got {self.max_positions}"
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "DataConfig":
        """Build from a plain mapping (parsed JSON/YAML), rejecting unknown fields by name."""
        return load_section(cls, values, "data")


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise DataConfigError(f"{name}: {value!r} is not allowed; allowed values: {list(allowed)}")
