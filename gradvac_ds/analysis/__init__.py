"""Gradient-similarity logging (during training) and analysis (after it) for GradVac runs.

- :class:`SimilarityLog` writes windowed statistics to ``run_dir/gradvac_similarity`` (format in
  :mod:`gradvac_ds.analysis.storage`); :func:`monitor_events` gives per-step scalars for DeepSpeed's
  monitor. These import only numpy and torch, so the training engine stays light.
- :func:`load_similarity_log` reads a log back.
- :func:`gradvac_ds.analysis.analyze.analyze_run` (CLI: :func:`gradvac_ds.analysis.cli.main`) turns
  a log into figures, report.json and report.txt; it needs matplotlib, scipy and scikit-learn.
"""

from gradvac_ds.analysis.logger import SimilarityLog
from gradvac_ds.analysis.monitor import monitor_events
from gradvac_ds.analysis.reader import SimilarityLogData, load_similarity_log
from gradvac_ds.analysis.window import SimilarityStats, Window, merge_windows

__all__ = [
    "SimilarityLog",
    "SimilarityLogData",
    "SimilarityStats",
    "Window",
    "load_similarity_log",
    "merge_windows",
    "monitor_events",
]
