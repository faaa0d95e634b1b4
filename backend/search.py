"""Gallery pages, facets and the phrase atlas, answered from a dataset's index (contract/index.py).

Every value from a request is an SQL parameter; sort columns come from the fixed tables below,
searches become quoted-word FTS5 expressions (contract.index.search_expression), or, where
SQLite has no FTS5, `instr` over lower-cased text per word. Each thread has its own read-only
connection to the index file (sqlite3 connections are not shared between threads).

Answers are built as JSON bytes: a gallery item is the painting's summary the index holds
ready as JSON text, so a page is a join of 50 strings.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from contract import index as ix

# sort key -> SQL expression (never from the request: the key is looked up here)
PAINTING_SORTS = {
    "order": "p.rowid", "title": "p.title COLLATE NOCASE", "artist": "p.artist_key", "year": "p.year_num",
    "n_spans": "p.n_spans", "n_tokens": "p.n_tokens", "n_sam": "p.n_sam", "entropy": "p.mean_entropy",
    "gini": "p.mean_gini", "top10": "p.mean_top10", "iou": "p.mean_iou",
}
SPAN_SORTS = {
    "painting": "s.painting", "entropy": "s.entropy", "gini": "s.gini", "top10": "s.top10", "iou": "s.iou",
    "text": "s.text COLLATE NOCASE", "category": "s.category",
}
VERDICTS = ("correct", "wrong", "ungraded")
SPAN_FIELDS = ("idx", "text", "category", "start", "end", "match", "entropy", "gini", "top10", "sam", "iou",
               "otsu", "has_map", "map")


@dataclass(frozen=True)
class PaintingFilter:
    """Gallery filters, normalised (equal filters are one cache entry)."""

    q: str | None = None
    category: str | None = None
    artist: str | None = None
    style: str | None = None
    year_min: int | None = None
    year_max: int | None = None
    sam: bool | None = None  # a painting where SAM 3 found at least one phrase / none
    title_verdict: str | None = None
    artist_verdict: str | None = None


@dataclass(frozen=True)
class SpanFilter:
    q: str | None = None
    category: str | None = None
    entropy_min: float | None = None
    entropy_max: float | None = None
    iou_min: float | None = None
    iou_max: float | None = None
    sam: bool | None = None  # SAM 3 found the phrase / ran and found nothing


def _order(expr: str, descending: bool) -> str:
    """NULLs last either way, then the manifest's order (a stable page boundary)."""
    return f"({expr}) IS NULL, {expr} {'DESC' if descending else 'ASC'}"


class IndexQueries:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.local = threading.local()
        with self.connection_scope() as conn:
            meta = {r["key"]: r["value"] for r in conn.execute("SELECT key, value FROM meta")}
        self.meta = meta
        self.fts = meta.get("fts5") == "1"
        self.summaries: dict[SpanFilter, tuple] = {}  # atlas filter -> its medians (the index never changes)
        self.lock = threading.Lock()

    def connection_scope(self):
        from contextlib import closing

        return closing(ix.connect(self.path))

    @property
    def conn(self):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = ix.connect(self.path)
        return conn

    # -- lookups ------------------------------------------------------------------------------
    def count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM paintings").fetchone()[0]

    def has(self, pid: str) -> bool:
        return self.conn.execute("SELECT 1 FROM paintings WHERE id = ?", (pid,)).fetchone() is not None

    def record_identity(self, pid: str) -> str | None:
        row = self.conn.execute("SELECT record FROM paintings WHERE id = ?", (pid,)).fetchone()
        return row[0] if row else None

    def input_sha256(self, pid: str) -> tuple[bool, str | None]:
        """(listed, the fingerprint of the image it was made from or None) of a painting."""
        row = self.conn.execute("SELECT input_sha256 FROM paintings WHERE id = ?", (pid,)).fetchone()
        return (row is not None, row[0] if row else None)

    def same_painting(self, pid: str, sha: str | None, limit: int) -> list[tuple[str, str | None, str]]:
        """(id, fingerprint, summary JSON) of the paintings made from the image `sha` (any id),
        and of the painting named `pid` (any fingerprint), in the manifest's order: the candidates
        for one painting of another dataset (backend.compare decides which are the same)."""
        rows = self.conn.execute(
            "SELECT id, input_sha256, summary FROM paintings WHERE id = ? OR (? IS NOT NULL AND input_sha256 = ?) "
            "ORDER BY rowid LIMIT ?", (pid, sha, sha, limit)).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def bad(self) -> dict[str, str]:
        return {r["id"]: r["error"] for r in self.conn.execute("SELECT id, error FROM bad ORDER BY id")}

    def neighbours(self, pid: str) -> dict | None:
        row = self.conn.execute("SELECT rowid FROM paintings WHERE id = ?", (pid,)).fetchone()
        if row is None:
            return None
        prev = self.conn.execute("SELECT summary FROM paintings WHERE rowid < ? ORDER BY rowid DESC LIMIT 1",
                                 (row[0],)).fetchone()
        nxt = self.conn.execute("SELECT summary FROM paintings WHERE rowid > ? ORDER BY rowid LIMIT 1",
                                (row[0],)).fetchone()
        position = self.conn.execute("SELECT count(*) FROM paintings WHERE rowid <= ?", (row[0],)).fetchone()[0]
        return {"previous": orjson.loads(prev[0]) if prev else None, "next": orjson.loads(nxt[0]) if nxt else None,
                "position": position, "total": self.count()}

    # -- text ---------------------------------------------------------------------------------
    def _text(self, q: str | None, fts_table: str, columns: str, alias: str) -> tuple[list[str], list[Any]]:
        if not q:
            return [], []
        if self.fts:
            expr = ix.search_expression(q)
            if expr is None:
                return [], []
            return [f"{alias}.rowid IN (SELECT rowid FROM {fts_table} WHERE {fts_table} MATCH ?)"], [expr]
        words = ix.search_words(q)
        return [f"instr(lower({columns}), ?) > 0" for _ in words], words

    # -- the gallery --------------------------------------------------------------------------
    def _painting_where(self, f: PaintingFilter) -> tuple[str, list[Any]]:
        where, params = [], []
        if f.q:
            if self.fts and (expr := ix.search_expression(f.q)) is not None:
                # title, artist or caption words, or a phrase's words (a phrase not located in the caption)
                where.append("(p.rowid IN (SELECT rowid FROM paintings_fts WHERE paintings_fts MATCH ?) OR p.rowid IN "
                             "(SELECT s.painting FROM spans_fts JOIN spans s ON s.rowid = spans_fts.rowid "
                             "WHERE spans_fts MATCH ?))")
                params += [expr, expr]
            elif not self.fts:
                for word in ix.search_words(f.q):
                    where.append("instr(lower(coalesce(p.title, '') || ' ' || coalesce(p.artist, '') || ' ' || "
                                 "coalesce(p.caption, '')), ?) > 0")
                    params.append(word)
        if f.category:
            where.append("EXISTS (SELECT 1 FROM spans s WHERE s.painting = p.rowid AND s.category = ?)")
            params.append(f.category)
        if f.artist:
            where.append("p.artist_key = ?")
            params.append(f.artist.strip().lower())
        if f.style:
            where.append("p.style_key = ?")
            params.append(f.style.strip().lower())
        if f.year_min is not None:
            where.append("p.year_num >= ?")
            params.append(f.year_min)
        if f.year_max is not None:
            where.append("p.year_num <= ?")
            params.append(f.year_max)
        if f.sam is not None:
            where.append("p.n_sam > 0" if f.sam else "p.n_sam = 0")
        for column, value in (("title_verdict", f.title_verdict), ("artist_verdict", f.artist_verdict)):
            if value == "ungraded":
                where.append(f"p.{column} IS NULL")
            elif value:
                where.append(f"p.{column} = ?")
                params.append(value)
        return (" WHERE " + " AND ".join(where)) if where else "", params

    def gallery(self, f: PaintingFilter, sort: str, descending: bool, offset: int, limit: int) -> bytes:
        where, params = self._painting_where(f)
        total = self.conn.execute(f"SELECT count(*) FROM paintings p{where}", params).fetchone()[0]
        order = _order(PAINTING_SORTS[sort], descending) + ", p.rowid"
        rows = self.conn.execute(f"SELECT p.summary FROM paintings p{where} ORDER BY {order} LIMIT ? OFFSET ?",
                                 [*params, limit, offset]).fetchall()
        items = b",".join(r[0].encode() for r in rows)
        return (b'{"total":%d,"offset":%d,"limit":%d,"items":[' % (total, offset, limit)) + items + b"]}"

    def facets(self) -> dict:
        """What the gallery's filters offer, over the whole dataset, with counts."""
        c = self.conn

        def named(column: str, key: str, top: int) -> list[list]:
            # the most common spelling of each (case-insensitive) name, most frequent first
            rows = c.execute(f"SELECT {column}, count(*) AS n FROM paintings WHERE {key} IS NOT NULL "
                             f"GROUP BY {key} ORDER BY n DESC, {key} LIMIT ?", (top,)).fetchall()
            return [[r[0].strip(), r[1]] for r in rows]

        years = c.execute("SELECT min(year_num), max(year_num) FROM paintings").fetchone()
        verdict = {}
        for column in ("title_verdict", "artist_verdict"):
            counts = dict.fromkeys(VERDICTS, 0)
            for value, n in c.execute(f"SELECT {column}, count(*) FROM paintings GROUP BY {column}"):
                counts[value or "ungraded"] = n
            verdict[column] = counts
        return {
            "n_paintings": self.count(),
            "categories": {r[0]: r[1] for r in c.execute(
                "SELECT category, count(DISTINCT painting) FROM spans GROUP BY category ORDER BY category")},
            "styles": named("style", "style_key", 500), "artists": named("artist", "artist_key", 2000),
            "years": {"min": years[0], "max": years[1]},
            "sam": {"found": c.execute("SELECT count(*) FROM paintings WHERE n_sam > 0").fetchone()[0],
                    "none": c.execute("SELECT count(*) FROM paintings WHERE n_sam = 0").fetchone()[0]},
            **verdict,
        }

    # -- the phrase atlas ---------------------------------------------------------------------
    def _span_where(self, f: SpanFilter) -> tuple[str, list[Any]]:
        where, params = self._text(f.q, "spans_fts", "s.text", "s")
        if f.category:
            where.append("s.category = ?")
            params.append(f.category)
        for column, low, high in (("entropy", f.entropy_min, f.entropy_max), ("iou", f.iou_min, f.iou_max)):
            if low is not None:
                where.append(f"s.{column} >= ?")
                params.append(low)
            if high is not None:
                where.append(f"s.{column} <= ?")
                params.append(high)
        if f.sam is not None:
            where.append("s.sam = ?")
            params.append(int(f.sam))
        return (" WHERE " + " AND ".join(where)) if where else "", params

    def _median(self, column: str, where: str, params: list[Any]) -> tuple[float | None, int]:
        cond = f"s.{column} IS NOT NULL" + (" AND s.sam = 1" if column == "iou" else "")
        full = f"{where} AND {cond}" if where else f" WHERE {cond}"
        n = self.conn.execute(f"SELECT count(*) FROM spans s{full}", params).fetchone()[0]
        if n == 0:
            return None, 0
        values = [r[0] for r in self.conn.execute(
            f"SELECT s.{column} FROM spans s{full} ORDER BY s.{column} LIMIT ? OFFSET ?",
            [*params, 2 - n % 2, (n - 1) // 2])]
        return sum(values) / len(values), n

    def atlas(self, f: SpanFilter, sort: str, descending: bool, offset: int, limit: int) -> bytes:
        where, params = self._span_where(f)
        total = self.conn.execute(f"SELECT count(*) FROM spans s{where}", params).fetchone()[0]
        # the matches' medians depend on the filter only: paging and sorting one search reuse them
        with self.lock:
            known = self.summaries.get(f)
        if known is None:
            known = (*self._median("entropy", where, params), *self._median("iou", where, params))
            with self.lock:
                self.summaries[f] = known
                while len(self.summaries) > 512:
                    self.summaries.pop(next(iter(self.summaries)))
        median_entropy, n_entropy, median_iou, n_iou = known
        order = _order(SPAN_SORTS[sort], descending) + ", s.painting, s.idx"
        cols = ", ".join(f's."{c}"' for c in SPAN_FIELDS)
        rows = self.conn.execute(
            f"SELECT p.id, p.title, p.artist, p.year, p.canvas_w, p.canvas_h, p.summary, {cols} FROM spans s "
            f"JOIN paintings p ON p.rowid = s.painting{where} ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, limit, offset]).fetchall()
        items = []
        for r in rows:
            item = {"painting": r["id"], "title": r["title"], "artist": r["artist"], "year": r["year"],
                    "thumb": orjson.loads(r["summary"]).get("thumb"),
                    "canvas": {"width": r["canvas_w"], "height": r["canvas_h"]} if r["canvas_w"] else None}
            item.update({("index" if c == "idx" else c): r[c] for c in SPAN_FIELDS})
            item["sam"] = None if r["sam"] is None else bool(r["sam"])
            item["has_map"] = bool(r["has_map"])
            items.append(item)
        categories = {r["category"]: {"n": r["n"], "median_entropy": r["median_entropy"], "median_iou": r["median_iou"],
                                      "n_iou": r["n_iou"]}
                      for r in self.conn.execute("SELECT * FROM categories ORDER BY category")}
        body = {"total": total, "offset": offset, "limit": limit,
                "summary": {"n": total, "median_entropy": median_entropy, "n_entropy": n_entropy,
                            "median_iou": median_iou, "n_iou": n_iou},
                "categories": categories, "items": items}
        return orjson.dumps(body)
