"""The data server in process: every endpoint, caching, errors, security, startup validation."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urljoin

import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.catalog import StartupError
from backend.http import IMMUTABLE
from contract.schema import PaintingRecord
from testkit.fixture_dataset import make_dataset

REPO = Path(__file__).resolve().parents[1]
P = "/api/datasets/fixture/paintings"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("serve") / "fixture", n_paintings=4)


@pytest.fixture(scope="module")
def app(data):
    return create_app([data])


@pytest.fixture(scope="module")
def client(app):
    return TestClient(app)


@pytest.fixture(scope="module")
def version(client):
    return client.get("/api/datasets").json()["datasets"][0]["version"]


def assert_error(response, status, code):
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["status"] == status and body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


# --- every endpoint ---------------------------------------------------------------------------

def test_health_and_datasets(client):
    health = client.get("/api/health")
    assert health.json() == {"status": "ok", "datasets": ["fixture"]}
    assert health.headers["cache-control"] == "no-store"
    listing = client.get("/api/datasets").json()["datasets"]
    assert [d["id"] for d in listing] == ["fixture"]
    assert listing[0]["n_paintings"] == 4 and listing[0]["label"] and listing[0]["name"] == "fixture"
    assert len(listing[0]["version"]) == 20 and listing[0]["has_stats"] is True


def test_manifest_record_stats(client, data):
    manifest = client.get("/api/datasets/fixture").json()
    on_disk = json.loads((data / "manifest.json").read_text())  # served without its painting list
    assert manifest == {**{k: v for k, v in on_disk.items() if k != "paintings"}, "n_paintings": 4}
    for i in range(4):
        record = client.get(f"{P}/painting-{i}").json()
        assert record == json.loads((data / f"paintings/painting-{i}/record.json").read_text())
        PaintingRecord.model_validate(record)
    stats = client.get("/api/datasets/fixture/stats")
    assert stats.status_code == 200 and stats.json() == json.loads((data / "stats.json").read_text())


def test_stats_missing_is_404(tmp_path):
    client = TestClient(create_app([make_dataset(tmp_path / "nostats", n_paintings=1, with_stats=False)]))
    assert_error(client.get("/api/datasets/nostats/stats"), 404, "not_found")


@pytest.mark.parametrize("query, ids", [
    ("", ["painting-0", "painting-1", "painting-2", "painting-3"]),
    ("q=blue hour", ["painting-1"]),  # title
    ("q=piet", ["painting-1", "painting-3"]),  # artist
    ("q=SMALL VILLAGE", ["painting-0", "painting-1", "painting-2", "painting-3"]),  # caption, any case
    ("artist=anna vermeer", ["painting-0", "painting-2"]),
    ("artist=%20Anna%20Vermeer%20", ["painting-0", "painting-2"]),
    ("artist=anna", []),  # exact artist, not a substring
    ("style=Realism", ["painting-1", "painting-3"]),
    ("style=realism&artist=piet blauw&q=dusk", ["painting-3"]),
    ("category=ICON", ["painting-0", "painting-1", "painting-2", "painting-3"]),
    ("category=STYLE&style=impressionism", ["painting-0", "painting-2"]),
    ("q=no such thing", []),
])
def test_listing_filters(client, query, ids):
    body = client.get(f"{P}?{query}").json()
    assert [item["id"] for item in body["items"]] == ids
    assert body["total"] == len(ids) and body["offset"] == 0 and body["limit"] == 50


@pytest.mark.parametrize("query, ids, total", [
    ("offset=1&limit=2", ["painting-1", "painting-2"], 4),
    ("offset=3&limit=2", ["painting-3"], 4),
    ("offset=10", [], 4),
    ("style=Realism&offset=1&limit=1", ["painting-3"], 2),
])
def test_listing_paging(client, query, ids, total):
    body = client.get(f"{P}?{query}").json()
    assert [item["id"] for item in body["items"]] == ids and body["total"] == total


def test_listing_items_are_the_manifest_summaries(client, data):
    """The manifest's summaries without their captions (the gallery shows none; 50 captions are not sent)."""
    summaries = json.loads((data / "manifest.json").read_text())["paintings"]
    assert client.get(f"{P}?limit=200").json()["items"] == [{k: v for k, v in s.items() if k != "caption"}
                                                             for s in summaries]


def test_listing_category_counts_spans(tmp_path):
    """`category` keeps a painting only when its caption has a span of that category."""
    root = make_dataset(tmp_path / "cats", n_paintings=2, with_stats=False)
    record_path = root / "paintings/painting-1/record.json"
    record = json.loads(record_path.read_text())
    record["spans"] = [s for s in record["spans"] if s["category"] != "AFFECT"]
    for k, span in enumerate(record["spans"]):
        span["index"] = k
    record_path.write_text(json.dumps(record))
    from contract.store import Dataset
    Dataset(root).refresh_manifest(name="cats")
    client = TestClient(create_app([root]))
    assert [i["id"] for i in client.get("/api/datasets/cats/paintings?category=AFFECT").json()["items"]] == [
        "painting-0"]
    assert client.get("/api/datasets/cats/paintings?category=CVO").json()["total"] == 2


def test_images_maps_masks(client, data):
    folder = data / "paintings/painting-0"
    for url, kind, path in [(f"{P}/painting-0/canvas", "image/jpeg", "canvas.jpg"),
                            (f"{P}/painting-0/thumb", "image/jpeg", "thumb.jpg"),
                            (f"{P}/painting-0/tokens/3.png", "image/png", "tokens/3.png"),
                            (f"{P}/painting-0/spans/2.png", "image/png", "spans/2.png"),
                            (f"{P}/painting-0/spans/2/sam.png", "image/png", "sam/2.png")]:
        response = client.get(url, headers={"accept-encoding": "gzip"})
        assert response.status_code == 200 and response.headers["content-type"] == kind, url
        assert "content-encoding" not in response.headers  # images are not gzipped twice
        assert response.content == (folder / path).read_bytes()
    assert_error(client.get(f"{P}/painting-0/spans/3/sam.png"), 404, "not_found")  # SAM found nothing
    assert_error(client.get(f"{P}/painting-0/spans/5/sam.png"), 404, "not_found")  # STYLE: no SAM
    assert_error(client.get(f"{P}/painting-0/tokens/999.png"), 404, "not_found")
    assert_error(client.get(f"{P}/painting-0/spans/7.png"), 404, "not_found")


def test_unlocated_spans_are_served(tmp_path):
    """Imported spans the caption does not contain have no offsets (start = end = None)."""
    root = make_dataset(tmp_path / "unlocated", n_paintings=1, with_stats=False)
    path = root / "paintings/painting-0/record.json"
    record = json.loads(path.read_text())
    record["spans"][6].update(start=None, end=None, tokens=[], text="a feeling the caption never names")
    path.write_text(json.dumps(record))
    client = TestClient(create_app([root]))
    span = client.get("/api/datasets/unlocated/paintings/painting-0").json()["spans"][6]
    assert span["start"] is None and span["end"] is None and span["tokens"] == []
    assert client.get("/api/datasets/unlocated/paintings/painting-0/spans/6.png").status_code == 200
    # a phrase's words are searched too, located in the caption or not
    assert client.get("/api/datasets/unlocated/paintings?q=never names").json()["total"] == 1


def test_explorer_and_config(client):
    index = client.get("/")
    assert index.status_code == 200 and index.headers["content-type"] == "text/html; charset=utf-8"
    assert index.headers["cache-control"] == "no-cache"
    assert "<script" in index.text and "<script>" not in index.text  # no inline script
    asset = index.text.split('src="static/', 1)[1].split('"', 1)[0]  # js/app.js?v=<hash>
    assert "?v=" in asset
    js = client.get(f"/static/{asset}")
    assert js.status_code == 200 and js.headers["content-type"] == "text/javascript; charset=utf-8"
    assert js.headers["cache-control"] == IMMUTABLE
    assert js.content == (REPO / "frontend" / asset.split("?")[0]).read_bytes()
    assert client.get(f"/static/{asset.split('?')[0]}").headers["cache-control"] == "no-cache"  # unversioned
    assert client.get(f"/static/{asset.split('?')[0]}?v=stale").headers["cache-control"] == "no-cache"
    assert client.get("/static/css/app.css").headers["content-type"] == "text/css; charset=utf-8"
    assert client.get("/config.json").json() == {"mode": "api", "api": "api"}
    assert_error(client.get("/static/tests/lib.test.mjs"), 404, "not_found")  # not part of the explorer
    assert_error(client.get("/static/package.json"), 404, "not_found")


def test_openapi_and_offline_docs(client):
    schema = client.get("/openapi.json").json()
    assert "/api/datasets/{ds}/paintings/{pid}/spans/{i}/sam.png" in schema["paths"]
    record_200 = schema["paths"]["/api/datasets/{ds}/paintings/{pid}"]["get"]["responses"]["200"]
    assert record_200["content"]["application/json"]["schema"]["$ref"].endswith("/PaintingRecord")
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text and "<script>" not in docs.text
    assert "http" not in docs.text  # no CDN: every asset is served from here
    for src in [part.split('"', 1)[0] for part in docs.text.split('="docs-assets/')[1:]]:
        asset = client.get(f"/docs-assets/{src}")
        assert asset.status_code == 200 and asset.headers["cache-control"] == IMMUTABLE, src
    assert "script-src 'self';" in docs.headers["content-security-policy"]


# --- caching ------------------------------------------------------------------------------------

def test_etag_304_and_gzip(client):
    plain = client.get(f"{P}/painting-0", headers={"accept-encoding": "identity"})
    zipped = client.get(f"{P}/painting-0", headers={"accept-encoding": "gzip, br"})
    assert zipped.headers["content-encoding"] == "gzip" and "content-encoding" not in plain.headers
    assert zipped.json() == plain.json() and int(zipped.headers["content-length"]) < len(plain.content) / 2
    assert plain.headers["etag"] != zipped.headers["etag"]  # one strong tag per encoding
    assert plain.headers["vary"] == "accept-encoding" and plain.headers["cache-control"] == "no-cache"
    for tag in (zipped.headers["etag"], "W/" + zipped.headers["etag"], f'"nope", {zipped.headers["etag"]}', "*"):
        again = client.get(f"{P}/painting-0", headers={"if-none-match": tag, "accept-encoding": "gzip"})
        assert again.status_code == 304 and again.content == b"", tag
        assert again.headers["etag"] == zipped.headers["etag"]
    for tag in (plain.headers["etag"], "W/" + plain.headers["etag"]):
        assert client.get(f"{P}/painting-0", headers={"if-none-match": tag, "accept-encoding": "identity"}
                          ).status_code == 304
    # a tag matches only the variant it names: the client holding the other one gets the bytes
    assert client.get(f"{P}/painting-0", headers={"if-none-match": plain.headers["etag"],
                                                  "accept-encoding": "gzip"}).status_code == 200
    assert client.get(f"{P}/painting-0", headers={"if-none-match": zipped.headers["etag"],
                                                  "accept-encoding": "identity"}).status_code == 200
    assert client.get(f"{P}/painting-0", headers={"if-none-match": '"other"'}).status_code == 200
    assert client.get(f"{P}/painting-1", headers={"if-none-match": plain.headers["etag"]}).status_code == 200
    png = client.get(f"{P}/painting-0/spans/0.png")
    assert "vary" not in png.headers  # nothing to negotiate for an image
    assert client.get(f"{P}/painting-0/spans/0.png", headers={"if-none-match": png.headers["etag"]}).status_code == 304
    listing = client.get(f"{P}?q=harbour")
    assert client.get(f"{P}?q=harbour", headers={"if-none-match": listing.headers["etag"]}).status_code == 304


@pytest.mark.parametrize("accept, gzip", [
    ("gzip", True), ("GZIP;Q=0.5", True), ("deflate, gzip;q=0.001", True), ("x-gzip", True), ("*", True),
    ("br;q=1, *;q=0.2", True), ("", False), ("identity", False), ("br, deflate", False), ("gzipfoo", False),
    ("gzip;q=0", False), ("gzip; q=0.000", False), ("br, gzip;q=0", False), ("*;q=0", False),
    ("gzip;q=0, *", False),  # named with q=0: the wildcard does not bring it back
    ("gzip;q=1.5", False), ("gzip;q=abc", False),  # a malformed q-value drops its item (RFC 9110 12.4.2)
])
def test_accept_encoding_q_values(client, accept, gzip):
    response = client.get(f"{P}/painting-0", headers={"accept-encoding": accept})
    assert (response.headers.get("content-encoding") == "gzip") is gzip, accept
    assert response.json()["id"] == "painting-0"


def test_gzip_tag_is_no_304_for_a_client_refusing_gzip(client, data):
    zipped = client.get(f"{P}/painting-0", headers={"accept-encoding": "gzip"})
    refusing = client.get(f"{P}/painting-0", headers={"accept-encoding": "gzip;q=0",
                                                      "if-none-match": zipped.headers["etag"]})
    assert refusing.status_code == 200 and "content-encoding" not in refusing.headers
    assert refusing.json() == json.loads((data / "paintings/painting-0/record.json").read_text())


def test_openapi_schema_is_revalidated_with_its_etag(client):
    first = client.get("/openapi.json", headers={"accept-encoding": "identity"})
    assert first.status_code == 200 and first.headers["etag"] and first.headers["cache-control"] == "no-cache"
    again = client.get("/openapi.json", headers={"accept-encoding": "identity", "if-none-match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize("url", ["/api/datasets/fixture", "/api/datasets/fixture/stats", f"{P}?style=Realism",
                                 f"{P}/painting-2", f"{P}/painting-2/canvas", f"{P}/painting-2/thumb",
                                 f"{P}/painting-2/tokens/0.png", f"{P}/painting-2/spans/4.png",
                                 f"{P}/painting-2/spans/4/sam.png"])
def test_versioned_urls_are_immutable(client, version, url):
    join = "&" if "?" in url else "?"
    assert client.get(f"{url}{join}v={version}").headers["cache-control"] == IMMUTABLE
    assert client.get(url).headers["cache-control"] == "no-cache"
    assert client.get(f"{url}{join}v=0123456789abcdef0123").headers["cache-control"] == "no-cache"


def test_version_follows_content(tmp_path):
    """The version is the dataset's content version (contract/index.py): unchanged across restarts,
    another one when a writer replaces a record (files change with their record: contract/commit.py)."""
    from contract.commit import commit_painting
    from contract.store import Dataset

    root = make_dataset(tmp_path / "ds", n_paintings=2, with_stats=False)

    def version_of(root):
        return TestClient(create_app([root])).get("/api/datasets").json()["datasets"][0]["version"]

    first = version_of(root)
    assert version_of(root) == first
    ds = Dataset(root)
    record = ds.record("painting-1")
    commit_painting(ds, record, {"tokens/0.png": (root / "paintings/painting-1/tokens/1.png").read_bytes()})
    assert version_of(root) != first


def test_file_changed_or_deleted_after_startup(tmp_path):
    root = make_dataset(tmp_path / "live", n_paintings=1, with_stats=False)
    client = TestClient(create_app([root]))
    version = client.get("/api/datasets").json()["datasets"][0]["version"]
    base = "/api/datasets/live/paintings/painting-0"
    assert client.get(f"{base}/tokens/5.png?v={version}").headers["cache-control"] == IMMUTABLE  # checked now
    (root / "paintings/painting-0/tokens/0.png").write_bytes((root / "paintings/painting-0/tokens/1.png").read_bytes())
    changed = client.get(f"{base}/tokens/0.png?v={version}")
    assert changed.status_code == 200 and changed.headers["cache-control"] == "no-cache"  # not what v names
    (root / "paintings/painting-0/tokens/2.png").unlink()
    assert_error(client.get(f"{base}/tokens/2.png"), 404, "not_found")


# --- errors and security ------------------------------------------------------------------------

def test_errors_share_one_shape(client):
    assert_error(client.get("/api/datasets/nope"), 404, "not_found")
    assert_error(client.get("/api/datasets/nope/paintings"), 404, "not_found")
    assert_error(client.get(f"{P}/painting-99"), 404, "not_found")
    assert_error(client.get(f"{P}/painting-99/canvas"), 404, "not_found")
    assert_error(client.get("/api/nowhere"), 404, "not_found")
    assert_error(client.get("/static/nothing.js"), 404, "not_found")
    assert_error(client.get(f"{P}/bad$id"), 422, "invalid")
    assert_error(client.get(f"{P}/.hidden"), 422, "invalid")
    assert_error(client.get(f"{P}/{'a' * 300}"), 422, "invalid")
    assert_error(client.get(f"{P}/painting-0/tokens/-1.png"), 422, "invalid")
    assert_error(client.get(f"{P}/painting-0/tokens/x.png"), 422, "invalid")
    assert_error(client.get(f"{P}?limit=100000"), 422, "invalid")
    assert_error(client.get(f"{P}?limit=0"), 422, "invalid")
    assert_error(client.get(f"{P}?offset=-1"), 422, "invalid")
    assert_error(client.get(f"{P}?category=LANDSCAPE"), 422, "invalid")
    assert_error(client.get(f"{P}?q={'x' * 501}"), 422, "invalid")
    assert_error(client.get(f"{P}?q={'x' * 5000}"), 414, "uri_too_long")
    assert_error(client.get(f"/api/{'x' * 5000}"), 414, "uri_too_long")
    errors = client.get("/api/datasets/nope")
    assert errors.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("index", ["1_0", "+10", "10.0", "010", "1e1", "0x0a", "%2010", "10%20", "%D9%A1%D9%A0"])
def test_token_index_is_a_canonical_decimal(client, index):
    """docs/api.md: an index is 0-100000 in decimal; other spellings of 10 (the last: Arabic-Indic
    digits) are 422, not token 10."""
    assert client.get(f"{P}/painting-0/tokens/10.png").status_code == 200
    assert_error(client.get(f"{P}/painting-0/tokens/{index}.png"), 422, "invalid")
    assert_error(client.get(f"{P}/painting-0/spans/{index}/sam.png"), 422, "invalid")
    assert_error(client.get(f"{P}?limit={index}"), 422, "invalid")


@pytest.mark.parametrize("path, target", [
    ("/api/health/", "/api/health"), ("/api/datasets/fixture/stats/?x=1", "/api/datasets/fixture/stats?x=1"),
    ("/static", "/static/")])
def test_trailing_slash_redirect_is_relative(client, path, target):
    response = client.get(path, headers={"host": "attacker.example"}, follow_redirects=False)
    assert response.status_code == 307
    location = response.headers["location"]
    assert "attacker" not in location and "//" not in location and not location.startswith("/")
    assert urljoin(f"http://tamscope.test{path}", location) == f"http://tamscope.test{target}"
    assert client.get(path).url.path == target.split("?")[0]  # followed by a client
    assert_error(client.get("/api/health//", follow_redirects=False), 404, "not_found")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
@pytest.mark.parametrize("url", ["/api/health", f"{P}/painting-0", f"{P}/painting-0/canvas", "/", "/static/css/app.css"])
def test_wrong_methods(client, method, url):
    response = client.request(method, url, content=b"x" * 100)
    assert_error(response, 405, "method_not_allowed")
    assert {m.strip() for m in response.headers["allow"].split(",")} == {"GET", "HEAD"}  # HEAD is GET without a body


def test_head_is_get_without_body(client):
    get = client.get(f"{P}/painting-0/canvas")
    head = client.head(f"{P}/painting-0/canvas")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["etag"] == get.headers["etag"]
    assert client.head("/api/nowhere").status_code == 404


def test_unexpected_errors_keep_the_shape(data):
    app = create_app([data])
    app.state.catalog["fixture"].checked["painting-0"] = object()  # stands for a bug: no .record
    response = TestClient(app, raise_server_exceptions=False).get(f"{P}/painting-0")
    assert_error(response, 500, "internal")
    assert "Traceback" not in response.text and "AttributeError" not in response.text
    assert "default-src" in response.headers["content-security-policy"]


def test_security_headers_everywhere(client):
    for url in ["/", "/api/health", f"{P}/painting-0", f"{P}/painting-0/spans/0.png", "/api/nothing", "/docs",
                f"{P}?limit=0"]:
        headers = client.get(url).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self';" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp, url
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"


def raw_get(app, raw_path: bytes, query: bytes = b"", method: str = "GET"):
    """Call the ASGI app with a raw path: HTTP clients would normalise '..' away."""
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    from urllib.parse import unquote
    path = unquote(raw_path.decode("latin-1"))  # what uvicorn puts in scope["path"]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": raw_path, "query_string": query, "root_path": "",
             "headers": [(b"host", b"test")], "client": ("127.0.0.1", 1), "server": ("test", 80)}
    # in a thread of its own: the browser tests' Playwright keeps an event loop running in this one
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, app(scope, receive, send)).result()
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body


TRAVERSALS = [
    b"/static/../../../etc/passwd", b"/static/..%2f..%2f..%2fetc%2fpasswd", b"/static/%2e%2e/%2e%2e/etc/passwd",
    b"/static/%252e%252e/%252e%252e/etc/passwd", b"/static/..\\..\\etc\\passwd", b"/static//etc/passwd",
    b"/static/%2Fetc%2Fpasswd", b"/static/js/../../../backend/app.py", b"/static/../README.md",
    b"/api/datasets/fixture/paintings/../../../../etc/passwd",
    b"/api/datasets/fixture/paintings/..%2f..%2fmanifest.json", b"/api/datasets/..%2f..%2fetc/paintings",
    b"/api/datasets/%2Fetc%2Fpasswd", b"/api/datasets/fixture/paintings/%2Fetc%2Fpasswd/canvas",
    b"/api/datasets/fixture/paintings/painting-0%2f..%2f..%2fmanifest.json",
    b"/api/datasets/fixture/paintings/painting-0/canvas%00.png", b"/static/js/app.js%00",
    b"/api/datasets/fixture/paintings/painting-0/tokens/1.png/../../record.json",
    b"/api/datasets/fixture/paintings/painting-0/tokens/..%2f..%2f..%2fstats.png",
    b"/api/datasets/fixture/paintings/" + b"a" * 129, b"/api/datasets/" + b"b" * 5000,
    b"/" + b"a" * 10000, b"/docs-assets/..%2f..%2fapp.py", b"/docs-assets/%2e%2e",
]


@pytest.mark.parametrize("raw", TRAVERSALS)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_traversal_never_leaks_or_crashes(app, raw, method):
    status, body = raw_get(app, raw, method=method)
    assert status in (400, 404, 414, 422), (raw, status)
    if method == "GET":
        assert json.loads(body)["error"]["status"] == status
    assert b"root:" not in body and b"schema_version" not in body and b"import" not in body


@pytest.mark.parametrize("query", [b"q=" + b"x" * 5000, b"v=" + b"1" * 10000, b"a=1&" * 2000, b"q=%00",
                                   b"q=%ff%fe", b"limit=1e9", b"category=" + b"%00" * 50])
def test_odd_query_strings(app, query):
    status, body = raw_get(app, b"/api/datasets/fixture/paintings", query)
    assert status in (200, 414, 422), (query[:40], status)
    assert json.loads(body)


# --- startup ------------------------------------------------------------------------------------

def test_a_painting_is_checked_when_first_served(tmp_path):
    """Startup reads no record: a painting whose files break the contract is found when it is
    first asked for, answered 404 with the problem named, and the others are served."""
    root = make_dataset(tmp_path / "broken", n_paintings=3, with_stats=False)
    (root / "paintings/painting-1/spans/2.png").unlink()
    client = TestClient(create_app([root]))
    for url in ["/api/datasets/broken/paintings/painting-1", "/api/datasets/broken/paintings/painting-1/canvas"]:
        response = client.get(url)
        assert_error(response, 404, "not_found")
        assert "spans/2.png does not exist" in response.json()["error"]["message"]
    assert client.get("/api/datasets/broken/paintings/painting-2").status_code == 200


def test_first_serve_checks_each_file_as_validate_does_reading_it_once(tmp_path, monkeypatch):
    """The check of a painting's files on its first serve reads each file once (the same bytes are
    checked and hashed) and finds what `tamscope validate` finds: a map of the wrong size, a file
    that is not an image, something that is not a regular file."""
    import backend.catalog as catalog
    from contract.validate import validate_dataset

    root = make_dataset(tmp_path / "checked", n_paintings=4, with_stats=False)
    folder = root / "paintings"
    record = PaintingRecord.model_validate_json((folder / "painting-0/record.json").read_bytes())
    named = 2 + sum(t.map is not None for t in record.tokens) + sum(s.map is not None for s in record.spans) \
        + sum(s.sam is not None and s.sam.mask is not None for s in record.spans) \
        + sum(len(s.faithfulness.methods) for s in record.spans if s.faithfulness)
    reads = []
    real_read = catalog.read_dataset_file
    monkeypatch.setattr(catalog, "read_dataset_file", lambda r, rel: reads.append(rel) or real_read(r, rel))
    client = TestClient(create_app([root]))
    assert client.get("/api/datasets/checked/paintings/painting-0").status_code == 200
    assert len(reads) == len(set(reads)) == named + 1  # the record, then every file it names, once each
    reads.clear()
    for _ in range(2):
        assert client.get("/api/datasets/checked/paintings/painting-0/tokens/0.png").status_code == 200
    assert reads == ["paintings/painting-0/tokens/0.png"]  # checked already; read when served, then cached

    (folder / "painting-1/spans/2.png").write_bytes((folder / "painting-1/canvas.jpg").read_bytes())  # wrong size
    (folder / "painting-2/thumb.jpg").write_bytes(b"not an image at all")
    (folder / "painting-3/tokens/1.png").unlink()
    os.mkfifo(folder / "painting-3/tokens/1.png")  # a read would block: never opened as a regular file
    found = {v.location.split("/")[1]: v.message for v in validate_dataset(root) if v.location.startswith("paint")}
    client = TestClient(create_app([root]))
    for pid, expected in [("painting-1", "spans/2.png is "), ("painting-2", "thumb.jpg is not a readable image"),
                          ("painting-3", "tokens/1.png is not a regular file")]:
        message = client.get(f"/api/datasets/checked/paintings/{pid}").json()["error"]["message"]
        assert expected in message, message
        if pid != "painting-3":  # validate names the FIFO as it names a missing image
            assert found[pid] in message
    assert "expected" in found["painting-1"]

    # a map whose header claims 100,000 x 100,000 pixels: not an image, refused (404), never a 500
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)) \
        + chunk(b"IDAT", b"") + chunk(b"IEND", b"")
    (folder / "painting-0/spans/2.png").write_bytes(bomb)
    response = TestClient(create_app([root])).get("/api/datasets/checked/paintings/painting-0")
    assert response.status_code == 404 and "spans/2.png is not a readable image" in response.json()["error"]["message"]


def test_startup_refuses_unreadable_records_or_skips_bad(tmp_path):
    root = make_dataset(tmp_path / "broken", n_paintings=3, with_stats=False)
    (root / "paintings/painting-1/record.json").write_text('{"id": "painting-1", "tokens": 7}')
    with pytest.raises(StartupError, match="painting-1.*tokens"):
        create_app([root])
    app = create_app([root], skip_bad=True)
    assert list(app.state.catalog["broken"].skipped) == ["painting-1"]
    client = TestClient(app)
    ids = [item["id"] for item in client.get("/api/datasets/broken/paintings").json()["items"]]
    assert ids == ["painting-0", "painting-2"]
    assert client.get("/api/datasets/broken").json()["n_paintings"] == 2
    assert client.get("/api/datasets").json()["datasets"][0]["n_paintings"] == 2
    assert_error(client.get("/api/datasets/broken/paintings/painting-1"), 404, "not_found")
    with pytest.raises(StartupError, match="not a dataset folder"):
        create_app([tmp_path])


def test_startup_refuses_files_outside_the_dataset(tmp_path):
    root = make_dataset(tmp_path / "links", n_paintings=2, with_stats=False)
    secret = tmp_path / "secret.jpg"
    secret.write_bytes((root / "paintings/painting-0/canvas.jpg").read_bytes())
    canvas = root / "paintings/painting-0/canvas.jpg"
    canvas.unlink()
    canvas.symlink_to(secret)  # a link out of the painting folder
    client = TestClient(create_app([root]))  # found when the painting is first served
    assert_error(client.get("/api/datasets/links/paintings/painting-0/canvas"), 404, "not_found")
    assert "symbolic link" in client.get("/api/datasets/links/paintings/painting-0").json()["error"]["message"]
    assert client.get("/api/datasets/links/paintings/painting-1/canvas").status_code == 200


def test_files_replaced_by_links_after_startup_are_not_followed(tmp_path):
    """The catalog names files at startup; what is at those names when a request comes is read
    without following a link (to /etc, to a file of another painting, through a linked folder)."""
    root = make_dataset(tmp_path / "changing", n_paintings=2, with_stats=False)
    client = TestClient(create_app([root]))
    base = "/api/datasets/changing/paintings/painting-0"
    assert client.get(base).status_code == 200  # checked (its files named) before they change
    folder = root / "paintings/painting-0"
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"root:x:0:0 the secret")
    (folder / "thumb.jpg").unlink()
    (folder / "thumb.jpg").symlink_to(secret)
    (folder / "canvas.jpg").unlink()
    (folder / "canvas.jpg").symlink_to(root / "paintings/painting-1/canvas.jpg")  # inside the dataset: no link either
    outside_maps = tmp_path / "maps"
    (folder / "spans").rename(outside_maps)
    (folder / "spans").symlink_to(outside_maps)  # a linked folder on the way
    for url in [f"{base}/thumb", f"{base}/canvas", f"{base}/spans/2.png"]:
        response = client.get(url)
        assert_error(response, 404, "not_found")
        assert b"secret" not in response.content
    assert client.get("/api/datasets/changing/paintings/painting-1/canvas").status_code == 200
    assert client.get(f"{base}/tokens/0.png").content == (folder / "tokens/0.png").read_bytes()


def test_startup_refuses_a_painting_or_record_linked_out_of_the_dataset(tmp_path):
    import shutil

    root = make_dataset(tmp_path / "linked", n_paintings=3, with_stats=False)
    outside = tmp_path / "outside"
    shutil.copytree(root / "paintings/painting-0", outside / "painting-0")
    shutil.rmtree(root / "paintings/painting-0")
    (root / "paintings/painting-0").symlink_to(outside / "painting-0")
    record = root / "paintings/painting-2/record.json"
    (outside / "record.json").write_bytes(record.read_bytes())
    record.unlink()
    record.symlink_to(outside / "record.json")
    with pytest.raises(StartupError, match="painting-0.*symbolic link"):
        create_app([root])
    client = TestClient(create_app([root], skip_bad=True))
    assert [p["id"] for p in client.get("/api/datasets/linked/paintings").json()["items"]] == ["painting-1"]
    for pid in ("painting-0", "painting-2"):
        assert_error(client.get(f"/api/datasets/linked/paintings/{pid}"), 404, "not_found")
        assert_error(client.get(f"/api/datasets/linked/paintings/{pid}/canvas"), 404, "not_found")


def test_gallery_pages_and_files_share_the_cache_budget(tmp_path):
    """`--cache-mb` bounds everything kept: gallery pages push files out like files do. Seen from
    outside: a canvas changed on disk is served anew once enough gallery pages went through a
    1 MB cache (while cached, the old bytes would still be served)."""
    root = make_dataset(tmp_path / "budget", n_paintings=4, with_stats=False)
    client = TestClient(create_app([root], cache_mb=1))
    url = "/api/datasets/budget/paintings/painting-0/canvas"
    canvas = root / "paintings/painting-0/canvas.jpg"
    old = client.get(url).content
    assert old == canvas.read_bytes() and len(old) < 2**20
    canvas.write_bytes((root / "paintings/painting-1/canvas.jpg").read_bytes())
    assert client.get(url).content == old  # held in the cache
    served = 0
    for limit in range(1, 201):
        for sort in [f"{s}&order={o}" for s in ("order", "title", "artist", "year", "entropy", "gini", "top10", "iou")
                     for o in ("asc", "desc")]:
            served += len(client.get(f"/api/datasets/budget/paintings?sort={sort}&limit={limit}",
                                     headers={"accept-encoding": "identity"}).content)
        if served > 2 * 2**20:
            break
    assert served > 2 * 2**20, "not enough distinct pages to fill the budget"
    assert client.get(url).content == canvas.read_bytes() != old


def test_startup_refuses_a_broken_manifest_even_with_skip_bad(tmp_path):
    root = make_dataset(tmp_path / "badmanifest", n_paintings=1, with_stats=False)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["paintings"].append(dict(manifest["paintings"][0], id="ghost"))
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StartupError, match="ghost"):
        create_app([root], skip_bad=True)


def test_several_datasets(tmp_path):
    a = make_dataset(tmp_path / "one" / "same", n_paintings=1, with_stats=False)
    b = make_dataset(tmp_path / "two" / "same", n_paintings=2, with_stats=False)
    client = TestClient(create_app([a, b]))
    assert client.get("/api/health").json()["datasets"] == ["same", "same-2"]
    assert client.get("/api/datasets/same-2/paintings").json()["total"] == 2
    assert client.get("/api/datasets/same/paintings/painting-0").status_code == 200


def test_server_never_writes(data, client):
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in data.rglob("*")}
    for url in ["/api/datasets/fixture", f"{P}/painting-0", f"{P}/painting-0/canvas", "/api/health",
                "/api/datasets/fixture/stats", f"{P}?q=x", f"{P}/painting-0/spans/2/sam.png"]:
        client.get(url)
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in data.rglob("*")} == before


def test_server_does_not_import_torch(data):
    code = ("import sys; from backend.app import create_app; from backend import cli; "
            f"create_app([{str(data)!r}]); assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_one_log_line_per_request(client, caplog):
    caplog.set_level(logging.INFO, logger="tamscope.serve")
    client.get(f"{P}/painting-0")
    client.get("/api/nowhere")
    client.post("/api/health")
    lines = [r.getMessage() for r in caplog.records if r.name == "tamscope.serve"]
    assert len(lines) == 3, lines
    for line, (method, path, status) in zip(lines, [("GET", f"{P}/painting-0", 200), ("GET", "/api/nowhere", 404),
                                                     ("POST", "/api/health", 405)], strict=True):
        parts = line.split()
        assert parts[:3] == [method, path, str(status)] and parts[3].endswith("ms"), line
        assert float(parts[3][:-2]) >= 0
    caplog.clear()
    client.get("/api/x%0a2026-01-01 INFO GET /forged 200 1.0ms")  # a newline cannot forge a log line
    line, = [r.getMessage() for r in caplog.records if r.name == "tamscope.serve"]
    assert "\n" not in line and line.startswith("GET /api/x\\n2026") and line.split()[-2] == "404"


# --- fuzzing and real data ----------------------------------------------------------------------

def test_openapi_fuzz_no_server_errors(app):
    """Property-based fuzzing of every documented operation: never a 500, and every answer is
    one the schema documents (status, content type, JSON body against the contract's models)."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    for operation in schema.get_all_operations():
        op = operation.ok()

        @settings(max_examples=int(os.environ.get("TAMSCOPE_FUZZ_EXAMPLES", "30")), deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def check(case):
            case.call_and_validate(checks=checks)

        check()


def test_published_sample_served(tamart_dataset):
    client = TestClient(create_app([tamart_dataset]))
    listing = client.get("/api/datasets/tamart/paintings?q=van gogh").json()
    assert "0002_the-starry-night-1889" in [i["id"] for i in listing["items"]]
    record = client.get("/api/datasets/tamart/paintings/0002_the-starry-night-1889").json()
    assert record == json.loads((tamart_dataset / "paintings/0002_the-starry-night-1889/record.json").read_text())
    village = next(s for s in record["spans"] if s["text"] == "small village or town")
    mask = client.get(f"/api/datasets/tamart/paintings/0002_the-starry-night-1889/spans/{village['index']}/sam.png")
    assert mask.status_code == 200 and mask.headers["content-type"] == "image/png"
    for span in record["spans"]:  # every span map the record names is served (located in the caption or not)
        if span.get("map"):
            url = f"/api/datasets/tamart/paintings/0002_the-starry-night-1889/spans/{span['index']}.png"
            assert client.get(url).status_code == 200, span["text"]
    stats = client.get("/api/datasets/tamart/stats").json()
    assert stats == json.loads((tamart_dataset / "stats.json").read_text())
    manifest = json.loads((tamart_dataset / "manifest.json").read_text())
    assert stats["CVO"]["count"] == sum(p["categories"].get("CVO", 0) for p in manifest["paintings"])
    icon = client.get("/api/datasets/tamart/paintings?category=ICON&limit=200").json()
    assert icon["total"] == sum(bool(p["categories"].get("ICON")) for p in manifest["paintings"]) > 0
