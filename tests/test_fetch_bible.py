"""scripts/fetch_bible.py: the cleaning rules, the split, and a fetch over real HTTP from a local
server that checks every file's git blob SHA-1 and refuses a tampered one."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("fetch_bible", REPO / "scripts" / "fetch_bible.py")
fetch_bible = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fetch_bible)

VREF = ["GEN 1:1", "GEN 1:2", "GEN 1:3", "JHN 1:1", "ROM 1:1"]
ENGLISH = ["In the beginning", "and the earth  was", "<range>", "In the beginning was the Word", "Paul"]
DANISH = ["[1:1] I Begyndelsen*", "og Jorden { [*note] } var", "ode+", "I Begyndelsen var Ordet", "Paulus"]


def test_git_blob_sha1_is_gits_object_id(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"verse\n")
    done = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=False)
    if done.returncode:
        pytest.skip("git is not installed")
    assert fetch_bible.git_blob_sha1(b"verse\n") == done.stdout.strip()
    assert fetch_bible.git_blob_sha1(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's empty blob


def test_cleaning_rules_remove_the_documented_residue():
    assert fetch_bible.clean_verse("[32:1] Og  Jakob { [*a] } drog* videre+", "da") == "Og Jakob drog videre"
    assert fetch_bible.clean_verse("]73-63[ שלום [ (Romans 7:26) x ]", "he") == "שלום"
    assert fetch_bible.clean_verse("$1Jesus sa", "nb") == "Jesus sa"
    assert fetch_bible.clean_verse("$ALEF Blago", "hr") == "Blago"
    assert fetch_bible.clean_verse("[5 a] word*", "en") == "word*"  # markers are Danish-only
    # a merged verse: the "<range>" line and the line that carries its text are both blanked
    assert fetch_bible.clean_lines(["a", "b c", " <range> ", "d"], "en") == ["a", "", "", "d"]


def test_split_holds_out_romans_and_john():
    assert fetch_bible.split_of(VREF) == ["train", "train", "train", "test", "dev"]


def _corpus(root: Path) -> tuple[Path, tuple[str, str]]:
    """A served tree like the source repository's, and sources.csv with the blobs of its files."""
    files = {"metadata/vref.txt": VREF, "corpus/engx.txt": ENGLISH, "corpus/danx.txt": DANISH}
    blobs = {}
    for name, lines in files.items():
        data = ("\n".join(lines) + "\n").encode()
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
        blobs[name] = fetch_bible.git_blob_sha1(data)
    manifest = root / "sources.csv"
    with open(manifest, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, ["code", "translation_id", "licence", "source_path", "git_blob"])
        writer.writeheader()
        for code, tid in (("en", "engx"), ("da", "danx")):
            path = f"corpus/{tid}.txt"
            writer.writerow({"code": code, "translation_id": tid, "licence": "Public Domain",
                             "source_path": path, "git_blob": blobs[path]})  # fmt: skip
    return manifest, ("metadata/vref.txt", blobs["metadata/vref.txt"])


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_fetch_over_http_writes_verified_cleaned_aligned_files(server, tmp_path):
    root, url = server
    manifest, vref = _corpus(root)
    out = tmp_path / "bible"
    read = fetch_bible.http_reader(url)
    written = fetch_bible.fetch(read, fetch_bible.read_sources(manifest), ["da"], out, vref)
    assert written == ["en", "da"]
    lines = {
        name: (out / f"{name}.txt").read_text(encoding="utf-8").split("\n")[:-1] for name in ("en", "da")
    }
    assert lines["en"] == ["In the beginning", "", "", "In the beginning was the Word", "Paul"]
    assert lines["da"] == ["I Begyndelsen", "og Jorden var", "ode", "I Begyndelsen var Ordet", "Paulus"]
    assert (out / "split.txt").read_text() == "train\ntrain\ntrain\ntest\ndev\n"
    assert (out / "vref.txt").read_text().splitlines() == VREF
    assert fetch_bible.fetch(read, fetch_bible.read_sources(manifest), ["da"], out, vref) == []  # kept

    (root / "corpus" / "danx.txt").write_text("tampered\n" * len(VREF))
    (out / "da.txt").unlink()
    with pytest.raises(
        fetch_bible.FetchError, match=r"corpus/danx\.txt: git blob \w+ differs from the pinned"
    ):
        fetch_bible.fetch(read, fetch_bible.read_sources(manifest), ["da"], out, vref)
    assert not (out / "da.txt").exists() and not list(out.glob(".*.tmp"))  # no part left behind
    with pytest.raises(fetch_bible.FetchError, match=r"corpus/missing\.txt: HTTP Error 404"):
        read("corpus/missing.txt")


def test_a_file_with_the_wrong_number_of_verses_is_refused(tmp_path):
    data = b"one\ntwo\n"
    with pytest.raises(fetch_bible.FetchError, match="2 lines, expected 5"):
        fetch_bible.verified_lines(lambda path: data, "x.txt", fetch_bible.git_blob_sha1(data), 5)


def test_the_command_names_unknown_languages_and_the_allowed_ones(tmp_path, capsys):
    assert (
        fetch_bible.main(["--languages", "xx", "--out", str(tmp_path), "--base-url", "http://127.0.0.1:9"])
        == 2
    )
    error = capsys.readouterr().err
    assert "--languages: ['xx'] not in sources.csv; allowed: [" in error and "'sw'" in error


def test_the_shipped_manifest_pins_every_language_of_the_evidence_tables():
    sources = fetch_bible.read_sources(fetch_bible.DATA_DIR / "sources.csv")
    with open(fetch_bible.DATA_DIR / "languages.csv", encoding="utf-8") as handle:
        languages = [row["code"] for row in csv.DictReader(handle)]
    assert sorted(sources) == sorted(languages) and len(sources) == 21
    for row in sources.values():
        assert len(row["git_blob"]) == 40 and row["source_path"] == f"corpus/{row['translation_id']}.txt"
        assert row["licence"] in {"Public Domain", "CC BY-SA 4.0"}
