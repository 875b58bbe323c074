"""``gradvac-prepare`` (``python -m gradvac_ds.training.data.prepare``): a corpus into indexed datasets.

::

    gradvac-prepare --config configs/real_corpus.yaml --set data.path=../shared/eval-data/bible

reads the run config's ``data`` section and writes ``data.prepared`` (default
``{cache_dir}/prepared/<hash>``), the only thing training reads:

1. **Index the source** (:mod:`~gradvac_ds.training.data.readers`): fairseq, TSV, multi-way,
   monolingual, synthetic or sanity; files that do not fit the layout are listed with the reason.
2. **Vocabulary**: count each language's training sentences (after the line filters), sample a
   temperature-mixed text of at most ``vocab.max_sentences`` sentences in a second pass
   (:class:`~gradvac_ds.training.data.vocabulary.VocabularySampler`), train SentencePiece on it.
3. **Encode** in ``encode_workers`` processes, chunk by chunk with a bounded number of chunks in
   flight, and append to one megatron-core indexed dataset per task and split
   (:mod:`~gradvac_ds.training.data.indexed`): ``{split}.{task}.bin/.idx``. Translation pairs
   with a side over ``max_positions`` pieces (special tokens included) are dropped and counted as
   ``too_many_pieces``; a test split also keeps its reference text (``test.{task}.ref``).
4. **Manifest** (:mod:`~gradvac_ds.training.data.manifest`) with the filter report per task and
   split, printed once at the end as well.

Memory is bounded whatever the input size: lines are streamed, the vocabulary sample is bounded,
and only the index (megatron-core keeps 2 integers per sequence until it writes the ``.idx``)
grows with the corpus. megatron-core (seconds and hundreds of MB to import) is imported only where
datasets are written: encoding workers re-import this module under ``spawn`` and stay light.
Everything is written into ``{prepared}.partial/`` and renamed to
``prepared`` at the end, so an interrupted run leaves no directory that could pass for complete;
a rerun starts over. An existing complete directory of the same settings is reused.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import sys
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from gradvac_ds.training.data.config import DataConfig, prepare_settings
from gradvac_ds.training.data.corpus import FilterConfig, FilterStats, LanguagePair
from gradvac_ds.training.data.encoding import Encoder
from gradvac_ds.training.data.errors import DataConfigError, DataError
from gradvac_ds.training.data.languages import task_name
from gradvac_ds.training.data.manifest import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    VOCABULARY_FILE,
    check_settings,
    content_hash,
    read_manifest,
    write_manifest,
)
from gradvac_ds.training.data.readers import (
    MonolingualSource,
    ParallelSource,
    fairseq_source,
    memory_source,
    monolingual_source,
    multiway_source,
    tsv_source,
)
from gradvac_ds.training.data.sanity import sanity_corpus
from gradvac_ds.training.data.synthetic import generate_synthetic
from gradvac_ds.training.data.vocabulary import EOS_ID, SharedVocabulary, VocabularySampler, train_vocabulary

logger = logging.getLogger(__name__)
CHUNK = 2048
"""Lines (pairs or documents) per encoding task."""


def _chunks(items: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def gather_segments(flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concat(flat[starts[i] : starts[i] + lengths[i]] for i)`` without a Python loop."""
    out_starts = np.cumsum(lengths) - lengths
    return flat[np.arange(int(lengths.sum())) + np.repeat(starts - out_starts, lengths)]


# ---------------------------------------------------------------------------------------------
# translation


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


def _open_parallel(config: DataConfig) -> Opened:
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
    texts = ([text for pair in chunk for text in pair] for chunk in _chunks(lines))
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


def _prepare_translation(config: DataConfig, out: Path, progress: bool) -> dict[str, Any]:
    source, families = _open_parallel(config)
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
    return _manifest(
        config, "translation", vocabulary, tasks, datasets, stats, source.skipped, families, pairs
    )


# ---------------------------------------------------------------------------------------------
# monolingual (language-model pretraining)


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


def _split_chunks(documents: Iterable[tuple[str, str]], labels: deque) -> Iterator[list[str]]:
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


def _prepare_lm(config: DataConfig, out: Path, progress: bool) -> dict[str, Any]:
    source = monolingual_source(config.path, config.languages or None)
    vocabulary = _lm_vocabulary(source, config)
    (out / VOCABULARY_FILE).write_bytes(vocabulary.model_proto)
    stats = FilterStats()
    datasets: dict[str, dict[str, Any]] = {}
    with Encoder(vocabulary, config.encode_workers) as encoder:
        for lang in source.files:
            datasets[lang] = _write_documents(out, source, lang, encoder, config, stats, progress)
    return _manifest(
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
    chunks = _split_chunks(_documents(source, lang, config, stats), labels)
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


# ---------------------------------------------------------------------------------------------


def _manifest(
    config: DataConfig,
    kind: str,
    vocabulary: SharedVocabulary,
    tasks: list[str],
    datasets: dict[str, dict[str, Any]],
    stats: FilterStats,
    skipped: list[str],
    families: dict[str, str] | None,
    pairs: dict[str, list[str]] | None,
) -> dict[str, Any]:
    for task in tasks:
        if "train" not in datasets[task]:
            raise DataError(f"task {task}: no training pair left after filtering\n{stats.report()}")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "data": prepare_settings(config),
        "vocabulary": {"file": VOCABULARY_FILE, "size": len(vocabulary), "languages": vocabulary.languages},
        "tasks": tasks,
        "pairs": pairs,
        "datasets": datasets,
        "filters": stats.as_dict(),
        "filter_report": stats.report().splitlines(),
        "skipped_files": skipped,
        "families": families,
    }


def _data_files(manifest: dict[str, Any]) -> list[str]:
    names = [manifest["vocabulary"]["file"]]
    for splits in manifest["datasets"].values():
        for entry in splits.values():
            names += [f"{entry['prefix']}.bin", f"{entry['prefix']}.idx"]
    return names


def prepare_data(config: DataConfig, overwrite: bool = False, progress: bool = True) -> Path:
    """Write the prepared directory of ``config`` (see the module docstring); returns its path.

    An existing complete directory with the same settings is kept as it is; one with other
    settings is replaced only with ``overwrite``.

    Raises:
        DataError / DataConfigError / VocabularyError: naming the file, line or field at fault.
    """
    out = config.prepared_dir()
    if (out / MANIFEST).is_file():
        try:
            check_settings(read_manifest(out), config, out / MANIFEST)
            logger.info("%s is already prepared with these settings", out)
            return out
        except DataError:
            if not overwrite:
                raise
    elif out.exists() and any(out.iterdir()) and not overwrite:
        raise DataError(f"{out}: exists, is not empty and has no {MANIFEST}; remove it or pass --overwrite")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    manifest = (_prepare_lm if config.is_lm else _prepare_translation)(config, partial, progress)
    manifest["content_sha256"] = content_hash(partial, _data_files(manifest))
    write_manifest(partial, manifest)
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    return out


def main(argv: list[str] | None = None) -> int:
    """Prepare the data of a run config once: vocabulary and megatron-core indexed datasets."""
    parser = argparse.ArgumentParser(prog="gradvac-prepare", description=main.__doc__)
    parser.add_argument("--config", required=True, help="run config YAML (its data section is used)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a directory prepared otherwise")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from gradvac_ds.training.config_file import load_config, parse_overrides

    config = DataConfig.from_dict(load_config(args.config, parse_overrides(args.set)).get("data"))
    out = prepare_data(config, overwrite=args.overwrite, progress=not args.quiet)
    manifest = read_manifest(out)
    if manifest["skipped_files"]:
        print("skipped (not read):\n  " + "\n  ".join(manifest["skipped_files"]))
    print("\n".join(manifest["filter_report"]))
    print(f"prepared {len(manifest['tasks'])} tasks, vocabulary {manifest['vocabulary']['size']}: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
