"""From a :class:`DataConfig` to everything training and evaluation need.

``build_data(config)``: read or generate the corpus -> choose tasks (``xx-pivot`` and/or
``pivot-xx``) -> train or load the shared vocabulary on the training sides -> encode every split
(each distinct sentence once) -> drop pairs longer than ``max_positions`` pieces (counted) ->
:class:`DataBundle` with the training tasks in a fixed global order, the evaluation sets, the filter
statistics and, for synthetic data, the planted family table.
"""

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gradvac_ds.training.data.batching import EncodedTask
from gradvac_ds.training.data.config import DataConfig
from gradvac_ds.training.data.corpus import FilterStats, ParallelCorpus
from gradvac_ds.training.data.encoding import encode_corpus
from gradvac_ds.training.data.errors import DataConfigError, DataError
from gradvac_ds.training.data.languages import task_name
from gradvac_ds.training.data.readers import read_fairseq_dir, read_multiway_dir, read_tsv_files
from gradvac_ds.training.data.sampling import StepSchedule
from gradvac_ds.training.data.synthetic import generate_synthetic
from gradvac_ds.training.data.vocabulary import SharedVocabulary, train_shared_vocabulary

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalSet:
    """One task's held-out split: raw text for BLEU and the encoded pairs for the model.

    ``sources[i]``, ``references[i]`` and ``encoded.src[i]`` / ``encoded.tgt[i]`` are the same pair.
    """

    task: str
    sources: list[str]
    references: list[str]
    encoded: EncodedTask


@dataclass
class DataBundle:
    """Prepared data of a run.

    Attributes:
        config: the configuration used.
        vocabulary: the shared SentencePiece vocabulary.
        train: encoded training data per task, in the global task order.
        valid / test: evaluation sets by task name (empty when the split was not read).
        stats: every removed line pair, by pair, split and reason.
        families: planted language -> family table (synthetic source only, else ``None``).
    """

    config: DataConfig
    vocabulary: SharedVocabulary
    train: list[EncodedTask]
    valid: dict[str, EvalSet]
    test: dict[str, EvalSet]
    stats: FilterStats
    families: dict[str, str] | None

    @property
    def tasks(self) -> list[str]:
        """Task names in the global task order."""
        return [t.task for t in self.train]

    def schedule(self, dp_rank: int = 0, dp_world_size: int = 1) -> StepSchedule:
        """The step schedule of one data-parallel rank (same ``config.seed`` on every rank)."""
        return StepSchedule(self.train, self.config.batching, dp_rank, dp_world_size, self.config.seed)


def load_corpus(config: DataConfig) -> tuple[ParallelCorpus, dict[str, str] | None]:
    """The corpus named by ``config`` and, for synthetic data, its planted family table."""
    if config.source == "synthetic":
        generated = generate_synthetic(dataclasses.replace(config.synthetic, pivot=config.pivot))
        return generated.corpus, generated.families
    if config.source == "fairseq":
        return read_fairseq_dir(config.path, config.splits, config.filters), None
    if config.source == "tsv":
        return read_tsv_files(config.tsv, config.filters), None
    languages = config.languages or None
    return read_multiway_dir(config.path, config.pivot, languages, config.splits, config.filters), None


def select_languages(corpus: ParallelCorpus, config: DataConfig) -> list[str]:
    """Non-pivot languages to use: ``config.languages`` or all paired with the pivot, sorted.

    Raises:
        DataConfigError: if a requested language has no pair with the pivot, or none does.
    """
    paired = {a if b == config.pivot else b for a, b in corpus.pairs if config.pivot in (a, b)}
    if config.languages:
        missing = sorted(set(config.languages) - paired)
        if missing:
            raise DataConfigError(
                f"data.languages: {missing} have no data paired with pivot {config.pivot!r}; "
                f"available: {sorted(paired)}"
            )
        return sorted(config.languages)
    if not paired:
        raise DataConfigError(
            f"data.pivot: no language pair contains {config.pivot!r}; pairs: {sorted(corpus.pairs)}"
        )
    return sorted(paired)


def task_pairs(languages: Sequence[str], pivot: str, direction: str) -> list[tuple[str, str]]:
    """``(src, tgt)`` per task in the global order: all xx->pivot, then all pivot->xx."""
    pairs = []
    if direction in ("many-to-one", "both"):
        pairs += [(lang, pivot) for lang in languages]
    if direction in ("one-to-many", "both"):
        pairs += [(pivot, lang) for lang in languages]
    return pairs


def _encode_all(
    corpus: ParallelCorpus,
    pairs: Sequence[tuple[str, str]],
    splits: Sequence[str],
    vocabulary: SharedVocabulary,
    workers: int | None,
) -> dict[str, list[int]]:
    """Encoding of every distinct sentence of the requested pairs and splits."""
    texts: dict[str, None] = {}
    for src, tgt in pairs:
        for split in splits:
            for s, t in _split_pairs(corpus, src, tgt, split):
                texts.setdefault(s)
                texts.setdefault(t)
    ordered = list(texts)
    return dict(zip(ordered, encode_corpus(vocabulary, ordered, workers=workers), strict=True))


def _split_pairs(corpus: ParallelCorpus, src: str, tgt: str, split: str) -> list[tuple[str, str]]:
    return corpus.oriented(src, tgt, split) if split in corpus.splits((src, tgt)) else []


def _encode_split(
    corpus: ParallelCorpus,
    pair: tuple[str, str],
    split: str,
    codes: dict[str, list[int]],
    vocabulary: SharedVocabulary,
    max_positions: int,
) -> tuple[list[tuple[str, str]], EncodedTask]:
    """Kept raw pairs and their encoding; pairs with a side over ``max_positions`` are counted and dropped."""
    kept_text, src_ids, tgt_ids = [], [], []
    too_long = 0
    for s, t in _split_pairs(corpus, *pair, split):
        if max(len(codes[s]), len(codes[t])) + 2 > max_positions:
            too_long += 1
            continue
        kept_text.append((s, t))
        src_ids.append(codes[s])
        tgt_ids.append(codes[t])
    if too_long:
        corpus.stats.record_removed(pair, split, "too_many_pieces", too_long)
    name = task_name(*pair)
    return kept_text, EncodedTask(name, vocabulary.tag_id(pair[1]), src_ids, tgt_ids)


def _training_sides(corpus: ParallelCorpus, stored: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Each language's sentences on the training sides of the stored pairs (the pivot's from all)."""
    sides: dict[str, list[str]] = {lang: [] for pair in stored for lang in pair}
    for s, t in stored:
        for source, target in _split_pairs(corpus, s, t, "train"):
            sides[s].append(source)
            sides[t].append(target)
    return sides


def build_data(config: DataConfig) -> DataBundle:
    """Prepare corpus, vocabulary and encoded splits as described in the module docstring.

    Raises:
        DataError / DataConfigError / VocabularyError: with the file, line or field at fault.
    """
    corpus, families = load_corpus(config)
    languages = select_languages(corpus, config)
    pairs = task_pairs(languages, config.pivot, config.direction)
    stored = [(lang, config.pivot) for lang in languages]
    vocab_text = _training_sides(corpus, stored)
    vocabulary = train_shared_vocabulary(vocab_text, config.vocab, Path(config.cache_dir))
    splits = [split for split in ("train", "valid", "test") if split in config.splits]
    codes = _encode_all(corpus, stored, splits, vocabulary, config.encode_workers)
    train: list[EncodedTask] = []
    evaluation: dict[str, dict[str, EvalSet]] = {"valid": {}, "test": {}}
    for pair in pairs:
        for split in splits:
            text, encoded = _encode_split(corpus, pair, split, codes, vocabulary, config.max_positions)
            if split == "train":
                if not len(encoded):
                    raise DataError(
                        f"task {encoded.task}: no training pair left after filtering\n{corpus.stats.report()}"
                    )
                train.append(encoded)
            elif text:
                sources, references = [s for s, _ in text], [t for _, t in text]
                evaluation[split][encoded.task] = EvalSet(encoded.task, sources, references, encoded)
    logger.info("data ready: %d tasks, vocabulary %d\n%s", len(train), len(vocabulary), corpus.stats.report())
    return DataBundle(
        config, vocabulary, train, evaluation["valid"], evaluation["test"], corpus.stats, families
    )
