"""The copy/reverse sanity corpus: targets, sizes, determinism, config errors, one piece per symbol."""

import pytest
from data_helpers import vocabulary_from_text

from gradvac_ds.training.data import DataConfig, DataConfigError, VocabularyOptions
from gradvac_ds.training.data.sanity import SanityConfig, sanity_corpus, target_of


def test_targets_copy_and_reverse_the_words() -> None:
    assert target_of("copy", "a b C") == "a b C"
    assert target_of("reverse", "a b C") == "C b a"


def test_corpus_sizes_lengths_alphabet_and_seed() -> None:
    config = SanityConfig(symbols=5, min_length=3, max_length=6, train_sentences=50, valid_sentences=4,
                          test_sentences=7, seed=3)  # fmt: skip
    corpus = sanity_corpus(config)
    assert sorted(corpus.pairs) == [("zxx", "cpy"), ("zxx", "rev")]
    for (_, lang), splits in corpus.pairs.items():
        assert {split: len(rows) for split, rows in splits.items()} == {"train": 50, "valid": 4, "test": 7}
        for src, tgt in splits["train"]:
            words = src.split(" ")
            assert 3 <= len(words) <= 6 and set(words) <= set("abcde")
            assert tgt == (src if lang == "cpy" else " ".join(reversed(words)))
    assert corpus.pairs == sanity_corpus(config).pairs
    assert corpus.pairs != sanity_corpus(SanityConfig(symbols=5, train_sentences=50, seed=4)).pairs
    copy_train = corpus.pairs[("zxx", "cpy")]["train"]
    assert copy_train != corpus.pairs[("zxx", "rev")]["train"]  # each task draws its own strings


def test_training_strings_may_run_longer_than_the_evaluated_ones() -> None:
    config = SanityConfig(tasks=("copy",), min_length=2, max_length=4, train_max_length=6,
                          train_sentences=400, valid_sentences=100, test_sentences=100)  # fmt: skip
    splits = sanity_corpus(config).pairs[("zxx", "cpy")]
    lengths = {split: {len(src.split(" ")) for src, _ in rows} for split, rows in splits.items()}
    assert lengths == {"train": set(range(2, 7)), "valid": set(range(2, 5)), "test": set(range(2, 5))}
    assert SanityConfig().longest_training == SanityConfig().max_length == 20


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"tasks": ["copy", "sort"]}, "sanity.tasks"),
        ({"tasks": []}, "sanity.tasks"),
        ({"symbols": 63}, "sanity.symbols"),
        ({"min_length": 6, "max_length": 5}, "sanity.max_length"),
        ({"max_length": 20, "train_max_length": 19}, "sanity.train_max_length"),
        ({"train_sentences": 0}, "sanity.train_sentences"),
    ],
)
def test_bad_config_names_the_field(values: dict, field: str) -> None:
    with pytest.raises(DataConfigError, match=field):
        SanityConfig(**values)


def test_source_sanity_needs_the_zxx_pivot_one_to_many() -> None:
    with pytest.raises(DataConfigError, match=r"data\.pivot / data\.direction"):
        DataConfig.from_dict({"source": "sanity"})
    DataConfig.from_dict({"source": "sanity", "pivot": "zxx", "direction": "one-to-many"})


def test_bpe_vocabulary_of_the_documented_size_holds_each_word_as_one_piece(tmp_path) -> None:
    config = SanityConfig(symbols=60, train_sentences=2000)
    corpus = sanity_corpus(config)
    text = {"zxx": [s for rows in corpus.pairs.values() for s, _ in rows["train"]]}
    text["cpy"] = [t for _, t in corpus.pairs[("zxx", "cpy")]["train"]]
    text["rev"] = [t for _, t in corpus.pairs[("zxx", "rev")]["train"]]
    vocabulary = vocabulary_from_text(text, VocabularyOptions(vocab_size=128, model_type="bpe"), tmp_path)
    for sentence, _ in corpus.pairs[("zxx", "rev")]["test"]:
        assert len(vocabulary.encode(sentence)) == len(sentence.split(" "))
