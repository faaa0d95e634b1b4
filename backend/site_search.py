"""The static site's search, facet and atlas files: what the server's index answers, precomputed.

A plain file server cannot run a query, so `export-site` writes, per dataset, from its index
(contract/index.py), files the explorer (frontend/js/data.js, StaticSource) combines itself:

    data/<id>/search/meta.json            the manifest without its painting list, counts, chunk size,
                                          facets, per-category summaries, shard names
    data/<id>/search/gallery/<k>.json     summaries (without captions) of paintings k*CHUNK .. (k+1)*CHUNK-1
    data/<id>/search/ids.json             every painting id in order (the painting view's neighbours)
    data/<id>/search/attrs.json           per painting: [artist, style (indices into the facets), year,
                                          categories (bit mask), SAM found]: for the gallery's filters
    data/<id>/search/words/<shard>.json   word -> painting positions (delta-coded) whose title, artist,
                                          caption or phrases hold it; a shard holds the words that
                                          start with the same two characters (file name: their hex)
    data/<id>/search/phrases/<shard>.json word -> the phrases holding it: [position, span index,
                                          category, entropy, IoU, SAM, Otsu, text, map, Gini, top-10%]
                                          each (metrics x 10,000 as integers, -1 for none; map 0 for
                                          the usual spans/<index>.png, null for none)
    data/<id>/search/inputs/<hh>.json     input fingerprint (provenance.input.sha256) -> painting positions,
                                          sharded by its first two hex digits: the same painting in
                                          another dataset, for the compare view (backend/compare.py)
    data/<id>/search/atlas.json           every phrase, as above, for datasets of up to ATLAS_ALL
                                          phrases (larger ones: the atlas asks for a word first)

A search fetches one or two shards and the gallery chunks of the page it shows, so its cost
depends on the words, not on the number of paintings. Words are normalised as the index's FTS5
tokenizer does (lower case, accents removed): the explorer normalises a query the same way.
"""

from __future__ import annotations

import unicodedata
from contextlib import closing
from pathlib import Path

import orjson

from backend.search import IndexQueries
from contract import index as ix
from contract.schema import Category

CHUNK = 500  # paintings per gallery chunk
ATLAS_ALL = 50_000  # phrases up to which atlas.json holds them all
CATEGORY_BITS = {c.value: 1 << k for k, c in enumerate(Category)}
CATEGORY_CODES = [c.value for c in Category]


def normalise(word: str) -> str:
    """Lower case without accents (FTS5's unicode61 with remove_diacritics; the JS does the same)."""
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def words_of(text: str | None) -> set[str]:
    return {normalise(w) for w in ix.WORD.findall(text or "")}


def shard_of(word: str) -> str:
    return word[:2].encode().hex()


def _delta(values: list[int]) -> list[int]:
    out, last = [], 0
    for v in values:
        out.append(v - last)
        last = v
    return out


def _code(x: float | None) -> int:
    return -1 if x is None else round(x * 10_000)


def search_files(root: Path) -> dict[str, bytes]:
    """Relative path (under data/<id>/search/) -> bytes, from the dataset's index."""
    opened = ix.ensure_index(root)
    queries = IndexQueries(opened.path)
    facets = queries.facets()
    artists = {name.strip().lower(): k for k, (name, _) in enumerate(facets["artists"])}
    styles = {name.strip().lower(): k for k, (name, _) in enumerate(facets["styles"])}
    files: dict[str, bytes] = {}
    postings: dict[str, list[int]] = {}
    phrases: dict[str, list[list]] = {}
    everything: list[list] = []
    ids, attrs, chunk = [], [], []
    inputs: dict[str, dict[str, list[int]]] = {}  # shard -> fingerprint -> positions
    with closing(ix.connect(opened.path)) as conn:
        n_spans = conn.execute("SELECT count(*) FROM spans").fetchone()[0]
        spans_of: dict[int, list] = {}
        current = None
        rows = conn.execute("SELECT p.rowid, p.id, p.title, p.artist_key, p.style_key, p.year_num, p.caption, "
                            "p.n_sam, p.summary, p.artist, p.input_sha256 FROM paintings p ORDER BY p.rowid")
        span_rows = conn.execute('SELECT painting, idx, text, category, entropy, iou, sam, otsu, map, gini, top10 '
                                 'FROM spans ORDER BY painting, idx')
        pending = next(span_rows, None)
        for pos, p in enumerate(rows):
            spans_of.clear()
            while pending is not None and pending[0] <= p[0]:
                if pending[0] == p[0]:
                    spans_of.setdefault(p[0], []).append(pending)
                pending = next(span_rows, None)
            mine = spans_of.get(p[0], [])
            ids.append(p[1])
            if p[10]:
                inputs.setdefault(p[10][:2], {}).setdefault(p[10], []).append(pos)
            mask = 0
            words = words_of(p[2]) | words_of(p[9]) | words_of(p[6])
            for s in mine:
                mask |= CATEGORY_BITS.get(s[3], 0)
                words |= words_of(s[2])
                entry = [pos, s[1], CATEGORY_CODES.index(s[3]), _code(s[4]), _code(s[5]), -1 if s[6] is None else s[6],
                         s[7] if s[7] is not None else -1, s[2], 0 if s[8] == f"spans/{s[1]}.png" else s[8],
                         _code(s[9]), _code(s[10])]
                for w in words_of(s[2]):
                    phrases.setdefault(w, []).append(entry)
                if n_spans <= ATLAS_ALL:
                    everything.append(entry)
            for w in words:
                postings.setdefault(w, []).append(pos)
            attrs.append([artists.get(p[3], -1) if p[3] else -1, styles.get(p[4], -1) if p[4] else -1,
                          p[5], mask, int(p[7] > 0)])
            chunk.append(p[8])
            if len(chunk) == CHUNK:
                files[f"gallery/{pos // CHUNK}.json"] = ("[" + ",".join(chunk) + "]").encode()
                chunk = []
            current = pos
        if chunk:
            files[f"gallery/{(current or 0) // CHUNK}.json"] = ("[" + ",".join(chunk) + "]").encode()
        categories = {r["category"]: {"n": r["n"], "median_entropy": r["median_entropy"],
                                      "median_iou": r["median_iou"], "n_iou": r["n_iou"]}
                      for r in conn.execute("SELECT * FROM categories ORDER BY category")}
    shards: dict[str, dict[str, list[int]]] = {}
    for word, positions in postings.items():
        shards.setdefault(shard_of(word), {})[word] = _delta(positions)
    for name, body in shards.items():
        files[f"words/{name}.json"] = orjson.dumps(body)
    phrase_shards: dict[str, dict[str, list]] = {}
    for word, entries in phrases.items():
        phrase_shards.setdefault(shard_of(word), {})[word] = entries
    for name, body in phrase_shards.items():
        files[f"phrases/{name}.json"] = orjson.dumps(body)
    if n_spans <= ATLAS_ALL:
        files["atlas.json"] = orjson.dumps(everything)
    for name, body in inputs.items():
        files[f"inputs/{name}.json"] = orjson.dumps(body)
    files["ids.json"] = orjson.dumps(ids)
    files["attrs.json"] = orjson.dumps(attrs)
    header = orjson.loads(queries.meta["manifest"])
    files["meta.json"] = orjson.dumps({
        "manifest": {**header, "n_paintings": len(ids)}, "version": opened.version, "n_paintings": len(ids), "n_spans": n_spans, "chunk": CHUNK,
        "atlas_all": n_spans <= ATLAS_ALL, "categories_order": CATEGORY_CODES, "facets": facets,
        "categories": categories, "word_shards": sorted(shards), "phrase_shards": sorted(phrase_shards),
        "input_shards": sorted(inputs)})
    return files
