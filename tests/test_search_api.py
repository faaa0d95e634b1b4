"""Search, facets, the phrase atlas and neighbours on the server (backend/search.py, docs/api.md).

Expected answers are computed here from the records' JSON with plain Python; any query text
gets results or a 4xx, never a 500."""

from __future__ import annotations

import re
import shutil
import statistics
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from testkit.fixture_dataset import make_dataset

SMOKE = Path(__file__).resolve().parents[1] / "data" / "smoke"
API = "/api/datasets/smoke"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("search") / "smoke"
    shutil.copytree(SMOKE, out, ignore=shutil.ignore_patterns("index.sqlite", "tam_raw.safetensors"))
    return out


@pytest.fixture(scope="module")
def client(smoke) -> TestClient:
    return TestClient(create_app([smoke]))


@pytest.fixture(scope="module")
def records(smoke) -> list[dict]:
    ids = [p["id"] for p in orjson.loads((smoke / "manifest.json").read_bytes())["paintings"]]
    return [orjson.loads((smoke / "paintings" / pid / "record.json").read_bytes()) for pid in ids]


def words(text: str | None) -> list[str]:
    return re.findall(r"\w+", (text or "").lower())


def has_words(text: str | None, query: str) -> bool:
    """All the query's words in the text, the last as a prefix (what the API documents)."""
    want, have = words(query), words(text)
    return all(w in have for w in want[:-1]) and any(h.startswith(want[-1]) for h in have)


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


@pytest.mark.parametrize("q", ["boats", "red still", "Test Painter", "angel", "saints", "zzz nothing"])
def test_search_covers_titles_artists_captions_and_phrases(client, records, q):
    want = [r["id"] for r in records
            if has_words(" ".join(filter(None, [r["annotations"].get("title"), r["annotations"].get("artist"),
                                                r.get("caption")])), q)
            or any(has_words(s["text"], q) for s in r["spans"])]
    assert ids(client.get(f"{API}/paintings", params={"q": q})) == want


def test_filters_combine(client, records):
    def check(params, keep):
        assert ids(client.get(f"{API}/paintings", params=params)) == [r["id"] for r in records if keep(r)], params

    year = lambda r: r["annotations"]["year"]  # noqa: E731
    check({"year_min": 1890}, lambda r: year(r) >= 1890)
    check({"year_min": 1890, "year_max": 1901}, lambda r: 1890 <= year(r) <= 1901)
    check({"sam": "true"}, lambda r: any((s.get("sam") or {}).get("mask") for s in r["spans"]))
    check({"sam": "false"}, lambda r: not any((s.get("sam") or {}).get("mask") for s in r["spans"]))
    check({"category": "ICON", "artist": "second painter"},
          lambda r: any(s["category"] == "ICON" for s in r["spans"]) and r["annotations"]["artist"] == "Second Painter")
    check({"title_verdict": "ungraded"}, lambda r: (r.get("metadata") or {}).get("title_correct") is None)
    check({"title_verdict": "correct"}, lambda r: (r.get("metadata") or {}).get("title_correct") is True)


@pytest.mark.parametrize("sort", ["entropy", "year", "n_spans", "iou"])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_sort_by_a_metric(client, records, sort, order):
    def key(r):
        if sort == "year":
            return r["annotations"]["year"]
        if sort == "n_spans":
            return len(r["spans"])
        values = ([s["metrics"]["entropy"] for s in r["spans"] if (s.get("metrics") or {}).get("entropy") is not None]
                  if sort == "entropy" else [s["sam"]["iou"] for s in r["spans"] if (s.get("sam") or {}).get("iou")
                                             is not None])
        return sum(values) / len(values) if values else None

    position = {r["id"]: i for i, r in enumerate(records)}
    have = [r for r in records if key(r) is not None]
    # ties keep the manifest's order either way
    want = sorted(have, key=lambda r: ((-key(r) if order == "desc" else key(r)), position[r["id"]]))
    want += [r for r in records if key(r) is None]
    assert ids(client.get(f"{API}/paintings", params={"sort": sort, "order": order})) == [r["id"] for r in want]


def test_facets(client, records):
    facets = client.get(f"{API}/facets").json()
    assert facets["n_paintings"] == len(records)
    cats = {}
    for r in records:
        for c in {s["category"] for s in r["spans"]}:
            cats[c] = cats.get(c, 0) + 1
    assert facets["categories"] == cats
    artists = {}
    for r in records:
        artists[r["annotations"]["artist"]] = artists.get(r["annotations"]["artist"], 0) + 1
    assert sorted(map(tuple, facets["artists"])) == sorted(artists.items())
    assert facets["years"] == {"min": min(r["annotations"]["year"] for r in records),
                               "max": max(r["annotations"]["year"] for r in records)}


@pytest.mark.parametrize("params", [{"q": "sun"}, {"q": "calm", "sort": "entropy", "order": "desc"},
                                    {"category": "CVO", "entropy_max": 0.9, "sort": "iou"},
                                    {"q": "boats", "sam": "true"}, {"q": "st"}])
def test_atlas_matches_and_summary(client, records, params):
    def keep(s):
        m = s.get("metrics") or {}
        return ((not params.get("q") or has_words(s["text"], params["q"]))
                and (not params.get("category") or s["category"] == params["category"])
                and ("entropy_max" not in params or (m.get("entropy") is not None and m["entropy"] <= params["entropy_max"]))
                and ("sam" not in params or (s.get("sam") is not None and bool(s["sam"].get("mask")) == (params["sam"] == "true"))))

    spans = [(r["id"], s) for r in records for s in r["spans"] if keep(s)]
    body = client.get(f"{API}/spans", params={**params, "limit": 200}).json()
    assert body["total"] == len(spans) > 0
    got = [(i["painting"], i["index"]) for i in body["items"]]
    assert sorted(got) == sorted((pid, s["index"]) for pid, s in spans)
    entropies = [s["metrics"]["entropy"] for _, s in spans if (s.get("metrics") or {}).get("entropy") is not None]
    assert body["summary"]["median_entropy"] == pytest.approx(statistics.median(entropies))
    ious = [s["sam"]["iou"] for _, s in spans if (s.get("sam") or {}).get("mask") and s["sam"].get("iou") is not None]
    assert body["summary"]["median_iou"] == (pytest.approx(statistics.median(ious)) if ious else None)
    sort = params.get("sort")
    if sort:
        values = [i[sort] for i in body["items"] if i[sort] is not None]
        assert values == sorted(values, reverse=params.get("order") == "desc")
    # the category's numbers, next to the matches'
    cvo = [s for r in records for s in r["spans"] if s["category"] == "CVO"]
    assert body["categories"]["CVO"]["n"] == len(cvo)
    assert body["categories"]["CVO"]["median_entropy"] == pytest.approx(
        statistics.median(s["metrics"]["entropy"] for s in cvo if (s.get("metrics") or {}).get("entropy") is not None))


def test_atlas_pages(client):
    whole = client.get(f"{API}/spans", params={"limit": 200}).json()
    pages = [client.get(f"{API}/spans", params={"limit": 7, "offset": k}).json()["items"] for k in range(0, 70, 7)]
    assert [i for page in pages for i in page] == whole["items"]


def test_neighbours(client, records):
    order = [r["id"] for r in records]
    for k, pid in enumerate(order):
        body = client.get(f"{API}/neighbours/{pid}").json()
        assert (body["previous"] or {}).get("id") == (order[k - 1] if k else None)
        assert (body["next"] or {}).get("id") == (order[k + 1] if k + 1 < len(order) else None)
        assert body["position"] == k + 1 and body["total"] == len(order)
    assert client.get(f"{API}/neighbours/nope").status_code == 404


NASTY = ['"', '""', 'a" OR "b', "sun OR", "NEAR(sun calm)", "text:sun", "*", "sun*", "-sun", "^sun", "(", ")",
         "AND", "NOT", "sun AND NOT", "\x00", "sun\x00calm", "' OR 1=1 --", "%", "_", "\\", "ü…😀", "\u202e",
         " " * 300, "a" * 500, "🙂" * 120]


@pytest.mark.parametrize("q", NASTY)
@pytest.mark.parametrize("route", ["paintings", "spans"])
def test_any_query_gets_results_or_a_4xx(client, route, q):
    response = client.get(f"{API}/{route}", params={"q": q})
    assert response.status_code == 200, (q, response.text)
    assert isinstance(response.json()["items"], list)


@pytest.mark.parametrize("route", ["paintings", "spans"])
@pytest.mark.parametrize("size, status", [(2_000, 422), (10_000, 414)])
def test_a_long_query_is_a_clear_4xx(client, route, size, status):
    """Over 500 characters: 422 naming `q`; a 10 KB query string is over the server's URL limit: 414."""
    response = client.get(f"{API}/{route}", params={"q": "sun " * (size // 4)})
    assert response.status_code == status
    assert response.json()["error"]["status"] == status
    if status == 422:
        assert "q" in response.json()["error"]["message"]


@pytest.mark.parametrize("params", [{"sort": "id; DROP TABLE spans"}, {"order": "sideways"}, {"entropy_max": "2"},
                                    {"entropy_min": "NaN"}, {"sam": "maybe"}, {"category": "ICON'--"}])
def test_bad_parameters_are_422(client, params):
    assert client.get(f"{API}/spans", params=params).status_code == 422


def test_fuzzed_queries_never_fail(client):
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(q=st.text(max_size=120), route=st.sampled_from(["paintings", "spans"]))
    def check(q, route):
        response = client.get(f"{API}/{route}", params={"q": q})
        assert response.status_code in (200, 422), (q, response.status_code)
        if response.status_code == 200:
            assert response.json()["total"] >= 0

    assert hypothesis
    check()


def test_search_without_fts5(tmp_path, monkeypatch):
    """An sqlite3 library without FTS5: words are matched as substrings, with the same parameters."""
    from contract import index as ix

    monkeypatch.setattr(ix, "fts5_available", lambda: False)
    root = make_dataset(tmp_path / "nofts", n_paintings=2, with_stats=False)
    client = TestClient(create_app([root]))
    assert ids(client.get("/api/datasets/nofts/paintings", params={"q": "blue hour"})) == ["painting-1"]
    assert client.get("/api/datasets/nofts/spans", params={"q": "starry"}).json()["total"] == 2
    for q in NASTY:
        assert client.get("/api/datasets/nofts/spans", params={"q": q}).status_code == 200


@pytest.fixture(scope="module")
def replicated(tmp_path_factory):
    """12 paintings, each a copy of one of smoke's 4: every figure is tied three ways (the page
    boundaries of a sort must fall between ties in the documented order)."""
    from testkit.replicate import replicate

    root = replicate(tmp_path_factory.mktemp("ties") / "ties", 12)
    ids = [p["id"] for p in orjson.loads((root / "manifest.json").read_bytes())["paintings"]]
    recs = [orjson.loads((root / "paintings" / pid / "record.json").read_bytes()) for pid in ids]
    return TestClient(create_app([root])), recs


@pytest.mark.parametrize("params", [{"q": "s", "sort": "entropy"}, {"q": "s", "sort": "entropy", "order": "desc"},
                                    {"q": "c", "sort": "iou", "order": "desc"}, {"q": "a", "sort": "painting",
                                                                                     "order": "desc"},
                                    {"q": "a", "sort": "gini", "entropy_max": 0.95}, {"sort": "top10", "order": "desc"},
                                    {"category": "CVO", "sort": "iou"}, {"sort": "painting", "order": "desc"},
                                    {"sort": "painting"}, {"category": "ICON", "sort": "painting"}])
def test_atlas_sorted_pages_follow_ties_and_nulls(replicated, params):
    """Pages of a sorted atlas, with or without a phrase search, in the documented order: NULLs last,
    the value (ascending or descending), then the painting's position and the span's index."""
    client, recs = replicated
    key = {"entropy": lambda s: (s.get("metrics") or {}).get("entropy"),
           "gini": lambda s: (s.get("metrics") or {}).get("gini"),
           "top10": lambda s: (s.get("metrics") or {}).get("top10_mass"),
           "iou": lambda s: (s.get("sam") or {}).get("iou")}
    desc = params.get("order") == "desc"
    matches = []
    for position, r in enumerate(recs):
        for s in r["spans"]:
            entropy = (s.get("metrics") or {}).get("entropy")
            if (("q" not in params or has_words(s["text"], params["q"]))
                    and ("category" not in params or s["category"] == params["category"])
                    and ("entropy_max" not in params or (entropy is not None and entropy <= params["entropy_max"]))):
                matches.append((position, s))
    if params["sort"] == "painting":
        want = sorted(matches, key=lambda m: (-m[0] if desc else m[0], m[1]["index"]))
    else:
        def order(m):
            v = key[params["sort"]](m[1])
            return (v is None, 0 if v is None else (-v if desc else v), m[0], m[1]["index"])
        want = sorted(matches, key=order)
    assert len(want) > 6
    got = []
    for offset in range(0, len(want) + 5, 5):
        body = client.get("/api/datasets/ties/spans", params={**params, "offset": offset, "limit": 5}).json()
        assert body["total"] == len(want)
        got += [(i["painting"], i["index"]) for i in body["items"]]
    assert got == [(recs[p]["id"], s["index"]) for p, s in want]


@pytest.mark.parametrize("params", [{"q": "boats"}, {"q": "boats", "order": "desc"}, {"q": "a", "category": "ICON"},
                                    {"q": "s", "sort": "entropy", "order": "desc"}, {"q": "painter", "year_min": 1805},
                                    {"category": "CVO", "sort": "title", "order": "desc"}])
def test_gallery_search_pages_in_order(replicated, params):
    """A search's pages, in the manifest's order (either way) or a metric's, with filters: what the
    records say, page by page (ties of the copies keep the manifest's order)."""
    client, recs = replicated
    desc = params.get("order") == "desc"

    def keep(r):
        ann = r["annotations"]
        text = " ".join(filter(None, [ann.get("title"), ann.get("artist"), r.get("caption")]))
        return (("q" not in params or has_words(text, params["q"]) or any(has_words(s["text"], params["q"])
                                                                           for s in r["spans"]))
                and ("category" not in params or any(s["category"] == params["category"] for s in r["spans"]))
                and ("year_min" not in params or ann["year"] >= params["year_min"]))

    kept = [(k, r) for k, r in enumerate(recs) if keep(r)]
    sort = params.get("sort", "order")
    if sort == "order":
        want = sorted(kept, key=lambda kr: -kr[0] if desc else kr[0])
    elif sort == "title":
        want = sorted(kept, key=lambda kr: kr[1]["annotations"]["title"].lower(), reverse=True)  # titles differ
    else:
        def mean(r):
            xs = [s["metrics"]["entropy"] for s in r["spans"] if (s.get("metrics") or {}).get("entropy") is not None]
            return sum(xs) / len(xs)
        want = sorted(kept, key=lambda kr: (-mean(kr[1]) if desc else mean(kr[1]), kr[0]))
    assert len(want) >= 3
    got = []
    for offset in range(0, len(want) + 5, 5):
        body = client.get("/api/datasets/ties/paintings", params={**params, "offset": offset, "limit": 5}).json()
        assert body["total"] == len(want)
        got += [i["id"] for i in body["items"]]
    assert got == [r["id"] for _, r in want]
