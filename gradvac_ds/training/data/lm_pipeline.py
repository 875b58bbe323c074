"""Monolingual text into per-language indexed datasets for language-model pretraining.

Each language's first ``valid_lines`` kept lines are its validation split, the rest its training
split; every line is followed by eos, and the training loader packs the token stream into samples
of ``max_positions + 1`` tokens. The vocabulary is trained on a temperature-mixed sample of the
training lines.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from gradvac_ds.training.data.config import DataConfig
from gradvac_ds.training.data.corpus import FilterStats
from gradvac_ds.training.data.encoding import Encoder
from gradvac_ds.training.data.errors import DataError
from gradvac_ds.training.data.manifest import VOCABULARY_FILE
from gradvac_ds.training.data.pipeline import CHUNK, build_manifest
from gradvac_ds.training.data.readers import MonolingualSource, monolingual_source
from gradvac_ds.training.data.vocabulary import EOS_ID, SharedVocabulary, VocabularySampler, train_vocabulary


def _documents(
    source: MonolingualSource, lang: str, config: DataConfig, stats: FilterStats | None = None
) -> Iterator[tuple[str, str]]:
    """(split, line) of one language: the first ``valid_lines`` kept lines are ``valid``."""
    kept = 0
    for line in source.lines(lang):
        line = line.strip()
        split = "valid" if kept < config.valid_lines else "train"
        reason = config.filters.reject_document(line)
        if reason is None:
            kept += 1
            yield split, line
        elif stats is not None:
            stats.record_removed(lang, split, reason.value)


def _lm_vocabulary(source: MonolingualSource, config: DataConfig) -> SharedVocabulary:
    counts: Counter = Counter()
    for lang in source.files:
        counts[lang] = sum(split == "train" for split, _ in _documents(source, lang, config))
    sampler = VocabularySampler(counts, config.vocab)
    for lang in source.files:
        for split, line in _documents(source, lang, config):
            if split == "train":
                sampler.offer(lang, line)
    return train_vocabulary(sampler.text(), list(source.files), config.vocab, config.cache_dir)


def _splitchunks(documents: Iterable[tuple[str, str]], labels: deque) -> Iterator[list[str]]:
    """Chunks of lines that never span two splits; each chunk's split is appended to ``labels``."""
    chunk: list[str] = []
    current = None
    for split, line in documents:
        if chunk and (split != current or len(chunk) == CHUNK):
            labels.append(current)
            yield chunk
            chunk = []
        current = split
        chunk.append(line)
    if chunk:
        labels.append(current)
        yield chunk


def prepare_lm(config: DataConfig, out: Path, progress: bool) -> dict[str, Any]:
    """Write the vocabulary and every language's datasets into ``out``; return the manifest."""
    source = monolingual_source(config.path, config.languages or None)
    vocabulary = _lm_vocabulary(source, config)
    (out / VOCABULARY_FILE).write_bytes(vocabulary.model_proto)
    stats = FilterStats()
    datasets: dict[str, dict[str, Any]] = {}
    with Encoder(vocabulary, config.encode_workers) as encoder:
        for lang in source.files:
            datasets[lang] = _write_documents(out, source, lang, encoder, config, stats, progress)
    return build_manifest(
        config, "lm", vocabulary, list(source.files), datasets, stats, source.skipped, None, None
    )


def _write_documents(
    out: Path,
    source: MonolingualSource,
    lang: str,
    encoder: Encoder,
    config: DataConfig,
    stats: FilterStats,
    progress: bool,
) -> dict[str, dict[str, Any]]:
    """Encode one language's lines (each followed by eos) into its train and valid datasets."""
    from gradvac_ds.training.data.indexed import IndexedWriter, token_dtype

    dtype = token_dtype(len(encoder.vocabulary))
    datasets: dict[str, dict[str, Any]] = {}
    writers = {split: IndexedWriter(out / f"{split}.{lang}", dtype) for split in ("train", "valid")}
    labels: deque = deque()
    chunks = _splitchunks(_documents(source, lang, config, stats), labels)
    bar = tqdm(desc=f"lm {lang}", unit=" lines", disable=not progress, leave=False)
    for chunk, (flat, lengths) in encoder.stream(chunks):
        with_eos = np.insert(flat, np.cumsum(lengths), EOS_ID)
        writers[labels.popleft()].add_many(with_eos, lengths + 1, 1)
        bar.update(len(chunk))
    bar.close()
    for split, writer in writers.items():
        stats.record_kept(lang, split, writer.documents)
        if writer.tokens > config.max_positions:
            datasets[split] = {"prefix": f"{split}.{lang}", **writer.finish()}
        else:
            writer.discard()
            if split == "train":
                raise DataError(
                    f"{source.files[lang][0]}: language {lang!r} has {writer.tokens} training tokens, "
                    f"fewer than one packed sample of data.max_positions + 1 = {config.max_positions + 1}"
                )
    return datasets
