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

import numpy as np
import orjson

from contract import index as ix

# sort keys: "order" / "painting" (the manifest's order) and contract.index's tables (never from the
# request: the key is looked up there; each has an index in both directions)
PAINTING_SORTS = ("order", *ix.PAINTING_SORTS)
SPAN_SORTS = ("painting", *ix.SPAN_SORTS)
VERDICTS = ix.VERDICTS
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


def _painting_order(sort: str, descending: bool) -> str:
    """NULLs last either way, then the manifest's order (a stable page boundary)."""
    if sort == "order":
        return f"p.rowid {'DESC' if descending else 'ASC'}"
    return ix.order_by("p", *ix.PAINTING_SORTS[sort], descending)


def _span_order(sort: str, descending: bool) -> str:
    """NULLs last either way, then the painting's position and the span's (= the span's rowid)."""
    if sort == "painting":
        return f"s.painting {'DESC' if descending else 'ASC'}, s.rowid"
    return ix.order_by("s", *ix.SPAN_SORTS[sort], descending)


def page_of(m: dict[str, np.ndarray], sort: str, descending: bool, offset: int, limit: int) -> list[int]:
    """The span rowids of a sorted page of matches (arrays of contract.index.PHRASE_ARRAYS), in the
    SQL order of `_span_order`: NULLs last, the value, then the rowid (= painting, span index).

    Only the page's end is placed (np.partition), then the values up to it, ties included, are
    sorted: a page of 250,000 matches costs a few milliseconds."""
    n = len(m["span"])
    end = min(offset + limit, n)
    if offset >= end:
        return []
    if sort == "painting":
        key = -m["painting"].astype(np.float64) if descending else m["painting"].astype(np.float64)
    else:
        values = m[sort]
        key = np.where(np.isnan(values), np.inf, -values if descending else values)  # metrics are finite
    last = np.partition(key, end - 1)[end - 1]
    candidates = np.flatnonzero(key <= last)
    ordered = candidates[np.lexsort((m["span"][candidates], key[candidates]))]
    return [int(x) for x in m["span"][ordered[offset:end]]]


class IndexQueries:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.local = threading.local()
        with self.connection_scope() as conn:
            meta = {r["key"]: r["value"] for r in conn.execute("SELECT key, value FROM meta")}
        self.meta = meta
        self.fts = meta.get("fts5") == "1"
        self.facets_json = meta["facets"]
        self.all_spans = orjson.loads(meta["all_spans"])
        with self.connection_scope() as conn:
            self.n = conn.execute("SELECT count(*) FROM paintings").fetchone()[0]
            self.categories = {r["category"]: {"n": r["n"], "median_entropy": r["median_entropy"],
                                               "n_entropy": r["n_entropy"], "median_iou": r["median_iou"],
                                               "n_iou": r["n_iou"]}
                               for r in conn.execute("SELECT * FROM categories ORDER BY category")}
        self.summaries: dict[SpanFilter, tuple] = {}  # atlas filter -> its medians (the index never changes)
        self.totals: dict[PaintingFilter, int] = {}  # gallery filter -> how many paintings it keeps
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
        return self.n

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

    # -- the gallery --------------------------------------------------------------------------
    def _painting_where(self, f: PaintingFilter) -> tuple[str | None, list[str], list[Any]]:
        """(the FTS5 expression of the search or None, conditions on the painting `p`, their values)."""
        where, params, expr = [], [], None
        if f.q:
            if self.fts:
                # title, artist or caption words, or a phrase's words (a phrase not located in the caption)
                expr = ix.search_expression(f.q)
            else:
                for word in ix.search_words(f.q):
                    where.append("instr(lower(coalesce(p.title, '') || ' ' || coalesce(p.artist, '') || ' ' || "
                                 "coalesce(p.caption, '')), ?) > 0")
                    params.append(word)
        if f.category:
            where.append("p.cats & ?")  # a bit per category present (contract.index.CATEGORY_BITS)
            params.append(ix.CATEGORY_BITS.get(f.category, 0))
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
        return expr, where, params

    def _gallery_total(self, f: PaintingFilter, expr: str | None, where: list[str], params: list[Any]) -> int:
        """How many paintings a filter keeps: counted over the narrow `filters` table (a painting's
        filter columns, contract.index) joined to the search's matches, kept per filter."""
        with self.lock:
            known = self.totals.get(f)
        if known is not None:
            return known
        cond = " AND ".join(where)
        table = "paintings" if f.q and not self.fts else "filters"  # the fallback's words are in paintings
        if expr is None:
            total = self.conn.execute(f"SELECT count(*) FROM {table} p WHERE {cond}", params).fetchone()[0] if where \
                else self.n
        elif not where:
            total = self.conn.execute("SELECT count(*) FROM paintings_fts WHERE paintings_fts MATCH ?", (expr,)).fetchone()[0]
        else:
            total = self.conn.execute(f"SELECT count(*) FROM paintings_fts f JOIN {table} p ON p.rowid = f.rowid "
                                      f"WHERE paintings_fts MATCH ? AND {cond}", [expr, *params]).fetchone()[0]
        with self.lock:
            self.totals[f] = total
            while len(self.totals) > 4096:
                self.totals.pop(next(iter(self.totals)))
        return total

    def gallery(self, f: PaintingFilter, sort: str, descending: bool, offset: int, limit: int) -> bytes:
        expr, where, params = self._painting_where(f)
        total = self._gallery_total(f, expr, where, params)
        cond = "".join(f" AND {w}" for w in where)
        if offset >= total:
            rows = []
        elif expr is not None and sort == "order":
            # the search's matches come in the manifest's order (rowid): filtered through the narrow
            # filters table, the summary read for the page's rows only
            table = "paintings" if not self.fts else "filters"
            rows = self.conn.execute(
                f"SELECT (SELECT summary FROM paintings WHERE rowid = f.rowid) FROM paintings_fts f "
                f"JOIN {table} p ON p.rowid = f.rowid WHERE paintings_fts MATCH ?{cond} "
                f"ORDER BY f.rowid {'DESC' if descending else 'ASC'} LIMIT ? OFFSET ?",
                [expr, *params, limit, offset]).fetchall()
        else:
            if expr is not None:
                where = ["p.rowid IN (SELECT rowid FROM paintings_fts WHERE paintings_fts MATCH ?)", *where]
                params = [expr, *params]
            rows = self.conn.execute(
                "SELECT p.summary FROM paintings p" + (" WHERE " + " AND ".join(where) if where else "") +
                f" ORDER BY {_painting_order(sort, descending)} LIMIT ? OFFSET ?", [*params, limit, offset]).fetchall()
        items = b",".join(r[0].encode() for r in rows)
        return (b'{"total":%d,"offset":%d,"limit":%d,"items":[' % (total, offset, limit)) + items + b"]}"

    def facets(self) -> dict:
        """What the gallery's filters offer, over the whole dataset, with counts (computed when indexed)."""
        return orjson.loads(self.facets_json)

    # -- the phrase atlas ---------------------------------------------------------------------
    def _phrase_where(self, f: SpanFilter, with_category: bool) -> tuple[str, list[Any]]:
        """The phrases (distinct text and category, contract.index) whose spans a search can match,
        as a condition on `phrases ph` ("" when every phrase can)."""
        where, params = [], []
        if f.q and self.fts:
            expr = ix.search_expression(f.q)
            if expr is not None:
                where.append("ph.rowid IN (SELECT rowid FROM phrases_fts WHERE phrases_fts MATCH ?)")
                params.append(expr)
        elif f.q:
            for word in ix.search_words(f.q):
                where.append("instr(lower(ph.text), ?) > 0")
                params.append(word)
        if with_category and f.category:
            where.append("ph.category = ?")
            params.append(f.category)
        return " AND ".join(where), params

    def _span_where(self, f: SpanFilter) -> tuple[str, list[Any]]:
        phrases, params = self._phrase_where(f, with_category=False)
        where = [f"s.phrase IN (SELECT ph.rowid FROM phrases ph WHERE {phrases})"] if phrases else []
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

    def _matches(self, f: SpanFilter, sort: str | None = None) -> dict[str, np.ndarray]:
        """The matching spans as arrays (contract.index.PHRASE_ARRAYS: their rowids, the figures the
        filters and medians use, and SORT's), in no particular order: the phrases a search names,
        then the filters on their spans' figures."""
        where, params = self._phrase_where(f, with_category=True)
        columns = ["span", "entropy", "iou", "sam"] + ([sort] if sort in ("painting", "gini", "top10") else [])
        rows = self.conn.execute(f"SELECT {', '.join(columns)} FROM phrases ph" + (f" WHERE {where}" if where else ""),
                                 params).fetchall()
        found = {c: np.concatenate([np.frombuffer(r[k], ix.PHRASE_ARRAYS[c][1]) for r in rows]
                                   or [np.empty(0, ix.PHRASE_ARRAYS[c][1])]) for k, c in enumerate(columns)}
        keep = np.ones(len(found["span"]), bool)
        for column, low, high in (("entropy", f.entropy_min, f.entropy_max), ("iou", f.iou_min, f.iou_max)):
            if low is not None:
                keep &= found[column] >= low  # NaN (no value) never passes, as NULL in SQL
            if high is not None:
                keep &= found[column] <= high
        if f.sam is not None:
            keep &= found["sam"] == int(f.sam)
        return {c: a[keep] for c, a in found.items()}

    def summary(self, f: SpanFilter, matches: dict[str, np.ndarray] | None = None) -> tuple:
        """(matches, median entropy, n with an entropy, median IoU, n with a SAM 3 mask and IoU): the
        whole dataset's and each category's from the index's build, any other from the phrases' arrays."""
        if f == SpanFilter():
            a = self.all_spans
            return a["n"], a["median_entropy"], a["n_entropy"], a["median_iou"], a["n_iou"]
        if f == SpanFilter(category=f.category):
            c = self.categories.get(f.category) or {"n": 0, "median_entropy": None, "n_entropy": 0, "median_iou": None,
                                                    "n_iou": 0}
            return c["n"], c["median_entropy"], c["n_entropy"], c["median_iou"], c["n_iou"]
        m = self._matches(f) if matches is None else matches
        entropies = m["entropy"][~np.isnan(m["entropy"])]
        ious = m["iou"][(m["sam"] == 1) & ~np.isnan(m["iou"])]

        def median(xs: np.ndarray) -> float | None:
            return float(np.median(xs)) if len(xs) else None

        return len(m["span"]), median(entropies), len(entropies), median(ious), len(ious)

    def atlas(self, f: SpanFilter, sort: str, descending: bool, offset: int, limit: int) -> bytes:
        # a phrase search's spans come from the phrases' arrays (count, medians, the page's rowids);
        # without one, SQL walks the sort's index (most spans match) and stops after the page
        arrays = f.q and sort != "text" and sort != "category"
        matches = self._matches(f, sort) if arrays else None
        # the matches' count and medians depend on the filter only: paging and sorting one search reuse them
        with self.lock:
            known = self.summaries.get(f)
        if known is None:
            known = self.summary(f, matches)
            with self.lock:
                self.summaries[f] = known
                while len(self.summaries) > 512:
                    self.summaries.pop(next(iter(self.summaries)))
        total, median_entropy, n_entropy, median_iou, n_iou = known
        cols = ", ".join(f's."{c}"' for c in SPAN_FIELDS)
        select = (f"SELECT s.rowid AS span_rowid, p.id, p.title, p.artist, p.year, p.canvas_w, p.canvas_h, p.summary, {cols} "
                  "FROM spans s{hint} JOIN paintings p ON p.rowid = s.painting")
        if offset >= total:
            rows = []
        elif matches is not None:
            page = page_of(matches, sort, descending, offset, limit)
            found = {r["span_rowid"]: r for r in self.conn.execute(
                select.format(hint="") + f" WHERE s.rowid IN ({', '.join('?' * len(page))})", page)}
            rows = [found[k] for k in page]
        else:
            where, params = self._span_where(f)
            order, hint = _span_order(sort, descending), ""
            # expected steps of a walk along the sort's index: the page's end over the share of spans that match
            if (offset + limit) * self.all_spans["n"] / total < 4 * total:
                if sort in ix.SPAN_SORTS_INDEXED:
                    hint = f" INDEXED BY spans_by_{sort}_{'d' if descending else 'a'}"
                elif sort == "painting" and not descending:
                    order, hint = "s.rowid", " NOT INDEXED"  # rowid order is (painting, span index)
            rows = self.conn.execute(select.format(hint=hint) + f"{where} ORDER BY {order} LIMIT ? OFFSET ?",
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
        categories = {c: {k: v for k, v in row.items() if k != "n_entropy"} for c, row in self.categories.items()}
        body = {"total": total, "offset": offset, "limit": limit,
                "summary": {"n": total, "median_entropy": median_entropy, "n_entropy": n_entropy,
                            "median_iou": median_iou, "n_iou": n_iou},
                "categories": categories, "items": items}
        return orjson.dumps(body)
