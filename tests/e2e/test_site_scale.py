"""The static site of a few thousand paintings (smoke replicated by hard links) from a plain file
server: gallery, search and the phrase atlas work from the precomputed files, fetching a few of
them, never manifest.json. Expected counts are computed from the records' JSON."""

from __future__ import annotations

import re
import unicodedata

import orjson
import pytest

from backend.site import export_site
from testkit.harness import static_server
from testkit.replicate import replicate
from tests.e2e.conftest import close_tab, open_tab

pytestmark = pytest.mark.e2e
N = 2_100


@pytest.fixture(scope="module")
def big_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale-site")
    data = replicate(root / "big", N)
    export_site(data, root / "site")
    ids = [p["id"] for p in orjson.loads((data / "manifest.json").read_bytes())["paintings"]]
    records = [orjson.loads((data / "paintings" / pid / "record.json").read_bytes()) for pid in ids]
    return root / "site", records


def words(text):
    return {"".join(c for c in unicodedata.normalize("NFKD", w.lower()) if not unicodedata.combining(c))
            for w in re.findall(r"\w+", text or "")}


def test_gallery_search_and_atlas_of_a_big_static_site(browser, big_site):
    site, records = big_site
    requests: list[str] = []
    with static_server(site) as base:
        tab = open_tab(browser, "test_big_static_site")
        page = tab.page
        page.on("request", lambda r: requests.append(r.url))
        try:
            page.goto(base)
            page.wait_for_function("() => document.querySelector('[data-testid=gallery-count]')?.textContent"
                                   f" === '{N} paintings'")
            assert page.get_by_test_id("gallery-item").count() == 24
            # two words: every painting holding both (the last one as a prefix)
            want = sum(1 for r in records
                       if {"boats"} <= (all_words := words(r["annotations"]["title"]) | words(r["annotations"]["artist"])
                                        | words(r.get("caption")) | set().union(*(words(s["text"]) for s in r["spans"])))
                       and any(w.startswith("sain") for w in all_words))
            page.get_by_test_id("gallery-search").fill("boats sain")
            page.get_by_test_id("gallery-search").press("Enter")
            page.wait_for_function("() => document.querySelector('[data-testid=gallery-count]').textContent"
                                   f" === '{want} painting{'' if want == 1 else 's'}'")
            # the atlas: every phrase holding "calm", sorted by entropy
            calm = [s for r in records for s in r["spans"] if "calm" in words(s["text"])]
            page.goto(base + "?view=atlas&aq=calm&asort=entropy")
            page.wait_for_function("() => document.querySelector('[data-testid=atlas-count]')?.textContent"
                                   f" === '{len(calm)} phrases'")
            page.wait_for_function("() => [...document.querySelectorAll('.atlas-crop')].every((c) => c.dataset.drawn === '1')")
            shown = [float(e) for e in page.eval_on_selector_all("[data-testid=atlas-item]",
                                                                 "els => els.map(e => e.dataset.entropy)")]
            # the static files keep metrics to 1/10,000
            assert shown == pytest.approx(sorted(s["metrics"]["entropy"] for s in calm)[:len(shown)], abs=1e-4)
            tab.shot("atlas")
        finally:
            close_tab(tab)
    assert not any(r.endswith("/manifest.json") for r in requests), "the site fetched the whole manifest"
