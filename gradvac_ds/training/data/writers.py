"""Write a :class:`~gradvac_ds.training.data.corpus.ParallelCorpus` in the fairseq file-pair layout."""

from pathlib import Path

from gradvac_ds.training.data.corpus import ParallelCorpus
from gradvac_ds.training.data.errors import DataError


def write_fairseq_dir(corpus: ParallelCorpus, directory: str | Path) -> list[Path]:
    """Write ``{split}.{src}-{tgt}.{src}`` and ``.{tgt}`` for every stored pair and split.

    Sentences must not contain a newline (they would break line alignment). Returns the written
    paths, sorted. :func:`~gradvac_ds.training.data.readers.read_fairseq_dir` reads the result back.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for (src, tgt), splits in corpus.pairs.items():
        for split, sentences in splits.items():
            for side, lang in enumerate((src, tgt)):
                path = directory / f"{split}.{src}-{tgt}.{lang}"
                lines = [pair[side] for pair in sentences]
                for number, line in enumerate(lines, start=1):
                    if "\n" in line or "\r" in line:
                        raise DataError(f"{path}:{number}: sentence contains a line break; cannot write it")
                path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
                written.append(path)
    return sorted(written)
