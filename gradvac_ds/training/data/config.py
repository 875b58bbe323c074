"""The ``data`` section of a run configuration, as a typed, validated dataclass.

Example (YAML)::

    data:
      source: synthetic          # synthetic | sanity | fairseq | tsv | multiway | monolingual
      prepared: null             # gradvac-prepare's output; null = {cache_dir}/prepared/<hash>
      pivot: en
      direction: many-to-one     # many-to-one | one-to-many | both
      vocab: {vocab_size: 1000, temperature: 5.0}   # languages mixed by T in the SentencePiece text
      batching: {max_tokens: 2048, micro_batches_per_step: 4, temperature: 5.0}
      synthetic: {num_families: 3, languages_per_family: 2}

``path`` is the directory for ``fairseq``, ``multiway`` and ``monolingual``; ``tsv`` maps
``"src-tgt"`` to ``{split: file}``. ``gradvac-prepare`` reads the source and writes ``prepared``;
training reads only ``prepared``. Errors name the field (``data.direction``) and the allowed values.
"""

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradvac_ds.config import load_section
from gradvac_ds.training.data.corpus import FilterConfig
from gradvac_ds.training.data.errors import DataConfigError
from gradvac_ds.training.data.languages import check_language_code
from gradvac_ds.training.data.sanity import SOURCE_LANGUAGE, SanityConfig
from gradvac_ds.training.data.synthetic import SyntheticConfig
from gradvac_ds.training.data.vocabulary import VocabularyOptions

SOURCES = ("synthetic", "sanity", "fairseq", "tsv", "multiway", "monolingual")
DIRECTIONS = ("many-to-one", "one-to-many", "both")
SPLITS = ("train", "valid", "test")
PREPARE_FIELDS = (
    "source", "path", "tsv", "languages", "pivot", "direction", "splits", "max_positions",
    "valid_lines", "vocab", "filters", "synthetic", "sanity",
)  # fmt: skip
"""Data-config fields that change what ``gradvac-prepare`` writes (batching and seed do not)."""


@dataclass(frozen=True)
class BatchingConfig:
    """Micro-batch shape and task sampling.

    Attributes:
        max_tokens: budget on ``B * max(Ls, Lt)`` per micro-batch (padding included).
        max_sentences: cap on B.
        micro_batches_per_step: micro-batches per rank per optimizer step.
        temperature: T of the task sampling.
        bucket_size: examples sorted by length together before packing.
    """

    max_tokens: int = 4096
    max_sentences: int = 256
    micro_batches_per_step: int = 4
    temperature: float = 5.0
    bucket_size: int = 4096

    def __post_init__(self) -> None:
        for name in ("max_tokens", "max_sentences", "micro_batches_per_step", "bucket_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise DataConfigError(f"batching.{name}: must be a positive integer, got {value!r}")
        if not self.temperature > 0:
            raise DataConfigError(f"batching.temperature: must be > 0, got {self.temperature!r}")


@dataclass(frozen=True)
class DataConfig:
    """Where the data comes from and how it is prepared.

    Attributes:
        source: one of ``SOURCES``; ``monolingual`` is language-model pretraining (one task per
            language), the others are translation. ``sanity`` is the copy/reverse corpus of
            :mod:`~gradvac_ds.training.data.sanity` (``sanity`` section; pivot ``zxx``, one-to-many).
        prepared: directory written by ``gradvac-prepare`` and read by training; ``None`` means
            ``{cache_dir}/prepared/{hash of the prepare-relevant fields}``.
        path: directory of a ``fairseq``, ``multiway`` or ``monolingual`` corpus.
        tsv: for ``tsv``: ``{"src-tgt": {split: file}}``.
        languages: non-pivot languages to use; empty means every language found.
        pivot: the language every task translates from or into (for ``synthetic`` it replaces
            ``synthetic.pivot``).
        direction: one of ``DIRECTIONS``: xx->pivot, pivot->xx, or both.
        splits: splits to read; must contain ``train``; values from ``SPLITS``.
        max_positions: translation: longest allowed encoded side, special tokens included; longer
            pairs are removed and counted as ``too_many_pieces``. Monolingual: the packed sequence
            length L (each sample is L + 1 tokens: inputs and shifted labels). A sample must fit
            ``batching.max_tokens``.
        valid_lines: monolingual only: the first ``valid_lines`` kept lines of each language are
            its validation split (the rest is training data).
        cache_dir: where trained SentencePiece models and default prepared directories go.
        encode_workers: worker processes for encoding in ``gradvac-prepare`` (``None`` = automatic).
        seed: seed of the step schedule (identical on every rank).
    """

    source: str = "synthetic"
    prepared: str | None = None
    path: str | None = None
    tsv: dict[str, dict[str, str]] = field(default_factory=dict)
    languages: tuple[str, ...] = ()
    pivot: str = "en"
    direction: str = "many-to-one"
    splits: tuple[str, ...] = SPLITS
    max_positions: int = 256
    valid_lines: int = 1000
    cache_dir: str = ".cache/gradvac_ds"
    encode_workers: int | None = None
    seed: int = 1234
    vocab: VocabularyOptions = field(default_factory=VocabularyOptions)
    filters: FilterConfig = field(default_factory=FilterConfig)
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    sanity: SanityConfig = field(default_factory=SanityConfig)

    def __post_init__(self) -> None:
        _choice("data.source", self.source, SOURCES)
        _choice("data.direction", self.direction, DIRECTIONS)
        for split in self.splits:
            _choice("data.splits[]", split, SPLITS)
        if "train" not in self.splits:
            raise DataConfigError(f"data.splits: must contain 'train', got {list(self.splits)}")
        if self.source in ("fairseq", "multiway", "monolingual") and not self.path:
            raise DataConfigError(f"data.path: required for source {self.source!r} (the corpus directory)")
        if self.source == "tsv" and not self.tsv:
            raise DataConfigError(
                "data.tsv: required for source 'tsv', e.g. {'de-en': {'train': 'train.tsv'}}"
            )
        if self.source != "tsv" and self.tsv:
            raise DataConfigError(f"data.tsv: only used with source 'tsv', not {self.source!r}")
        check_language_code(self.pivot, "data.pivot", error=DataConfigError)
        if self.source == "sanity" and (self.pivot, self.direction) != (SOURCE_LANGUAGE, "one-to-many"):
            raise DataConfigError(
                f"data.pivot / data.direction: source 'sanity' translates from {SOURCE_LANGUAGE!r} "
                f"one-to-many; got pivot {self.pivot!r}, direction {self.direction!r}"
            )
        for lang in self.languages:
            check_language_code(lang, "data.languages[]", error=DataConfigError)
        if self.pivot in self.languages:
            raise DataConfigError(f"data.languages: must not contain the pivot {self.pivot!r}")
        lm = self.source == "monolingual"
        longest = self.batching.max_tokens - (1 if lm else 0)
        if not 3 <= self.max_positions <= longest:
            bound = "batching.max_tokens - 1 (one packed sample)" if lm else "batching.max_tokens"
            raise DataConfigError(
                f"data.max_positions: must be in [3, {longest}] ({bound}), got {self.max_positions}"
            )
        if self.valid_lines < 0:
            raise DataConfigError(f"data.valid_lines: must be >= 0, got {self.valid_lines}")

    @property
    def is_lm(self) -> bool:
        """Language-model pretraining (``source: monolingual``) rather than translation."""
        return self.source == "monolingual"

    def prepared_dir(self) -> Path:
        """``prepared``, or the default under ``cache_dir`` named by a hash of what prepare reads."""
        if self.prepared:
            return Path(self.prepared)
        text = json.dumps(prepare_settings(self), sort_keys=True)
        return Path(self.cache_dir) / "prepared" / hashlib.sha256(text.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "DataConfig":
        """Build from a plain mapping (parsed JSON/YAML), rejecting unknown fields by name."""
        return load_section(cls, values, "data")


def prepare_settings(config: DataConfig) -> dict[str, Any]:
    """The :data:`PREPARE_FIELDS` of ``config`` as plain JSON values."""
    values = dataclasses.asdict(config)
    return json.loads(json.dumps({name: values[name] for name in PREPARE_FIELDS}))


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise DataConfigError(f"{name}: {value!r} is not allowed; allowed values: {list(allowed)}")
