"""Load a run's similarity log (written by :class:`~.logger.SimilarityLog`) back into memory."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gradvac_ds.analysis.log.storage import META_NAME, log_dir, read_meta, read_window
from gradvac_ds.analysis.log.window import Window, merge_windows


@dataclass(frozen=True)
class SimilarityLogData:
    """A loaded log: names, run metadata and the windows in step order.

    task_names [K], group_names [L]; each window holds [L, K, K] arrays (see :mod:`.window`).
    window is the configured window length, window_length the current one (after compactions).
    """

    path: Path
    task_names: list[str]
    group_names: list[str]
    metadata: dict[str, Any]
    window: int
    window_length: int
    windows: list[Window]

    @property
    def num_steps(self) -> int:
        """Number of recorded steps over all windows."""
        return sum(w.num_steps for w in self.windows)

    @property
    def step_centres(self) -> np.ndarray:
        """float64 [W]: the middle step of each window, for plotting over training."""
        return np.array([(w.step_first + w.step_last) / 2 for w in self.windows], dtype=np.float64)

    def total(self) -> Window:
        """All windows merged into one (count-weighted): run-level means and counts [L, K, K]."""
        return merge_windows(self.windows)

    def steps_between(self, first: int, stop: int) -> SimilarityLogData:
        """The log cut to the windows wholly inside GradVac steps ``first <= step < stop`` (steps
        count applied optimizer steps from 0); ValueError naming the covered range when none is."""
        kept = [w for w in self.windows if w.step_first >= first and w.step_last < stop]
        if not kept:
            covered = f"{self.windows[0].step_first}..{self.windows[-1].step_last}"
            raise ValueError(
                f"{self.path}: no window lies wholly inside steps {first}:{stop} (the log covers steps "
                f"{covered} in windows of {self.window_length} steps)"
            )
        return dataclasses.replace(self, windows=kept)


def load_similarity_log(run_dir: str | Path) -> SimilarityLogData:
    """Read the log under ``run_dir/gradvac_similarity`` (or ``run_dir`` if it is the log folder).

    Raises FileNotFoundError when there is no log, ValueError naming the file and field when it is
    malformed or holds no window.
    """
    directory = log_dir(run_dir)
    meta = read_meta(directory)
    if not meta.chunks:
        raise ValueError(f"{directory / META_NAME}: the log holds no window yet (field 'chunks' is empty)")
    shape = (len(meta.group_names), len(meta.task_names), len(meta.task_names))
    windows = [read_window(directory / chunk.file, shape) for chunk in meta.chunks]
    return SimilarityLogData(
        path=directory,
        task_names=meta.task_names,
        group_names=meta.group_names,
        metadata=meta.metadata,
        window=meta.window,
        window_length=meta.window_length,
        windows=windows,
    )
