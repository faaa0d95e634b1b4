"""The exported static site in a browser, served by a plain static file server (python's
http.server) under a sub-path, as a static host would: no backend, relative URLs only."""

from __future__ import annotations

import re

import pytest

from backend.site import export_site
from testkit.harness import static_server
from tests.e2e.conftest import close_tab, open_tab
from tests.e2e.explorer import luminance, read_overlay, span_button, wait_drawn

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def site_root(e2e_datasets, tmp_path_factory):
    root = tmp_path_factory.mktemp("static-host")
    export_site(e2e_datasets["fixture"], root / "explorer")  # served at /explorer/, not at the root
    return root


def test_static_site_smoke(browser, site_root):
    requests: list[str] = []
    # The tab closes while the server still runs: a page still loading when its server stops
    # gets its connections reset (ERR_CONNECTION_RESET), which on a busy machine it always was.
    with static_server(site_root) as host:
        tab = open_tab(browser, "test_static_site_smoke")
        page = tab.page
        page.on("request", lambda r: requests.append(r.url))
        try:
            base = host + "explorer/"
            page.goto(base)
            page.get_by_test_id("gallery-item").first.wait_for()
            assert page.get_by_test_id("gallery-item").count() == 4
            tab.shot("gallery")
            # search and the phrase atlas from the precomputed files (backend/site_search.py)
            page.get_by_test_id("gallery-search").fill("blue hour")
            page.wait_for_function("() => document.querySelector('[data-testid=gallery-count]').textContent === '1 painting'")
            page.goto(base + "?view=atlas&aq=calm&asort=entropy")
            page.wait_for_function("() => document.querySelectorAll('[data-testid=atlas-item]').length === 8")
            page.wait_for_function("() => [...document.querySelectorAll('.atlas-crop')].every((c) => c.dataset.drawn === '1')")
            shown = [float(e) for e in page.eval_on_selector_all("[data-testid=atlas-item]", "els => els.map(e => e.dataset.entropy)")]
            assert shown == sorted(shown)
            page.goto(base)
            page.get_by_test_id("gallery-item").first.wait_for()
            page.get_by_test_id("gallery-item").nth(2).click()
            page.get_by_test_id("painting-view").wait_for()
            span_button(page, "a starry sky").click()
            wait_drawn(page, "tam span-4 inferno")
            lum = [luminance(p) for p in read_overlay(page, points=[[x, y] for x in range(0, 400, 37)
                                                                      for y in range(0, 240, 29)])["at"]]
            assert max(lum) - min(lum) > 100, "the overlay is flat"
            page.get_by_test_id("layer-sam").click()
            wait_drawn(page, "tam+sam span-4")
            assert read_overlay(page)["opaque"] > 0
            # a painting is shown at its own page (pre-rendered: the address that previews when shared)
            assert re.fullmatch(re.escape(base) + r"fixture~painting-\d\.html\?span=4&layers=tam%2Csam", page.url), page.url
            tab.shot("painting")
            page.reload()  # a deep link into the static site
            wait_drawn(page, "tam+sam span-4")
            page.go_back()  # phrase clicks and settings replaced the entry: Back is the gallery
            page.get_by_test_id("gallery").wait_for()
            page.goto(base + "?view=dashboard")
            page.get_by_test_id("chart-entropy").wait_for()
            page.get_by_test_id("example-link").first.click()
            page.get_by_test_id("painting-view").wait_for()
        finally:
            close_tab(tab)
    assert requests and all(r.startswith(host + "explorer/") for r in requests), "a request left the site's folder"
    assert not any("/api/" in r for r in requests)
    assert any(re.search(r"/static/js/app\.[0-9a-f]{10}\.js$", r) for r in requests)
