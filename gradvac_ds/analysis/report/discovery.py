"""Where a training run keeps what the report needs, so that ``gradvac-analyze RUN_DIR/<mode>`` works
without flags.

The trainer writes ``<run_dir>/families.csv`` (synthetic corpora) and one similarity log per mode
under ``<run_dir>/<mode>/gradvac_similarity/``.
"""

from __future__ import annotations

from pathlib import Path

from gradvac_ds.analysis.log.storage import LOG_DIRNAME, META_NAME

FAMILIES_NAME = "families.csv"


def mode_dir(path: str | Path) -> Path:
    """The folder that holds the similarity log: ``path``, or its parent if ``path`` is the log itself."""
    path = Path(path)
    return path.parent if path.name == LOG_DIRNAME and (path / META_NAME).is_file() else path


def find_families(path: str | Path) -> Path | None:
    """``families.csv`` in the mode folder of ``path`` or one folder up (the run folder), else None."""
    folder = mode_dir(path)
    for candidate in (folder / FAMILIES_NAME, folder.parent / FAMILIES_NAME):
        if candidate.is_file():
            return candidate
    return None


def logged_subfolders(path: str | Path) -> list[Path]:
    """The direct subfolders of ``path`` that hold a similarity log (a run folder's modes), sorted."""
    path = Path(path)
    if not path.is_dir():
        return []
    return sorted(sub for sub in path.iterdir() if (sub / LOG_DIRNAME / META_NAME).is_file())
