"""Shared SentencePiece vocabulary: ids, tags, round trip, cache, errors, parallel encoding."""

import logging
import pickle
import random
from pathlib import Path

import pytest
import sentencepiece as spm
from data_helpers import vocabulary_from_text

from gradvac_ds.training.data import (
    DataConfigError,
    Encoder,
    SharedVocabulary,
    VocabularyError,
    VocabularyOptions,
    VocabularySampler,
    language_tag,
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
    first = vocabulary_from_text({"de": text, "en": ["hello"]}, options, tmp_path)
    assert len(list(tmp_path.glob("spm-*.model"))) == 1

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("SentencePiece retrained despite a cached model")

    monkeypatch.setattr(spm.SentencePieceTrainer, "train", refuse)
    second = vocabulary_from_text({"en": ["hello"], "de": text}, options, tmp_path)
    assert second.model_proto == first.model_proto
    with pytest.raises(VocabularyError, match="retrained despite"):
        vocabulary_from_text({"de": [*text, "one more sentence"], "en": ["hello"]}, options, tmp_path)


def test_different_options_give_a_different_cache_entry(tmp_path: Path) -> None:
    text = [f"alpha beta gamma {i} delta" for i in range(200)]
    vocabulary_from_text({"de": text, "en": ["hello"]}, VocabularyOptions(vocab_size=40), tmp_path)
    vocabulary_from_text({"de": text, "en": ["hello"]}, VocabularyOptions(vocab_size=45), tmp_path)
    assert len(list(tmp_path.glob("spm-*.model"))) == 2
    loaded = SharedVocabulary.load(next(tmp_path.glob("spm-*.model")))
    assert loaded.languages == ["de", "en"]


def test_vocab_size_too_large_is_explained(tmp_path: Path) -> None:
    with pytest.raises(VocabularyError, match=r"vocab.vocab_size=5000 is too large.*at most \d+ pieces"):
        vocabulary_from_text(
            {"de": ["tiny text"], "en": ["tiny tiny"]}, VocabularyOptions(vocab_size=5000), tmp_path
        )


def test_empty_training_text() -> None:
    with pytest.raises(VocabularyError, match="no non-empty training sentence"):
        VocabularySampler({"de": 0}, VocabularyOptions())


def test_sampler_keeps_a_repeated_sentence_once_and_is_deterministic() -> None:
    options = VocabularyOptions(max_sentences=50, temperature=1.0)
    texts = []
    for _ in range(2):
        sampler = VocabularySampler({"de": 1000}, options)
        for i in range(1000):
            sampler.offer("de", f"satz {i % 500}")  # every sentence twice (a pivot shared by 2 pairs)
        texts.append(sampler.text())
    assert texts[0] == texts[1] and len(texts[0]) == 50
    assert 10 < len(set(texts[0])) <= 50


def test_worker_encoding_equals_in_process(vocabulary: SharedVocabulary, small_synthetic) -> None:
    texts = [side for pair in small_synthetic.corpus.pairs[("qaa", "en")]["train"] for side in pair]
    chunks = [texts[i : i + 100] for i in range(0, len(texts), 100)]
    with Encoder(vocabulary, workers=1) as encoder:
        in_process = list(encoder.stream(iter(chunks)))
    with Encoder(vocabulary, workers=2) as encoder:
        parallel = list(encoder.stream(iter(chunks)))
    assert [c for c, _ in parallel] == chunks
    for (_, (flat, lengths)), (_, (flat2, lengths2)) in zip(in_process, parallel, strict=True):
        assert flat.tolist() == flat2.tolist() and lengths.tolist() == lengths2.tolist()
    flat = [int(i) for _, (f, _) in in_process for i in f]
    assert flat == [i for t in texts for i in vocabulary.encode(t)]


def _language(letters: str, sentences: int, seed: int) -> list[str]:
    """Sentences of 6 words over a lexicon of 200 words spelled with ``letters`` only."""
    rng = random.Random(seed)
    lexicon = ["".join(rng.choice(letters) for _ in range(rng.randint(4, 8))) for _ in range(200)]
    return [" ".join(rng.choice(lexicon) for _ in range(6)) for _ in range(sentences)]


def test_temperature_gives_a_low_resource_language_its_own_pieces(tmp_path: Path, caplog) -> None:
    """3000 sentences in one script, 60 in another: at T = 1 the small language gets 2 % of the
    text and hardly any multi-letter piece; at T = 5 it gets 31 %, several times more pieces of its
    own, and its unseen sentences take fewer pieces per word."""
    small_letters = "nopqrstuvwxyz"
    large, small = _language("abcdefghijklm", 3000, 1), _language(small_letters, 80, 2)
    held_out = small[60:]
    own_pieces, pieces_per_word = {}, {}
    for temperature in (1.0, 5.0):
        options = VocabularyOptions(vocab_size=150, temperature=temperature)
        with caplog.at_level(logging.INFO, logger="gradvac_ds.training.data.vocabulary"):
            vocabulary = vocabulary_from_text({"la": large, "sm": small[:60]}, options, tmp_path)
        processor = spm.SentencePieceProcessor(model_proto=vocabulary.model_proto)
        pieces = [processor.id_to_piece(i).lstrip("\u2581") for i in range(len(vocabulary))]
        own_pieces[temperature] = sum(len(p) > 1 and set(p) <= set(small_letters) for p in pieces)
        words = sum(len(s.split()) for s in held_out)
        pieces_per_word[temperature] = sum(len(vocabulary.encode(s)) for s in held_out) / words
    assert "(T=1): la 3000 of 3000, sm 60 of 60" in caplog.text
    assert "(T=5): la 2100 of 3000, sm 960 of 60" in caplog.text
    assert own_pieces[5.0] >= 3 * own_pieces[1.0], own_pieces
    assert pieces_per_word[5.0] < 0.95 * pieces_per_word[1.0], pieces_per_word


def test_budget_subsamples_and_temperature_must_be_positive(tmp_path: Path, caplog) -> None:
    text = {"aa": [f"alpha beta {i}" for i in range(300)], "bb": [f"gamma delta {i}" for i in range(100)]}
    with caplog.at_level(logging.INFO, logger="gradvac_ds.training.data.vocabulary"):
        options = VocabularyOptions(vocab_size=30, max_sentences=200, temperature=1.0)
        vocabulary_from_text(text, options, tmp_path)
    assert "aa 150 of 300, bb 50 of 100" in caplog.text
    for bad in (0, -1.0, float("inf"), "5", True):
        with pytest.raises(DataConfigError, match=r"vocab\.temperature: must be a number > 0"):
            VocabularyOptions(temperature=bad)
