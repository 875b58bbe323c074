"""Shared SentencePiece vocabulary with target-language tags, trained once and cached.

Id layout (fixed): ``pad=0, unk=1, bos=2, eos=3``, then one user-defined symbol ``<2xx>`` per
language (ids 4 .. 3+n, in sorted language order), then the learned pieces. A tag is a single
piece: SentencePiece never splits a user-defined symbol.

The trained model is cached as ``{cache_dir}/spm-{key}.model`` where ``key`` is the SHA-256 of the
training options and the exact training text, so a changed corpus or option trains a new model and
an unchanged one is loaded. A file lock (``spm-{key}.lock``) lets several processes (e.g. the ranks
of one job) call :func:`train_vocabulary` at once: one trains, the others wait and load.
**Training text**, bounded whatever the corpus size (:class:`VocabularySampler`). A first pass
counts n_l training sentences per language; a budget B = min(max_sentences, sum_l n_l) is split
as B_l = B p_l with p_l = q_l^(1/T) / sum_m q_m^(1/T), q_l = n_l / sum_m n_m, as the task sampler
mixes pairs. A second pass keeps a sentence of language l when a hash of (l, sentence), read as a
number in [0, 1), is below min(1, B_l / n_l): about B_l sentences, deterministic, and a sentence
repeated in the corpus (the pivot side of a multi-way corpus) is kept once. A language with fewer
kept sentences than B_l is repeated (whole copies, then a seeded sample of the rest; SentencePiece
counts a repeated sentence as that many occurrences), so a low-resource language is not split into
characters by a vocabulary fitted to the large ones. The per-language counts are logged.
"""

import fcntl
import hashlib
import io
import json
import logging
import math
import os
import random
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import sentencepiece as spm

from gradvac_ds.training.data.errors import DataConfigError, VocabularyError
from gradvac_ds.training.data.temperature import temperature_quotas

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
_TAG = re.compile(r"<2([a-z]{2,3})>")
_CACHE_FORMAT = 1
_MODEL_TYPES = ("unigram", "bpe")

logger = logging.getLogger(__name__)


def language_tag(lang: str) -> str:
    """The target-language tag piece for ``lang``: ``<2xx>``."""
    return f"<2{lang}>"


@dataclass(frozen=True)
class VocabularyOptions:
    """SentencePiece training options.

    Attributes:
        vocab_size: total pieces, including the 4 special ids and the language tags.
        model_type: ``unigram`` or ``bpe``.
        character_coverage: fraction of characters the model must cover (1.0 for small alphabets,
            ~0.9995 for corpora with Han script).
        max_sentences: the budget B of training sentences, shared out over languages by temperature.
        temperature: T of the language mixing (1: as in the corpus; larger: closer to uniform).
        num_threads: SentencePiece's training threads. Its EM statistics are summed per thread, so
            the model depends on the count: it is a fixed option (part of the cache key), never the
            machine's core count, so that every machine trains the same vocabulary from the same text.
    """

    vocab_size: int = 1000
    model_type: str = "unigram"
    character_coverage: float = 1.0
    max_sentences: int = 300_000
    temperature: float = 5.0
    num_threads: int = 4

    def __post_init__(self) -> None:
        threads = self.num_threads
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise DataConfigError(f"vocab.num_threads: must be a positive integer, got {self.num_threads!r}")
        if self.model_type not in _MODEL_TYPES:
            raise DataConfigError(f"vocab.model_type: {self.model_type!r}; allowed: {list(_MODEL_TYPES)}")
        if self.vocab_size < 8:
            raise DataConfigError(f"vocab.vocab_size: must be >= 8, got {self.vocab_size}")
        if not 0.0 < self.character_coverage <= 1.0:
            raise DataConfigError(
                f"vocab.character_coverage: must be in (0, 1], got {self.character_coverage}"
            )
        if self.max_sentences < 1:
            raise DataConfigError(f"vocab.max_sentences: must be >= 1, got {self.max_sentences}")
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t < math.inf:
            raise DataConfigError(f"vocab.temperature: must be a number > 0, got {t!r}")


class SharedVocabulary:
    """A trained SentencePiece model plus the tag and special-id conventions of this package.

    Picklable (by its serialized model), so it can be sent to worker processes.
    """

    pad_id = PAD_ID
    unk_id = UNK_ID
    bos_id = BOS_ID
    eos_id = EOS_ID

    def __init__(self, model_proto: bytes) -> None:
        self._proto = model_proto
        self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
        ids = (self._sp.pad_id(), self._sp.unk_id(), self._sp.bos_id(), self._sp.eos_id())
        if ids != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):
            raise VocabularyError(
                f"model has special ids (pad, unk, bos, eos) = {ids}; expected (0, 1, 2, 3)"
            )
        self._tags: dict[str, int] = {}
        for piece_id in range(self._sp.get_piece_size()):
            match = _TAG.fullmatch(self._sp.id_to_piece(piece_id))
            if match:
                self._tags[match[1]] = piece_id
        self._tag_ids = frozenset(self._tags.values())

    @classmethod
    def load(cls, path: str | Path) -> "SharedVocabulary":
        """Load a ``.model`` file written by :func:`train_vocabulary` (or ``gradvac-prepare``)."""
        try:
            return cls(Path(path).read_bytes())
        except OSError as exc:
            raise VocabularyError(f"{path}: cannot read SentencePiece model ({exc.strerror})") from exc

    def __reduce__(self) -> tuple:
        return (SharedVocabulary, (self._proto,))

    @property
    def model_proto(self) -> bytes:
        """The serialized SentencePiece model."""
        return self._proto

    @property
    def size(self) -> int:
        """Number of ids (embedding rows needed)."""
        return self._sp.get_piece_size()

    def __len__(self) -> int:
        return self.size

    @property
    def languages(self) -> list[str]:
        """Languages that have a ``<2xx>`` tag, sorted."""
        return sorted(self._tags)

    def tag_id(self, lang: str) -> int:
        """Id of the ``<2lang>`` tag.

        Raises:
            KeyError: naming the language and the ones the vocabulary knows.
        """
        if lang not in self._tags:
            raise KeyError(f"no language tag for {lang!r}; vocabulary has tags for {self.languages}")
        return self._tags[lang]

    def encode(self, text: str) -> list[int]:
        """Piece ids of ``text`` (no tag, bos or eos added)."""
        return self._sp.encode(text, out_type=int)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Piece ids of each text, in order."""
        return self._sp.encode(list(texts), out_type=int)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``: stops at the first eos and drops pad, bos and language tags."""
        kept = []
        for piece_id in ids:
            piece_id = int(piece_id)
            if piece_id == EOS_ID:
                break
            if piece_id not in (PAD_ID, BOS_ID) and piece_id not in self._tag_ids:
                kept.append(piece_id)
        return self._sp.decode(kept)


class VocabularySampler:
    """The temperature-mixed SentencePiece training text, sampled in one streaming pass.

    Args:
        counts: n_l, training sentences per language (first pass).
        options: budget ``max_sentences`` and ``temperature``.

    Memory is bounded by about ``max_sentences`` sentences.
    """

    def __init__(self, counts: Mapping[str, int], options: VocabularyOptions) -> None:
        self.counts = {lang: n for lang, n in sorted(counts.items()) if n > 0}
        if not self.counts:
            raise VocabularyError("no non-empty training sentence to train the vocabulary on")
        budget = min(options.max_sentences, sum(self.counts.values()))
        self.quotas = temperature_quotas(self.counts, budget, options.temperature)
        self._threshold = {lang: min(1.0, self.quotas[lang] / n) * 2**32 for lang, n in self.counts.items()}
        self._kept: dict[str, dict[str, None]] = {lang: {} for lang in self.counts}
        self.temperature = options.temperature

    def offer(self, lang: str, sentence: str) -> None:
        """Keep ``sentence`` of ``lang`` if its hash falls under the language's sampling rate."""
        if sentence and zlib.crc32(f"{lang}\0{sentence}".encode()) < self._threshold.get(lang, 0.0):
            self._kept[lang].setdefault(sentence)

    def text(self) -> list[str]:
        """The training text: each language's kept sentences, repeated up to its quota B_l."""
        text = []
        for lang, kept in self._kept.items():
            sentences = list(kept)
            if not sentences:
                continue
            copies, rest = divmod(self.quotas[lang], len(sentences))
            chosen = sorted(random.Random(f"gradvac-spm-{lang}").sample(range(len(sentences)), rest))
            text += sentences * copies + [sentences[i] for i in chosen]
        logger.info(
            "SentencePiece training text (T=%g): %s",
            self.temperature,
            ", ".join(f"{lang} {self.quotas[lang]} of {n}" for lang, n in self.counts.items()),
        )
        return text


def _cache_key(text: Sequence[str], languages: Sequence[str], options: VocabularyOptions) -> str:
    digest = hashlib.sha256()
    header = {"format": _CACHE_FORMAT, "languages": list(languages), "options": asdict(options)}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for sentence in text:
        digest.update(sentence.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()[:32]


def _train(text: Sequence[str], languages: Sequence[str], options: VocabularyOptions) -> bytes:
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(text),
            model_writer=model,
            vocab_size=options.vocab_size,
            model_type=options.model_type,
            character_coverage=options.character_coverage,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            user_defined_symbols=[language_tag(lang) for lang in languages],
            input_sentence_size=0,
            num_threads=options.num_threads,
            minloglevel=2,
        )
    except RuntimeError as exc:
        limit = re.search(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)", str(exc))
        if limit:
            raise VocabularyError(
                f"vocab.vocab_size={limit[1]} is too large for the training text ({len(text)} "
                f"sentences); SentencePiece can build at most {limit[2]} pieces from it: lower vocab_size"
            ) from exc
        raise VocabularyError(f"SentencePiece training failed: {exc}") from exc
    return model.getvalue()


def train_vocabulary(
    text: Sequence[str], languages: Sequence[str], options: VocabularyOptions, cache_dir: str | Path
) -> SharedVocabulary:
    """Train (or load from the cache) a shared vocabulary with a ``<2xx>`` tag per language.

    Args:
        text: the training sentences (:meth:`VocabularySampler.text`).
        languages: every language that gets a target tag.
        options: SentencePiece options.
        cache_dir: where ``spm-{key}.model`` is stored; created if missing.

    Raises:
        VocabularyError: if training fails, e.g. ``vocab_size`` too large for the text.
    """
    languages = sorted(languages)
    if not text:
        raise VocabularyError("no non-empty training sentence to train the vocabulary on")
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = _cache_key(text, languages, options)
    model_path = cache_dir / f"spm-{key}.model"
    with open(cache_dir / f"spm-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if model_path.exists():
            logger.info("loaded SentencePiece model from cache %s", model_path)
            return SharedVocabulary.load(model_path)
        proto = _train(text, languages, options)
        partial = model_path.with_suffix(f".tmp{os.getpid()}")
        partial.write_bytes(proto)
        os.replace(partial, model_path)
        logger.info("trained SentencePiece model %s on %d sentences", model_path, len(text))
    return SharedVocabulary(proto)
