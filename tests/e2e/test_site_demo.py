"""The hosted demo as `make site-demo` builds it (`tamscope demo --site`, what pages.yml
publishes): the authors' published data, downloaded and imported as `make demo` does from a
local copy of their page (the reference sample), plus the embedded smoke dataset, served by a
plain file server under a sub-path as GitHub Pages serves a project site.

Every internal link and asset is followed (pages, explorer files, config, manifests, records
and the files they name, preview images): none is missing and none points off the site except
the authors' credit. Then Chromium: the explorer on the front page and on paintings' own
pages, every request inside the site and answered, the credits on every page, and a painting's
page read with JavaScript off."""

from __future__ import annotations

import contextlib
import io
import json
import re
import urllib.error
import urllib.request
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin

import pytest

from tamscope import cli
from testkit import REPO
from testkit.harness import ARTIFACTS, static_server
from tests.e2e.conftest import close_tab, open_tab
from tests.e2e.explorer import span_button, wait_drawn

pytestmark = pytest.mark.e2e
CREDIT = "https://nicolafan.github.io/tamart/"  # the one link off the site: the authors' page
PAINTING = "0010_impression-sunrise"


class Links(HTMLParser):
    def __init__(self, html: str):
        super().__init__()
        self.found: list[tuple[str, str]] = []  # (what, url)
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("a", "link") and a.get("href"):
            self.found.append((f"{tag}:{a.get('rel', '')}", a["href"]))
        if tag in ("img", "script") and a.get("src"):
            self.found.append((tag, a["src"]))
        if tag == "meta" and (a.get("property") or a.get("name") or "").endswith((":image", ":url")):
            self.found.append(("meta", a["content"]))


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


@pytest.fixture(scope="module")
def demo_site(tamart_sample, tmp_path_factory):
    """(host root, the site's folder) built by `tamscope demo --site` from the sample on a local server."""
    tmp = tmp_path_factory.mktemp("site-demo")
    host_root = tmp / "host"
    with static_server(tamart_sample) as authors_page, static_server(host_root) as host:
        base = host + "tamscope/"  # where the site will be, as GitHub Pages serves a project site
        said = io.StringIO()
        with contextlib.redirect_stdout(said):
            code = cli.main(["demo", "--base-url", authors_page, "--cache", str(tmp / "cache"),
                             "--out", str(tmp / "tamart"), "--site", str(host_root / "tamscope"), "--site-url", base])
        assert code == 0, said.getvalue()
        yield base, host_root / "tamscope"


def test_every_internal_link_and_asset_resolves(demo_site):
    base, folder = demo_site
    config = json.loads((folder / "config.json").read_text())
    assert [d["id"] for d in config["datasets"]] == ["tamart", "smoke"] and config["pages"] is True
    seen: set[str] = set()
    external: list[tuple[str, str]] = []
    todo = [base]
    while todo:  # every page and everything a page names
        url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        body = fetch(url)  # raises on a 404
        if not (url.endswith(".html") or url.endswith("/")):
            continue
        for what, link in Links(body.decode()).found:
            target = urldefrag(urljoin(url, link)).url
            if link.startswith("data:"):
                continue
            if not target.startswith(base):
                external.append((what, target))
            else:
                todo.append(target.split("?", 1)[0])  # "./?view=dashboard" is the explorer's page
    assert {t for _, t in external} == {CREDIT} and all(w == "a:external" for w, _ in external)
    records = {ds["id"]: json.loads(fetch(base + ds["path"] + "/manifest.json"))["paintings"]
               for ds in config["datasets"]}
    assert len(records["tamart"]) == 30 and len(records["smoke"]) == 4
    # the front page links every painting's page, and the pages link back
    assert {u for u in seen if u.endswith(".html")} == {f"{base}{ds}~{p['id']}.html" for ds, ps in records.items()
                                                        for p in ps}
    assert base in seen
    for ds in config["datasets"]:  # what the explorer fetches as it runs
        root = base + ds["path"] + "/"
        if ds["stats"]:
            fetch(root + "stats.json")
        for summary in records[ds["id"]]:
            folder_url = f"{root}paintings/{summary['id']}/"
            record = json.loads(fetch(folder_url + "record.json"))
            named = [record["canvas"]["path"], record["thumb"]["path"]]
            named += [x["map"]["png"] for x in record["tokens"] + record["spans"] if x.get("map")]
            named += [s["sam"]["mask"] for s in record["spans"] if (s.get("sam") or {}).get("mask")]
            for rel in named:
                fetch(folder_url + rel)
    with pytest.raises(urllib.error.HTTPError):  # the check can fail: a missing file is a 404
        fetch(base + "tamart~no-such-painting.html")


def hrefs(page) -> set[str]:
    """The links on the page as absolute URLs (SVG links in the charts included)."""
    return set(page.eval_on_selector_all(
        "a[href]", "els => els.map((a) => new URL(a.getAttribute('href'), location.href).href)"))


def watch(tab, base: str) -> tuple[list[str], list[str]]:
    """Every request the page makes, and every one that was not answered with success."""
    requests: list[str] = []
    failed: list[str] = []
    tab.page.on("request", lambda r: requests.append(r.url))
    tab.page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    # a prefetch cut short by leaving the page is aborted, not missing
    tab.page.on("requestfailed", lambda r: None if r.failure == "net::ERR_ABORTED" else failed.append(
        f"{r.failure} {r.url}"))
    return requests, failed


def test_the_explorer_takes_over_every_page_and_stays_on_the_site(browser, demo_site):
    base, _ = demo_site
    tab = open_tab(browser, "test_site_demo")
    requests, failed = watch(tab, base)
    page = tab.page
    try:
        page.goto(base)
        page.get_by_test_id("gallery-item").first.wait_for()
        assert page.get_by_test_id("dataset-picker").locator("option").count() == 2
        credits = page.get_by_test_id("credits")
        assert "Fanelli" in credits.inner_text() and "MIT licence" in credits.inner_text()
        tab.shot("gallery")
        links = hrefs(page)

        # a painting's own page: the explorer shows that painting there, and keeps its address
        page.goto(f"{base}tamart~{PAINTING}.html")
        view = page.get_by_test_id("painting-view")
        view.wait_for()
        assert view.get_attribute("data-painting") == PAINTING
        span_button(page, "large, bright red sun").click()
        wait_drawn(page, "tam span-")
        assert re.fullmatch(re.escape(f"{base}tamart~{PAINTING}.html") + r"\?span=\d+", page.url), page.url
        assert credits.is_visible()
        tab.shot("painting")
        links |= hrefs(page)
        page.get_by_test_id("painting-nav").last.click()  # the next painting: its own page too
        # another painting's page; the view then records its first phrase (?span=N) in the
        # address, so the address may already carry it when it is read
        page.wait_for_url(re.compile(re.escape(base) + r"tamart~(?!" + re.escape(PAINTING) + r"\.html)[^?]+\.html(\?span=\d+)?$"))

        # the embedded dataset: its banner says the captions are noise, the credits stay
        smoke = json.loads((REPO / "data/smoke/manifest.json").read_text())["paintings"][0]["id"]
        page.goto(f"{base}smoke~{smoke}.html")
        page.get_by_test_id("painting-view").wait_for()
        assert "random-weight" in page.get_by_test_id("dataset-label").inner_text()
        assert credits.is_visible()

        page.goto(f"{base}?view=dashboard&dataset=tamart")
        page.get_by_test_id("chart-entropy").wait_for()
        links |= hrefs(page)
        tab.shot("dashboard")

        # a painting opened by its query moves to its own page; an unknown one stays put, said so
        page.goto(f"{base}?view=painting&dataset=tamart&painting={PAINTING}&span=1")
        page.get_by_test_id("painting-view").wait_for()
        assert page.url == f"{base}tamart~{PAINTING}.html?span=1"
        page.goto(f"{base}?view=painting&dataset=tamart&painting=no-such-painting")
        page.get_by_role("alert").wait_for()
        assert page.url == f"{base}?view=painting&dataset=tamart&painting=no-such-painting"
        tab.allow.append(r"404")  # the record it asked for
    finally:
        close_tab(tab)
    assert requests and [f for f in failed if "no-such-painting" not in f] == [], failed
    assert [f for f in failed if "no-such-painting" in f] == [f"404 {base}data/tamart/paintings/no-such-painting/record.json"]
    assert all(r.startswith(base) or r.startswith(("data:", "blob:")) for r in requests), "a request left the site"
    internal = {urldefrag(u).url for u in links if u != CREDIT}
    assert all(u.startswith(base) for u in internal), internal
    for url in internal:  # every link the explorer draws leads to a page of the site
        fetch(url)


def test_a_paintings_page_reads_without_javascript(browser, demo_site):
    base, folder = demo_site
    record = json.loads((folder / f"data/tamart/paintings/{PAINTING}/record.json").read_text())
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1000, "height": 900})
    page = context.new_page()
    try:
        page.goto(f"{base}tamart~{PAINTING}.html")
        article = page.get_by_test_id("painting-page")
        assert article.locator("h2").inner_text() == record["annotations"]["title"]
        assert record["caption"].split("\n")[0] in article.inner_text()
        assert page.locator("img.page-canvas").evaluate("img => img.complete && img.naturalWidth") == \
            record["canvas"]["width"]
        assert "MIT licence" in page.get_by_test_id("credits").inner_text()
        assert page.locator('meta[property="og:image"]').get_attribute("content") == \
            f"{base}data/tamart/paintings/{PAINTING}/{record['thumb']['path']}"
        shot = ARTIFACTS / "e2e" / "test_site_demo-no-javascript.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
    finally:
        context.close()
