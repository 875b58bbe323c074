"""The similarity log of a training run: windowed GradVac statistics on disk, and its reader.

:class:`SimilarityLog` writes windows to ``run_dir/gradvac_similarity`` (format in
:mod:`gradvac_ds.analysis.log.storage`); :func:`load_similarity_log` reads them back.
"""

from gradvac_ds.analysis.log.logger import SimilarityLog
from gradvac_ds.analysis.log.reader import SimilarityLogData, load_similarity_log
from gradvac_ds.analysis.log.window import Window, merge_windows

__all__ = ["SimilarityLog", "SimilarityLogData", "Window", "load_similarity_log", "merge_windows"]
