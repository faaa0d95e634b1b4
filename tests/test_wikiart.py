"""`tamscope fetch-wikiart` against a local fake of WikiArt's API v2 (never the real one).

The fake pages the most-viewed listing with percent-encoded tokens (as WikiArt does), serves
painting details and images, and fails on demand (500, 429 with Retry-After, 404, the
"Free API limit exceeded" 500).
"""

from __future__ import annotations

import contextlib
import io
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
import pytest
from PIL import Image

from contract.names import slugify
from sources.download import Fetcher, retry_after_seconds
from sources.wikiart import fetch_wikiart, image_urls
from tamscope import cli
from tests.localhttp import LocalServer

API = "en/api/2/"


def image_bytes(fmt: str = "JPEG", size=(40, 30), color=(200, 120, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format=fmt)
    return buf.getvalue()


class FakeWikiArt:
    """Pages of `page_size`; tokens look like WikiArt's (base64, already percent-encoded)."""

    def __init__(self, page_size: int = 2):
        self.url = ""  # set once the server runs (image URLs are absolute)
        self.page_size = page_size
        self.paintings: list[dict] = []
        self.details: dict[str, dict] = {}
        self.images: dict[str, bytes] = {}  # unquoted path -> bytes
        self.faults: dict[str, list] = {}  # route key -> [fault per request]
        self.log: list[str] = []  # raw request targets
        self.agents: set[str] = set()
        self.times: list[float] = []

    def add(self, pid: str, title: str | None, artist: str | None, artist_url: str, url: str,
            year=None, styles=None, genres=None, image: str | None = "jpg", variant: bool = True,
            original: bool = True) -> None:
        path = f"/images/{artist_url}/{url}.{image}" if image else None
        record = {"id": pid, "title": title, "url": url, "artistUrl": artist_url, "artistName": artist,
                  "artistId": "a" + pid, "completitionYear": year, "width": 40, "height": 30,
                  "image": (self.url.rstrip("/") + path + f"!Large.{image}") if path else ""}
        self.paintings.append(record)
        if styles is not None or genres is not None:
            self.details[pid] = {**record, "styles": styles or [], "genres": genres or [], "media": []}
        if path and variant:
            self.images[path + f"!Large.{image}"] = image_bytes("PNG" if image == "png" else "JPEG")
        if path and original:
            self.images[path] = image_bytes("PNG" if image == "png" else "JPEG", size=(80, 60))

    @staticmethod
    def token(page: int) -> str:
        return f"cGFnZ{page}%2bx%2f%3d%3d"  # '+', '/', '=' escaped, as WikiArt sends them

    def requests(self, route: str) -> list[str]:
        return [r for r in self.log if urlsplit(r).path == route]

    def __call__(self, h) -> None:
        self.log.append(h.path)
        self.agents.add(h.headers.get("User-Agent", ""))
        self.times.append(time.monotonic())
        parts = urlsplit(h.path)
        path, raw_query = unquote(parts.path), parts.query
        query = parse_qs(raw_query)
        key = path if path.startswith("/images/") else path + ("?" + raw_query if "id=" in raw_query else "")
        fault = self.faults[key].pop(0) if self.faults.get(key) else None
        if fault == "quota":
            return h.send(500, b'{"Exception":{"Message":"Free API limit exceeded"}}')
        if isinstance(fault, tuple) and fault[0] == "retry-after":
            return h.send(fault[1], b"slow down", {"Retry-After": fault[2]})
        if isinstance(fault, int):
            return h.send(fault, b"error")
        if path == f"/{API}MostViewedPaintings":
            raw_token = next((p.split("=", 1)[1] for p in raw_query.split("&") if p.startswith("paginationToken=")),
                             None)
            pages = {self.token(n): n for n in range(2, 100)}
            if raw_token is not None and raw_token not in pages:  # re-encoded or invented: WikiArt 500s
                return h.send(500, b'{"Message":"bad token"}')
            page = pages.get(raw_token, 1)
            chunk = self.paintings[(page - 1) * self.page_size: page * self.page_size]
            more = page * self.page_size < len(self.paintings)
            body = {"data": chunk, "paginationToken": self.token(page + 1) if more else "", "hasMore": more}
            return h.send(200, orjson.dumps(body), {"Content-Type": "application/json"})
        if path == f"/{API}Painting":
            pid = query.get("id", [""])[0]
            if pid not in self.details:
                return h.send(404, b'{"Message":"Painting not found"}')
            return h.send(200, orjson.dumps(self.details[pid]))
        if path == f"/{API}login":
            return h.send(200, orjson.dumps({"SessionKey": "k123"}))
        if path in self.images:
            return h.send(200, self.images[path], {"Content-Type": "image/jpeg"})
        return h.send(404, b"not found")


@pytest.fixture
def fake():
    app = FakeWikiArt()
    with LocalServer(app) as srv:
        app.url = srv.url
        app.add("p1", "The Starry Night", "Vincent van Gogh", "vincent-van-gogh", "the-starry-night-1889",
                1889, ["Post-Impressionism"], ["landscape"])
        app.add("p2", "Mona Lisa", "Leonardo da Vinci", "leonardo-da-vinci", "mona-lisa", "1519",
                ["High Renaissance"], ["portrait"], variant=False)  # no !Large derivative: the original
        app.add("p3", "Untitled ", None, "anonymous", "untitled", None, None, None)  # no year, no details
        app.add("p4", "Town hall in Mödling", "Ferdinand Waldmüller", "ferdinand-georg-waldmuller",
                "the-town-hall-in-mödling-1842", 1842, [], ["cityscape", "architecture"], image="png")
        app.add("p5", "Lost", "Someone", "someone", "lost-1900", 1900, ["Realism"], ["genre painting"],
                variant=False, original=False)  # every variant 404s
        app.add("p6", "Sixth", "Other", "other", "sixth", 1901, ["Realism"], ["portrait"])
        yield app


def fetch(out: Path, top: int, fake: FakeWikiArt, **kw) -> dict:
    sleeps: list[float] = []
    fetcher = Fetcher(retries=2, backoff=0.01, timeout=5, sleep=sleeps.append)
    result = fetch_wikiart(out, top, fetcher, api=fake.url + API, **kw)
    result["sleeps"] = sleeps
    return result


def test_top_n_with_paging_and_missing_fields(fake, tmp_path):
    result = fetch(tmp_path, 5, fake)
    listing = fake.requests(f"/{API}MostViewedPaintings")
    assert len(listing) == 3  # pages of 2: three pages hold the top 5, the 4th is never asked for
    assert listing[1].endswith("paginationToken=" + fake.token(2))  # verbatim, not re-encoded
    rows = orjson.loads((tmp_path / "annotations.json").read_bytes())
    assert rows == [
        {"file": "vincent-van-gogh_the-starry-night-1889.jpg", "title": "The Starry Night",
         "artist": "Vincent van Gogh", "year": 1889, "style": "Post-Impressionism", "genre": "landscape"},
        {"file": "leonardo-da-vinci_mona-lisa.jpg", "title": "Mona Lisa", "artist": "Leonardo da Vinci",
         "year": 1519, "style": "High Renaissance", "genre": "portrait"},
        {"file": "anonymous_untitled.jpg", "title": "Untitled"},
        {"file": "ferdinand-georg-waldmuller_the-town-hall-in-modling-1842.png", "title": "Town hall in Mödling",
         "artist": "Ferdinand Waldmüller", "year": 1842, "genre": "cityscape, architecture"},
    ]
    for row in rows:
        with Image.open(tmp_path / row["file"]) as im:
            im.load()
    with Image.open(tmp_path / "leonardo-da-vinci_mona-lisa.jpg") as im:
        assert im.size == (80, 60)  # the original, since the !Large derivative is missing
    assert [e["rank"] for e in result["skipped"]] == [5]
    assert "404" in result["skipped"][0]["error"]
    assert not (tmp_path / "someone_lost-1900.jpg").exists()
    assert not list(tmp_path.glob("*.part*"))
    state = orjson.loads((tmp_path / "wikiart.json").read_bytes())
    assert [e["id"] for e in state["paintings"]] == ["p1", "p2", "p3", "p4", "p5"] and state["has_more"]


def test_input_folder_is_what_precompute_reads(fake, tmp_path):
    from contract.inputs import scan_input
    from contract.names import painting_id

    fetch(tmp_path, 4, fake)
    paintings = scan_input(tmp_path).paintings
    assert all(p.id == painting_id(p.path.name) for p in paintings)
    found = {p.path.stem: p.annotations for p in paintings}
    assert set(found) == {"vincent-van-gogh_the-starry-night-1889", "leonardo-da-vinci_mona-lisa",
                          "anonymous_untitled", "ferdinand-georg-waldmuller_the-town-hall-in-modling-1842"}
    assert found["leonardo-da-vinci_mona-lisa"].year == 1519
    assert found["anonymous_untitled"].artist is None and found["anonymous_untitled"].year is None


def test_http_errors_are_retried_and_retry_after_honoured(fake, tmp_path):
    fake.faults[f"/{API}MostViewedPaintings"] = [500]
    fake.faults[f"/{API}Painting?id=p2"] = [("retry-after", 429, "7")]
    fake.faults["/images/vincent-van-gogh/the-starry-night-1889.jpg!Large.jpg"] = [503, 502]
    result = fetch(tmp_path, 2, fake)
    assert len(fake.requests(f"/{API}MostViewedPaintings")) == 2
    assert 7.0 in result["sleeps"]  # waited as told
    assert len(fake.requests("/images/vincent-van-gogh/the-starry-night-1889.jpg!Large.jpg")) == 3
    assert result["skipped"] == [] and len(result["paintings"]) == 2


def test_an_image_failing_every_retry_is_skipped_and_reported(fake, tmp_path):
    fake.faults["/images/leonardo-da-vinci/mona-lisa.jpg"] = [500] * 10
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["fetch-wikiart", str(tmp_path), "--top", "3", "--api", fake.url + API,
                         "--delay", "0", "--retries", "0"])
    assert code == 0
    text = out.getvalue()
    assert "fetch-wikiart: 2 paintings" in text and "skipped 1" in text
    assert "#2 'Mona Lisa' (p2)" in text and "HTTP 500" in text


def test_quota_exceeded_stops_at_once_with_a_clear_message(fake, tmp_path):
    fake.faults[f"/{API}MostViewedPaintings"] = ["quota"] * 10
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["fetch-wikiart", str(tmp_path), "--top", "3", "--api", fake.url + API, "--delay", "0"])
    assert code == 1
    assert len(fake.requests(f"/{API}MostViewedPaintings")) == 1  # no hammering a wall
    assert "Free API limit exceeded" in out.getvalue() and "run the same command again" in out.getvalue()


def test_resumes_without_listing_again_and_skips_done_images(fake, tmp_path):
    fetch(tmp_path, 5, fake)
    before = len(fake.log)
    again = fetch(tmp_path, 5, fake)
    # nothing listed or fetched again; only the painting whose image was missing is retried
    assert [urlsplit(r).path for r in fake.log[before:]] == ["/images/someone/lost-1900.jpg!Large.jpg",
                                                             "/images/someone/lost-1900.jpg"]
    assert again["new"] == 0 and len(again["paintings"]) == 4

    (tmp_path / "leonardo-da-vinci_mona-lisa.jpg").unlink()
    fake.images["/images/someone/lost-1900.jpg"] = image_bytes()  # it came back
    before = len(fake.log)
    again = fetch(tmp_path, 5, fake)
    assert again["new"] == 2 and again["skipped"] == []
    assert len(fake.requests(f"/{API}MostViewedPaintings")) == 3  # still only the first run's pages
    assert [e["file"] for e in orjson.loads((tmp_path / "annotations.json").read_bytes())][-1] == \
        "someone_lost-1900.jpg"

    # asking for more than was listed lists again (and keeps what is done)
    before = len(fake.log)
    more = fetch(tmp_path, 6, fake)
    assert len(more["paintings"]) == 6 and more["new"] == 1
    assert len([r for r in fake.log[before:] if "/images/" in r]) == 1


def test_user_annotations_of_other_files_are_kept(fake, tmp_path):
    (tmp_path / "annotations.json").write_bytes(orjson.dumps({"my-own": {"title": "Mine"}}))
    fetch(tmp_path, 1, fake)
    rows = orjson.loads((tmp_path / "annotations.json").read_bytes())
    assert rows[0] == {"file": "my-own", "title": "Mine"} and len(rows) == 2


def test_login_key_is_sent_with_api_calls(fake, tmp_path):
    fetch(tmp_path, 1, fake, login=("acc", "sec"))
    assert "authSessionKey=k123" in fake.requests(f"/{API}MostViewedPaintings")[0]
    assert "authSessionKey=k123" in fake.requests(f"/{API}Painting")[0]


def test_polite_delay_between_requests(fake, tmp_path, monkeypatch):
    # the delay is the client's promise, so the request starts are read on the client: when the
    # server saw them also depends on how busy the machine was
    starts, urlopen = [], urllib.request.urlopen
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: starts.append(time.monotonic()) or urlopen(*a, **k))
    fetcher = Fetcher(retries=0, timeout=5, delay=0.2)
    fetch_wikiart(tmp_path, 1, fetcher, api=fake.url + API)
    # three requests (listing, details, image), at least the delay apart
    assert fetcher.requests == 3 and len(fake.times) == 3 and len(starts) == 3
    assert all(b - a >= 0.2 for a, b in zip(starts, starts[1:], strict=False))
    assert len(fake.agents) == 1 and fake.agents.pop().startswith("tamscope/")


def test_helpers():
    assert image_urls("https://uploads.wikiart.org/images/a/the-town-hall-in-mödling-1842.jpg!Large.jpg") == [
        "https://uploads.wikiart.org/images/a/the-town-hall-in-m%C3%B6dling-1842.jpg!Large.jpg",
        "https://uploads.wikiart.org/images/a/the-town-hall-in-m%C3%B6dling-1842.jpg"]
    assert image_urls("https://x/y.png") == ["https://x/y.png"]
    assert slugify("ferdinand_the-town-hall-in-mödling-1842") == "ferdinand_the-town-hall-in-modling-1842"
    assert retry_after_seconds("12") == 12.0 and retry_after_seconds(None) is None
    assert 0 <= retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") < 1  # a past date: no wait
