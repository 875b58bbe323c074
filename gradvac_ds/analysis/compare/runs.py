"""Find the runs of a comparison (modes x seeds) and read their test translations.

A seeds run (``training.seeds``) is laid out ``<run_dir>/seed<s>/<mode>/translations/<pair>.hyp``
and ``.ref``; a single-seed run ``<run_dir>/<mode>/translations/...``. Several run folders may be
given: each adds its seeds (a single-seed run is one seed named after its folder). Every
(seed, mode) must hold the same pairs, and every system of a pair the same references.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_SEED_DIR = re.compile(r"^seed(\d+)$")


@dataclass(frozen=True)
class RunSet:
    """The systems of a comparison.

    seeds: S seed labels; modes: M modes; pairs: P language pairs (sorted);
    hypotheses[(seed, mode)][pair]: N_pair detokenised sentences; references[pair]: N_pair sentences;
    folders[seed]: the folder holding that seed's mode folders.
    """

    seeds: list[str]
    modes: list[str]
    pairs: list[str]
    hypotheses: dict[tuple[str, str], dict[str, list[str]]]
    references: dict[str, list[str]]
    folders: dict[str, Path]


def _read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def seed_folders(run_dirs: Sequence[str | Path]) -> dict[str, Path]:
    """``{seed label: folder with <mode>/ inside}`` for the given run folders (see module docstring)."""
    folders: dict[str, Path] = {}
    for run_dir in map(Path, run_dirs):
        if not run_dir.is_dir():
            raise FileNotFoundError(f"{run_dir}: no such run folder")
        seeded = sorted(
            (int(m.group(1)), child) for child in run_dir.iterdir() if (m := _SEED_DIR.match(child.name))
        )
        found = {f"seed{s}": child for s, child in seeded} if seeded else {run_dir.name: run_dir}
        for label, folder in found.items():
            label = label if label not in folders else f"{run_dir.name}/{label}"
            folders[label] = folder
    return folders


def load_runs(run_dirs: Sequence[str | Path]) -> RunSet:
    """Read every (seed, mode)'s translations; ValueError names the file or folder that disagrees."""
    folders = seed_folders(run_dirs)
    modes_by_seed = {
        seed: sorted(p.parent.name for p in folder.glob("*/translations") if p.is_dir())
        for seed, folder in folders.items()
    }
    modes = next(iter(modes_by_seed.values()))
    if not modes:
        raise FileNotFoundError(f"{next(iter(folders.values()))}: no <mode>/translations/ folder")
    for seed, found in modes_by_seed.items():
        if found != modes:
            raise ValueError(f"{folders[seed]}: modes {found} differ from {modes} of the other seeds")
    hypotheses: dict[tuple[str, str], dict[str, list[str]]] = {}
    references: dict[str, list[str]] = {}
    pairs: list[str] | None = None
    for seed, folder in folders.items():
        for mode in modes:
            directory = folder / mode / "translations"
            found = sorted(p.stem for p in directory.glob("*.hyp"))
            if pairs is None:
                pairs = found
            if found != pairs or not found:
                raise ValueError(f"{directory}: pairs {found} differ from {pairs} (or none)")
            system = {}
            for pair in pairs:
                hyp, ref = _read_lines(directory / f"{pair}.hyp"), _read_lines(directory / f"{pair}.ref")
                if len(hyp) != len(ref):
                    raise ValueError(f"{directory / pair}.hyp has {len(hyp)} lines but .ref has {len(ref)}")
                if references.setdefault(pair, ref) != ref:
                    raise ValueError(f"{directory / pair}.ref differs from the references of the other runs")
                system[pair] = hyp
            hypotheses[(seed, mode)] = system
    return RunSet(list(folders), modes, pairs or [], hypotheses, references, folders)
