"""`export-site` at a few thousand paintings (the smoke dataset replicated by hard links, testkit/replicate.py):
the precomputed search files answer what the records say, and a re-export of an unchanged
dataset reuses them and the paintings' pages. Expected values come from the records' JSON."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import orjson
import pytest

from backend import site_search
from backend.site import FULL_CHECK_MAX, export_site
from backend.site_pages import FRONT_PAGE_CARDS
from contract.store import atomic_write_bytes
from testkit.replicate import replicate

N = FULL_CHECK_MAX + 100  # above the whole-validation limit: the export checks by the index


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    return replicate(tmp_path_factory.mktemp("scale") / "big", N)


@pytest.fixture(scope="module")
def site(big, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    export_site(big, out)
    return out


def records(root: Path) -> list[dict]:
    ids = [p["id"] for p in orjson.loads((root / "manifest.json").read_bytes())["paintings"]]
    return [orjson.loads((root / "paintings" / pid / "record.json").read_bytes()) for pid in ids]


def norm_words(text: str | None) -> set[str]:
    return {"".join(c for c in unicodedata.normalize("NFKD", w.lower()) if not unicodedata.combining(c))
            for w in re.findall(r"\w+", text or "")}


def test_gallery_chunks_and_meta(big, site):
    search = site / "data" / "big" / "search"
    meta = json.loads((search / "meta.json").read_text())
    recs = records(big)
    assert meta["n_paintings"] == N and meta["manifest"]["name"] == f"smoke x{N}"
    chunks = sorted(search.glob("gallery/*.json"), key=lambda p: int(p.stem))
    assert len(chunks) == -(-N // site_search.CHUNK)
    summaries = [s for c in chunks for s in json.loads(c.read_text())]
    assert [s["id"] for s in summaries] == [r["id"] for r in recs]
    assert all("caption" not in s for s in summaries)
    assert json.loads((search / "ids.json").read_text()) == [r["id"] for r in recs]
    # the front page lists the first paintings and says how many more there are
    html = (site / "index.html").read_text()
    assert html.count('class="card"') == FRONT_PAGE_CARDS and f"{N - FRONT_PAGE_CARDS} more" in html
    assert (site / f"big~{recs[-1]['id']}.html").is_file()


@pytest.mark.parametrize("word", ["boats", "ä", "angels", "f"])
def test_word_postings_are_the_paintings_that_hold_the_word(big, site, word):
    search = site / "data" / "big" / "search"
    shard = json.loads((search / f"words/{site_search.shard_of(site_search.normalise(word))}.json").read_text())
    positions, at = [], 0
    for d in shard.get(site_search.normalise(word), []):
        at += d
        positions.append(at)
    want = [k for k, r in enumerate(records(big))
            if site_search.normalise(word) in norm_words(r["annotations"]["title"]) | norm_words(r["annotations"]["artist"])
            | norm_words(r.get("caption")) | set().union(*(norm_words(s["text"]) for s in r["spans"]))]
    assert positions == want


def test_phrase_postings_carry_the_span_numbers(big, site):
    search = site / "data" / "big" / "search"
    shard = json.loads((search / f"phrases/{site_search.shard_of('boats')}.json").read_text())
    entries = shard["boats"]
    recs = records(big)
    want = [(k, s["index"]) for k, r in enumerate(recs) for s in r["spans"] if "boats" in norm_words(s["text"])]
    assert [(e[0], e[1]) for e in entries] == want
    for e in entries[:50]:
        span = recs[e[0]]["spans"][e[1]]
        assert e[7] == span["text"] and e[3] == round(span["metrics"]["entropy"] * 10_000)
        assert e[5] == (1 if (span.get("sam") or {}).get("mask") else 0)
    meta = json.loads((search / "meta.json").read_text())
    n_spans = sum(len(r["spans"]) for r in recs)
    assert meta["n_spans"] == n_spans and meta["atlas_all"] is (n_spans <= site_search.ATLAS_ALL)


def test_an_unchanged_dataset_is_exported_incrementally(big, site):
    """Same content version: the search files and the pages are the previous export's (same inodes)."""
    search = site / "data" / "big" / "search" / "meta.json"
    page = next(site.glob("big~*.html"))
    before = (search.stat().st_ino, page.stat().st_ino)
    export_site(big, site)
    assert (search.stat().st_ino, page.stat().st_ino) == before


def test_a_changed_dataset_is_exported_anew(tmp_path):
    """A writer replaces one record: a new content version, search files and pages computed again."""
    small = replicate(tmp_path / "small", 6)
    site = tmp_path / "site"
    export_site(small, site)
    search = site / "data" / "small" / "search" / "meta.json"
    before = search.stat().st_ino
    path = next((small / "paintings").iterdir()) / "record.json"
    record = orjson.loads(path.read_bytes())
    record["annotations"]["title"] = "Renamed painting"
    atomic_write_bytes(path, orjson.dumps(record))
    export_site(small, site)
    assert search.stat().st_ino != before
    assert "Renamed painting" in (site / f"small~{record['id']}.html").read_text()
    shard = json.loads((site / "data" / "small" / "search" / "words" / f"{site_search.shard_of('renamed')}.json").read_text())
    assert "renamed" in shard


def snapshot(site: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder of a site -> (inode, modification time)."""
    return {p.relative_to(site).as_posix(): (p.lstat().st_ino, p.lstat().st_mtime_ns) for p in site.rglob("*")}


def test_a_second_export_of_an_unchanged_dataset_writes_nothing(big, site):
    export_site(big, site)  # whatever an earlier test left, the site is now this dataset's
    before = snapshot(site)
    report = export_site(big, site)
    assert report.how == "unchanged" and snapshot(site) == before


def test_changing_one_painting_rewrites_only_what_depends_on_it(tmp_path):
    small = replicate(tmp_path / "small", 8)
    site = tmp_path / "site"
    export_site(small, site)
    before = snapshot(site)
    pids = [p["id"] for p in orjson.loads((small / "manifest.json").read_bytes())["paintings"]]
    pid = pids[5]
    path = small / "paintings" / pid / "record.json"
    record = orjson.loads(path.read_bytes())
    record["annotations"]["title"] = "Quintessential renamed painting"
    atomic_write_bytes(path, orjson.dumps(record))
    report = export_site(small, site)
    assert report.how == "updated in place"
    after = snapshot(site)
    changed = {rel for rel in after if before.get(rel) != after[rel]}
    files = {rel for rel in changed if (site / rel).is_file()}
    # the painting's record and page, the front page (it lists the painting), the marker: rewritten
    assert {f"data/small/paintings/{pid}/record.json", f"small~{pid}.html", "index.html", ".tamscope-site"} <= files
    # nothing of another painting, no explorer file, none of this painting's images and maps
    for rel in files:
        assert rel in (f"data/small/paintings/{pid}/record.json", f"small~{pid}.html", "index.html", ".tamscope-site") \
            or rel.startswith("data/small/search/"), rel
    # files come and go only among the search files (a shard for a new word)
    assert all(rel.startswith("data/small/search/") for rel in set(after) ^ set(before))
    # the search files that name the title's words changed, and the site is what a fresh export makes
    fresh = tmp_path / "fresh"
    export_site(small, fresh)
    assert sorted(snapshot(fresh)) == sorted(after)
    for rel in after:
        if (site / rel).is_file() and rel != ".tamscope-site":
            assert (site / rel).read_bytes() == (fresh / rel).read_bytes(), rel
    shard = json.loads((site / "data/small/search/words" / f"{site_search.shard_of('quintessential')}.json").read_text())
    assert "quintessential" in shard
    # a painting no longer listed: its folder and page go, the rest stays
    manifest = orjson.loads((small / "manifest.json").read_bytes())
    manifest["paintings"] = [p for p in manifest["paintings"] if p["id"] != pids[2]]
    atomic_write_bytes(small / "manifest.json", orjson.dumps(manifest))
    import shutil

    shutil.rmtree(small / "paintings" / pids[2])
    export_site(small, site)
    assert not (site / f"small~{pids[2]}.html").exists() and not (site / "data/small/paintings" / pids[2]).exists()
    fresh2 = tmp_path / "fresh2"
    export_site(small, fresh2)
    assert sorted(snapshot(fresh2)) == sorted(snapshot(site))


def test_the_export_holds_one_record_at_a_time(tmp_path, monkeypatch):
    """export-site reads each painting's record when it exports that painting and lets it go
    (100,000 records held at once took 20 GB): a first export and an update in place never have
    more than the record being exported and the one before it alive. A missing file named by a
    record stops the export and leaves the previous export as it was."""
    import weakref

    from backend.site_pages import SiteDataset

    small = replicate(tmp_path / "small", 24)
    read, most = SiteDataset.record, [0]
    alive: list = []

    def watched(self, pid):
        record = read(self, pid)
        alive[:] = [r for r in alive if r() is not None] + [weakref.ref(record)]
        most[0] = max(most[0], len(alive))
        return record

    monkeypatch.setattr(SiteDataset, "record", watched)
    site = tmp_path / "site"
    export_site(small, site)
    assert most[0] <= 2, most
    for path in (small / "paintings").glob("*/record.json"):  # every record changed: every painting updated
        record = orjson.loads(path.read_bytes())
        record["annotations"]["title"] = f"renamed {record['id']}"
        atomic_write_bytes(path, orjson.dumps(record))
    most[0] = 0
    assert export_site(small, site).how == "updated in place"
    assert most[0] <= 2, most
    snap = snapshot(site)
    victim = next((small / "paintings").glob("*/tokens/3.png"))
    victim.unlink()
    with pytest.raises(Exception, match="does not exist|tokens/3.png"):
        export_site(small, tmp_path / "other")
    assert not (tmp_path / "other").exists() and not list(tmp_path.glob(".other.tmp-*"))
    assert snapshot(site) == snap
