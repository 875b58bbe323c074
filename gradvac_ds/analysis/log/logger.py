"""SimilarityLog: windowed, size-bounded logging of GradVac statistics to a run folder.

Every ``window`` recorded steps the running sums become one :class:`~.window.Window`, written as a
chunk of the log (format in :mod:`.storage`). When more than ``max_windows`` windows exist, adjacent
windows are merged pairwise (count-weighted, so merged means are exactly the means over the union)
and the window length doubles for the windows that follow. The log therefore holds at most
``max_windows`` windows of roughly equal length whatever the run length, i.e. its size is bounded by
about ``max_windows * L * K^2 * 24`` bytes before compression.

Opening a folder that already holds a log with the same task and group names continues it (a
resumed run); windows that end at or after the first step recorded after resuming are dropped, as
they belong to the steps being redone. The logger writes whenever it is called: in a distributed
run only one rank should own one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from gradvac_ds.analysis.log.storage import (
    LOG_DIRNAME,
    META_NAME,
    ChunkEntry,
    LogMeta,
    chunk_name,
    read_meta,
    read_window,
    write_meta,
    write_window,
)
from gradvac_ds.analysis.log.window import Window, WindowAccumulator, merge_windows
from gradvac_ds.stats import SimilarityStats, step_arrays


class SimilarityLog:
    """Accumulate per-step GradVac statistics into windows under ``run_dir/gradvac_similarity``.

    task_names:  K task names (e.g. "de-en"); group_names: L parameter-group names.
    window:      recorded steps per window (doubles each time the log is compacted).
    max_windows: the most windows kept; exceeding it merges adjacent windows pairwise.
    metadata:    JSON-serialisable run facts stored with the log (e.g. granularity, beta).
    """

    def __init__(
        self,
        run_dir: str | Path,
        task_names: Sequence[str],
        group_names: Sequence[str],
        window: int = 50,
        max_windows: int = 512,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if max_windows < 2:
            raise ValueError(f"max_windows must be >= 2, got {max_windows}")
        if not task_names or not group_names:
            raise ValueError("task_names and group_names must not be empty")
        for label, names in (("task_names", task_names), ("group_names", group_names)):
            if len(set(names)) != len(names):
                raise ValueError(f"{label} must be unique, got {list(names)}")
        self.directory = Path(run_dir) / LOG_DIRNAME
        self.directory.mkdir(parents=True, exist_ok=True)
        self.meta = self._open_meta(
            list(task_names), list(group_names), window, max_windows, dict(metadata or {})
        )
        self._shape = (len(group_names), len(task_names), len(task_names))
        self._accumulator = WindowAccumulator(len(group_names), len(task_names))
        self._last_step: int | None = None
        self._closed = False
        self._remove_stray_chunks()
        write_meta(self.directory, self.meta)

    def _open_meta(
        self,
        task_names: list[str],
        group_names: list[str],
        window: int,
        max_windows: int,
        metadata: dict[str, Any],
    ) -> LogMeta:
        """A fresh index, or the existing one when continuing a log of the same tasks and groups."""
        if not (self.directory / META_NAME).is_file():
            return LogMeta(task_names, group_names, window, window, max_windows, metadata)
        meta = read_meta(self.directory)
        for label, ours, theirs in (
            ("task_names", task_names, meta.task_names),
            ("group_names", group_names, meta.group_names),
        ):
            if ours != theirs:
                raise ValueError(
                    f"{self.directory / META_NAME}: field '{label}' is {theirs}, but this "
                    f"run logs {ours}; use another run folder"
                )
        meta.max_windows = max_windows
        meta.metadata.update(metadata)
        return meta

    def _remove_stray_chunks(self) -> None:
        """Delete chunk and temp files that the index does not list (left by an interrupted write)."""
        listed = {chunk.file for chunk in self.meta.chunks}
        for path in [*self.directory.glob("w*.npz"), *self.directory.glob(".*.tmp")]:
            if path.name not in listed:
                path.unlink()

    def record(self, step: int, stats: SimilarityStats) -> None:
        """Add one optimizer step's statistics; steps must increase."""
        if self._closed:
            raise RuntimeError("SimilarityLog.record called after close()")
        if self._last_step is not None and step <= self._last_step:
            raise ValueError(f"steps must increase: got {step} after {self._last_step}")
        arrays = step_arrays(stats, self._shape[0], self._shape[1])
        if self._last_step is None:
            self._drop_windows_from(step)
        self._accumulator.add(step, arrays)
        self._last_step = step
        if self._accumulator.num_steps >= self.meta.window_length:
            self._flush()

    def _drop_windows_from(self, step: int) -> None:
        """Forget stored windows ending at or after ``step`` (steps redone after a resume)."""
        dropped = [chunk for chunk in self.meta.chunks if chunk.step_last >= step]
        if dropped:
            self.meta.chunks = [chunk for chunk in self.meta.chunks if chunk.step_last < step]
            write_meta(self.directory, self.meta)
            for chunk in dropped:
                (self.directory / chunk.file).unlink()

    def _write_chunk(self, window: Window) -> ChunkEntry:
        """Write ``window`` under the next chunk name and return its index entry."""
        entry = ChunkEntry(chunk_name(self.meta.next_chunk), window.step_first, window.step_last)
        write_window(self.directory / entry.file, window)
        self.meta.next_chunk += 1
        return entry

    def _flush(self) -> None:
        """Write the current window as a new chunk, compacting if the log grows too long."""
        self.meta.chunks.append(self._write_chunk(self._accumulator.window()))
        self._accumulator = WindowAccumulator(self._shape[0], self._shape[1])
        if len(self.meta.chunks) > self.meta.max_windows:
            self._compact()
        else:
            write_meta(self.directory, self.meta)

    def _compact(self) -> None:
        """Merge adjacent windows pairwise (two in memory at a time) and double the window length."""
        old = self.meta.chunks
        new = []
        for start in range(0, len(old), 2):
            pair = [read_window(self.directory / chunk.file, self._shape) for chunk in old[start : start + 2]]
            new.append(self._write_chunk(merge_windows(pair)))
        self.meta.chunks = new
        self.meta.window_length *= 2
        write_meta(self.directory, self.meta)
        for chunk in old:
            (self.directory / chunk.file).unlink()

    def close(self) -> None:
        """Write the partial window, if any; further records are refused. Idempotent."""
        if self._closed:
            return
        if self._accumulator.num_steps:
            self._flush()
        self._closed = True

    def __enter__(self) -> SimilarityLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
