"""Shared SentencePiece vocabulary: ids, tags, round trip, cache, errors, parallel encoding."""

import pickle
from pathlib import Path

import pytest
import sentencepiece as spm

from gradvac_ds.data import (
    SharedVocabulary,
    VocabularyError,
    VocabularyOptions,
    encode_corpus,
    language_tag,
    train_shared_vocabulary,
)


def test_special_ids_and_size(vocabulary: SharedVocabulary) -> None:
    assert (vocabulary.pad_id, vocabulary.unk_id, vocabulary.bos_id, vocabulary.eos_id) == (0, 1, 2, 3)
    assert len(vocabulary) == vocabulary.size == 300


def test_tags_are_single_pieces_after_the_specials(vocabulary: SharedVocabulary, small_synthetic) -> None:
    expected = sorted([*small_synthetic.families, "en"])
    assert vocabulary.languages == expected
    assert [vocabulary.tag_id(lang) for lang in expected] == list(range(4, 4 + len(expected)))
    # SentencePiece may put a word-boundary piece before it, but never splits the tag itself.
    assert vocabulary.encode(language_tag("qab"))[-1] == vocabulary.tag_id("qab")
    with pytest.raises(KeyError, match="no language tag for 'fr'"):
        vocabulary.tag_id("fr")


def test_round_trip(vocabulary: SharedVocabulary, small_synthetic) -> None:
    for pair in small_synthetic.corpus.pairs[("qaa", "en")]["test"][:20]:
        for sentence in pair:
            ids = vocabulary.encode(sentence)
            assert 1 not in ids, "synthetic text uses only trained characters"
            assert vocabulary.decode(ids) == sentence


def test_decode_stops_at_eos_and_drops_specials(vocabulary: SharedVocabulary) -> None:
    ids = vocabulary.encode("ri barab")
    row = [vocabulary.bos_id, vocabulary.tag_id("en"), *ids, vocabulary.eos_id, *ids, 0, 0]
    assert vocabulary.decode(row) == vocabulary.decode(ids)
    assert vocabulary.decode([0, *ids, 0]) == vocabulary.decode(ids)


def test_pickle_round_trip(vocabulary: SharedVocabulary) -> None:
    clone = pickle.loads(pickle.dumps(vocabulary))
    assert clone.encode("ri barab pe") == vocabulary.encode("ri barab pe")
    assert clone.languages == vocabulary.languages


def test_cache_hit_does_not_retrain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = [f"alpha beta gamma {i} delta" for i in range(200)]
    options = VocabularyOptions(vocab_size=40)
    first = train_shared_vocabulary(text, ["de", "en"], options, tmp_path)
    assert len(list(tmp_path.glob("spm-*.model"))) == 1

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("SentencePiece retrained despite a cached model")

    monkeypatch.setattr(spm.SentencePieceTrainer, "train", refuse)
    second = train_shared_vocabulary(text, ["en", "de"], options, tmp_path)
    assert second.model_proto == first.model_proto
    with pytest.raises(VocabularyError, match="retrained despite"):
        train_shared_vocabulary([*text, "one more sentence"], ["de", "en"], options, tmp_path)


def test_different_options_give_a_different_cache_entry(tmp_path: Path) -> None:
    text = [f"alpha beta gamma {i} delta" for i in range(200)]
    train_shared_vocabulary(text, ["de", "en"], VocabularyOptions(vocab_size=40), tmp_path)
    train_shared_vocabulary(text, ["de", "en"], VocabularyOptions(vocab_size=45), tmp_path)
    assert len(list(tmp_path.glob("spm-*.model"))) == 2
    loaded = SharedVocabulary.load(next(tmp_path.glob("spm-*.model")))
    assert loaded.languages == ["de", "en"]


def test_vocab_size_too_large_is_explained(tmp_path: Path) -> None:
    with pytest.raises(VocabularyError, match=r"vocab.vocab_size=5000 is too large.*at most \d+ pieces"):
        train_shared_vocabulary(
            ["tiny text", "tiny tiny"], ["de", "en"], VocabularyOptions(vocab_size=5000), tmp_path
        )


def test_empty_training_text(tmp_path: Path) -> None:
    with pytest.raises(VocabularyError, match="no non-empty training sentence"):
        train_shared_vocabulary(["", ""], ["de"], VocabularyOptions(), tmp_path)


def test_worker_encoding_equals_in_process(vocabulary: SharedVocabulary, small_synthetic) -> None:
    texts = [side for pair in small_synthetic.corpus.pairs[("qaa", "en")]["train"] for side in pair]
    in_process = encode_corpus(vocabulary, texts, workers=1)
    parallel = encode_corpus(vocabulary, texts, workers=2, min_parallel=0, chunk_size=100)
    assert parallel == in_process
    assert in_process == [vocabulary.encode(t) for t in texts]
