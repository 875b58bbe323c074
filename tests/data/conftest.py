"""Shared fixtures: a small synthetic corpus and a real SentencePiece vocabulary trained on it."""

from pathlib import Path

import pytest

from gradvac_ds.data import (
    SharedVocabulary,
    SyntheticConfig,
    SyntheticCorpus,
    VocabularyOptions,
    generate_synthetic,
    train_shared_vocabulary,
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
    text = [side for splits in corpus.pairs.values() for pair in splits["train"] for side in pair]
    languages = [*small_synthetic.families, SMALL.pivot]
    return train_shared_vocabulary(text, languages, VocabularyOptions(vocab_size=300), vocab_dir)
