"""Write an in-memory corpus as files in a layout the readers know (fairseq pairs or monolingual text).

``python -m gradvac_ds.training.data.writers --config configs/demo.yaml --layout monolingual DIR``
writes the run config's synthetic corpus (``data.synthetic``) to ``DIR``: the demos and the data
benchmark use it to put real files in front of ``gradvac-prepare``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from gradvac_ds.training.data.corpus import ParallelCorpus
from gradvac_ds.training.data.errors import DataError


def _write_lines(path: Path, lines: list[str]) -> None:
    for number, line in enumerate(lines, start=1):
        if "\n" in line or "\r" in line:
            raise DataError(f"{path}:{number}: sentence contains a line break; cannot write it")
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def write_fairseq_dir(corpus: ParallelCorpus, directory: str | Path) -> list[Path]:
    """Write ``{split}.{src}-{tgt}.{src}`` and ``.{tgt}`` for every stored pair and split.

    Sentences must not contain a newline (they would break line alignment). Returns the written
    paths, sorted. :func:`~gradvac_ds.training.data.readers.fairseq_source` reads the result back.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for (src, tgt), splits in corpus.pairs.items():
        for split, sentences in splits.items():
            for side, lang in enumerate((src, tgt)):
                path = directory / f"{split}.{src}-{tgt}.{lang}"
                _write_lines(path, [pair[side] for pair in sentences])
                written.append(path)
    return sorted(written)


def write_monolingual_dir(corpus: ParallelCorpus, directory: str | Path, pivot: str) -> list[Path]:
    """Write ``{code}.txt`` per non-pivot language: its sides of every split, valid first, then
    train and test (so ``data.valid_lines`` = the valid split's size holds out exactly that split)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for (src, tgt), splits in sorted(corpus.pairs.items()):
        side, lang = (0, src) if tgt == pivot else (1, tgt)
        lines = [pair[side] for split in ("valid", "train", "test") for pair in splits.get(split, [])]
        path = directory / f"{lang}.txt"
        _write_lines(path, lines)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Write the synthetic corpus of a run config's data section to files."""
    parser = argparse.ArgumentParser(
        prog="python -m gradvac_ds.training.data.writers", description=main.__doc__
    )
    parser.add_argument("--config", required=True, help="run config YAML (its data.synthetic section)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a field")
    parser.add_argument("--layout", choices=("fairseq", "monolingual"), required=True)
    parser.add_argument("directory", help="output directory")
    args = parser.parse_args(argv)

    from gradvac_ds.training.config_file import load_config, parse_overrides
    from gradvac_ds.training.data.config import DataConfig
    from gradvac_ds.training.data.synthetic import generate_synthetic

    config = DataConfig.from_dict(load_config(args.config, parse_overrides(args.set)).get("data"))
    corpus = generate_synthetic(dataclasses.replace(config.synthetic, pivot=config.pivot)).corpus
    if args.layout == "fairseq":
        paths = write_fairseq_dir(corpus, args.directory)
    else:
        paths = write_monolingual_dir(corpus, args.directory, config.pivot)
    print(f"wrote {len(paths)} files to {args.directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
