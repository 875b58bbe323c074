"""Readers of real layouts: happy paths, filter counts, and every error naming file and line."""

from pathlib import Path

import pytest

from gradvac_ds.training.data import (
    DataError,
    FilterConfig,
    read_fairseq_dir,
    read_multiway_dir,
    read_tsv_files,
)


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def test_fairseq_reads_pairs_and_splits(tmp_path: Path) -> None:
    _write(tmp_path / "train.de-en.de", ["Hallo Welt", "Guten Tag"])
    _write(tmp_path / "train.de-en.en", ["hello world", "good day"])
    _write(tmp_path / "valid.de-en.de", ["Ja"])
    _write(tmp_path / "valid.de-en.en", ["Yes"])
    _write(tmp_path / "dict.txt", ["not a corpus file"])
    corpus = read_fairseq_dir(tmp_path)
    assert corpus.pairs[("de", "en")]["train"] == [("Hallo Welt", "hello world"), ("Guten Tag", "good day")]
    assert corpus.oriented("en", "de", "valid") == [("Yes", "Ja")]
    assert corpus.languages == ["de", "en"]


def test_fairseq_filter_counts(tmp_path: Path) -> None:
    src = ["ok one", "", "x" * 50, "short", "fine two"]
    tgt = ["ok eins", "leer", "y" * 50, "a much much longer line", "gut zwei"]
    _write(tmp_path / "train.de-en.de", src)
    _write(tmp_path / "train.de-en.en", tgt)
    corpus = read_fairseq_dir(tmp_path, filters=FilterConfig(max_bytes=40, max_length_ratio=3.0))
    assert len(corpus.pairs[("de", "en")]["train"]) == 2
    assert corpus.stats.total_removed("empty") == 1
    assert corpus.stats.total_removed("too_long") == 1
    assert corpus.stats.total_removed("length_ratio") == 1
    assert corpus.stats.total_kept() == 2
    assert "de-en train: kept 2, removed empty=1, length_ratio=1, too_long=1" in corpus.stats.report()


def test_crlf_and_unicode_line_separator_do_not_break_alignment(tmp_path: Path) -> None:
    (tmp_path / "train.de-en.de").write_bytes("eins\r\nzwei\u2028drei\r\n".encode())
    (tmp_path / "train.de-en.en").write_bytes(b"one\r\ntwo three\r\n")
    corpus = read_fairseq_dir(tmp_path)
    assert corpus.pairs[("de", "en")]["train"] == [("eins", "one"), ("zwei\u2028drei", "two three")]


def test_fairseq_line_count_mismatch_names_file_and_line(tmp_path: Path) -> None:
    _write(tmp_path / "train.de-en.de", ["a", "b", "c"])
    _write(tmp_path / "train.de-en.en", ["a", "b"])
    with pytest.raises(DataError, match=r"train\.de-en\.de:3: line count mismatch"):
        read_fairseq_dir(tmp_path)


def test_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "train.de-en.de").write_bytes(b"gut\nauch gut\nkaputt \xff\xfe\n")
    _write(tmp_path / "train.de-en.en", ["good", "also good", "broken"])
    with pytest.raises(DataError, match=r"train\.de-en\.de:3: invalid UTF-8"):
        read_fairseq_dir(tmp_path)


def test_empty_corpus_names_directory(tmp_path: Path) -> None:
    _write(tmp_path / "train.de-en.de", ["", "  "])
    _write(tmp_path / "train.de-en.en", ["x", "y"])
    with pytest.raises(DataError, match=rf"(?s){tmp_path}: empty corpus.*empty=2"):
        read_fairseq_dir(tmp_path)


def test_no_matching_files_is_an_empty_corpus(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty corpus"):
        read_fairseq_dir(tmp_path)


@pytest.mark.parametrize("code", ["DE", "deutsch", "d"])
def test_bad_language_code_names_file(tmp_path: Path, code: str) -> None:
    _write(tmp_path / f"train.{code}-en.{code}", ["a"])
    _write(tmp_path / f"train.{code}-en.en", ["a"])
    with pytest.raises(DataError, match=rf"train\.{code}-en\.{code}: invalid language code '{code}'"):
        read_fairseq_dir(tmp_path)


def test_language_outside_allowed_list_names_file(tmp_path: Path) -> None:
    _write(tmp_path / "train.fr-en.fr", ["a"])
    _write(tmp_path / "train.fr-en.en", ["a"])
    with pytest.raises(
        DataError, match=r"train\.fr-en\.en: unknown language code 'fr'; allowed: \['de', 'en'\]"
    ):
        read_fairseq_dir(tmp_path, allowed_languages={"de", "en"})


def test_missing_partner_file(tmp_path: Path) -> None:
    _write(tmp_path / "train.de-en.de", ["a"])
    with pytest.raises(DataError, match=r"partner file .*train\.de-en\.en is missing"):
        read_fairseq_dir(tmp_path)


def test_tsv_reads_and_reports_bad_line(tmp_path: Path) -> None:
    good = _write(tmp_path / "train.tsv", ["Hallo\thello", "Welt\tworld"])
    corpus = read_tsv_files({"de-en": {"train": good}})
    assert corpus.pairs[("de", "en")]["train"] == [("Hallo", "hello"), ("Welt", "world")]
    bad = _write(tmp_path / "bad.tsv", ["a\tb", "no tab here"])
    with pytest.raises(DataError, match=r"bad\.tsv:2: expected 2 tab-separated fields .*found 1"):
        read_tsv_files({"de-en": {"train": bad}})


def test_tsv_bad_pair_name(tmp_path: Path) -> None:
    good = _write(tmp_path / "train.tsv", ["a\tb"])
    with pytest.raises(DataError, match="TSV pair 'de_en'"):
        read_tsv_files({"de_en": {"train": good}})


def _multiway(tmp_path: Path) -> Path:
    _write(tmp_path / "split.txt", ["train", "train", "train", "dev", "test"])
    _write(tmp_path / "en.txt", ["one", "two", "three", "four", "five"])
    _write(tmp_path / "de.txt", ["eins", "", "drei", "vier", "fünf"])
    _write(tmp_path / "fi.txt", ["yksi", "kaksi", "", "", "viisi"])
    _write(tmp_path / "vref.txt", ["GEN 1:1", "GEN 1:2", "GEN 1:3", "ROM 1:1", "JHN 1:1"])
    return tmp_path


def test_multiway_pairs_with_pivot_and_counts_missing_lines(tmp_path: Path) -> None:
    corpus = read_multiway_dir(_multiway(tmp_path), pivot="en")
    assert sorted(corpus.pairs) == [("de", "en"), ("fi", "en")]
    assert corpus.pairs[("de", "en")]["train"] == [("eins", "one"), ("drei", "three")]
    assert corpus.pairs[("de", "en")]["valid"] == [("vier", "four")]
    assert corpus.pairs[("fi", "en")]["test"] == [("viisi", "five")]
    assert corpus.stats.removed[(("de", "en"), "train")]["empty"] == 1
    assert corpus.stats.removed[(("fi", "en"), "valid")]["empty"] == 1


def test_multiway_language_subset(tmp_path: Path) -> None:
    corpus = read_multiway_dir(_multiway(tmp_path), pivot="en", languages=["fi"])
    assert list(corpus.pairs) == [("fi", "en")]


def test_multiway_unknown_split_label(tmp_path: Path) -> None:
    _multiway(tmp_path)
    _write(tmp_path / "split.txt", ["train", "train", "holdout", "dev", "test"])
    with pytest.raises(DataError, match=r"split\.txt:3: unknown split label 'holdout'"):
        read_multiway_dir(tmp_path, pivot="en")


def test_multiway_line_count_mismatch(tmp_path: Path) -> None:
    _multiway(tmp_path)
    _write(tmp_path / "fi.txt", ["yksi", "kaksi", "", ""])
    with pytest.raises(DataError, match=r"split\.txt:5: line count mismatch.*fi\.txt has 4"):
        read_multiway_dir(tmp_path, pivot="en")


def test_multiway_missing_language_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"sv\.txt: cannot read file"):
        read_multiway_dir(_multiway(tmp_path), pivot="en", languages=["sv"])
