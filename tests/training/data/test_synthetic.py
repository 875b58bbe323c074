"""Synthetic corpus: determinism, speed, planted family structure, fairseq round trip."""

import itertools
import statistics
import time
from pathlib import Path

import pytest

from gradvac_ds.training.data import (
    DataConfigError,
    SyntheticConfig,
    fairseq_source,
    generate_synthetic,
    write_fairseq_dir,
)


def _word_types(corpus, lang: str, pivot: str) -> set[str]:
    return {word for src, _ in corpus.pairs[(lang, pivot)]["train"] for word in src.split()}


def _jaccards(generated) -> tuple[list[float], list[float]]:
    """Word-type Jaccard of every language pair, split into within-family and cross-family lists."""
    types = {lang: _word_types(generated.corpus, lang, "en") for lang in generated.families}
    within, across = [], []
    for a, b in itertools.combinations(types, 2):
        jaccard = len(types[a] & types[b]) / len(types[a] | types[b])
        (within if generated.families[a] == generated.families[b] else across).append(jaccard)
    return within, across


def test_same_seed_identical_different_seed_differs() -> None:
    config = SyntheticConfig(train_sentences=200, valid_sentences=20, test_sentences=20, seed=3)
    first, second = generate_synthetic(config), generate_synthetic(config)
    assert first.corpus.pairs == second.corpus.pairs
    assert first.families == second.families
    other = generate_synthetic(
        SyntheticConfig(train_sentences=200, valid_sentences=20, test_sentences=20, seed=4)
    )
    assert other.corpus.pairs != first.corpus.pairs


def test_shape_splits_and_family_table() -> None:
    config = SyntheticConfig(num_families=3, languages_per_family=3, train_sentences=50, valid_sentences=5,
                             test_sentences=7)  # fmt: skip
    generated = generate_synthetic(config)
    assert sorted(generated.families) == sorted(config.language_codes)
    assert len(set(generated.families.values())) == 3
    assert all(list(generated.families.values()).count(f) == 3 for f in set(generated.families.values()))
    for code in config.language_codes:
        splits = generated.corpus.pairs[(code, "en")]
        assert {k: len(v) for k, v in splits.items()} == {"train": 50, "valid": 5, "test": 7}
        train, held_out = set(splits["train"]), set(splits["valid"]) | set(splits["test"])
        assert not train & held_out


def test_default_size_generates_fast() -> None:
    # CPU time of this process, so that other jobs on a loaded machine do not make the test flaky.
    start = time.process_time()
    generated = generate_synthetic(SyntheticConfig())
    elapsed = time.process_time() - start
    assert generated.corpus.stats.total_kept() == 6 * 2400
    assert elapsed < 2.0, f"generation took {elapsed:.2f} s"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_languages_in_a_family_share_more_words_than_across(seed: int) -> None:
    generated = generate_synthetic(SyntheticConfig(seed=seed, train_sentences=1500))
    within, across = _jaccards(generated)
    # Planted: shared family roots; measured: every within-family pair beats every cross-family one,
    # and the means differ by a factor of at least 5 (observed about 15-25).
    assert min(within) > max(across)
    assert statistics.mean(within) > 5 * statistics.mean(across)


def _within_across_ratio(config: SyntheticConfig) -> float:
    within, across = _jaccards(generate_synthetic(config))
    return statistics.mean(within) / statistics.mean(across)


def test_divergence_knobs_control_family_separation() -> None:
    planted = _within_across_ratio(SyntheticConfig(family_divergence=0.6, language_divergence=0.1))
    blurred = _within_across_ratio(SyntheticConfig(family_divergence=0.3, language_divergence=0.3))
    # Observed about 28 vs 4.4: language divergence as large as family divergence blurs the families.
    assert planted > 2 * blurred


def test_write_fairseq_then_read_back(tmp_path: Path, small_synthetic) -> None:
    written = write_fairseq_dir(small_synthetic.corpus, tmp_path)
    assert tmp_path / "train.qaa-en.qaa" in written and tmp_path / "test.qbb-en.en" in written
    read = fairseq_source(tmp_path, ("train", "valid", "test"))
    stored = small_synthetic.corpus.pairs
    assert read.pairs == sorted(stored)
    for pair, splits in stored.items():
        assert {split: list(read.lines(pair, split)) for split in splits} == splits


@pytest.mark.parametrize(
    ("field", "value"),
    [("num_families", 0), ("family_divergence", 1.5), ("lexicon_size", 3), ("pivot", "qab"), ("pivot", "EN")],
)
def test_invalid_synthetic_config_names_field(field: str, value: object) -> None:
    with pytest.raises(DataConfigError, match=f"synthetic.{field}"):
        SyntheticConfig(**{field: value})
