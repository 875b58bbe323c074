"""Translation corpora into per-task indexed datasets: read the source, select the pivot's language
pairs, train the shared SentencePiece vocabulary, encode each split of every task.

A stored pair xx-pivot gives the task ``xx-pivot`` (many-to-one), ``pivot-xx`` (one-to-many) or
both (``data.direction``). Pairs are filtered line by line (:class:`FilterConfig`), encoded in
chunks, and pairs with a side over ``max_positions`` pieces (special tokens included) are dropped
as ``too_many_pieces``. A test split also keeps its reference text (``test.{task}.ref``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from gradvac_ds.training.data.config import DataConfig
from gradvac_ds.training.data.corpus import FilterConfig, FilterStats, LanguagePair
from gradvac_ds.training.data.encoding import Encoder
from gradvac_ds.training.data.errors import DataConfigError
from gradvac_ds.training.data.languages import task_name
from gradvac_ds.training.data.manifest import VOCABULARY_FILE
from gradvac_ds.training.data.pipeline import build_manifest, chunks, gather_segments
from gradvac_ds.training.data.readers import (
    ParallelSource,
    fairseq_source,
    memory_source,
    multiway_source,
    tsv_source,
)
from gradvac_ds.training.data.sanity import sanity_corpus
from gradvac_ds.training.data.synthetic import generate_synthetic
from gradvac_ds.training.data.vocabulary import SharedVocabulary, VocabularySampler, train_vocabulary

logger = logging.getLogger(__name__)


Opened = tuple[ParallelSource, dict[str, str] | None]
"""A parallel source and, for the synthetic languages, their families."""


def _synthetic(config: DataConfig) -> Opened:
    generated = generate_synthetic(dataclasses.replace(config.synthetic, pivot=config.pivot))
    return memory_source(generated.corpus, "synthetic corpus"), generated.families


PARALLEL_SOURCES: dict[str, Callable[[DataConfig], Opened]] = {
    "synthetic": _synthetic,
    "sanity": lambda config: (memory_source(sanity_corpus(config.sanity), "sanity corpus"), None),
    "fairseq": lambda config: (fairseq_source(config.path, config.splits), None),
    "tsv": lambda config: (tsv_source(config.tsv, config.splits), None),
    "multiway": lambda config: (
        multiway_source(config.path, config.pivot, config.languages or None, config.splits),
        None,
    ),
}
"""``data.source`` -> the reader of a translation corpus; ``monolingual`` has its own pipeline."""


def open_parallel(config: DataConfig) -> Opened:
    """The reader of ``data.source``; DataConfigError when the source has none (a source added to
    ``SOURCES`` but not here)."""
    reader = PARALLEL_SOURCES.get(config.source)
    if reader is None:
        raise DataConfigError(
            f"data.source = {config.source!r} has no translation reader; the translation sources are "
            f"{sorted(PARALLEL_SOURCES)}"
        )
    return reader(config)


def select_languages(source: ParallelSource, config: DataConfig) -> dict[str, LanguagePair]:
    """Non-pivot language -> its stored pair with the pivot, for ``data.languages`` or all found.

    Raises:
        DataConfigError: naming what was found and what was expected.
    """
    pivot = config.pivot
    stored: dict[str, LanguagePair] = {}
    for pair in source.pairs:
        if pivot in pair and pair[0] != pair[1]:
            stored.setdefault(pair[1] if pair[0] == pivot else pair[0], pair)
    found = ", ".join(f"{a}-{b}" for a, b in source.pairs) or "none"
    if not stored:
        codes = sorted({code for pair in source.pairs for code in pair})
        hint = [c for c in codes if c.startswith(pivot) or pivot.startswith(c)]
        raise DataConfigError(
            f"data.pivot: no language pair of {source.origin} contains the pivot {pivot!r}; found pairs: "
            f"{found}" + (f"; did you mean data.pivot: {hint[0]!r}?" if hint else "")
            + ("\nskipped:\n  " + "\n  ".join(source.skipped) if source.skipped else "")
        )  # fmt: skip
    if config.languages:
        missing = sorted(set(config.languages) - set(stored))
        if missing:
            raise DataConfigError(
                f"data.languages: {missing} have no data paired with pivot {pivot!r} in {source.origin}; "
                f"expected one of {sorted(stored)} (found pairs: {found})"
            )
        return {lang: stored[lang] for lang in sorted(config.languages)}
    return dict(sorted(stored.items()))


def _tasks_of(lang: str, pivot: str, direction: str) -> list[tuple[str, bool]]:
    """(task, forward) for the tasks of one language: forward = xx->pivot."""
    tasks = []
    if direction in ("many-to-one", "both"):
        tasks.append((task_name(lang, pivot), True))
    if direction in ("one-to-many", "both"):
        tasks.append((task_name(pivot, lang), False))
    return tasks


def _oriented(
    source: ParallelSource, stored: LanguagePair, lang: str, split: str
) -> Iterator[tuple[str, str]]:
    """(xx, pivot) lines of a stored pair, whichever way round it is stored."""
    for a, b in source.lines(stored, split):
        yield (a, b) if stored[0] == lang else (b, a)


def _filtered_pairs(
    lines: Iterable[tuple[str, str]],
    filters: FilterConfig,
    stats: FilterStats | None = None,
    tasks: Sequence[str] = (),
    split: str = "",
) -> Iterator[tuple[str, str]]:
    for a, b in lines:
        a, b = a.strip(), b.strip()
        reason = filters.reject_reason(a, b)
        if reason is None:
            yield a, b
        elif stats is not None:
            for task in tasks:
                stats.record_removed(task, split, reason.value)


def _pair_vocabulary(
    source: ParallelSource, languages: dict[str, LanguagePair], config: DataConfig
) -> SharedVocabulary:
    pivot, filters = config.pivot, config.filters
    counts: Counter = Counter()
    for lang, stored in languages.items():
        for _ in _filtered_pairs(_oriented(source, stored, lang, "train"), filters):
            counts[lang] += 1
            counts[pivot] += 1
    sampler = VocabularySampler(counts, config.vocab)
    for lang, stored in languages.items():
        for a, b in _filtered_pairs(_oriented(source, stored, lang, "train"), filters):
            sampler.offer(lang, a)
            sampler.offer(pivot, b)
    return train_vocabulary(sampler.text(), [*languages, pivot], config.vocab, config.cache_dir)


def _write_pairs(
    out: Path,
    source: ParallelSource,
    lang: str,
    stored: LanguagePair,
    split: str,
    encoder: Encoder,
    config: DataConfig,
    stats: FilterStats,
    progress: bool,
) -> dict[str, dict[str, int]]:
    """Encode one language's pairs of one split into the datasets of its tasks; returns their sizes."""
    from gradvac_ds.training.data.indexed import IndexedWriter, token_dtype

    vocabulary = encoder.vocabulary
    tasks = _tasks_of(lang, config.pivot, config.direction)
    names = [name for name, _ in tasks]
    dtype = token_dtype(len(vocabulary))
    writers = {name: IndexedWriter(out / f"{split}.{name}", dtype) for name in names}
    refs = (
        {name: (out / f"{split}.{name}.ref").open("w", encoding="utf-8") for name in names}
        if split == "test"
        else {}
    )
    lines = _filtered_pairs(_oriented(source, stored, lang, split), config.filters, stats, names, split)
    texts = ([text for pair in chunk for text in pair] for chunk in chunks(lines))
    bar = tqdm(desc=f"{split} {lang}-{config.pivot}", unit=" pairs", disable=not progress, leave=False)
    for chunk, (flat, lengths) in encoder.stream(texts):
        starts = np.cumsum(lengths) - lengths
        keep = np.flatnonzero(np.maximum(lengths[0::2], lengths[1::2]) + 2 <= config.max_positions)
        for name, forward in tasks:
            if len(keep) < len(chunk) // 2:
                stats.record_removed(name, split, "too_many_pieces", len(chunk) // 2 - len(keep))
            first, second = (2 * keep, 2 * keep + 1) if forward else (2 * keep + 1, 2 * keep)
            order = np.stack([first, second], axis=1).ravel()
            writers[name].add_many(gather_segments(flat, starts[order], lengths[order]), lengths[order], 2)
            if name in refs:
                refs[name].writelines(chunk[i] + "\n" for i in second)
        bar.update(len(chunk) // 2)
    bar.close()
    for handle in refs.values():
        handle.close()
    sizes = {}
    for name, writer in writers.items():
        stats.record_kept(name, split, writer.documents)
        if writer.documents:
            sizes[name] = writer.finish()
        else:
            writer.discard()
            if name in refs:
                (out / f"{split}.{name}.ref").unlink()
    return sizes


def prepare_translation(config: DataConfig, out: Path, progress: bool) -> dict[str, Any]:
    """Write the vocabulary and every task's datasets into ``out``; return the manifest."""
    source, families = open_parallel(config)
    languages = select_languages(source, config)
    logger.info("languages %s with pivot %s (%s)", list(languages), config.pivot, config.direction)
    vocabulary = _pair_vocabulary(source, languages, config)
    (out / VOCABULARY_FILE).write_bytes(vocabulary.model_proto)
    stats = FilterStats()
    datasets: dict[str, dict[str, Any]] = {}
    pairs = {}
    with Encoder(vocabulary, config.encode_workers) as encoder:
        for lang, stored in languages.items():
            for name, forward in _tasks_of(lang, config.pivot, config.direction):
                datasets[name] = {}
                pairs[name] = [lang, config.pivot] if forward else [config.pivot, lang]
            for split in config.splits:
                written = _write_pairs(out, source, lang, stored, split, encoder, config, stats, progress)
                for name, sizes in written.items():
                    datasets[name][split] = {"prefix": f"{split}.{name}", **sizes}
    tasks = [
        name for name, _ in sorted(pairs.items(), key=lambda item: (item[1][0] == config.pivot, item[0]))
    ]
    return build_manifest(
        config, "translation", vocabulary, tasks, datasets, stats, source.skipped, families, pairs
    )
