"""gradvac-analyze on the trainer's folder layout: <run>/families.csv, <run>/<mode>/gradvac_similarity/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from synthetic_logs import FAMILIES

from gradvac_ds.analysis.__main__ import main
from gradvac_ds.analysis.report.discovery import find_families, logged_subfolders, mode_dir


@pytest.fixture
def run_layout(planted_run, tmp_path: Path) -> Path:
    """A run folder as the trainer leaves it: two modes with logs, families.csv, a non-mode folder."""
    log = planted_run()
    run = tmp_path / "run"
    for mode in ("gradvac", "sum"):
        shutil.copytree(log, run / mode)
    (run / "monitor").mkdir()
    rows = "".join(f"{lang},{family}\n" for lang, family in FAMILIES.items())
    (run / "families.csv").write_text("language,family\n" + rows)
    return run


def test_mode_folder_finds_the_run_families_and_says_so(run_layout: Path, capsys) -> None:
    assert main([str(run_layout / "gradvac")]) == 0
    out = capsys.readouterr().out
    assert f"families from {run_layout / 'families.csv'}" in out and "replacing" not in out
    report = json.loads((run_layout / "gradvac" / "analysis" / "report.json").read_text())
    assert report["adjusted_rand_index"] >= 0.99 and report["num_families"] == 3
    # a second run over the same folder says it replaces the report (with the same families)
    assert main([str(run_layout / "gradvac")]) == 0
    assert "(replacing the previous report)" in capsys.readouterr().out
    again = json.loads((run_layout / "gradvac" / "analysis" / "report.json").read_text())
    assert again["adjusted_rand_index"] == report["adjusted_rand_index"]


def test_without_a_families_file_family_results_stay_null(run_layout: Path, capsys) -> None:
    (run_layout / "families.csv").unlink()
    assert main([str(run_layout / "gradvac")]) == 0
    assert "families from" not in capsys.readouterr().out
    report = json.loads((run_layout / "gradvac" / "analysis" / "report.json").read_text())
    assert report["adjusted_rand_index"] is None
    assert any("no --families" in note for note in report["notes"])
    text = (run_layout / "gradvac" / "analysis" / "report.txt").read_text()
    assert "Spearman rho (similarity vs distance): n/a, no --distances table was given" in text


def test_explicit_families_win_over_the_found_one(run_layout: Path, tmp_path: Path, capsys) -> None:
    other = tmp_path / "one_family.csv"
    other.write_text("language,family\n" + "".join(f"{lang},X\n" for lang in FAMILIES))
    assert main([str(run_layout / "gradvac"), "--families", str(other)]) == 0
    assert "families from" not in capsys.readouterr().out
    report = json.loads((run_layout / "gradvac" / "analysis" / "report.json").read_text())
    assert report["num_families"] == 1


def test_the_log_folder_itself_reports_into_the_mode_folder(run_layout: Path) -> None:
    log = run_layout / "sum" / "gradvac_similarity"
    assert mode_dir(log) == run_layout / "sum" and find_families(log) == run_layout / "families.csv"
    assert main([str(log)]) == 0
    assert (run_layout / "sum" / "analysis" / "report.json").is_file()
    assert not (log / "analysis").exists()


def test_a_run_folder_points_at_its_modes(run_layout: Path, capsys) -> None:
    assert logged_subfolders(run_layout) == [run_layout / "gradvac", run_layout / "sum"]
    assert main([str(run_layout)]) == 2
    captured = capsys.readouterr()
    error = captured.err
    assert captured.out == ""  # no "families from ..." line for a run that was not analysed
    assert "no similarity log" in error
    assert f"{run_layout / 'gradvac'}, {run_layout / 'sum'}" in error
    assert f"gradvac-analyze {run_layout / 'gradvac'}" in error
    assert not (run_layout / "analysis").exists()
