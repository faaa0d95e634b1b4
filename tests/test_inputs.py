"""The input folder: ids from file names alone, annotations read strictly, one clear error for a
malformed annotations file (through the real CLI: stderr and exit code)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from contract.inputs import InputError, fingerprint, load_annotations, scan_input
from contract.names import painting_id, slugify
from contract.schema import is_valid_id

REPO = Path(__file__).resolve().parents[1]

# names the old rule numbered by position or reduced to one id
NAMES = ["一.png", "二.png", "A.png", "a.png", "a.jpg", "a.JPG", "Starry Night.jpg", "starry night.png",
         "starry-night.jpg", "Café.png", "Cafe\u0301.png", "x" * 200 + ".png", "-.png"]


def image(path: Path) -> Path:
    Image.new("RGB", (32, 32), (10, 20, 30)).save(path, format="PNG")
    return path


def test_every_name_gives_a_valid_distinct_id(tmp_path):
    for name in NAMES:
        image(tmp_path / name)
    found = scan_input(tmp_path).paintings
    assert sorted(p.path.name for p in found) == sorted(NAMES)
    ids = [p.id for p in found]
    assert all(is_valid_id(pid) for pid in ids)
    assert len(set(ids)) == len(NAMES)
    assert len({pid.lower() for pid in ids}) == len(NAMES)  # distinct on case-insensitive file systems too


def test_hidden_files_are_skipped_and_listed(tmp_path):
    for name in ("...png", "._a.jpg", "a.jpg"):
        image(tmp_path / name)
    inputs = scan_input(tmp_path)
    assert [p.path.name for p in inputs.paintings] == ["a.jpg"] and inputs.hidden == ["...png", "._a.jpg"]
    assert is_valid_id(painting_id("...png")) and is_valid_id(painting_id("._a.jpg"))


def test_an_id_depends_on_its_file_name_only(tmp_path):
    """The same file gets the same id alone, among others, and after others are added or removed."""
    alone = {}
    for name in NAMES:
        folder = tmp_path / f"alone-{len(alone)}"
        folder.mkdir()
        image(folder / name)
        (only,) = scan_input(folder).paintings
        alone[name] = only.id
    together = tmp_path / "together"
    together.mkdir()
    for name in reversed(NAMES):
        image(together / name)
    assert {p.path.name: p.id for p in scan_input(together).paintings} == alone


def test_id_is_readable_slug_and_hash_of_the_exact_name():
    """Derived by hand: the slug of the stem, lowercased, and SHA-256 of the name's bytes."""
    assert painting_id("Starry Night.jpg") == "starry-night-" + hashlib.sha256(b"Starry Night.jpg").hexdigest()[:8]
    assert painting_id("一.png") == "painting-" + hashlib.sha256("一.png".encode()).hexdigest()[:8]
    assert painting_id("a.png") != painting_id("a.jpg")
    assert len(painting_id("x" * 300 + ".png")) <= 128
    assert slugify("../../etc/passwd") == "etc-passwd" and slugify("...") == "painting"


def test_annotations_by_stem_or_file_name(tmp_path):
    for name in ("a.png", "a.jpg", "b.png", "Starry Night.jpg"):
        image(tmp_path / name)
    (tmp_path / "annotations.json").write_text(
        '{"a": {"title": "A", "year": "1889"}, "b.png": {"artist": " B "}, "Starry Night": {"year": 1889},'
        ' "nothing-here": {"title": "?"}}')
    inputs = scan_input(tmp_path)
    by_name = {p.path.name: p.annotations for p in inputs.paintings}
    assert by_name["a.png"].title == by_name["a.jpg"].title == "A" and by_name["a.png"].year == 1889
    assert by_name["b.png"].artist == "B" and by_name["Starry Night.jpg"].year == 1889
    assert inputs.unmatched == ["nothing-here"]


def test_annotations_csv_with_a_spreadsheet_bom(tmp_path):
    (tmp_path / "annotations.csv").write_bytes("\ufefffile,title,artist,year,style,genre\na.jpg,A,B,1900,,\n"
                                               .encode("utf-8"))
    ann = load_annotations(tmp_path)["a.jpg"]
    assert (ann.title, ann.artist, ann.year, ann.style) == ("A", "B", 1900, None)


MALFORMED = {
    "invalid-json": ("annotations.json", b'{"a": {"title": "A",}}', "not valid JSON"),
    "not-utf8": ("annotations.json", '{"a": {"title": "Caf\xe9"}}'.encode("latin-1"), "not UTF-8 text (byte 0xe9"),
    "top-level": ("annotations.json", b'"a string"', "must be an object keyed by file stem or a list"),
    "entry-not-object": ("annotations.json", b'{"a": "A title"}', "entry 'a' is str, not an object of fields"),
    "year-word": ("annotations.json", b'{"a": {"year": "circa 1500"}}', "entry 'a': year 'circa 1500' is not a number"),
    "year-float": ("annotations.json", b'{"a": {"year": 1500.5}}', "entry 'a': year is 1500.5, not a whole number"),
    "title-number": ("annotations.json", b'{"a": {"title": 1984}}', "entry 'a': title is 1984, not text"),
    "unknown-field": ("annotations.json", b'{"a": {"titel": "A"}}', "entry 'a': unknown field 'titel'"),
    "row-without-file": ("annotations.json", b'[{"title": "no file"}]', "entry 0 has no 'file'"),
    "twice": ("annotations.json", b'[{"file": "a.png"}, {"file": "a.png"}]', "'a.png' is annotated twice"),
    "csv-latin1": ("annotations.csv", "file,title\na.png,Café\n".encode("latin-1"), "not UTF-8 text"),
    "csv-no-file-column": ("annotations.csv", b"name,title\na.png,A\n", "no 'file' column"),
    "csv-row-without-file": ("annotations.csv", b"file,title\n,A\n", "line 2 has no file"),
    "csv-unknown-column": ("annotations.csv", b"file,titel\na.png,A\n", "unknown field 'titel'"),
    "csv-extra-cells": ("annotations.csv", b"file,title\na.png,A,B\n", "line 2 has more cells than the header"),
    "csv-bad-year": ("annotations.csv", b"file,year\na.png,1889?\n", "year '1889?' is not a number"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_annotations_name_the_file_and_the_problem(tmp_path, case):
    name, data, message = MALFORMED[case]
    image(tmp_path / "a.png")
    (tmp_path / name).write_bytes(data)
    with pytest.raises(InputError) as raised:
        scan_input(tmp_path)
    assert str(raised.value).startswith(f"{tmp_path / name}: ") and message in str(raised.value)


@pytest.mark.parametrize("command", ["describe", "precompute"])
@pytest.mark.parametrize("case", ["invalid-json", "year-word", "csv-row-without-file"])
def test_cli_stops_with_one_line_and_no_traceback(tmp_path, command, case):
    name, data, message = MALFORMED[case]
    folder = tmp_path / "in"
    folder.mkdir()
    image(folder / "a.png")
    (folder / name).write_bytes(data)
    out = tmp_path / "ds"
    done = subprocess.run([sys.executable, "-m", "tamscope.cli", command, str(folder), str(out), "--device", "cpu"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"tamscope {command}: {folder / name}: ") and message in lines[0]
    assert "Traceback" not in done.stderr + done.stdout
    assert not out.exists()  # nothing started


def test_both_annotation_files_is_an_error(tmp_path):
    (tmp_path / "annotations.json").write_text("{}")
    (tmp_path / "annotations.csv").write_text("file\n")
    with pytest.raises(InputError, match="both annotations.json and annotations.csv"):
        scan_input(tmp_path)


def test_fingerprint_is_the_sha256_of_the_bytes(tmp_path):
    path = image(tmp_path / "a.png")
    assert fingerprint(path) == hashlib.sha256(path.read_bytes()).hexdigest()
