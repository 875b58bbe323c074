"""analyze_run and gradvac-analyze on logs with planted family structure."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.image import imread
from synthetic_logs import ACROSS, FAMILIES, WITHIN, make_stats

from gradvac_ds.analysis.__main__ import main
from gradvac_ds.analysis.log import SimilarityLog
from gradvac_ds.analysis.log.reader import load_similarity_log
from gradvac_ds.analysis.report.analyze import analyze_run, target_warmup

FIGURES = [
    "similarity_heatmap.png",
    "similarity_over_time.png",
    "layer_profile.png",
    "fire_rate.png",
    "similarity_vs_distance.png",
]


def test_planted_families_and_distances_are_recovered(
    planted_run, planted_distances, planted_families, tmp_path
):
    report = analyze_run(
        planted_run(), tmp_path / "out", families=planted_families, distances=planted_distances
    )
    assert report["languages"] == list(FAMILIES) and report["unit"] == "language"
    assert report["num_steps"] == 60
    assert report["intra_family_mean_similarity"] == pytest.approx(WITHIN, abs=0.02)
    assert report["inter_family_mean_similarity"] == pytest.approx(ACROSS, abs=0.02)
    # The planted gap (0.55) is ~100x the noise left after averaging 60 steps x 6 groups
    # (0.1 / sqrt(360) ~ 0.005), so the average-linkage cut must give the families exactly: ARI = 1.
    assert report["adjusted_rand_index"] >= 0.99
    # Within-family pairs are both closer and more similar: a strong, significant negative rank correlation.
    assert report["spearman_rho"] < -0.6 and report["spearman_p"] < 1e-3
    # the p that holds for pairs sharing languages: relabel the languages (Mantel)
    assert report["mantel_permutations"] == 9999 and report["mantel_p"] < 0.05
    assert report["mantel_p"] > report["spearman_p"]
    assert 0 < report["fire_rate"]["overall"] < 1
    # planted firing: cosine < 0.1, i.e. never within a family (0.6), mostly across (0.05 + noise)
    assert report["fire_rate"]["per_pair"]["aa-en|ab-en"] == 0.0
    assert report["fire_rate"]["per_pair"]["aa-en|ba-en"] > 0.5
    assert report == json.loads((tmp_path / "out" / "report.json").read_text())


def test_no_structure_gives_no_family_agreement(planted_run, planted_families, tmp_path):
    report = analyze_run(planted_run(structured=False), tmp_path / "out", families=planted_families)
    assert report["adjusted_rand_index"] < 0.5
    assert report["spearman_rho"] is None
    assert "no --distances" in (tmp_path / "out" / "report.txt").read_text()


def test_mappings_work_like_tables_from_python(planted_run, tmp_path):
    distances = {
        (a, b): 0.2 if FAMILIES[a] == FAMILIES[b] else 0.9 for a in FAMILIES for b in FAMILIES if a < b
    }
    report = analyze_run(
        planted_run(),
        tmp_path / "out",
        families=FAMILIES,
        distances=distances,
        group_by="task",
        pairs=["aa-en|ab-en"],
    )
    assert report["unit"] == "task" and report["languages"][0] == "aa-en"
    assert report["adjusted_rand_index"] >= 0.99 and report["spearman_rho"] < 0


def test_cli_writes_valid_readable_figures_and_reports(
    planted_run, planted_distances, planted_families, capsys
):
    run_dir = planted_run()
    code = main(
        [
            str(run_dir),
            "--distances",
            str(planted_distances),
            "--families",
            str(planted_families),
            "--pairs",
            "aa|ab,aa|cc",
        ]
    )
    assert code == 0 and "report.txt" in capsys.readouterr().out
    out = run_dir / "analysis"
    for name in FIGURES:
        image = imread(out / name)
        assert image.shape[0] > 300 and image.shape[1] > 400, name
        assert image[..., :3].std() > 0.05, f"{name} looks blank"
    text = (out / "report.txt").read_text()
    assert "adjusted Rand index" in text and "Spearman rho" in text and "Mantel p = " in text
    report = json.loads((out / "report.json").read_text())
    for key in (
        "spearman_rho",
        "spearman_p",
        "adjusted_rand_index",
        "intra_family_mean_similarity",
        "inter_family_mean_similarity",
        "fire_rate",
        "num_steps",
        "languages",
    ):
        assert key in report


def test_cli_reports_bad_input_clearly(planted_run, tmp_path, capsys):
    run_dir = planted_run()
    bad = tmp_path / "bad.csv"
    bad.write_text("lang1,lang2,distance\naa,ab,near\n")
    assert main([str(run_dir), "--distances", str(bad)]) == 2
    error = capsys.readouterr().err
    assert str(bad) in error and "line 2" in error and "'distance'" in error
    assert main([str(run_dir), "--pairs", "aa|zz"]) == 2
    assert "unknown ['zz']" in capsys.readouterr().err
    assert main([str(tmp_path / "no_run")]) == 2
    assert "no similarity log" in capsys.readouterr().err


def test_target_warmup_counts_the_steps_each_pair_was_present_together(tmp_path, planted_run):
    """4 tasks, 10 steps: a and b on all, c on the first 4, d on the first 7 -> pairs together
    10, 4, 7, 4, 7, 4 times (median 5.5, min 4); with beta 0.1 the weights are 1 - 0.9^n."""
    tasks, groups = ["a-en", "b-en", "c-en", "d-en"], ["encoder.layers.0", "decoder.layers.0"]
    cosine, shape = np.full((2, 4, 4), 0.3), (2, 4, 4)
    metadata = {"mode": "gradvac", "beta": 0.1}
    with SimilarityLog(tmp_path / "w", tasks, groups, window=5, metadata=metadata) as log:
        for step in range(10):
            active = np.array([True, True, step < 4, step < 7])
            log.record(step, make_stats(cosine, np.zeros(shape, bool), np.zeros(shape), active))
    log = load_similarity_log(tmp_path / "w")
    warmup = target_warmup(log, log.total())
    assert warmup["steps"] == 10 and warmup["steps_together"] == {"median": 5.5, "min": 4.0}
    assert warmup["observed_weight"]["median"] == pytest.approx(1 - 0.9**5.5)
    assert warmup["observed_weight"]["min"] == pytest.approx(1 - 0.9**4)
    report = analyze_run(tmp_path / "w", tmp_path / "out")
    assert report["target_warmup"] == warmup
    text = (tmp_path / "out" / "report.txt").read_text()
    assert "present together on a median 5.5 of 10 steps (min 4)" in text
    assert analyze_run(planted_run(), tmp_path / "plain")["target_warmup"] is None  # no mode/beta
