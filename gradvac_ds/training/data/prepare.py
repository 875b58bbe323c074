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
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from gradvac_ds.training.data.config import DataConfig
from gradvac_ds.training.data.errors import DataError
from gradvac_ds.training.data.lm_pipeline import prepare_lm
from gradvac_ds.training.data.manifest import (
    MANIFEST,
    check_settings,
    content_hash,
    read_manifest,
    write_manifest,
)
from gradvac_ds.training.data.translation_pipeline import prepare_translation

logger = logging.getLogger(__name__)


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
    manifest = (prepare_lm if config.is_lm else prepare_translation)(config, partial, progress)
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
