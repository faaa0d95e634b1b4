"""`tamscope index DATASET`: the dataset's SQLite index, a cache of its JSON records for search at scale.

    DATASET/index.sqlite      paintings, spans (text, category, metrics, SAM figures, placement),
                              full-text tables (FTS5 where the sqlite3 library has it), facets

The index is never the source of truth: delete it and it is rebuilt from the manifest and the
records. It carries the dataset's *content version*: a hash over the identity (inode, size,
modification time) of manifest.json, stats.json and every record.json. Every writer replaces a
file by an atomic rename (contract.store, contract.commit), which gives it a new inode, so any
change of a record, the manifest or the statistics changes the version, and an index whose
version differs from the folder's is stale. Computing the version stats the files, it reads
none of them: at 100,000 paintings that is well under a second, reading them is minutes.

Written like every other dataset file: built in a temporary file beside the target
(`.index.sqlite.<random>.tmp`, what contract.commit's clean-up removes after a kill) and renamed
over it. Readers open it read-only and immutable (no locks, no journal): a reader that opened the
old file keeps reading the old one while a rebuild renames the new one into place.

Records are validated (contract.schema) while the index is built; a record that does not parse
is listed in the `bad` table with its error, so a server can refuse or skip it without reading
the records again. File-level checks (contract.validate) stay with `tamscope validate` and with
the server, which checks a painting's files the first time it serves it.

Every query takes its values as SQL parameters; the column names of a sort come from fixed
tables here, never from the caller. Text searches are turned into FTS5 expressions of quoted
words (`search_expression`), so no input can reach FTS5's query syntax.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sqlite3
import tempfile
import time
from array import array
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from contract.inputs import input_of
from contract.schema import Category, DatasetManifest, PaintingRecord, is_valid_id
from contract.store import MANIFEST, PAINTINGS, RECORD, STATS, summarise

INDEX = "index.sqlite"
FORMAT = 4  # bump when the tables change: an index of another format is rebuilt (4: input_sha256)
MAX_TERMS = 16  # words of a search used; the rest is ignored (a 10 KB query is not 2,000 FTS terms)
WORD = re.compile(r"\w+", re.UNICODE)

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE paintings (
    rowid INTEGER PRIMARY KEY,          -- position in the manifest, from 1
    id TEXT NOT NULL UNIQUE,
    title TEXT, artist TEXT, artist_key TEXT, year TEXT, year_num INTEGER, style TEXT, style_key TEXT,
    genre TEXT, record TEXT NOT NULL,       -- identity of record.json when indexed (inode:size:mtime)
    status TEXT NOT NULL, n_tokens INTEGER NOT NULL, n_spans INTEGER NOT NULL,
    n_sam INTEGER NOT NULL, caption TEXT,
    title_verdict TEXT, artist_verdict TEXT,   -- 'correct' | 'wrong' | NULL (not graded)
    mean_entropy REAL, mean_gini REAL, mean_top10 REAL, mean_iou REAL,
    canvas_w INTEGER, canvas_h INTEGER,
    cats INTEGER NOT NULL DEFAULT 0,      -- the span categories present, one bit each (CATEGORY_BITS)
    input_sha256 TEXT,                    -- provenance.input.sha256: the input image's bytes (model comparison)
    summary TEXT NOT NULL                 -- the PaintingSummary without its caption, as JSON
);
CREATE TABLE spans (
    rowid INTEGER PRIMARY KEY,
    painting INTEGER NOT NULL REFERENCES paintings(rowid),
    phrase INTEGER NOT NULL REFERENCES phrases(rowid),
    idx INTEGER NOT NULL, text TEXT NOT NULL, category TEXT NOT NULL,
    start INTEGER, "end" INTEGER, match TEXT, n_tokens INTEGER NOT NULL, has_map INTEGER NOT NULL,
    map TEXT,                             -- the map's PNG, relative to the painting folder
    otsu INTEGER, entropy REAL, gini REAL, top10 REAL,
    sam INTEGER,                          -- NULL: SAM 3 not run; 0: nothing found; 1: a mask
    iou REAL, instances INTEGER
);
CREATE TABLE categories (category TEXT PRIMARY KEY, n INTEGER NOT NULL, median_entropy REAL,
                         median_iou REAL, n_iou INTEGER NOT NULL, n_entropy INTEGER NOT NULL);
CREATE TABLE bad (id TEXT PRIMARY KEY, error TEXT NOT NULL);
-- the gallery's filter columns of each painting, narrow: counting a search's 100,000 matches
-- looks each up here (a few pages) instead of in paintings (a row with caption and summary)
CREATE TABLE filters (rowid INTEGER PRIMARY KEY, cats INTEGER NOT NULL, artist_key TEXT, style_key TEXT,
                      year_num INTEGER, n_sam INTEGER NOT NULL, title_verdict TEXT, artist_verdict TEXT);
-- One row per distinct (phrase text, category) with its spans, in span order, as arrays
-- (little-endian, PHRASE_ARRAYS): span rowid int64, painting rowid int32, entropy, Gini, top-10%
-- mass and IoU float64 (NaN: none), SAM int8 (-1: not run, 0: nothing found, 1: a mask). The
-- phrase atlas finds the phrases of a search here (phrases_fts), then counts the matching spans,
-- takes their medians and picks a sorted page's spans from these arrays: exact, and milliseconds
-- for 250,000 matches, where SQL reads each matching span's row (a random read each).
CREATE TABLE phrases (rowid INTEGER PRIMARY KEY, text TEXT NOT NULL, category TEXT NOT NULL, n INTEGER NOT NULL,
                      span BLOB NOT NULL, painting BLOB NOT NULL, entropy BLOB NOT NULL, gini BLOB NOT NULL,
                      top10 BLOB NOT NULL, iou BLOB NOT NULL, sam BLOB NOT NULL);
"""

# Sorts: key -> the column it orders by and its collation. Every sort is "NULLs last, then the
# value, then the row's position" (for spans, rowid order is (painting, span index): they are
# inserted so), and each has an index in both directions whose columns are exactly that ORDER BY,
# so a page of a sorted listing walks an index instead of sorting every row (100,000 paintings,
# 1.6 million spans). The phrase atlas' text and category sorts have none: they sort their matches.
PAINTING_SORTS = {"title": ("title", " COLLATE NOCASE"), "artist": ("artist_key", ""), "year": ("year_num", ""),
                  "n_spans": ("n_spans", ""), "n_tokens": ("n_tokens", ""), "n_sam": ("n_sam", ""),
                  "entropy": ("mean_entropy", ""), "gini": ("mean_gini", ""), "top10": ("mean_top10", ""),
                  "iou": ("mean_iou", "")}
SPAN_SORTS = {"entropy": ("entropy", ""), "gini": ("gini", ""), "top10": ("top10", ""), "iou": ("iou", ""),
              "text": ("text", " COLLATE NOCASE"), "category": ("category", "")}
SPAN_SORTS_INDEXED = ("entropy", "gini", "top10", "iou")
# the phrases table's arrays: column -> (array typecode here, numpy dtype of the stored bytes)
PHRASE_ARRAYS = {"span": ("q", "<i8"), "painting": ("l", "<i4"), "entropy": ("d", "<f8"), "gini": ("d", "<f8"),
                 "top10": ("d", "<f8"), "iou": ("d", "<f8"), "sam": ("b", "i1")}
CATEGORY_BITS = {c.value: 1 << k for k, c in enumerate(Category)}


def order_by(alias: str, column: str, collate: str, descending: bool) -> str:
    """The ORDER BY of a sort (written exactly as its index, `sort_indexes`, so SQLite walks it)."""
    return f"({alias}.{column}) IS NULL, {alias}.{column}{collate} {'DESC' if descending else 'ASC'}, {alias}.rowid"


def sort_indexes() -> str:
    out = []
    for table, sorts, keys in (("paintings", PAINTING_SORTS, PAINTING_SORTS), ("spans", SPAN_SORTS, SPAN_SORTS_INDEXED)):
        for key in keys:
            column, collate = sorts[key]
            for suffix, direction in (("a", "ASC"), ("d", "DESC")):
                out.append(f"CREATE INDEX {table}_by_{key}_{suffix} ON {table}(({column}) IS NULL, "
                           f"{column}{collate} {direction});")
    return "\n".join(out)


INDEXES = """
CREATE INDEX spans_painting ON spans(painting, category);
CREATE INDEX spans_phrase ON spans(phrase);
CREATE INDEX spans_category_entropy ON spans(category, entropy);
CREATE INDEX paintings_artist ON paintings(artist_key);
CREATE INDEX paintings_style ON paintings(style_key);
CREATE INDEX paintings_year ON paintings(year_num);
CREATE INDEX paintings_input ON paintings(input_sha256);
""" + sort_indexes()
# paintings_fts: a painting's words, phrases included (a phrase not located in the caption is
# found too), one lookup per search; contentless: only rowids are read from it
FTS = """
CREATE VIRTUAL TABLE paintings_fts USING fts5(title, artist, caption, phrases, content='',
    tokenize='unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE phrases_fts USING fts5(text, content='phrases', content_rowid='rowid',
    tokenize='unicode61 remove_diacritics 2');
INSERT INTO paintings_fts(rowid, title, artist, caption, phrases)
    SELECT p.rowid, p.title, p.artist, p.caption,
           (SELECT group_concat(s.text, ' | ') FROM spans s WHERE s.painting = p.rowid) FROM paintings p;
INSERT INTO phrases_fts(phrases_fts) VALUES ('rebuild');
"""


class IndexUnavailable(RuntimeError):
    """The index cannot be built or opened; the message names why (e.g. no manifest)."""


def fts5_available() -> bool:
    with closing(sqlite3.connect(":memory:")) as conn:
        try:
            conn.execute("CREATE VIRTUAL TABLE t USING fts5(a)")
            return True
        except sqlite3.OperationalError:
            return False


# ---- the content version --------------------------------------------------------------------

def _identity(path: Path) -> str:
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return "-"
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def content_version(root: Path) -> str:
    """The dataset's content version: a hash of the identity of its JSON files (see the module doc)."""
    root = Path(root)
    digest = hashlib.sha256(f"{_identity(root / MANIFEST)}|{_identity(root / STATS)}".encode())
    base = root / PAINTINGS
    names = []
    try:
        with os.scandir(base) as entries:
            names = sorted(e.name for e in entries if is_valid_id(e.name))
    except FileNotFoundError:
        pass
    for name in names:
        digest.update(f"\n{name} {_identity(base / name / RECORD)}".encode())
    return digest.hexdigest()[:20]


# ---- rows from records ----------------------------------------------------------------------

def year_number(year: int | str | None) -> int | None:
    """A sortable year: the integer, or the first 3-4 digit number in a text like "c. 1505-1510"."""
    if isinstance(year, int):
        return year
    if isinstance(year, str):
        found = re.search(r"\d{3,4}", year)
        return int(found.group()) if found else None
    return None


def _verdict(value: bool | None) -> str | None:
    return None if value is None else ("correct" if value else "wrong")


def _mean(values: list[float | None]) -> float | None:
    xs = [v for v in values if v is not None]
    return sum(xs) / len(xs) if xs else None


def record_identity(root: Path, pid: str) -> str:
    """What the index stored for a record when it read it: a server compares it before serving."""
    return _identity(Path(root) / PAINTINGS / pid / RECORD)


SHA256 = re.compile(r"[0-9a-f]{64}")


def input_sha256(record: PaintingRecord) -> str | None:
    """The fingerprint of the image the record was made from (provenance.input.sha256, written by
    describe), when it is one: what matches the same painting across datasets of different models."""
    sha = (input_of(record) or {}).get("sha256")
    return sha if isinstance(sha, str) and SHA256.fullmatch(sha) else None


def painting_row(record: PaintingRecord, root: Path) -> dict[str, Any]:
    summary = summarise(record, root).model_dump(mode="json", exclude_none=True, exclude={"caption"})
    ann, meta = record.annotations, record.metadata
    metrics = [s.metrics for s in record.spans if s.metrics is not None]
    return {
        "id": record.id, "title": ann.title, "artist": ann.artist,
        "artist_key": ann.artist.strip().lower() if ann.artist else None,
        "year": None if ann.year is None else str(ann.year), "year_num": year_number(ann.year),
        "style": ann.style, "style_key": ann.style.strip().lower() if ann.style else None, "genre": ann.genre,
        "status": summary["status"], "n_tokens": summary["n_tokens"], "n_spans": summary["n_spans"],
        "n_sam": summary["n_sam"], "caption": record.caption,
        "title_verdict": _verdict(meta.title_correct) if meta else None,
        "artist_verdict": _verdict(meta.artist_correct) if meta else None,
        "mean_entropy": _mean([m.entropy for m in metrics]), "mean_gini": _mean([m.gini for m in metrics]),
        "mean_top10": _mean([m.top10_mass for m in metrics]),
        "mean_iou": _mean([s.sam.iou for s in record.spans if s.sam is not None]),
        "canvas_w": record.canvas.width if record.canvas else None,
        "canvas_h": record.canvas.height if record.canvas else None,
        "cats": sum(CATEGORY_BITS[c] for c in {s.category.value for s in record.spans}),
        "input_sha256": input_sha256(record),
        "summary": orjson.dumps(summary).decode(),
    }


def span_rows(record: PaintingRecord) -> Iterator[dict[str, Any]]:
    """A record's spans in index order (their rowids in the index follow it: see PAINTING_SORTS)."""
    for s in sorted(record.spans, key=lambda s: s.index):
        m, sam = s.metrics, s.sam
        yield {
            "idx": s.index, "text": s.text, "category": s.category.value, "start": s.start, "end": s.end,
            "match": s.match, "n_tokens": len(s.tokens), "has_map": int(s.map is not None),
            "map": s.map.png if s.map else None, "otsu": s.otsu_threshold,
            "entropy": m.entropy if m else None, "gini": m.gini if m else None, "top10": m.top10_mass if m else None,
            "sam": None if sam is None else int(sam.mask is not None), "iou": sam.iou if sam else None,
            "instances": sam.instances if sam else None,
        }


PAINTING_COLUMNS = (
    "id", "title", "artist", "artist_key", "year", "year_num", "style", "style_key", "genre", "record", "status", "n_tokens",
    "n_spans", "n_sam", "caption", "title_verdict", "artist_verdict", "mean_entropy", "mean_gini", "mean_top10",
    "mean_iou", "canvas_w", "canvas_h", "cats", "input_sha256", "summary")
SPAN_COLUMNS = ("idx", "text", "category", "start", "end", "match", "n_tokens", "has_map", "map", "otsu", "entropy",
                "gini", "top10", "sam", "iou", "instances")


def _median(values: list[float]) -> float | None:
    xs = sorted(values)
    if not xs:
        return None
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


# ---- building -------------------------------------------------------------------------------

def manifest_header(root: Path) -> tuple[dict, list[str]]:
    """The manifest without its painting list (validated as the contract says), and the listed ids in order."""
    try:
        raw = orjson.loads((root / MANIFEST).read_bytes())
    except FileNotFoundError:
        raise IndexUnavailable(f"{root} is not a dataset folder (no {MANIFEST})") from None
    except orjson.JSONDecodeError as exc:
        raise IndexUnavailable(f"{root / MANIFEST} is not JSON: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("paintings", []), list):
        raise IndexUnavailable(f"{root / MANIFEST} is not a dataset manifest")
    ids = [p.get("id") if isinstance(p, dict) else None for p in raw.get("paintings", [])]
    header = {k: v for k, v in raw.items() if k != "paintings"}
    try:  # the header as the contract says, with an empty list: 100,000 summaries are not validated here
        DatasetManifest.model_validate({**header, "paintings": []})
    except ValidationError as exc:
        raise IndexUnavailable(f"{root / MANIFEST} is invalid: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
    if not all(is_valid_id(i) for i in ids) or len(set(ids)) != len(ids):
        raise IndexUnavailable(f"{root / MANIFEST}: painting ids must be valid and unique")
    return header, ids


def build_index(root: Path, target: Path | None = None, progress=None) -> Path:
    """Build the index of ROOT into TARGET (default ROOT/index.sqlite) atomically; return its path."""
    root = Path(root)
    target = Path(target) if target else root / INDEX
    version = content_version(root)  # before reading: a write during the build leaves the index stale
    header, ids = manifest_header(root)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with closing(sqlite3.connect(tmp)) as conn:
            conn.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA page_size=8192;")
            conn.executescript(SCHEMA)
            all_spans = _fill(conn, root, ids, progress)
            conn.execute("INSERT INTO filters SELECT rowid, cats, artist_key, style_key, year_num, n_sam, title_verdict, "
                         "artist_verdict FROM paintings")
            conn.executescript(INDEXES)
            fts = fts5_available()
            if fts:
                conn.executescript(FTS)
            stats_raw = (root / STATS).read_bytes() if (root / STATS).is_file() else None
            meta = {"format": str(FORMAT), "version": version, "fts5": "1" if fts else "0",
                    "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "manifest": orjson.dumps(header).decode(), "has_stats": "1" if stats_raw else "0",
                    "all_spans": orjson.dumps(all_spans).decode(), "facets": orjson.dumps(facets(conn)).decode()}
            conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
            conn.commit()
            conn.execute("ANALYZE")
            conn.commit()
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


VERDICTS = ("correct", "wrong", "ungraded")


def facets(conn: sqlite3.Connection) -> dict:
    """What the gallery's filters offer, over the whole dataset, with counts (kept in the index's
    meta table: at 100,000 paintings these group-bys take seconds, a gallery's first paint waits for them)."""

    def named(column: str, key: str, top: int) -> list[list]:
        # the most common spelling of each (case-insensitive) name, most frequent first
        rows = conn.execute(f"SELECT {column}, count(*) AS n FROM paintings WHERE {key} IS NOT NULL "
                            f"GROUP BY {key} ORDER BY n DESC, {key} LIMIT ?", (top,)).fetchall()
        return [[r[0].strip(), r[1]] for r in rows]

    years = conn.execute("SELECT min(year_num), max(year_num) FROM paintings").fetchone()
    verdict = {}
    for column in ("title_verdict", "artist_verdict"):
        counts = dict.fromkeys(VERDICTS, 0)
        for value, n in conn.execute(f"SELECT {column}, count(*) FROM paintings GROUP BY {column}"):
            counts[value or "ungraded"] = n
        verdict[column] = counts
    cats = {c: conn.execute("SELECT count(*) FROM paintings WHERE cats & ?", (bit,)).fetchone()[0]
            for c, bit in sorted(CATEGORY_BITS.items())}
    return {
        "n_paintings": conn.execute("SELECT count(*) FROM paintings").fetchone()[0],
        "categories": {c: n for c, n in cats.items() if n},
        "styles": named("style", "style_key", 500), "artists": named("artist", "artist_key", 2000),
        "years": {"min": years[0], "max": years[1]},
        "sam": {"found": conn.execute("SELECT count(*) FROM paintings WHERE n_sam > 0").fetchone()[0],
                "none": conn.execute("SELECT count(*) FROM paintings WHERE n_sam = 0").fetchone()[0]},
        **verdict,
    }


NO_FOLDER = "listed in manifest.json but has no folder under paintings/"
LINKED = "is a symbolic link (a dataset holds none)"


PARALLEL_FROM = 2000  # paintings from which records are parsed in worker processes (one per core)
CHUNK = 250  # paintings per task


def _read_painting(root: Path, pid: str) -> tuple[str, Any, Any]:
    """("ok", painting row values, span rows) or ("bad", error, None) for one listed painting."""
    folder = root / PAINTINGS / pid
    if folder.is_symlink() or (folder / RECORD).is_symlink():
        return "bad", f"{PAINTINGS}/{pid} or its {RECORD} {LINKED}", None
    if not folder.is_dir():
        return "bad", NO_FOLDER, None
    identity = _identity(folder / RECORD)  # before reading, like the version
    try:
        record = PaintingRecord.model_validate_json((folder / RECORD).read_bytes())
        if record.id != pid:
            raise ValueError(f"record id {record.id!r} differs from its folder")
    except (OSError, ValueError) as exc:  # ValidationError is a ValueError
        return "bad", _short(exc), None
    row = painting_row(record, root)
    row["record"] = identity
    return "ok", tuple(row[c] for c in PAINTING_COLUMNS), [tuple(s[c] for c in SPAN_COLUMNS) for s in span_rows(record)]


def _read_chunk(root: Path, pids: list[str]) -> list[tuple[str, Any, Any]]:
    return [_read_painting(root, pid) for pid in pids]


def _readings(root: Path, ids: list[str]):
    """(pid, reading) in the manifest's order; records parsed by worker processes for large datasets
    (pydantic validation is most of an index build: about 2 ms per published-size record)."""
    workers = min(os.cpu_count() or 1, 4)
    if len(ids) < PARALLEL_FROM or workers < 2:
        for pid in ids:
            yield pid, _read_painting(root, pid)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    chunks = [ids[i:i + CHUNK] for i in range(0, len(ids), CHUNK)]
    # spawn: a server calls this at startup, where forking a process with threads is unsafe
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for pids, readings in zip(chunks, pool.map(_read_chunk, [root] * len(chunks), chunks), strict=True):
            yield from zip(pids, readings, strict=True)


def _fill(conn: sqlite3.Connection, root: Path, ids: list[str], progress) -> dict:
    """Insert every painting and span; return the summary numbers of all spans (the atlas' unfiltered view)."""
    pcols = ", ".join(f'"{c}"' for c in PAINTING_COLUMNS)
    scols = ", ".join(f'"{c}"' for c in SPAN_COLUMNS)
    insert_p = f"INSERT INTO paintings (rowid, {pcols}) VALUES (?, {', '.join('?' * len(PAINTING_COLUMNS))})"
    insert_s = (f"INSERT INTO spans (rowid, painting, phrase, {scols}) "
                f"VALUES (?, ?, ?, {', '.join('?' * len(SPAN_COLUMNS))})")
    at = {c: k for k, c in enumerate(SPAN_COLUMNS)}
    by_category: dict[str, tuple[list[float], list[float], list[int]]] = {}
    phrases: dict[tuple[str, str], tuple[int, dict[str, array]]] = {}  # (text, category) -> rowid, arrays
    nan = float("nan")
    span_rowid = 0
    for rowid, (pid, (status, row, spans)) in enumerate(_readings(root, ids), start=1):
        if status == "bad":
            conn.execute("INSERT INTO bad VALUES (?, ?)", (pid, row))
            continue
        conn.execute(insert_p, (rowid, *row))
        span_values = []
        for s in spans:
            key = (s[at["text"]], s[at["category"]])
            found = phrases.get(key)
            if found is None:
                found = phrases[key] = (len(phrases) + 1, {c: array(t) for c, (t, _) in PHRASE_ARRAYS.items()})
            span_rowid += 1
            span_values.append((span_rowid, rowid, found[0], *s))
            arrays = found[1]
            arrays["span"].append(span_rowid)
            arrays["painting"].append(rowid)
            for column in ("entropy", "gini", "top10", "iou"):
                arrays[column].append(nan if s[at[column]] is None else s[at[column]])
            arrays["sam"].append(-1 if s[at["sam"]] is None else s[at["sam"]])
        conn.executemany(insert_s, span_values)
        for s in spans:
            ent, ious, count = by_category.setdefault(s[at["category"]], ([], [], [0]))
            count[0] += 1
            if s[at["entropy"]] is not None:
                ent.append(s[at["entropy"]])
            if s[at["sam"]] and s[at["iou"]] is not None:
                ious.append(s[at["iou"]])
        if progress is not None:
            progress(rowid, len(ids))
    conn.executemany(f"INSERT INTO phrases VALUES (?, ?, ?, ?, {', '.join('?' * len(PHRASE_ARRAYS))})",
                     ((k, text, cat, len(arrays["span"]), *(_blob(arrays[c], PHRASE_ARRAYS[c][1]) for c in PHRASE_ARRAYS))
                      for (text, cat), (k, arrays) in phrases.items()))
    conn.executemany("INSERT INTO categories VALUES (?, ?, ?, ?, ?, ?)",
                     [(c, n[0], _median(e), _median(i), len(i), len(e)) for c, (e, i, n) in sorted(by_category.items())])
    every = [x for e, _, _ in by_category.values() for x in e], [x for _, i, _ in by_category.values() for x in i]
    return {"n": sum(n[0] for _, _, n in by_category.values()), "median_entropy": _median(every[0]),
            "n_entropy": len(every[0]), "median_iou": _median(every[1]), "n_iou": len(every[1])}


def _blob(values: array, dtype: str) -> bytes:
    """An array's bytes as the stored dtype (little-endian, the width PHRASE_ARRAYS names)."""
    import numpy as np

    return np.asarray(values, dtype=dtype).tobytes()


def _short(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        e = exc.errors()[0]
        return f"{'.'.join(map(str, e['loc']))}: {e['msg']}" + (f" (and {exc.error_count() - 1} more)"
                                                                 if exc.error_count() > 1 else "")
    if isinstance(exc, OSError):
        return f"record.json cannot be read: {exc.strerror or exc}"
    return str(exc)


# ---- opening --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Opened:
    path: Path
    version: str
    rebuilt: bool  # built by this call (missing, stale, corrupt or of another format)
    reason: str  # why it was rebuilt ("" when not)


def connect(path: Path) -> sqlite3.Connection:
    """A read-only connection to an index file (immutable: no locks, the file is only ever replaced)."""
    uri = f"file:{_uri_path(path)}?mode=ro&immutable=1"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    return conn


def _uri_path(path: Path) -> str:
    from urllib.parse import quote

    return quote(str(Path(path).resolve()), safe="/")


def read_meta(path: Path, thorough: bool = False) -> dict[str, str]:
    """The meta table of an index file; raises sqlite3.DatabaseError when it is not one.

    Checked: the header, the file's size against its page count (a truncated or appended file)
    and the meta table; THOROUGH adds SQLite's quick_check, which reads every page (seconds for
    the 650 MB of 100,000 paintings: `validate` runs it, a server's start does not)."""
    with closing(connect(path)) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        if pages * size != os.stat(path).st_size:
            raise sqlite3.DatabaseError(f"{pages} pages of {size} bytes, but the file holds {os.stat(path).st_size}")
        if thorough:
            found = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
            if found != "ok":
                raise sqlite3.DatabaseError(found)
        return {row["key"]: row["value"] for row in conn.execute("SELECT key, value FROM meta")}


def why_stale(root: Path, path: Path | None = None, thorough: bool = False) -> str:
    """"" when the index of ROOT (at PATH) is current, else why not (missing, corrupt, stale)."""
    path = Path(path) if path else Path(root) / INDEX
    if not path.is_file():
        return "missing"
    try:
        meta = read_meta(path, thorough)
    except sqlite3.DatabaseError as exc:
        return f"corrupt ({exc})"
    if meta.get("format") != str(FORMAT):
        return f"of format {meta.get('format')}, this version reads {FORMAT}"
    if meta.get("version") != content_version(root):
        return "stale (the dataset changed since it was built)"
    return ""


def fallback_path(root: Path) -> Path:
    """Where the index of a dataset folder we cannot write to is kept: a per-user cache folder."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tamscope" / "index"
    key = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]
    return base / f"{Path(root).resolve().name}-{key}.sqlite"


def ensure_index(root: Path, progress=None) -> Opened:
    """The current index of ROOT, rebuilt when missing, stale, corrupt or of another format.

    Built in the dataset folder; a folder this process cannot write to (a read-only mount, an
    image) gets its index in the user's cache folder instead (`fallback_path`).
    """
    root = Path(root)
    candidates = [root / INDEX]
    if not os.access(root, os.W_OK):
        candidates.append(fallback_path(root))
    for path in candidates:
        if why_stale(root, path) == "":
            return Opened(path, read_meta(path)["version"], False, "")
    reason = why_stale(root, candidates[0])
    target = candidates[-1]
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        build_index(root, target, progress)
    except OSError as exc:
        raise IndexUnavailable(f"cannot write the index of {root} to {target}: {exc.strerror or exc}") from None
    return Opened(target, read_meta(target)["version"], True, reason)


def checked_by_another(opened: Opened) -> str:
    """What a process that has just checked OPENED hands to another (`serve --workers N`: the parent
    checks each index once, the workers take its word instead of stating 100,000 records again)."""
    return f"{_identity(opened.path)}|{opened.version}|{opened.path}"


def take_checked(root: Path, handed: str) -> Opened | None:
    """The index of `checked_by_another`, if it is still the file that was checked (an index is
    only ever replaced by a rename: same inode, size and time, same file); else None (check again).
    A dataset changed since that check is served as one changed after the start: records are
    compared with the index when first served (backend.catalog)."""
    parts = handed.split("|", 2)
    if len(parts) != 3:
        return None
    identity, version, path = parts
    if Path(path) not in (Path(root) / INDEX, fallback_path(root)):  # another dataset's index: never
        return None
    if identity == "-" or _identity(Path(path)) != identity:
        return None
    return Opened(Path(path), version, False, "")


# ---- queries --------------------------------------------------------------------------------

def search_expression(text: str) -> str | None:
    """A user's search as an FTS5 expression: its words, each quoted, all required, the last as a
    prefix (so "madon" finds "Madonna"). None when the text holds no word. Quotes, operators,
    column filters, NUL: nothing but word characters reaches FTS5."""
    words = WORD.findall(text or "")[:MAX_TERMS]
    if not words:
        return None
    return " ".join(f'"{w}"' for w in words) + "*"


def search_words(text: str) -> list[str]:
    """The words of a search, lower-cased (the fallback without FTS5 matches them as substrings)."""
    return [w.lower() for w in WORD.findall(text or "")[:MAX_TERMS]]


def matches_records(root: Path, path: Path | None = None) -> list[str]:
    """What differs between a current index and the records (for `tamscope validate`): [] when it
    matches, or when it is not current (then nothing trusts it: it is rebuilt before use)."""
    root = Path(root)
    path = Path(path) if path else root / INDEX
    if why_stale(root, path):
        return []  # stale, corrupt or of another format: whoever reads it next rebuilds it first
    damaged = why_stale(root, path, thorough=True)
    if damaged:  # an open checks the header, size and meta table, not every page: this one is used as it is
        return [f"{INDEX} is {damaged}: `tamscope index --force {root}` rebuilds it"]
    problems = []
    header, ids = manifest_header(root)
    with closing(connect(path)) as conn:
        listed = {r["id"]: r["rowid"] for r in conn.execute("SELECT rowid, id FROM paintings")}
        bad = {r["id"] for r in conn.execute("SELECT id FROM bad")}
        if set(listed) | bad != set(ids):
            problems.append(f"{INDEX} lists other paintings than {MANIFEST}")
        for pid in ids:
            if pid not in listed:
                continue
            try:
                record = PaintingRecord.model_validate_json((root / PAINTINGS / pid / RECORD).read_bytes())
            except (OSError, ValueError):
                problems.append(f"{INDEX}: {pid} is indexed but its record does not parse")
                continue
            want = painting_row(record, root)
            want["record"] = _identity(root / PAINTINGS / pid / RECORD)
            got = dict(conn.execute(f"SELECT {', '.join(PAINTING_COLUMNS)} FROM paintings WHERE rowid = ?",
                                    (listed[pid],)).fetchone())
            if got != want:
                keys = sorted(k for k in want if want[k] != got.get(k))
                problems.append(f"{INDEX}: {pid} differs from its record in {', '.join(keys)}")
            spans = [dict(r) for r in conn.execute(
                f'SELECT {", ".join(chr(34) + c + chr(34) for c in SPAN_COLUMNS)} FROM spans WHERE painting = ? '
                "ORDER BY idx", (listed[pid],))]
            if spans != list(span_rows(record)):
                problems.append(f"{INDEX}: the spans of {pid} differ from its record")
    return problems


# ---- the command ----------------------------------------------------------------------------

def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path, help="dataset folder")
    parser.add_argument("--force", action="store_true", help="rebuild even when the index is current")


def run(args: argparse.Namespace) -> int:
    from contract.errors import UserError

    root = Path(args.dataset)
    started = time.perf_counter()
    try:
        if getattr(args, "force", False):
            opened = Opened(build_index(root), content_version(root), True, "forced")
        else:
            opened = ensure_index(root)
    except IndexUnavailable as exc:
        raise UserError(str(exc)) from None
    with closing(connect(opened.path)) as conn:
        n = conn.execute("SELECT count(*) FROM paintings").fetchone()[0]
        n_spans = conn.execute("SELECT count(*) FROM spans").fetchone()[0]
        bad = conn.execute("SELECT id, error FROM bad ORDER BY id").fetchall()
    what = f"built ({opened.reason}) in {time.perf_counter() - started:.1f} s" if opened.rebuilt else "current"
    print(f"{opened.path}: {what}; {n} paintings, {n_spans} spans, version {opened.version}")
    for row in bad[:20]:
        print(f"  left out {row['id']}: {row['error']}")
    if len(bad) > 20:
        print(f"  ... and {len(bad) - 20} more left out")
    return 0
