"""megatron-core's indexed dataset (``.bin`` + ``.idx``): writing through temp names, checked opening.

The format is megatron-core's own (:mod:`megatron.core.datasets.indexed_dataset`): the ``.bin``
file is every sequence's tokens back to back (here int32, or uint16 when the vocabulary fits); the
``.idx`` file is a 34-byte header (``MMIDIDX\\0\\0``, version 1, dtype code, sequence count S,
document count D) followed by ``lengths`` int32[S], ``pointers`` int64[S] (byte offsets into
``.bin``) and ``document_indices`` int64[D] (``document_indices[d]`` = first sequence of document
d, the last entry = S). Everything is memory-mapped on reading: a rank's resident memory holds the
pages it touches, not the corpus.

How this package uses documents: a translation pair is one document of two sequences (source
pieces, target pieces); a monolingual line is one document of one sequence (pieces + eos), so a
language's token stream is the ``.bin`` file itself.

:func:`open_indexed` checks what megatron-core's reader only asserts (header, version, dtype,
sizes of both files against the counts), so a truncated or corrupt file fails with a
:class:`~gradvac_ds.training.data.errors.DataError` naming it.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
from megatron.core.datasets.indexed_dataset import (
    _INDEX_HEADER,
    DType,
    IndexedDataset,
    IndexedDatasetBuilder,
    get_bin_path,
    get_idx_path,
)

from gradvac_ds.training.data.errors import DataError

_HEADER_BYTES = len(_INDEX_HEADER) + 8 + 1 + 8 + 8


def token_dtype(vocab_size: int) -> type[np.integer]:
    """The narrowest token dtype megatron-core offers for ``vocab_size`` ids."""
    return DType.optimal_dtype(vocab_size)


class IndexedWriter:
    """Write one indexed dataset under a temporary prefix; :meth:`finish` renames both files.

    Until :meth:`finish`, only ``{prefix}.tmp.bin`` / ``.tmp.idx`` exist, so a crash never leaves
    a file under the final name that could be taken for a complete one.
    """

    def __init__(self, prefix: Path, dtype: type[np.integer]) -> None:
        self.prefix = prefix
        self._tmp = f"{prefix}.tmp"
        self._builder = IndexedDatasetBuilder(get_bin_path(self._tmp), dtype=dtype)
        self.documents = 0
        self.tokens = 0

    def add_many(self, tokens: np.ndarray, lengths: np.ndarray, per_document: int) -> None:
        """Append documents of ``per_document`` sequences each, given back to back.

        Args:
            tokens: every sequence's tokens, concatenated.
            lengths: int [S] sequence lengths (``S`` a multiple of ``per_document``).
            per_document: sequences per document.

        The same records as megatron-core's ``add_document`` per document, in one write.
        """
        builder = self._builder
        first = len(builder.sequence_lengths)
        builder.data_file.write(np.ascontiguousarray(tokens, dtype=builder.dtype).tobytes(order="C"))
        builder.sequence_lengths.extend(lengths.tolist())
        end = first + len(lengths)
        builder.document_indices.extend(range(first + per_document, end + 1, per_document))
        self.documents += len(lengths) // per_document
        self.tokens += int(lengths.sum())

    def discard(self) -> None:
        """Drop the partial files (a split that kept no document)."""
        self._builder.data_file.close()
        Path(get_bin_path(self._tmp)).unlink()

    def finish(self) -> dict[str, int]:
        """Write the index, rename both files to the final prefix; returns the sizes for the manifest."""
        self._builder.finalize(get_idx_path(self._tmp))
        for path in (get_bin_path, get_idx_path):
            os.replace(path(self._tmp), path(str(self.prefix)))
        return {
            "documents": self.documents,
            "tokens": self.tokens,
            "bin_bytes": os.path.getsize(get_bin_path(str(self.prefix))),
            "idx_bytes": os.path.getsize(get_idx_path(str(self.prefix))),
        }


def _check_index(idx: Path, bin_path: Path) -> tuple[int, int]:
    """(sequences, documents) of a checked ``.idx`` whose ``.bin`` has the size it implies."""
    for path in (idx, bin_path):
        if not path.is_file():
            raise DataError(f"{path}: missing (re-run gradvac-prepare)")
    size = idx.stat().st_size
    with idx.open("rb") as handle:
        header = handle.read(_HEADER_BYTES)
    if len(header) < _HEADER_BYTES or not header.startswith(_INDEX_HEADER):
        raise DataError(f"{idx}: not a megatron-core index file (bad or truncated header)")
    version, code, sequences, documents = struct.unpack("<QBQQ", header[len(_INDEX_HEADER) :])
    if version != 1:
        raise DataError(f"{idx}: index version {version}, expected 1")
    try:
        itemsize = DType.size(code)
    except (KeyError, ValueError) as exc:
        raise DataError(f"{idx}: unknown token dtype code {code}") from exc
    expected = _HEADER_BYTES + sequences * (4 + 8) + documents * 8
    if size != expected:
        raise DataError(
            f"{idx}: {size} bytes, but its header ({sequences} sequences, {documents} document "
            f"entries) needs {expected}: the file is truncated or corrupt"
        )
    dataset_tokens = 0
    if sequences:
        offset = _HEADER_BYTES + sequences * 4 + (sequences - 1) * 8
        with idx.open("rb") as handle:
            handle.seek(_HEADER_BYTES + (sequences - 1) * 4)
            (last_length,) = struct.unpack("<i", handle.read(4))
            handle.seek(offset)
            (last_pointer,) = struct.unpack("<q", handle.read(8))
            handle.seek(size - 8)
            (last_document,) = struct.unpack("<q", handle.read(8))
        if last_document != sequences:
            raise DataError(f"{idx}: document index ends at {last_document}, expected {sequences}: corrupt")
        dataset_tokens = last_pointer // itemsize + last_length
    if bin_path.stat().st_size != dataset_tokens * itemsize:
        raise DataError(
            f"{bin_path}: {bin_path.stat().st_size} bytes, but {idx.name} describes "
            f"{dataset_tokens * itemsize}: the file is truncated or does not belong to this index"
        )
    return sequences, documents - 1


def open_indexed(prefix: Path, documents: int, sequences_per_document: int) -> IndexedDataset:
    """Check then memory-map the dataset ``{prefix}.bin``/``.idx``.

    Args:
        prefix: path without suffix.
        documents: the count the manifest promises.
        sequences_per_document: 2 (translation pairs) or 1 (monolingual lines).

    Raises:
        DataError: naming the file, for a missing, truncated or corrupt file or a count mismatch.
    """
    idx, bin_path = Path(get_idx_path(str(prefix))), Path(get_bin_path(str(prefix)))
    sequences, found = _check_index(idx, bin_path)
    if found != documents or sequences != documents * sequences_per_document:
        raise DataError(
            f"{idx}: {found} documents of {sequences} sequences, the manifest says {documents} documents "
            f"of {sequences_per_document} sequence(s) each: the file was replaced or is corrupt"
        )
    return IndexedDataset(str(prefix), mmap=True)
