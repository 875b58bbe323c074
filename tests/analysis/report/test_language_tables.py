"""Distance and family CSV loading: supported layouts and clear errors."""

from __future__ import annotations

import pytest

from gradvac_ds.analysis.report.tables import load_distances, load_families

MULTI = """code_a,code_b,glottolog_tree,syntactic_knn_cosine,great_circle_km
en,es,0.8462,0.1784,1396
en,de,0.5455,0.0975,1060
es,de,0.9,0.2,1500
"""


def write(tmp_path, text, name="t.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_multi_column_layout_uses_first_numeric_or_named_column(tmp_path):
    path = write(tmp_path, MULTI)
    table = load_distances(path)
    assert table.column == "glottolog_tree" and table.get("ES", "en") == pytest.approx(0.8462)
    assert table.alternatives == ("syntactic_knn_cosine", "great_circle_km")
    assert load_distances(path, "syntactic_knn_cosine").get("de", "en") == pytest.approx(0.0975)


@pytest.mark.parametrize(
    "text",
    [
        "lang1,lang2,distance\nde,nl,0.2\nde,ja,0.9\n",
        "de,nl,0.2\nde,ja,0.9\n",
        "x,language_b,distance,note\nde,nl,0.2,a\nde,ja,0.9,b\n",
    ],
)
def test_simple_layouts(tmp_path, text):
    table = load_distances(write(tmp_path, text))
    assert table.get("nl", "de") == pytest.approx(0.2) and table.get("ja", "de") == pytest.approx(0.9)
    assert table.get("nl", "ja") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lang1,lang2,distance\nde,nl,far\nde,ja,0.9\n", "line 2: field 'distance' is not a number"),
        ("a,b,c\nde,nl,far\n", "no numeric distance column"),
        ("lang1,lang2,distance\nde,nl,0.2\nde,ja\n", "line 3: expected 3 fields"),
        ("lang1,lang2,distance\nde,nl,0.2\nnl,de,0.3\n", "line 3: pair"),
        ("", "holds no rows"),
    ],
)
def test_bad_distance_files_name_file_and_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=message) as error:
        load_distances(path)
    assert str(path) in str(error.value)


def test_unknown_or_non_numeric_chosen_column(tmp_path):
    path = write(tmp_path, MULTI)
    with pytest.raises(ValueError, match="no column 'tree'"):
        load_distances(path, "tree")
    path = write(tmp_path, "lang1,lang2,distance,d2\nde,nl,0.2,x\nde,ja,0.9,0.1\n", "bad.csv")
    with pytest.raises(ValueError, match=r"line 2: field 'd2' is not a number"):
        load_distances(path, "d2")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        load_distances(tmp_path / "nope.csv")


def test_family_layouts(tmp_path):
    languages = (
        "code,iso639_3,name,family,branch\nde,deu,German,Indo-European,Germanic\nja,jpn,Japanese,Japonic,J\n"
    )
    table = load_families(write(tmp_path, languages))
    assert table.get("DE") == "Indo-European" and table.column == "family"
    assert load_families(write(tmp_path, languages), "branch").get("de") == "Germanic"
    assert load_families(write(tmp_path, "de,Germanic\nnl,Germanic\n", "two.csv")).get("nl") == "Germanic"
    assert load_families(write(tmp_path, "language,group\nde,G\n", "named.csv")).get("de") == "G"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b,c\nde,x,y\n", "expected a header with a 'family' column"),
        ("code,family\nde,Germanic\nde,Romance\n", "line 3: language 'de' has two values"),
        ("code,family\nde,\n", "no language has a 'family' value"),
    ],
)
def test_bad_family_files(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        load_families(write(tmp_path, text))
