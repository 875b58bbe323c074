"""Shared fixtures: a small synthetic corpus and a real SentencePiece vocabulary trained on it."""

from pathlib import Path

import pytest
from data_helpers import vocabulary_from_text

from gradvac_ds.training.data import (
    SharedVocabulary,
    SyntheticConfig,
    SyntheticCorpus,
    VocabularyOptions,
    generate_synthetic,
)

SMALL = SyntheticConfig(
    num_families=2, languages_per_family=2, train_sentences=300, valid_sentences=30, test_sentences=30,
    lexicon_size=120, seed=7,
)  # fmt: skip


@pytest.fixture(scope="session")
def small_synthetic() -> SyntheticCorpus:
    return generate_synthetic(SMALL)


@pytest.fixture(scope="session")
def vocab_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("spm-cache")


@pytest.fixture(scope="session")
def vocabulary(small_synthetic: SyntheticCorpus, vocab_dir: Path) -> SharedVocabulary:
    corpus = small_synthetic.corpus
    text: dict[str, list[str]] = {lang: [] for lang in [*small_synthetic.families, SMALL.pivot]}
    for (src, tgt), splits in corpus.pairs.items():
        for source, target in splits["train"]:
            text[src].append(source)
            text[tgt].append(target)
    return vocabulary_from_text(text, VocabularyOptions(vocab_size=300), vocab_dir)
