"""gradvac-prepare end to end (real SentencePiece, real megatron-core indexed datasets, small sizes):
layouts, round trip against the encoder, filter counts per task, the manifest, restarts."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gradvac_ds.training.data import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    DataConfig,
    DataConfigError,
    DataError,
    iter_eval_batches,
    open_prepared,
    prepare_data,
    write_fairseq_dir,
    write_monolingual_dir,
)

SMALL_SYNTHETIC = {
    "num_families": 2, "languages_per_family": 2, "train_sentences": 300, "valid_sentences": 20,
    "test_sentences": 25, "lexicon_size": 120, "seed": 7,
}  # fmt: skip


def _config(tmp_path: Path, **overrides: object) -> DataConfig:
    values = {
        "cache_dir": str(tmp_path / "cache"),
        "prepared": str(tmp_path / "prepared"),
        "encode_workers": 1,
        "vocab": {"vocab_size": 300},
        "batching": {"max_tokens": 512, "micro_batches_per_step": 3},
        "synthetic": SMALL_SYNTHETIC,
        **overrides,
    }
    return DataConfig.from_dict(values)


def _pad(rows: list[list[int]]) -> torch.Tensor:
    width = max(map(len, rows))
    return torch.tensor([row + [PAD_ID] * (width - len(row)) for row in rows])


@pytest.fixture(scope="module")
def both(tmp_path_factory) -> DataConfig:
    config = _config(tmp_path_factory.mktemp("both"), direction="both")
    prepare_data(config, progress=False)
    return config


def test_synthetic_both_directions(both: DataConfig, small_synthetic) -> None:
    data = open_prepared(both)
    langs = ["qaa", "qab", "qba", "qbb"]
    assert data.tasks == [f"{x}-en" for x in langs] + [f"en-{x}" for x in langs]
    assert data.families == {"qaa": "family0", "qab": "family0", "qba": "family1", "qbb": "family1"}
    assert len(data.vocabulary) == 300 and data.vocabulary.languages == sorted([*langs, "en"])
    train = {t.task: t for t in data.train}
    assert len(train["qaa-en"]) == 300 and train["qaa-en"].tag_id == data.vocabulary.tag_id("en")
    assert train["en-qaa"].tag_id == data.vocabulary.tag_id("qaa")
    assert train["en-qaa"].pieces(0) == train["qaa-en"].pieces(0)[::-1]
    assert set(data.valid) == set(data.tasks) and len(data.test["qba-en"].references) == 25
    step = data.schedule(0, 1).next_step()
    assert sum(len(b) for b in step.values()) == 3
    first = next(iter(iter_eval_batches(data.test["qba-en"].data, max_tokens=512, max_sentences=8)))
    assert first.src[0, 0] == data.vocabulary.tag_id("en") and EOS_ID in first.tgt[0].tolist()
    assert data.vocabulary.decode(first.tgt[0].tolist()) == data.test["qba-en"].references[0]
    manifest = json.loads((data.directory / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and len(manifest["content_sha256"]) == 64
    assert manifest["filters"]["en-qaa"]["train"] == {"kept": 300, "removed": {}}
    assert manifest["datasets"]["qaa-en"]["train"]["documents"] == 300


def test_round_trip_equals_the_encoder_on_the_same_text(tmp_path: Path, small_synthetic) -> None:
    """Every batch of every task and split holds exactly the ids SentencePiece gives the raw text
    (tag / bos / eos added as the batch contract says), pairs over max_positions dropped."""
    corpus = tmp_path / "corpus"
    write_fairseq_dir(small_synthetic.corpus, corpus)
    config = _config(tmp_path, source="fairseq", path=str(corpus), max_positions=14, direction="both")
    prepare_data(config, progress=False)
    data = open_prepared(config)
    vocab = data.vocabulary
    checked = 0
    for split, tasks in (("train", {t.task: t for t in data.train}), ("valid", data.valid)):
        for task, dataset in tasks.items():
            src_lang, tgt_lang = task.split("-")
            stored = (src_lang, tgt_lang) if tgt_lang == "en" else (tgt_lang, src_lang)
            pairs = small_synthetic.corpus.pairs[stored][split]
            pairs = [(a, b) if stored[0] == src_lang else (b, a) for a, b in pairs]
            kept = [
                (vocab.encode(a), vocab.encode(b))
                for a, b in pairs
                if max(len(vocab.encode(a)), len(vocab.encode(b))) + 2 <= 14
            ]
            assert 0 < len(kept) < len(pairs) and len(dataset) == len(kept)
            batches = list(iter_eval_batches(dataset, max_tokens=512, max_sentences=7))
            rows = 0
            for batch in batches:
                expected = kept[rows : rows + batch.num_sentences]
                rows += batch.num_sentences
                tag = vocab.tag_id(tgt_lang)
                assert torch.equal(batch.src, _pad([[tag, *s, EOS_ID] for s, _ in expected]))
                assert torch.equal(batch.tgt, _pad([[BOS_ID, *t, EOS_ID] for _, t in expected]))
            assert rows == len(kept)
            filters = data.manifest["filters"][task][split]
            assert filters["kept"] == len(kept)
            assert filters["removed"] == {"too_many_pieces": len(pairs) - len(kept)}
            checked += 1
    assert checked == 16


def test_language_model_documents_and_packed_samples(tmp_path: Path, small_synthetic) -> None:
    corpus = tmp_path / "mono"
    write_monolingual_dir(small_synthetic.corpus, corpus, "en")
    (corpus / "qaa.txt").write_text("\n" + (corpus / "qaa.txt").read_text(), encoding="utf-8")
    config = _config(tmp_path, source="monolingual", path=str(corpus), max_positions=16, valid_lines=20)
    prepare_data(config, progress=False)
    data = open_prepared(config)
    assert data.is_lm and data.tasks == ["qaa", "qab", "qba", "qbb"] and data.test == {}
    lines = (corpus / "qab.txt").read_text(encoding="utf-8").splitlines()
    stream = [i for line in lines[20:] for i in [*data.vocabulary.encode(line), EOS_ID]]
    train = data.train[1]
    assert len(train) == (len(stream) - 1) // 16
    batch = train.batch([0, 3])
    assert batch.tokens.tolist() == [stream[0:17], stream[48:65]]
    valid = [i for line in lines[:20] for i in [*data.vocabulary.encode(line), EOS_ID]]
    assert len(data.valid["qab"]) == (len(valid) - 1) // 16
    assert data.manifest["filters"]["qaa"]["valid"] == {"kept": 20, "removed": {"empty": 1}}
    assert data.manifest["filters"]["qaa"]["train"]["kept"] == 30 + 300 + 30 - 20  # valid, train, test lines


def test_reversed_tsv_pair_is_oriented_to_the_pivot_and_dev_is_valid(tmp_path: Path) -> None:
    train, dev = tmp_path / "en-de.tsv", tmp_path / "en-de.dev.tsv"
    train.write_text("".join(f"the house {i}\tdas Haus {i}\n" for i in range(60)), encoding="utf-8")
    dev.write_text("the house 95\tdas Haus 95\n", encoding="utf-8")
    config = _config(
        tmp_path, source="tsv", tsv={"en-de": {"train": str(train), "dev": str(dev)}},
        vocab={"vocab_size": 30}, splits=["train", "valid"],
    )  # fmt: skip
    prepare_data(config, progress=False)
    data = open_prepared(config)
    assert data.tasks == ["de-en"] and data.test == {} and list(data.valid) == ["de-en"]
    assert data.vocabulary.decode(data.train[0].pieces(5)[0]) == "das Haus 5"
    assert data.vocabulary.decode(data.valid["de-en"].pieces(0)[1]) == "the house 95"


def test_unknown_language_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(
        DataConfigError, match=r"data\.languages: \['zz'\] have no data paired with pivot 'en'"
    ):
        prepare_data(_config(tmp_path, languages=["zz"]), progress=False)


def test_three_letter_codes_say_what_was_found_and_expected(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    for lang in ("deu", "eng"):
        (tmp_path / "c" / f"train.deu-eng.{lang}").write_text("a b\n", encoding="utf-8")
    (tmp_path / "c" / "tatoeba.deu-eng.deu").write_text("a b\n", encoding="utf-8")
    with pytest.raises(DataConfigError) as error:
        prepare_data(_config(tmp_path, source="fairseq", path=str(tmp_path / "c")), progress=False)
    message = str(error.value)
    assert "no language pair of" in message and "found pairs: deu-eng" in message
    assert "did you mean data.pivot: 'eng'?" in message
    assert "tatoeba.deu-eng.deu: split 'tatoeba' is not one of" in message


def test_rerun_reuses_and_other_settings_need_overwrite(tmp_path: Path) -> None:
    config = _config(tmp_path, languages=["qaa"])
    (tmp_path / "prepared.partial").mkdir(parents=True)  # debris of an interrupted run
    (tmp_path / "prepared.partial" / "train.qaa-en.bin").write_bytes(b"junk")
    out = prepare_data(config, progress=False)
    assert not (tmp_path / "prepared.partial").exists()
    stamp = (out / "manifest.json").stat().st_mtime_ns
    assert prepare_data(config, progress=False) == out and (out / "manifest.json").stat().st_mtime_ns == stamp
    other = _config(tmp_path, languages=["qab"])
    with pytest.raises(DataError, match=r"data\.languages: run config \['qab'\], prepared \['qaa'\]"):
        prepare_data(other, progress=False)
    prepare_data(other, overwrite=True, progress=False)
    assert open_prepared(other).tasks == ["qab-en"]


def test_default_directory_is_named_by_the_settings(tmp_path: Path) -> None:
    a = DataConfig.from_dict({"cache_dir": str(tmp_path), "vocab": {"vocab_size": 300}})
    b = DataConfig.from_dict({"cache_dir": str(tmp_path), "vocab": {"vocab_size": 301}})
    c = DataConfig.from_dict({"cache_dir": str(tmp_path), "vocab": {"vocab_size": 300}, "seed": 5})
    assert a.prepared_dir() != b.prepared_dir() and a.prepared_dir() == c.prepared_dir()
    assert a.prepared_dir().parent == tmp_path / "prepared"
    assert np.dtype(np.uint16).itemsize == 2  # 300 pieces fit uint16 tokens (megatron's optimal dtype)


def test_every_source_has_its_reader_and_a_missing_one_is_an_error() -> None:
    """A source named in SOURCES but without a translation reader is refused, not read as multiway."""
    from gradvac_ds.training.data.config import SOURCES
    from gradvac_ds.training.data.translation_pipeline import PARALLEL_SOURCES, open_parallel

    assert set(SOURCES) == {*PARALLEL_SOURCES, "monolingual"}  # monolingual: the LM pipeline
    config = DataConfig(source="monolingual", path="corpus", languages=("de", "fr"))
    with pytest.raises(DataConfigError, match=r"data.source = 'monolingual' has no translation reader"):
        open_parallel(config)
