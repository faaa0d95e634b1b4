"""`tamscope demo`'s downloader, for real, against a local server publishing the reference sample.

The server (tests/localhttp.py) serves ../shared/reference/tamart-site-sample under /tamart/
like GitHub Pages (ETag, Range), records every request and can drop a connection, serve
corrupt bytes or fail on demand. Nothing here contacts the internet.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import socket
import sys
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import orjson
import pytest

from backend import demo
from contract.store import Dataset
from contract.validate import validate_dataset
from sources import tamart_import, tamart_site
from sources.download import Fetcher, TooLarge, Unreachable
from sources.tamart_site import SiteMirror, check_cache
from tamscope import cli
from testkit.net import free_port
from tests.localhttp import LocalServer
from tests.sitecopy import mini_site

STARRY, SUNRISE = "0002_the-starry-night-1889", "0010_impression-sunrise"
INDEX = "assets/data/index.json"
IMG = "assets/img/0010_impression-sunrise.jpg"
JSON = "assets/data/paintings/0010_impression-sunrise.json"
MASK = "assets/masks/0010_impression-sunrise__1.png"


class Site:
    """The project page as GitHub Pages serves it, plus faults: {path: [fault per request]}."""

    def __init__(self, root: Path, ranges: bool = True):
        self.root, self.ranges = root, ranges
        self.faults: dict[str, list] = {}
        self.log: list[tuple[str, dict]] = []

    def requests_for(self, rel: str) -> list[dict]:
        return [headers for path, headers in self.log if path == rel]

    def __call__(self, h) -> None:
        rel = urlsplit(h.path).path.removeprefix("/tamart/")
        self.log.append((rel, dict(h.headers)))
        fault = self.faults[rel].pop(0) if self.faults.get(rel) else None
        path = self.root / rel
        if fault == 500:
            return h.send(500, b"busy")
        if not path.is_file() or ".." in rel:
            return h.send(404, b"not found")
        data = path.read_bytes()
        etag = '"' + hashlib.sha1(data).hexdigest() + '"'
        if fault == "truncate":  # half the file, announced as complete
            data = data[: len(data) // 2]
        elif fault == "garbage":  # right length, wrong bytes
            data = bytes(len(data))
        elif fault == "badjson":
            data = b'{"stem": "0010_impression-sunrise", "caption": '
        want = h.headers.get("Range")
        if want and self.ranges and h.headers.get("If-Range", etag) == etag:
            start = int(want.removeprefix("bytes=").split("-")[0])
            return h.send(206, data[start:], {"ETag": etag,
                                              "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"})
        stop = fault[1] if isinstance(fault, tuple) and fault[0] == "drop" else None
        return h.send(200, data, {"ETag": etag}, stop_after=stop)


def site_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def run_demo(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["demo", *argv, "--no-serve"])
    return code, out.getvalue()


def fast_fetcher(retries: int = 3) -> Fetcher:
    return Fetcher(retries=retries, backoff=0.0, timeout=5.0)


@pytest.fixture
def mini(tamart_sample, tmp_path) -> SimpleNamespace:
    root = mini_site(tamart_sample, tmp_path / "site", ["0010_impression-sunrise", "0002_the-starry-night-1889"])
    return SimpleNamespace(root=root, cache=tmp_path / "cache")


# the whole sample, downloaded and imported once for this module ------------------------------
@pytest.fixture(scope="module")
def published(tamart_sample, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    site = Site(tamart_sample)
    with LocalServer(site) as srv:
        args = ["--base-url", srv.url + "tamart/", "--cache", str(tmp / "cache"), "--out", str(tmp / "tamart")]
        code, output = run_demo(*args)
        yield SimpleNamespace(site=site, args=args, code=code, output=output, cache=tmp / "cache",
                              out=tmp / "tamart")


def test_download_and_import_give_a_valid_dataset(published, tamart_sample):
    assert published.code == 0, published.output
    assert site_files(published.cache) == site_files(tamart_sample)  # every file, byte for byte
    assert not list(published.cache.rglob("*.part*"))
    assert validate_dataset(published.out) == []
    assert len(Dataset(published.out).painting_ids()) == 30
    assert f"would serve {published.out}" in published.output.splitlines()[-1]
    agents = {headers.get("User-Agent", "") for _, headers in published.site.log}
    assert all(a.startswith("tamscope/") for a in agents)


def test_second_run_downloads_and_imports_nothing(published):
    before = len(published.site.log)
    manifest = published.out / "manifest.json"
    stamp = manifest.stat().st_mtime_ns
    code, output = run_demo(*published.args)
    assert code == 0, output
    assert len(published.site.log) == before  # not a single request
    assert "already downloaded" in output and "up to date" in output
    assert manifest.stat().st_mtime_ns == stamp

    # a file lost from the cache: only that file is fetched again; same bytes -> no re-import
    (published.cache / IMG).unlink()
    code, output = run_demo(*published.args)
    assert code == 0, output
    assert [path for path, _ in published.site.log[before:]] == [IMG]
    assert "downloaded 1 files" in output and "up to date" in output
    assert manifest.stat().st_mtime_ns == stamp


def test_changed_download_is_reimported(mini, tmp_path):
    out = tmp_path / "tamart"
    with LocalServer(Site(mini.root)) as srv:
        args = ("--base-url", srv.url + "tamart/", "--cache", str(mini.cache), "--out", str(out))
        code, output = run_demo(*args)
        assert code == 0 and f"imported: {out}" in output
        assert Dataset(out).record("0010_impression-sunrise").annotations.title == "Impression, sunrise"
        # the authors correct a painting; the cached copy is gone (say, deleted by hand)
        data = orjson.loads((mini.root / JSON).read_bytes())
        (mini.root / JSON).write_bytes(orjson.dumps({**data, "gt_title": "Impression, Sunrise"}))
        (mini.cache / JSON).unlink()
        code, output = run_demo(*args)
    assert code == 0 and "downloaded 1 files" in output and f"imported: {out}" in output, output
    assert Dataset(out).record("0010_impression-sunrise").annotations.title == "Impression, Sunrise"
    assert validate_dataset(out) == []
    assert not list(tmp_path.glob(".tamart.*"))  # the temporary folders are gone


def test_a_changed_importer_imports_again(mini, tmp_path, monkeypatch):
    out = tmp_path / "tamart"
    with LocalServer(Site(mini.root)) as srv:
        args = ("--base-url", srv.url + "tamart/", "--cache", str(mini.cache), "--out", str(out))
        assert f"imported: {out}" in run_demo(*args)[1]
        assert f"up to date: {out}" in run_demo(*args)[1]
        monkeypatch.setattr(tamart_import, "IMPORTER_VERSION", tamart_import.IMPORTER_VERSION + 1)
        assert f"imported: {out}" in run_demo(*args)[1]  # what an import writes has changed


def test_imported_dataset_credits_the_authors(published):
    credit = Dataset(published.out).manifest().attribution
    assert credit.licence == "MIT"  # shared/reference/README.md: "MIT licence"
    assert credit.url == "https://nicolafan.github.io/tamart/"  # their project page
    assert all(name in credit.text for name in ("Fanelli", "De Marinis", "Scaringi", "Cetinic", "Vessio", "Castellano"))


def test_demo_site_is_never_built_offline(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/tamart/"
    code, output = run_demo("--base-url", url, "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "out"),
                            "--site", str(tmp_path / "site"))
    assert code == 2 and "not built without the published dataset" in output, output
    assert not (tmp_path / "site").exists()


# faults ------------------------------------------------------------------------------------
@pytest.mark.parametrize("ranges", [True, False], ids=["range-resume", "no-range-restart"])
def test_dropped_connection_is_resumed(mini, ranges):
    site = Site(mini.root, ranges=ranges)
    site.faults[IMG] = [("drop", 50_000)]
    with LocalServer(site) as srv:
        result = SiteMirror(srv.url + "tamart/", mini.cache, fast_fetcher()).run()
    assert (mini.cache / IMG).read_bytes() == (mini.root / IMG).read_bytes()
    first, second = site.requests_for(IMG)
    assert "Range" not in first and second["Range"] == "bytes=50000-"
    assert second["If-Range"].startswith('"')  # only splice onto the same version of the file
    total = sum(map(len, site_files(mini.root).values()))
    assert result.bytes == (total if ranges else total + 50_000)  # resumed, or restarted from zero
    assert site_files(mini.cache) == site_files(mini.root)


def test_partial_file_of_an_earlier_run_is_resumed(mini):
    site = Site(mini.root)
    data = (mini.root / IMG).read_bytes()
    part = mini.cache / (IMG + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:1000])
    Path(str(part) + ".etag").write_text('"' + hashlib.sha1(data).hexdigest() + '"')
    with LocalServer(site) as srv:
        SiteMirror(srv.url + "tamart/", mini.cache, fast_fetcher()).run()
    assert [h["Range"] for h in site.requests_for(IMG)] == ["bytes=1000-"]
    assert (mini.cache / IMG).read_bytes() == data and not part.exists()


def test_partial_file_of_another_version_is_restarted(mini):
    site = Site(mini.root)
    part = mini.cache / (IMG + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 1000)
    Path(str(part) + ".etag").write_text('"an older version"')
    with LocalServer(site) as srv:
        SiteMirror(srv.url + "tamart/", mini.cache, fast_fetcher()).run()
    assert len(site.requests_for(IMG)) == 1  # If-Range did not match: the server sent it all
    assert (mini.cache / IMG).read_bytes() == (mini.root / IMG).read_bytes()


@pytest.mark.parametrize("fault", ["truncate", "garbage", 500])
def test_bad_answer_once_is_retried(mini, fault):
    site = Site(mini.root)
    site.faults[IMG] = [fault]
    with LocalServer(site) as srv:
        SiteMirror(srv.url + "tamart/", mini.cache, fast_fetcher()).run()
    assert len(site.requests_for(IMG)) == 2
    assert (mini.cache / IMG).read_bytes() == (mini.root / IMG).read_bytes()


# one bad file: recorded, the rest goes on ------------------------------------------------------
def files_of(root: Path, stem: str) -> dict[str, bytes]:
    return {rel: data for rel, data in site_files(root).items() if stem in rel}


@pytest.mark.parametrize("path, fault, reason", [
    (IMG, "truncate", "not a readable image"),
    (MASK, "garbage", "not a readable image"),
    (JSON, "badjson", "not valid JSON"),
    (MASK, 500, "HTTP 500"),
])
def test_a_bad_file_is_recorded_and_the_rest_is_downloaded(mini, path, fault, reason):
    site = Site(mini.root)
    site.faults[path] = [fault] * 10
    with LocalServer(site) as srv:
        result = SiteMirror(srv.url + "tamart/", mini.cache, fast_fetcher(retries=2)).run()
        assert list(result.left_out) == [SUNRISE]
        why = result.left_out[SUNRISE]
        assert why.startswith(path) and reason in why and "after 3 attempts" in why, why
        assert len(site.requests_for(path)) == 3
        assert not (mini.cache / path).exists() and not list(mini.cache.rglob("*.part"))
        # the other painting is complete, byte for byte, and is what the result lists
        starry = files_of(mini.root, STARRY)
        assert files_of(mini.cache, STARRY) == starry
        assert set(result.files) == {INDEX, *starry}
        assert check_cache(mini.cache, srv.url + "tamart/")[0] is None  # not complete: no request-free start

        # the next run fetches what is still missing, and only that
        site.faults.clear()
        cached = set(site_files(mini.cache))
        before = len(site.log)
        again = SiteMirror(srv.url + "tamart/", mini.cache, fast_fetcher()).run()
    assert again.left_out == {} and site_files(mini.cache) == site_files(mini.root)
    assert {rel for rel, _ in site.log[before:]} == set(site_files(mini.root)) - cached


def test_a_missing_file_is_named_with_the_painting_json_that_names_it(mini):
    (mini.root / MASK).unlink()
    site = Site(mini.root)
    with LocalServer(site) as srv:
        result = SiteMirror(srv.url + "tamart/", mini.cache, fast_fetcher()).run()
    assert list(result.left_out) == [SUNRISE]
    assert result.left_out[SUNRISE].startswith(f"{MASK} (named by {JSON}): HTTP 404")
    assert len(site.requests_for(MASK)) == 1  # a 404 is not retried
    assert files_of(mini.cache, STARRY) == files_of(mini.root, STARRY)


def test_a_file_over_the_size_limit_is_refused_without_retrying(mini, monkeypatch):
    starry_image = f"assets/img/{STARRY}.jpg"
    limit = 200_000
    sizes = {rel: len(data) for rel, data in site_files(mini.root).items()}
    assert sizes[starry_image] > limit and max(v for k, v in sizes.items() if k != starry_image) <= limit
    monkeypatch.setattr(tamart_site, "MAX_FILE_BYTES", limit)
    site = Site(mini.root)
    with LocalServer(site) as srv:
        result = SiteMirror(srv.url + "tamart/", mini.cache, fast_fetcher()).run()
    assert list(result.left_out) == [STARRY]
    assert "larger than the 200,000-byte limit" in result.left_out[STARRY]
    assert len(site.requests_for(starry_image)) == 1
    assert not list(mini.cache.rglob("*.part*")) and not (mini.cache / starry_image).exists()
    assert files_of(mini.cache, SUNRISE) == files_of(mini.root, SUNRISE)


def test_a_body_without_length_is_cut_at_the_size_limit(tmp_path):
    def endless(h):  # no Content-Length: the body ends when the server closes the connection
        h.send_response(200)
        h.end_headers()
        for _ in range(100):
            h.wfile.write(b"x" * 10_000)
        h.close_connection = True

    fetcher = fast_fetcher()
    with LocalServer(endless) as srv, pytest.raises(TooLarge, match="10,000-byte limit"):
        fetcher.download(srv.url + "big", tmp_path / "big", max_bytes=10_000)
    assert fetcher.requests == 1 and list(tmp_path.iterdir()) == []


def test_a_cached_file_whose_bytes_changed_is_fetched_again(mini):
    site = Site(mini.root)
    with LocalServer(site) as srv:
        SiteMirror(srv.url + "tamart/", mini.cache, fast_fetcher()).run()
        damaged = bytearray((mini.cache / IMG).read_bytes())
        damaged[5000:5010] = bytes(10)  # same size, other bytes: only the SHA-256 tells
        (mini.cache / IMG).write_bytes(bytes(damaged))
        before = len(site.log)
        result = SiteMirror(srv.url + "tamart/", mini.cache, fast_fetcher()).run()
    assert [rel for rel, _ in site.log[before:]] == [IMG]
    assert site_files(mini.cache) == site_files(mini.root) and result.left_out == {}


def test_index_entries_that_are_not_ids_do_not_stop_the_download(mini, tmp_path):
    index = orjson.loads((mini.root / INDEX).read_bytes())
    index["paintings"] += [{"stem": "../../x"}, {"stem": STARRY + "\n"}, {"stem": STARRY.upper()}]
    (mini.root / INDEX).write_bytes(orjson.dumps(index))
    site = Site(mini.root)
    with LocalServer(site) as srv:
        code, output = run_demo("--base-url", srv.url + "tamart/", "--cache", str(mini.cache),
                                "--out", str(tmp_path / "out"))
    assert code == 0, output
    assert {rel for rel, _ in site.log} == set(site_files(mini.root))  # nothing else was asked for
    assert Dataset(tmp_path / "out").painting_ids() == [STARRY, SUNRISE]
    assert "3 failed:" in output and "'../../x' is not a valid painting id" in output


def test_demo_serves_the_complete_paintings_and_names_the_ones_left_out(mini, tmp_path):
    site = Site(mini.root)
    site.faults[JSON] = ["badjson"] * 10
    out = tmp_path / "out"
    args = ("--base-url", None, "--cache", str(mini.cache), "--out", str(out), "--retries", "0")
    with LocalServer(site) as srv:
        args = (args[0], srv.url + "tamart/", *args[2:])
        code, output = run_demo(*args)
        assert code == 0, output
        summary = [line for line in output.splitlines() if line.startswith("demo:") and "left out" in line]
        assert len(summary) == 1, output
        assert summary[0].startswith(f"demo: 1 of 2 paintings left out, their download failed: {SUNRISE} "
                                     f"({JSON}: not valid JSON (")
        assert summary[0].endswith("(after 1 attempt)) (run the same command again to retry them)")
        assert Dataset(out).painting_ids() == [STARRY] and validate_dataset(out) == []
        assert list(Dataset(out).manifest().provenance["left_out"]) == [SUNRISE]
        assert output.splitlines()[-1] == f"demo: --no-serve: would serve {out} and {demo.SMOKE}"

        site.faults.clear()  # the server is well again: the painting arrives
        code, output = run_demo(*args)
    assert code == 0 and "left out" not in output and f"imported: {out}" in output, output
    assert Dataset(out).painting_ids() == [STARRY, SUNRISE] and validate_dataset(out) == []


def test_demo_with_no_complete_painting_fails(mini, tmp_path):
    site = Site(mini.root)
    for stem in (STARRY, SUNRISE):
        site.faults[f"assets/data/paintings/{stem}.json"] = ["badjson"] * 10
    with LocalServer(site) as srv:
        code, output = run_demo("--base-url", srv.url + "tamart/", "--cache", str(mini.cache),
                                "--out", str(tmp_path / "out"), "--retries", "0")
    assert code == 1
    assert "2 of 2 paintings left out" in output and "no painting could be downloaded completely" in output
    assert not (tmp_path / "out").exists()


def test_a_file_named_twice_is_fetched_once(mini):
    data = orjson.loads((mini.root / JSON).read_bytes())
    data["spans"][2]["sam"] = data["spans"][1]["sam"]  # two spans, one mask
    (mini.root / JSON).write_bytes(orjson.dumps(data))
    site = Site(mini.root)
    with LocalServer(site) as srv:
        SiteMirror(srv.url + "tamart/", mini.cache, fast_fetcher()).run()
    assert len(site.requests_for(MASK)) == 1


def test_unsafe_names_in_the_data_are_refused(mini):
    data = orjson.loads((mini.root / JSON).read_bytes())
    data["spans"][1]["sam"] = "../../../escape.png"
    (mini.root / JSON).write_bytes(orjson.dumps(data))
    with LocalServer(Site(mini.root)) as srv:
        result = SiteMirror(srv.url + "tamart/", mini.cache, fast_fetcher(retries=0)).run()
    assert list(result.left_out) == [SUNRISE] and "is not a plain name" in result.left_out[SUNRISE]
    assert not (mini.cache.parent / "escape.png").exists()


# offline -------------------------------------------------------------------------------------
def test_offline_says_so_in_one_line_and_serves_the_smoke_dataset(tmp_path, monkeypatch):
    smoke = tmp_path / "smoke"
    smoke.mkdir()
    monkeypatch.setattr(demo, "SMOKE", smoke)
    url = f"http://127.0.0.1:{free_port()}/tamart/"
    code, output = run_demo("--base-url", url, "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "out"))
    assert code == 0
    lines = output.splitlines()
    assert len(lines) == 2, output
    assert lines[0].startswith(f"demo: offline (cannot reach {url}") and "smoke dataset instead" in lines[0]
    assert lines[1] == f"demo: --no-serve: would serve {smoke}"


def test_silent_host_is_unreachable_after_the_timeout():
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/x"
        with pytest.raises(Unreachable):
            Fetcher(retries=0, timeout=0.3).get(url)


@pytest.mark.skipif(sys.platform != "linux", reason="stopping a listening socket with shutdown() is Linux behaviour")
def test_lost_connection_after_contact_is_a_failure_not_offline(mini, tmp_path):
    site = Site(mini.root)
    with LocalServer(site) as srv:
        def vanish_after_index(h):
            # this answer (the index) goes through; later connections are refused (shutdown stops a
            # listening socket at once on Linux; close alone waits for the server's poll to return)
            srv.httpd.socket.shutdown(socket.SHUT_RDWR)
            site(h)

        srv.httpd.RequestHandlerClass.app = staticmethod(vanish_after_index)
        code, output = run_demo("--base-url", srv.url + "tamart/", "--cache", str(mini.cache),
                                "--out", str(tmp_path / "out"), "--retries", "0")
    assert code == 1 and "offline" not in output, output
    assert "download failed" in output and "Connection refused" in output
    assert (mini.cache / "assets/data/index.json").is_file()  # kept for the next run
