"""build_data end to end on synthetic and on-disk data (real SentencePiece, small sizes)."""

from pathlib import Path

import pytest

from gradvac_ds.training.data import (
    EOS_ID,
    DataConfig,
    DataConfigError,
    build_data,
    iter_eval_batches,
    write_fairseq_dir,
)

SMALL_SYNTHETIC = {
    "num_families": 2, "languages_per_family": 2, "train_sentences": 300, "valid_sentences": 20,
    "test_sentences": 25, "lexicon_size": 120, "seed": 7,
}  # fmt: skip


def _config(tmp_path: Path, **overrides: object) -> DataConfig:
    values = {
        "cache_dir": str(tmp_path / "cache"),
        "vocab": {"vocab_size": 300},
        "batching": {"max_tokens": 512, "micro_batches_per_step": 3},
        "synthetic": SMALL_SYNTHETIC,
        **overrides,
    }
    return DataConfig.from_dict(values)


def test_synthetic_both_directions(tmp_path: Path) -> None:
    bundle = build_data(_config(tmp_path, direction="both"))
    langs = ["qaa", "qab", "qba", "qbb"]
    assert bundle.tasks == [f"{x}-en" for x in langs] + [f"en-{x}" for x in langs]
    assert bundle.families == {"qaa": "family0", "qab": "family0", "qba": "family1", "qbb": "family1"}
    assert len(bundle.vocabulary) == 300 and bundle.vocabulary.languages == sorted([*langs, "en"])
    train = {t.task: t for t in bundle.train}
    assert len(train["qaa-en"]) == 300
    assert train["qaa-en"].tag_id == bundle.vocabulary.tag_id("en")
    assert train["en-qaa"].tag_id == bundle.vocabulary.tag_id("qaa")
    assert train["en-qaa"].src[0] == train["qaa-en"].tgt[0]
    test = bundle.test["qba-en"]
    assert len(test.references) == 25
    assert [bundle.vocabulary.decode(ids) for ids in test.encoded.src] == test.sources
    assert [bundle.vocabulary.decode(ids) for ids in test.encoded.tgt] == test.references
    assert set(bundle.valid) == set(bundle.tasks)

    step = bundle.schedule(0, 1).next_step()
    assert sum(len(b) for b in step.values()) == 3
    first = next(iter(iter_eval_batches(test.encoded, max_tokens=512, max_sentences=8)))
    assert first.src[0, 0] == bundle.vocabulary.tag_id("en")
    assert bundle.vocabulary.decode(first.tgt[0].tolist()) == test.references[0]
    assert EOS_ID in first.tgt[0].tolist()


def test_vocabulary_cached_across_builds(tmp_path: Path) -> None:
    build_data(_config(tmp_path))
    build_data(_config(tmp_path, direction="one-to-many"))
    assert len(list((tmp_path / "cache").glob("spm-*.model"))) == 1


def test_too_many_pieces_are_counted(tmp_path: Path) -> None:
    bundle = build_data(_config(tmp_path, max_positions=12, languages=["qaa"]))
    removed = bundle.stats.removed[(("qaa", "en"), "train")]["too_many_pieces"]
    assert removed > 0
    assert len(bundle.train[0]) + removed == 300
    assert all(
        max(len(s), len(t)) + 2 <= 12 for s, t in zip(bundle.train[0].src, bundle.train[0].tgt, strict=True)
    )


def test_fairseq_source_from_written_synthetic(tmp_path: Path, small_synthetic) -> None:
    write_fairseq_dir(small_synthetic.corpus, tmp_path / "corpus")
    bundle = build_data(_config(tmp_path, source="fairseq", path=str(tmp_path / "corpus"), languages=["qab"]))
    assert bundle.tasks == ["qab-en"]
    assert bundle.families is None
    assert bundle.test["qab-en"].references == [
        t for _, t in small_synthetic.corpus.pairs[("qab", "en")]["test"]
    ]


def test_reversed_tsv_pair_is_oriented_to_the_pivot(tmp_path: Path) -> None:
    tsv = tmp_path / "en-de.tsv"
    tsv.write_text("".join(f"the house {i}\tdas Haus {i}\n" for i in range(60)), encoding="utf-8")
    bundle = build_data(
        _config(
            tmp_path,
            source="tsv",
            tsv={"en-de": {"train": str(tsv)}},
            vocab={"vocab_size": 30},
            direction="many-to-one",
            splits=["train"],
        )
    )
    assert bundle.tasks == ["de-en"]
    assert bundle.vocabulary.decode(bundle.train[0].src[5]) == "das Haus 5"
    assert bundle.test == {} and bundle.valid == {}


def test_unknown_language_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(
        DataConfigError, match=r"data\.languages: \['zz'\] have no data paired with pivot 'en'"
    ):
        build_data(_config(tmp_path, languages=["zz"]))
