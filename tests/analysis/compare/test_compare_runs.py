"""compare_runs and the gradvac-compare command on constructed run folders (2 modes x 3 seeds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from compare_corpora import references, write_run
from synthetic_logs import ACROSS, FAMILIES, GROUPS, WITHIN, planted_cosine

from gradvac_ds.analysis.compare import compare_runs
from gradvac_ds.analysis.compare.__main__ import main
from gradvac_ds.analysis.compare.comparison import holm_findings, seed_interval, source_spread
from gradvac_ds.analysis.compare.text import shared_languages
from gradvac_ds.analysis.log import SimilarityLog

PAIRS = {"aa-en": references(150, 1), "ab-en": references(150, 2), "ba-en": references(150, 3)}
ERRORS = {
    "sum": {"aa-en": 0.4, "ab-en": 0.3, "ba-en": 0.15},
    "gradvac": {"aa-en": 0.15, "ab-en": 0.3, "ba-en": 0.4},
}
FAST = {"bootstrap_samples": 300, "randomisation_trials": 1000}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("cmp") / "run", ERRORS, [0, 1, 2], PAIRS)


def test_verdicts_follow_the_planted_gaps(run_dir, tmp_path):
    results = compare_runs([run_dir], tmp_path / "out", **FAST)
    assert results["seeds"] == ["seed0", "seed1", "seed2"] and results["baseline"] == "sum"
    by_pair = results["comparisons"]["gradvac"]
    for metric in ("BLEU", "chrF"):
        assert by_pair["aa-en"][metric]["verdict"] == "better"
        assert by_pair["ab-en"][metric]["verdict"] == "not significant"
        assert by_pair["ba-en"][metric]["verdict"] == "worse"
        assert results["summary"]["gradvac"][metric] == {
            "better": 1, "worse": 1, "negligible": 0, "not significant": 1
        }  # fmt: skip
        assert by_pair["aa-en"][metric]["p_holm"] >= by_pair["aa-en"][metric]["p_bootstrap"]
    bleu = results["scores"]["gradvac"]["aa-en"]["BLEU"]
    assert bleu["sd"] > 0 and bleu["mean"] == pytest.approx(np.mean(list(bleu["per_seed"].values())))
    text = (tmp_path / "out" / "compare.txt").read_text()
    assert "not significant on 1 of 3 pairs after Holm correction" in text
    assert "they resample sentences, not seeds" in text and "signature: nrefs:1|bs:300" in text
    assert "the pairs share languages, en (3 of 3): they are not independent" in text
    assert (tmp_path / "out" / "compare.png").stat().st_size > 0
    assert json.loads((tmp_path / "out" / "compare.json").read_text())["pairs"] == sorted(PAIRS)


def test_identical_modes_are_not_significant_anywhere(tmp_path):
    same = {"sum": {p: 0.3 for p in PAIRS}, "gradvac": {p: 0.3 for p in PAIRS}}
    run = write_run(tmp_path / "same", same, [0, 1], PAIRS)
    for seed in (0, 1):  # gradvac's outputs = sum's, sentence for sentence
        for pair in PAIRS:
            hyp = run / f"seed{seed}" / "sum" / "translations" / f"{pair}.hyp"
            (run / f"seed{seed}" / "gradvac" / "translations" / f"{pair}.hyp").write_text(hyp.read_text())
    results = compare_runs([run], tmp_path / "out", **FAST)
    for metric in ("BLEU", "chrF"):
        assert results["summary"]["gradvac"][metric]["not significant"] == 3
        assert results["comparisons"]["gradvac"]["all"][metric]["verdict"] == "not significant"


def test_single_seed_runs_combine_as_seeds(tmp_path):
    for k in range(2):
        write_run(tmp_path / f"r{k}", ERRORS, [k], PAIRS)
    folders = [tmp_path / f"r{k}" / f"seed{k}" for k in range(2)]
    results = compare_runs(folders, tmp_path / "out", **FAST)
    assert results["seeds"] == ["seed0", "seed1"]


def _write_logs(run_dir: Path, seeds: list[int]) -> Path:
    languages = list(FAMILIES)
    families = np.array([FAMILIES[lang] for lang in languages])
    base = np.where(families[:, None] == families[None, :], WITHIN, ACROSS)
    for seed in seeds:
        rng = np.random.default_rng(seed)
        folder = run_dir / f"seed{seed}" / "gradvac"
        with SimilarityLog(folder, [f"{lang}-en" for lang in languages], GROUPS, window=10) as log:
            for step, stats in enumerate(planted_cosine(rng, languages, base, 40)):
                log.record(step, stats)
    return run_dir


def test_command_with_distances_reports_similarity_intervals(run_dir, tmp_path, planted_distances, capsys):
    _write_logs(run_dir, [0, 1, 2])
    code = main([
        str(run_dir), "--out", str(tmp_path / "cli"), "--distances", str(planted_distances),
        "--bootstrap", "200", "--trials", "500", "--resamples", "100", "--permutations", "499",
    ])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "gradient similarity vs language distance" in printed and "holds" in printed
    similarity = json.loads((tmp_path / "cli" / "compare.json").read_text())["similarity"]
    assert list(similarity) == ["gradvac"] and similarity["gradvac"]["seeds"] == 3
    assert similarity["gradvac"]["steps"] == [0, 39] and similarity["gradvac"]["windows"] == [4, 4, 4]
    code = main([
        str(run_dir), "--out", str(tmp_path / "late"), "--distances", str(planted_distances),
        "--bootstrap", "200", "--trials", "500", "--resamples", "100", "--permutations", "499",
        "--steps", "10:",
    ])  # fmt: skip
    assert code == 0 and "3 seed(s), steps 10-39, 9 windows" in capsys.readouterr().out
    late = json.loads((tmp_path / "late" / "compare.json").read_text())["similarity"]["gradvac"]
    assert late["windows"] == [3, 3, 3]
    assert main([str(run_dir), "--out", str(tmp_path / "x"), "--distances", str(planted_distances),
                 "--steps", "50:60"]) == 2  # fmt: skip
    assert "no window lies wholly inside steps 50:60" in capsys.readouterr().err
    for bad in ("10", "30:10", "a:b"):
        with pytest.raises(SystemExit):
            main([str(run_dir), "--steps", bad])
    assert "expected FIRST:STOP" in capsys.readouterr().err


def test_command_errors_name_the_problem(run_dir, tmp_path, capsys):
    assert main([str(tmp_path / "missing")]) == 2
    assert "no such run folder" in capsys.readouterr().err
    assert main([str(run_dir), "--baseline", "pcgrad", "--out", str(tmp_path / "x")]) == 2
    assert "--baseline 'pcgrad' is not one of the modes" in capsys.readouterr().err
    broken = write_run(tmp_path / "broken", ERRORS, [0, 1], PAIRS)
    (broken / "seed1" / "gradvac" / "translations" / "aa-en.ref").write_text("other\n" * 150)
    assert main([str(broken), "--out", str(tmp_path / "y")]) == 2
    assert "aa-en.ref differs from the references" in capsys.readouterr().err
    assert main([str(run_dir), "--trials", "0"]) == 2


def test_seed_interval_is_the_student_t_interval_of_the_mean_difference():
    wide = seed_interval([1.0, 2.0, 3.0])  # mean 2, sd 1, t_{0.975, 2} = 4.3027
    assert wide["low"] == pytest.approx(2 - 4.3027 / np.sqrt(3), abs=1e-4)
    assert wide["high"] == pytest.approx(2 + 4.3027 / np.sqrt(3), abs=1e-4)
    assert wide["finding"] == "not significant"
    assert seed_interval([1.0, 1.1, 0.9])["finding"] == "better"
    assert seed_interval([-1.0, -1.1, -0.9])["finding"] == "worse"
    assert seed_interval([0.0, 0.0, 0.0])["finding"] == "not significant"
    single = seed_interval([5.0])
    assert single["low"] is None and single["finding"] == "not significant"
    assert seed_interval([1.0, 2.0, 3.0], level=0.5)["high"] < wide["high"]


def test_the_report_states_the_average_difference_with_its_interval(run_dir, tmp_path):
    results = compare_runs([run_dir], tmp_path / "out", **FAST)
    average = results["comparisons"]["gradvac"]["all"]["BLEU"]["seed_delta"]
    assert average["low"] <= average["mean"] <= average["high"]
    text = (tmp_path / "out" / "compare.txt").read_text()
    assert f"average BLEU difference over seeds: {average['mean']:+.2f}, 95% t interval" in text


def test_validation_losses_are_compared_over_seeds(tmp_path):
    run = write_run(tmp_path / "valid", ERRORS, [0, 1, 2], PAIRS)
    rng = np.random.default_rng(0)
    for seed in (0, 1, 2):
        for mode, shift in (("sum", 0.0), ("gradvac", 0.5)):
            noise = rng.normal(0, 0.01, 3)  # aa-en: gradvac 0.5 lower; ab-en: the same up to noise
            values = (3.0 - shift + noise[0], 3.0 + noise[1], 3.0 + shift + noise[2])
            losses = dict(zip(PAIRS, values, strict=True))
            history = [{"step": 4, "valid_loss": {p: 4.0 for p in PAIRS}}, {"step": 8, "valid_loss": losses}]
            (run / f"seed{seed}" / mode / "validation.json").write_text(json.dumps(history))
    results = compare_runs([run], tmp_path / "out", **FAST)
    by_pair = results["validation"]["comparisons"]["gradvac"]
    assert by_pair["aa-en"]["finding"] == "better"
    assert by_pair["aa-en"]["mean"] == pytest.approx(0.5, abs=0.05)
    assert by_pair["ab-en"]["finding"] == "not significant"
    assert by_pair["ba-en"]["finding"] == "worse"
    text = (tmp_path / "out" / "compare.txt").read_text()
    expected = (
        "gradvac vs sum (validation loss): lower on 1, higher on 1, negligible on 0, not significant "
        "on 1 of 3 pairs after Holm correction (minimum effect 0.001 nats)"
    )
    assert expected in text
    assert by_pair["aa-en"]["p"] <= by_pair["aa-en"]["p_holm"] < 0.05 and "p_holm" not in by_pair["all"]
    strict = compare_runs([run], tmp_path / "strict", min_loss_effect=1.0, **FAST)
    findings = {p: strict["validation"]["comparisons"]["gradvac"][p]["finding"] for p in PAIRS}
    assert findings == {"aa-en": "negligible", "ab-en": "not significant", "ba-en": "negligible"}
    first, last = results["validation_by_step"]
    assert first["step"] == 4 and last["step"] == 8 and first["loss"] == {"sum": 4.0, "gradvac": 4.0}
    assert first["reduction"]["gradvac"]["mean"] == 0.0 and first["pairs_lower"]["gradvac"] == 0
    assert first["source_spread"] == {"sum": 0.0, "gradvac": 0.0}
    final = results["validation"]["losses"]
    means = {m: {p: np.mean(list(final[m][p].values())) for p in PAIRS} for m in ("sum", "gradvac")}
    lower = sum(means["gradvac"][p] < means["sum"][p] for p in PAIRS)
    assert lower >= 1 and last["pairs_lower"]["gradvac"] == lower  # aa-en, and ab-en when noise says so
    assert last["reduction"]["gradvac"]["low"] is not None
    assert last["source_spread"]["sum"] < 0.03  # the three sources into en: equal up to noise
    assert last["source_spread"]["gradvac"] == pytest.approx(np.std([2.5, 3.0, 3.5]), abs=0.03)
    assert "validation loss along training" in text


def test_seed_interval_needs_the_minimum_effect_and_gives_the_t_test_p():
    tiny = seed_interval([0.001, 0.0011, 0.0009], min_effect=0.01)
    assert tiny["low"] > 0 and tiny["finding"] == "negligible" and tiny["p"] < 0.01
    assert seed_interval([0.001, 0.0011, 0.0009])["finding"] == "better"
    assert seed_interval([0.5, 0.5])["p"] == 0.0 and seed_interval([0.0, 0.0])["p"] == 1.0
    assert seed_interval([1.0, -1.0, 0.5])["p"] == pytest.approx(0.8075, abs=1e-3)  # t = 0.277, 2 dof


def test_holm_findings_correct_the_pairs_but_not_the_average():
    deltas = {"aa-en": [1.0, 1.4, 0.8], "ab-en": [1.0, 1.4, 0.75], "all": [1.0, 1.4, 0.75]}
    rows = {pair: seed_interval(values) for pair, values in deltas.items()}
    assert all(row["finding"] == "better" and 0.025 < row["p"] < 0.035 for row in rows.values())
    holm_findings(rows, alpha=0.05, min_effect=0.0)
    # sorted 0.026, 0.031 -> 2 x 0.026 and max(2 x 0.026, 1 x 0.031): both above 0.05 now
    assert rows["aa-en"]["p_holm"] == pytest.approx(2 * rows["aa-en"]["p"])
    assert rows["ab-en"]["p_holm"] == pytest.approx(2 * rows["aa-en"]["p"])
    assert rows["aa-en"]["finding"] == rows["ab-en"]["finding"] == "not significant"
    assert rows["all"]["finding"] == "better" and "p_holm" not in rows["all"]


def test_shared_languages_names_the_languages_pairs_share():
    assert shared_languages(["es-en", "pt-en", "en-de"]) == (
        "  (the pairs share languages, en (3 of 3): they are not independent)"
    )
    assert shared_languages(["es-pt", "de-da"]) == ""


def test_source_spread_is_the_mean_spread_over_targets_with_several_sources():
    assert source_spread({"aa-en": 1.0, "ab-en": 3.0, "en-aa": 5.0}) == pytest.approx(1.0)
    assert source_spread({"aa-en": 1.0, "ab-en": 3.0, "aa-xx": 2.0, "ab-xx": 2.0}) == pytest.approx(0.5)
    assert source_spread({"en-aa": 1.0, "en-ab": 2.0}) is None


def test_runs_without_validation_history_skip_the_loss_comparison(run_dir, tmp_path):
    assert "validation" not in compare_runs([run_dir], tmp_path / "out", **FAST)
