"""Streaming readers of real layouts: lines as in the files, skipped files listed with the reason,
BOM / CR / split-name handling, and every error naming file and line."""

from pathlib import Path

import pytest

from gradvac_ds.training.data import (
    DataError,
    FilterConfig,
    fairseq_source,
    monolingual_source,
    multiway_source,
    tsv_source,
)

SPLITS = ("train", "valid", "test")


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def _all(source, pair, split) -> list[tuple[str, str]]:
    return list(source.lines(pair, split))


def test_fairseq_reads_pairs_splits_and_dev(tmp_path: Path) -> None:
    _write(tmp_path / "train.de-en.de", ["Hallo Welt", "Guten Tag"])
    _write(tmp_path / "train.de-en.en", ["hello world", "good day"])
    _write(tmp_path / "dev.de-en.de", ["Ja"])
    _write(tmp_path / "dev.de-en.en", ["Yes"])
    source = fairseq_source(tmp_path, SPLITS)
    assert source.pairs == [("de", "en")] and source.splits(("de", "en")) == ["train", "valid"]
    assert _all(source, ("de", "en"), "train") == [("Hallo Welt", "hello world"), ("Guten Tag", "good day")]
    assert _all(source, ("de", "en"), "valid") == [("Ja", "Yes")]


def test_fairseq_lists_skipped_files_with_the_reason(tmp_path: Path) -> None:
    _write(tmp_path / "tatoeba.deu-eng.deu", ["Hallo"])
    _write(tmp_path / "tatoeba.deu-eng.eng", ["Hello"])
    _write(tmp_path / "dict.txt", ["not a corpus file"])
    _write(tmp_path / "test.de-en.de", ["a"])
    _write(tmp_path / "test.de-en.en", ["a"])
    source = fairseq_source(tmp_path, ("train", "valid"))
    assert source.pairs == []
    skipped = "\n".join(source.skipped)
    assert "dict.txt: name is not {split}.{src}-{tgt}.{lang}" in skipped
    allowed = "['dev', 'test', 'train', 'valid', 'validation']"
    assert f"tatoeba.deu-eng.deu: split 'tatoeba' is not one of {allowed}" in skipped
    assert "test.de-en.en: split 'test' not requested" in skipped


def test_crlf_bom_and_unicode_line_separator(tmp_path: Path) -> None:
    (tmp_path / "train.de-en.de").write_bytes("\ufeffeins\r\nzwei\u2028drei\r\n".encode())
    (tmp_path / "train.de-en.en").write_bytes(b"\xef\xbb\xbfone\r\ntwo three\r\n")
    source = fairseq_source(tmp_path, SPLITS)
    assert _all(source, ("de", "en"), "train") == [("eins", "one"), ("zwei\u2028drei", "two three")]


def test_cr_only_line_endings_are_refused_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "train.de-en.de").write_bytes(b"eins\nzwei\rdrei\rvier\n")
    _write(tmp_path / "train.de-en.en", ["one", "two"])
    with pytest.raises(DataError, match=r"train\.de-en\.de:2: carriage return inside a line"):
        _all(fairseq_source(tmp_path, SPLITS), ("de", "en"), "train")


def test_fairseq_line_count_mismatch_names_file_and_line(tmp_path: Path) -> None:
    _write(tmp_path / "train.de-en.de", ["a", "b", "c"])
    _write(tmp_path / "train.de-en.en", ["a", "b"])
    with pytest.raises(DataError, match=r"de-en\.de:3: line count mismatch, .*de-en\.en ended after 2"):
        _all(fairseq_source(tmp_path, SPLITS), ("de", "en"), "train")


def test_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "train.de-en.de").write_bytes(b"gut\nauch gut\nkaputt \xff\xfe\n")
    _write(tmp_path / "train.de-en.en", ["good", "also good", "broken"])
    with pytest.raises(DataError, match=r"train\.de-en\.de:3: invalid UTF-8"):
        _all(fairseq_source(tmp_path, SPLITS), ("de", "en"), "train")


@pytest.mark.parametrize("code", ["DE", "deutsch", "d"])
def test_bad_language_code_names_file(tmp_path: Path, code: str) -> None:
    _write(tmp_path / f"train.{code}-en.{code}", ["a"])
    _write(tmp_path / f"train.{code}-en.en", ["a"])
    with pytest.raises(DataError, match=rf"train\.{code}-en\.{code}: invalid language code '{code}'"):
        fairseq_source(tmp_path, SPLITS)


def test_missing_partner_file(tmp_path: Path) -> None:
    _write(tmp_path / "train.de-en.de", ["a"])
    with pytest.raises(DataError, match=r"partner file .*train\.de-en\.en is missing"):
        fairseq_source(tmp_path, SPLITS)


def test_tsv_reads_maps_dev_and_reports_bad_line(tmp_path: Path) -> None:
    good = _write(tmp_path / "train.tsv", ["Hallo\thello", "Welt\tworld"])
    dev = _write(tmp_path / "dev.tsv", ["Ja\tyes"])
    source = tsv_source({"de-en": {"train": good, "validation": dev}}, SPLITS)
    assert _all(source, ("de", "en"), "train") == [("Hallo", "hello"), ("Welt", "world")]
    assert _all(source, ("de", "en"), "valid") == [("Ja", "yes")]
    bad = _write(tmp_path / "bad.tsv", ["a\tb", "no tab here"])
    with pytest.raises(DataError, match=r"bad\.tsv:2: expected 2 tab-separated fields .*found 1"):
        _all(tsv_source({"de-en": {"train": bad}}, SPLITS), ("de", "en"), "train")


def test_tsv_bad_pair_and_split_names(tmp_path: Path) -> None:
    good = _write(tmp_path / "train.tsv", ["a\tb"])
    with pytest.raises(DataError, match="TSV pair 'de_en'"):
        tsv_source({"de_en": {"train": good}}, SPLITS)
    with pytest.raises(DataError, match=r"data\.tsv\.de-en\.holdout: unknown split 'holdout'; allowed"):
        tsv_source({"de-en": {"holdout": good}}, SPLITS)


def _multiway(tmp_path: Path) -> Path:
    _write(tmp_path / "split.txt", ["train", "train", "train", "dev", "test"])
    _write(tmp_path / "en.txt", ["one", "two", "three", "four", "five"])
    _write(tmp_path / "de.txt", ["eins", "", "drei", "vier", "fünf"])
    _write(tmp_path / "fi.txt", ["yksi", "kaksi", "", "", "viisi"])
    _write(tmp_path / "vref.txt", ["GEN 1:1", "GEN 1:2", "GEN 1:3", "ROM 1:1", "JHN 1:1"])
    return tmp_path


def test_multiway_pairs_with_pivot(tmp_path: Path) -> None:
    source = multiway_source(_multiway(tmp_path), "en", None, SPLITS)
    assert source.pairs == [("de", "en"), ("fi", "en")]
    assert _all(source, ("de", "en"), "train") == [("eins", "one"), ("", "two"), ("drei", "three")]
    assert _all(source, ("de", "en"), "valid") == [("vier", "four")]
    assert _all(source, ("fi", "en"), "test") == [("viisi", "five")]
    assert any("vref.txt" in line for line in source.skipped)


def test_multiway_language_subset(tmp_path: Path) -> None:
    assert multiway_source(_multiway(tmp_path), "en", ["fi"], SPLITS).pairs == [("fi", "en")]


def test_multiway_unknown_split_label(tmp_path: Path) -> None:
    _multiway(tmp_path)
    _write(tmp_path / "split.txt", ["train", "train", "holdout", "dev", "test"])
    with pytest.raises(DataError, match=r"split\.txt:3: unknown split 'holdout'"):
        _all(multiway_source(tmp_path, "en", None, SPLITS), ("de", "en"), "train")


def test_multiway_line_count_mismatch(tmp_path: Path) -> None:
    _multiway(tmp_path)
    _write(tmp_path / "fi.txt", ["yksi", "kaksi", "", ""])
    with pytest.raises(DataError, match=r"split\.txt:5: line count mismatch.*fi\.txt ended after 4"):
        _all(multiway_source(tmp_path, "en", None, SPLITS), ("fi", "en"), "test")


def test_multiway_missing_language_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"sv\.txt: missing \(data\.languages has 'sv'\)"):
        multiway_source(_multiway(tmp_path), "en", ["sv"], SPLITS)


def test_monolingual_files_and_directories(tmp_path: Path) -> None:
    _write(tmp_path / "de.txt", ["eins", "zwei"])
    (tmp_path / "fi").mkdir()
    _write(tmp_path / "fi" / "b.txt", ["kolme"])
    _write(tmp_path / "fi" / "a.txt", ["yksi", "kaksi"])
    _write(tmp_path / "README.md", ["notes"])
    source = monolingual_source(tmp_path, None)
    assert sorted(source.files) == ["de", "fi"]
    assert list(source.lines("fi")) == ["yksi", "kaksi", "kolme"]
    assert any("README.md" in line for line in source.skipped)
    with pytest.raises(DataError, match=r"no \{code\}\.txt or \{code\}/ for data\.languages \['sv'\]"):
        monolingual_source(tmp_path, ["de", "sv"])


def test_filters_count_characters_not_bytes() -> None:
    """A Cyrillic sentence is twice as long in UTF-8 bytes as in letters; the ratio must not see that."""
    filters = FilterConfig(max_chars=40, max_length_ratio=1.5)
    assert filters.reject_reason("Привет, как дела сегодня?", "Hello, how are you today?") is None
    assert filters.reject_reason("", "x").value == "empty"
    assert filters.reject_reason("x" * 41, "y" * 41).value == "too_long"
    assert filters.reject_reason("short", "a much much longer line").value == "length_ratio"
