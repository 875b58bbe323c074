"""Sanity tasks every sequence-to-sequence trainer must pass: copy and reverse random symbol strings.

A sentence is ``n`` symbols drawn uniformly (with replacement) from an alphabet of ``symbols``
one-character words, separated by spaces, with ``n`` uniform in ``[min_length, max_length]``
(valid and test) or ``[min_length, train_max_length]`` (train).
The target of the ``copy`` task is the source itself; that of ``reverse`` is the source's words
in reverse order. A model can only solve either by reading its source, and only ``reverse`` needs
positions, so the pair separates "the decoder sees the encoder" from "positions work".

The source side is the language ``zxx`` (ISO 639-2 "no linguistic content"), the targets are
``cpy`` and ``rev``; each task is ``zxx-<task>`` and its target-language tag (``<2cpy>``,
``<2rev>``) is what tells a multi-task model which task to do. A BPE vocabulary of
``4 + (tasks + 1) + 1 + 2 * symbols`` pieces (specials, one tag per language, ``▁``, every symbol
alone and after ``▁``) holds every word as one piece: 128 for both tasks and 60 symbols.
Everything is drawn from ``random.Random`` seeded with strings derived from ``seed``.
"""

import random
import string
from dataclasses import dataclass

from gradvac_ds.training.data.corpus import FilterConfig, ParallelCorpus
from gradvac_ds.training.data.errors import DataConfigError, check_integer_ranges

SOURCE_LANGUAGE = "zxx"
TASK_LANGUAGES = {"copy": "cpy", "reverse": "rev"}
"""Sanity task -> its target language code."""
ALPHABET = string.ascii_lowercase + string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class SanityConfig:
    """The sanity corpus: which tasks, the alphabet, lengths and split sizes.

    Attributes:
        tasks: a non-empty subset of ``("copy", "reverse")``.
        symbols: alphabet size (2-62): the first ``symbols`` of a-z, A-Z, 0-9.
        min_length / max_length: symbols per sentence, inclusive bounds.
        train_max_length: longest training sentence (default ``max_length``). With learned absolute
            positions, the positions just past the longest training sentence are trained by those
            sentences alone (``1 / (train_max_length - min_length + 1)`` of the data); a value above
            ``max_length`` keeps the evaluated lengths off that edge.
        train_sentences / valid_sentences / test_sentences: pairs per task and split.
        seed: everything is a function of it.
    """

    tasks: tuple[str, ...] = ("copy", "reverse")
    symbols: int = 60
    min_length: int = 5
    max_length: int = 20
    train_max_length: int | None = None
    train_sentences: int = 20_000
    valid_sentences: int = 200
    test_sentences: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.tasks or len(set(self.tasks)) != len(self.tasks) or set(self.tasks) - set(TASK_LANGUAGES):
            raise DataConfigError(
                f"sanity.tasks: must list distinct tasks from {list(TASK_LANGUAGES)}, got {list(self.tasks)}"
            )
        ranges = {
            "symbols": (self.symbols, 2, len(ALPHABET)),
            "min_length": (self.min_length, 1, 10_000),
            "max_length": (self.max_length, self.min_length, 10_000),
            "train_max_length": (self.longest_training, self.max_length, 10_000),
            "train_sentences": (self.train_sentences, 1, 10**7),
            "valid_sentences": (self.valid_sentences, 0, 10**6),
            "test_sentences": (self.test_sentences, 0, 10**6),
        }
        check_integer_ranges("sanity", ranges)

    @property
    def longest_training(self) -> int:
        """``train_max_length``, or ``max_length`` when it is not set."""
        return self.max_length if self.train_max_length is None else self.train_max_length


def target_of(task: str, sentence: str) -> str:
    """The reference of ``sentence`` for ``task``: itself (copy) or its words reversed (reverse)."""
    if task == "copy":
        return sentence
    return " ".join(reversed(sentence.split(" ")))


def sanity_corpus(config: SanityConfig) -> ParallelCorpus:
    """Pairs ``(zxx, <task language>)`` with splits train, valid, test; each task and split draws
    its own strings (seeded by task and split)."""
    alphabet = ALPHABET[: config.symbols]
    sizes = {"train": config.train_sentences, "valid": config.valid_sentences, "test": config.test_sentences}
    keep_all = FilterConfig(max_chars=10**9, max_length_ratio=None)
    corpus = ParallelCorpus()
    for task in config.tasks:
        pair = (SOURCE_LANGUAGE, TASK_LANGUAGES[task])
        for split, size in sizes.items():
            rng = random.Random(f"gradvac-sanity/{config.seed}/{task}/{split}")
            corpus.pairs.setdefault(pair, {})[split] = []
            longest = config.longest_training if split == "train" else config.max_length
            for _ in range(size):
                length = rng.randint(config.min_length, longest)
                sentence = " ".join(rng.choice(alphabet) for _ in range(length))
                corpus.add(pair, split, sentence, target_of(task, sentence), keep_all)
    return corpus
