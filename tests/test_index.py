"""The dataset index (contract/index.py): a cache of the records, rebuilt when missing, stale or
corrupt, written atomically, readable while it is rebuilt, checked by `validate`.

Expected values are computed here from the records' JSON (orjson, plain Python), not with the
index module's row functions."""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import threading
from contextlib import closing
from pathlib import Path

import orjson
import pytest

from contract import index as ix
from contract.store import atomic_write_bytes
from contract.validate import validate_dataset
from testkit.fixture_dataset import make_dataset

SMOKE = Path(__file__).resolve().parents[1] / "data" / "smoke"


@pytest.fixture()
def fixture_ds(tmp_path) -> Path:
    return make_dataset(tmp_path / "ds", n_paintings=4)


@pytest.fixture()
def smoke_ds(tmp_path) -> Path:
    out = tmp_path / "smoke"
    shutil.copytree(SMOKE, out, ignore=shutil.ignore_patterns(ix.INDEX, "tam_raw.safetensors"))
    return out


def raw_records(root: Path) -> dict[str, dict]:
    ids = [p["id"] for p in orjson.loads((root / "manifest.json").read_bytes())["paintings"]]
    return {pid: orjson.loads((root / "paintings" / pid / "record.json").read_bytes()) for pid in ids}


def rows(root: Path, sql: str, params=()) -> list[tuple]:
    with closing(ix.connect(root / ix.INDEX)) as conn:
        return [tuple(r) for r in conn.execute(sql, params)]


@pytest.mark.parametrize("which", ["fixture_ds", "smoke_ds"])
def test_index_equals_the_records(which, request):
    root = request.getfixturevalue(which)
    opened = ix.ensure_index(root)
    records = raw_records(root)
    assert opened.rebuilt and opened.path == root / ix.INDEX or not opened.rebuilt
    want_paintings = sorted((pid, r.get("annotations", {}).get("title"), r.get("caption"), len(r.get("spans", [])),
                             sum(1 for s in r.get("spans", []) if (s.get("sam") or {}).get("mask")))
                            for pid, r in records.items())
    got = sorted(rows(root, "SELECT id, title, caption, n_spans, n_sam FROM paintings"))
    assert got == want_paintings
    want_spans = sorted((pid, s["index"], s["text"], s["category"], (s.get("metrics") or {}).get("entropy"),
                         (s.get("sam") or {}).get("iou"),
                         None if s.get("sam") is None else int(bool(s["sam"].get("mask"))))
                        for pid, r in records.items() for s in r.get("spans", []))
    got_spans = sorted(rows(root, "SELECT p.id, s.idx, s.text, s.category, s.entropy, s.iou, s.sam "
                                  "FROM spans s JOIN paintings p ON p.rowid = s.painting"))
    assert got_spans == want_spans
    # the per-category medians next to the atlas' matches
    for cat, n, med_entropy, med_iou in rows(root, "SELECT category, n, median_entropy, median_iou FROM categories"):
        spans = [s for r in records.values() for s in r.get("spans", []) if s["category"] == cat]
        assert n == len(spans)
        entropies = [s["metrics"]["entropy"] for s in spans if (s.get("metrics") or {}).get("entropy") is not None]
        assert med_entropy == pytest.approx(statistics.median(entropies))
        ious = [s["sam"]["iou"] for s in spans if (s.get("sam") or {}).get("mask") and s["sam"].get("iou") is not None]
        assert med_iou == (pytest.approx(statistics.median(ious)) if ious else None)
    # full text: every painting whose caption holds the word, and no other
    word = "starry" if which == "fixture_ds" else "sky"
    want = sorted(pid for pid, r in records.items() if word in (r.get("caption") or "").lower().split()
                  or any(word in w.strip(".,\"'") for w in (r.get("caption") or "").lower().split()))
    if ix.fts5_available():
        got_ids = sorted(x for (x,) in rows(root, "SELECT p.id FROM paintings_fts f JOIN paintings p ON p.rowid = f.rowid "
                                                  "WHERE paintings_fts MATCH ?", (ix.search_expression(word),)))
        assert got_ids == want
    assert validate_dataset(root) == []


def test_missing_stale_corrupt_and_other_format_are_rebuilt(fixture_ds):
    first = ix.ensure_index(fixture_ds)
    assert not first.rebuilt  # make_dataset's `tamscope stats` built it
    (fixture_ds / ix.INDEX).unlink()
    again = ix.ensure_index(fixture_ds)
    assert again.rebuilt and again.reason == "missing" and again.version == first.version

    (fixture_ds / ix.INDEX).write_bytes(b"SQLite format 3\x00" + os.urandom(3000))  # corrupt
    assert ix.why_stale(fixture_ds).startswith("corrupt")
    fixed = ix.ensure_index(fixture_ds)
    assert fixed.rebuilt and fixed.reason.startswith("corrupt") and ix.why_stale(fixture_ds) == ""

    (fixture_ds / ix.INDEX).write_bytes(b"")  # truncated to nothing
    assert ix.ensure_index(fixture_ds).rebuilt

    # a record rewritten (atomically, as every writer does): stale, and the new caption is indexed
    path = fixture_ds / "paintings" / "painting-2" / "record.json"
    record = orjson.loads(path.read_bytes())
    record["annotations"]["title"] = "Renamed"
    atomic_write_bytes(path, orjson.dumps(record))
    assert ix.why_stale(fixture_ds).startswith("stale")
    redone = ix.ensure_index(fixture_ds)
    assert redone.rebuilt and redone.version != first.version
    assert rows(fixture_ds, "SELECT title FROM paintings WHERE id = 'painting-2'") == [("Renamed",)]

    with sqlite3.connect(fixture_ds / ix.INDEX) as conn:  # an index of another format
        conn.execute("UPDATE meta SET value = '0' WHERE key = 'format'")
    conn.close()
    assert "format" in ix.why_stale(fixture_ds)
    assert ix.ensure_index(fixture_ds).rebuilt


def test_validate_reports_an_index_that_differs_from_the_records(fixture_ds):
    assert validate_dataset(fixture_ds) == []
    with closing(sqlite3.connect(fixture_ds / ix.INDEX)) as conn:  # the version still matches: only content differs
        conn.execute("UPDATE spans SET entropy = 0.01 WHERE idx = 2")
        conn.commit()
    found = [str(v) for v in validate_dataset(fixture_ds)]
    assert found and all(v.startswith(ix.INDEX) for v in found) and any("spans" in v for v in found)
    with closing(sqlite3.connect(fixture_ds / ix.INDEX)) as conn:  # a painting gone from the index
        conn.execute("DELETE FROM paintings WHERE id = 'painting-3'")
        conn.commit()
    assert any("other paintings" in str(v) for v in validate_dataset(fixture_ds))
    (fixture_ds / ix.INDEX).write_bytes(b"garbage")
    assert validate_dataset(fixture_ds) == []  # corrupt: rebuilt before anything reads it
    (fixture_ds / ix.INDEX).unlink()
    assert validate_dataset(fixture_ds) == []  # absent is fine: a cache


def test_an_interrupted_build_keeps_the_old_index(fixture_ds):
    before = (fixture_ds / ix.INDEX).read_bytes()

    def kill(done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ix.build_index(fixture_ds, progress=kill)
    assert (fixture_ds / ix.INDEX).read_bytes() == before
    assert not list(fixture_ds.glob(".*.tmp"))


def test_a_bad_record_is_listed_not_indexed(fixture_ds):
    (fixture_ds / "paintings" / "painting-1" / "record.json").write_bytes(b'{"id": "painting-1", "spans": 3}')
    ix.ensure_index(fixture_ds)
    assert rows(fixture_ds, "SELECT id FROM bad") == [("painting-1",)]
    assert sorted(x for (x,) in rows(fixture_ds, "SELECT id FROM paintings")) == ["painting-0", "painting-2", "painting-3"]


def test_no_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(ix.IndexUnavailable, match="no manifest.json"):
        ix.ensure_index(tmp_path)


def test_an_unwritable_folder_gets_its_index_in_the_cache(fixture_ds, tmp_path, monkeypatch):
    (fixture_ds / ix.INDEX).unlink()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == fixture_ds else real_access(p, mode))
    opened = ix.ensure_index(fixture_ds)
    assert opened.path.is_relative_to(tmp_path / "cache") and not (fixture_ds / ix.INDEX).exists()
    assert not ix.ensure_index(fixture_ds).rebuilt  # found there the next time


def test_readers_keep_reading_while_the_index_is_rebuilt(fixture_ds):
    """Readers open, query and close in loops while the index is replaced 15 times: every read
    sees a whole index (4 paintings, 28 spans), none fails."""
    stop, errors, reads = threading.Event(), [], [0]

    def reader():
        while not stop.is_set():
            try:
                with closing(ix.connect(fixture_ds / ix.INDEX)) as conn:
                    n = conn.execute("SELECT count(*) FROM paintings").fetchone()[0]
                    s = conn.execute("SELECT count(*) FROM spans").fetchone()[0]
                    if (n, s) != (4, 28):
                        errors.append((n, s))
                reads[0] += 1
            except Exception as exc:  # noqa: BLE001 - any failure is what this test looks for
                errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(15):
            ix.build_index(fixture_ds)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == [] and reads[0] > 15


def test_two_builders_at_once_leave_one_whole_index(fixture_ds):
    (fixture_ds / ix.INDEX).unlink()
    threads = [threading.Thread(target=ix.build_index, args=(fixture_ds,)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ix.why_stale(fixture_ds) == "" and not list(fixture_ds.glob(".*.tmp"))
    assert rows(fixture_ds, "SELECT count(*) FROM paintings") == [(4,)]


@pytest.mark.parametrize("text", ['"', 'a" OR "b', "NEAR(a b)", "title:x", "*", "\x00", "a" * 10_000, "-", "^a",
                                  "(", "AND", "madonna' --", "ü…😀", ""])
def test_any_search_text_is_a_valid_expression(fixture_ds, text):
    expr = ix.search_expression(text)
    if expr is None:
        assert not ix.search_words(text)
        return
    if ix.fts5_available():
        rows(fixture_ds, "SELECT rowid FROM phrases_fts WHERE phrases_fts MATCH ?", (expr,))  # no error


def test_the_command(fixture_ds, capsys):
    assert ix.run(argparse.Namespace(dataset=fixture_ds, force=True)) == 0
    out = capsys.readouterr().out
    assert "built (forced)" in out and "4 paintings, 28 spans" in out
    assert ix.run(argparse.Namespace(dataset=fixture_ds, force=False)) == 0
    assert "current" in capsys.readouterr().out


def test_worker_processes_build_the_same_index(fixture_ds, monkeypatch, tmp_path):
    """Large datasets parse their records in worker processes: the rows are the same as in one process."""
    serial = tmp_path / "serial.sqlite"
    ix.build_index(fixture_ds, serial)
    monkeypatch.setattr(ix, "PARALLEL_FROM", 2)
    monkeypatch.setattr(ix, "CHUNK", 3)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    ix.build_index(fixture_ds)
    query = ("SELECT p.id, p.summary, s.idx, s.text, s.entropy, s.iou FROM paintings p JOIN spans s "
             "ON s.painting = p.rowid ORDER BY p.rowid, s.idx")
    with closing(ix.connect(serial)) as a, closing(ix.connect(fixture_ds / ix.INDEX)) as b:
        assert [tuple(r) for r in a.execute(query)] == [tuple(r) for r in b.execute(query)]
        assert [tuple(r) for r in a.execute("SELECT * FROM categories")] == [
            tuple(r) for r in b.execute("SELECT * FROM categories")]


def test_a_truncated_or_damaged_index_is_rebuilt_or_reported(fixture_ds):
    """Cut short or grown (the header's page count disagrees with the file): rebuilt at open. A
    damaged page inside (an open reads a few pages only): `validate`'s thorough check reports it."""
    ix.ensure_index(fixture_ds)
    path = fixture_ds / ix.INDEX
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    assert ix.why_stale(fixture_ds).startswith("corrupt")
    assert ix.ensure_index(fixture_ds).rebuilt
    path.write_bytes(path.read_bytes() + b"\0" * 100)
    assert ix.why_stale(fixture_ds).startswith("corrupt")
    assert ix.ensure_index(fixture_ds).rebuilt and ix.why_stale(fixture_ds) == ""
    damaged = bytearray(path.read_bytes())
    page = int.from_bytes(damaged[16:18], "big")
    (root,), = rows(fixture_ds, "SELECT rootpage FROM sqlite_master WHERE name = 'spans_painting'")
    at = (root - 1) * page  # that index's first page: not read to open the index; no b-tree page starts with 0xff
    damaged[at:at + page] = b"\xff" * page
    path.write_bytes(bytes(damaged))
    assert ix.why_stale(fixture_ds) == "" and ix.why_stale(fixture_ds, thorough=True).startswith("corrupt")
    problems = validate_dataset(fixture_ds)
    assert len(problems) == 1 and "index.sqlite" in str(problems[0]) and "tamscope index --force" in str(problems[0])
    assert ix.run(argparse.Namespace(dataset=fixture_ds, force=True)) == 0
    assert validate_dataset(fixture_ds) == []


def test_an_index_checked_by_another_process_is_taken_only_while_it_is_that_file(fixture_ds, monkeypatch):
    """`serve --workers N`: the parent checks each index once and hands it to the workers, which
    open it without stating every record again, unless the file was replaced since."""
    opened = ix.ensure_index(fixture_ds)
    handed = ix.checked_by_another(opened)

    def no_stat(root):
        raise AssertionError("the content version was computed again")

    monkeypatch.setattr(ix, "content_version", no_stat)
    assert ix.take_checked(fixture_ds, handed) == ix.Opened(opened.path, opened.version, False, "")
    other = fixture_ds.parent / "other" / ix.INDEX  # a file that is not this dataset's index, or nonsense
    other.parent.mkdir()
    shutil.copyfile(opened.path, other)
    assert ix.take_checked(fixture_ds, handed.replace(str(opened.path), str(other))) is None
    assert ix.take_checked(fixture_ds, "garbage") is None
    monkeypatch.undo()

    path = fixture_ds / "paintings" / "painting-1" / "record.json"  # the dataset changes: rebuilt, renamed over
    record = orjson.loads(path.read_bytes())
    record["annotations"]["title"] = "Renamed"
    atomic_write_bytes(path, orjson.dumps(record))
    rebuilt = ix.ensure_index(fixture_ds)
    assert rebuilt.rebuilt and rebuilt.version != opened.version
    assert ix.take_checked(fixture_ds, handed) is None  # another file now: the worker checks for itself
    (fixture_ds / ix.INDEX).unlink()
    assert ix.take_checked(fixture_ds, ix.checked_by_another(rebuilt)) is None
