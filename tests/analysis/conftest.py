"""Fixtures: runs and tables with planted family structure (helpers in synthetic_logs.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from synthetic_logs import ACROSS, FAMILIES, GROUPS, WITHIN, planted_cosine

from gradvac_ds.analysis.log import SimilarityLog


@pytest.fixture
def planted_run(tmp_path: Path) -> Callable[..., Path]:
    """Factory: write a log whose tasks "<lang>-en" have cosine WITHIN inside a family, ACROSS between."""

    def build(structured: bool = True, steps: int = 60, seed: int = 0) -> Path:
        rng = np.random.default_rng(seed)
        languages = list(FAMILIES)
        families = np.array([FAMILIES[lang] for lang in languages])
        if structured:
            base = np.where(families[:, None] == families[None, :], WITHIN, ACROSS)
        else:
            base = rng.uniform(-0.2, 0.6, (len(languages), len(languages)))
            base = (base + base.T) / 2
        run_dir = tmp_path / ("planted" if structured else "unstructured")
        tasks = [f"{lang}-en" for lang in languages]
        with SimilarityLog(run_dir, tasks, GROUPS, window=10, metadata={"granularity": "layer"}) as log:
            for step, stats in enumerate(planted_cosine(rng, languages, base, steps)):
                log.record(step, stats)
        return run_dir

    return build


@pytest.fixture
def planted_distances(tmp_path: Path) -> Path:
    """lang1,lang2,distance CSV: about 0.25 within a family, 0.85 across (plus jitter)."""
    rng = np.random.default_rng(1)
    languages = list(FAMILIES)
    lines = ["lang1,lang2,distance"]
    for x, a in enumerate(languages):
        for b in languages[x + 1 :]:
            centre = 0.25 if FAMILIES[a] == FAMILIES[b] else 0.85
            lines.append(f"{a},{b},{centre + rng.uniform(-0.1, 0.1):.3f}")
    path = tmp_path / "distances.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def planted_families(tmp_path: Path) -> Path:
    """languages.csv-like family table (code, name, family, branch columns)."""
    rows = ["code,name,family,branch", *(f"{code},L{code},{family},X" for code, family in FAMILIES.items())]
    path = tmp_path / "families.csv"
    path.write_text("\n".join(rows) + "\n")
    return path
