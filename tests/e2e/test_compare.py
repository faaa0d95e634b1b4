"""Comparing models in Chromium (issue 16, point 4): one painting described by two models (two
datasets), phrase by phrase, the maps side by side, and the dashboard's models side by side.

Two fixture datasets (testkit/fixture_dataset.py) stand for two models: `model-a` (captioner
"tiny-model-a", the fixture's caption) and `model-b` (captioner "tiny-model-b", seed 1: other maps,
caption CAPTION_B; its painting 3 is called "harbour-renamed", so only the input fingerprint
matches it). Expected pairs, worked out by hand from the two captions (docs/explorer.md rule):
"a small village" = "A small village", "a starry sky" = "the starry sky" (article), "Vibrant
brushstrokes" close to "Loose vibrant brushstrokes"; A alone: Night Harbour, Anna Vermeer, calm
water, a sense of calm; B alone: a quiet harbour, a dreamy mood.
"""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest

from testkit.fixture_dataset import CAPTION_B, SPANS_B, make_dataset
from testkit.harness import api_server
from tests import independent
from tests.e2e.axe import axe_source, describe, run_axe
from tests.e2e.explorer import expected_map, luminance, read_overlay, spearman, wait_drawn

pytestmark = pytest.mark.e2e

SHARED = [("a small village", "A small village", ""), ("a starry sky", "the starry sky", ""),
          ("Vibrant brushstrokes", "Loose vibrant brushstrokes", " (close)")]
ONLY_A = ["Night Harbour", "Anna Vermeer", "calm water", "a sense of calm"]
ONLY_B = ["a quiet harbour", "a dreamy mood"]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("models")
    return {"model-a": make_dataset(root / "model-a", n_paintings=4, captioner="tiny-model-a", fingerprints=True),
            "model-b": make_dataset(root / "model-b", n_paintings=4, seed=1, captioner="tiny-model-b", fingerprints=True,
                                    caption=CAPTION_B, phrases=SPANS_B, ids={3: "harbour-renamed"})}


@pytest.fixture(scope="module")
def two(models) -> str:
    with api_server(list(models.values())) as base:
        yield base


def record(root, pid) -> dict:
    return json.loads((root / "paintings" / pid / "record.json").read_text())


def span_index(rec, text) -> int:
    return next(s["index"] for s in rec["spans"] if s["text"] == text)


def check_map(page, testid, png, width, height, other_png):
    """The canvas holds `png` upsampled (its colours rank like the map) and not `other_png`."""
    want, other = expected_map(png, width, height), expected_map(other_png, width, height)
    rng = np.random.default_rng(1)
    points = [[int(x), int(y)] for x, y in zip(rng.integers(0, width, 300), rng.integers(0, height, 300), strict=True)]
    got = read_overlay(page, testid, points)
    assert (got["width"], got["height"]) == (width, height)
    lum = [luminance(p) for p in got["at"]]
    assert max(lum) - min(lum) > 100, "the overlay is flat: no map was drawn"
    right = spearman(lum, [want[y, x] for x, y in points])
    wrong = spearman(lum, [other[y, x] for x, y in points])
    assert right > 0.97 and wrong < right - 0.1, (right, wrong)


def test_compare_two_models_phrase_by_phrase(tab, two, models):
    page = tab.page
    a, b = record(models["model-a"], "painting-1"), record(models["model-b"], "painting-1")
    page.goto(two + "?view=painting&dataset=model-a&painting=painting-1")
    link = page.get_by_test_id("compare-models")
    assert link.inner_text() == "compare 2 models"
    link.click()
    page.get_by_test_id("compare-view").wait_for()
    assert "view=compare" in page.url and "painting=painting-1" in page.url
    # the models, by their captioners, and their captions
    assert "tiny-model-a" in page.locator(".compare-col h3").nth(0).inner_text()
    assert "tiny-model-b" in page.locator(".compare-col h3").nth(1).inner_text()
    assert "same input image" in page.locator(".compare-col h3").nth(1).inner_text()
    assert page.get_by_test_id("compare-text-0").inner_text() == a["caption"]
    assert page.get_by_test_id("compare-text-1").inner_text() == CAPTION_B
    # phrase by phrase: the shared ones, and each model's own
    rows = page.get_by_test_id("shared-phrase").all_inner_texts()
    assert rows == [f"{x} ↔ {y}{how}" for x, y, how in SHARED]
    assert page.get_by_test_id("compare-own-0").get_by_test_id("own-phrase").all_inner_texts() == ONLY_A
    assert page.get_by_test_id("compare-own-1").get_by_test_id("own-phrase").all_inner_texts() == ONLY_B
    # the first shared phrase is selected on arrival
    wait_drawn(page, f"tam model-a span-{span_index(a, 'a small village')} ", "compare-map-0")
    wait_drawn(page, f"tam model-b span-{span_index(b, 'A small village')} ", "compare-map-1")
    # a click on a shared phrase: both models' maps of it, side by side, the right ones
    page.goto(page.url + "&look=tint")  # one opacity everywhere: the colours read back as the map
    page.get_by_test_id("shared-phrase").nth(1).click()
    ia, ib = span_index(a, "a starry sky"), span_index(b, "the starry sky")
    wait_drawn(page, f"tam model-a span-{ia} ", "compare-map-0")
    wait_drawn(page, f"tam model-b span-{ib} ", "compare-map-1")
    assert f"span={ia}" in page.url
    assert page.get_by_test_id("shared-phrase").nth(1).get_attribute("aria-pressed") == "true"
    pa, pb = models["model-a"] / "paintings/painting-1", models["model-b"] / "paintings/painting-1"
    W, H = a["canvas"]["width"], a["canvas"]["height"]
    check_map(page, "compare-map-0", pa / a["spans"][ia]["map"]["png"], W, H, pb / b["spans"][ib]["map"]["png"])
    check_map(page, "compare-map-1", pb / b["spans"][ib]["map"]["png"], W, H, pa / a["spans"][ia]["map"]["png"])
    # their numbers, measured here from the PNGs
    tables = page.get_by_test_id("compare-numbers")
    for k, (ds, idx, rec) in enumerate([("model-a", ia, a), ("model-b", ib, b)]):
        text = tables.nth(k).inner_text()
        want = next(s for s in independent.dataset_spans(models[ds]) if (s["painting"], s["index"]) == ("painting-1", idx))
        assert f"Entropy\t{want['entropy']:.3f}" in text, text
        assert f"Gini\t{want['gini']:.3f}" in text
        if want["iou"] is not None:
            assert f"IoU Otsu vs SAM 3\t{want['iou']:.3f}" in text
        reliance = np.mean([rec["tokens"][t]["reliance"] for t in rec["spans"][idx]["tokens"]])
        assert f"Visual reliance\t{reliance:.3f}" in text
    # a phrase only one model has: its map alone
    page.get_by_test_id("compare-own-1").get_by_text("a dreamy mood").click()
    own = span_index(b, "a dreamy mood")
    wait_drawn(page, f"tam model-b span-{own} ", "compare-map-1")
    wait_drawn(page, "none", "compare-map-0")
    assert "ospan=model-b%7E" in page.url or "ospan=model-b~" in page.url
    tab.shot("compare")
    source = axe_source()
    violations = run_axe(page, source)
    assert violations == [], describe(violations)
    page.get_by_test_id("back-to-painting").click()
    page.get_by_test_id("painting-view").wait_for()


def test_deep_link_matches_a_renamed_painting_by_its_input(tab, two, models):
    page = tab.page
    a = record(models["model-a"], "painting-3")
    b = record(models["model-b"], "harbour-renamed")
    ib = span_index(b, "Loose vibrant brushstrokes")
    page.goto(two + f"?view=compare&dataset=model-b&painting=harbour-renamed&span={ib}&look=tint")
    page.get_by_test_id("compare-view").wait_for()
    assert page.get_by_test_id("compare-map-1").get_attribute("data-dataset") == "model-a"
    ia = span_index(a, "Vibrant brushstrokes")
    wait_drawn(page, f"tam model-b span-{ib} ", "compare-map-0")
    wait_drawn(page, f"tam model-a span-{ia} ", "compare-map-1")
    # painting 3's canvas is wider than painting 1's: each map on its own painting's canvas
    W, H = a["canvas"]["width"], a["canvas"]["height"]
    pa, pb = models["model-a"] / "paintings/painting-3", models["model-b"] / "paintings/harbour-renamed"
    check_map(page, "compare-map-1", pa / a["spans"][ia]["map"]["png"], W, H, pb / b["spans"][ib]["map"]["png"])
    rows = page.get_by_test_id("shared-phrase").all_inner_texts()
    assert rows[-1] == "Loose vibrant brushstrokes ↔ Vibrant brushstrokes (close)"
    assert page.get_by_test_id("shared-phrase").nth(len(rows) - 1).get_attribute("aria-pressed") == "true"


def test_compare_view_fits_a_phone(phone, two):
    page = phone.page
    page.goto(two + "?view=compare&dataset=model-a&painting=painting-2")
    wait_drawn(page, "tam model-b span-", "compare-map-1")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390, "sideways scrolling"
    wide = page.evaluate("""() => [...document.querySelectorAll('main *')].filter((e) => e.getBoundingClientRect().right > 391)
      .map((e) => e.tagName + '.' + e.className).slice(0, 5)""")
    assert not wide, wide
    phone.shot("compare-phone")
    violations = run_axe(page, axe_source())
    assert violations == [], describe(violations)


def test_dashboard_shows_each_models_category_medians(tab, two, models):
    page = tab.page
    page.goto(two + "?view=dashboard&dataset=model-b")
    table = page.get_by_test_id("models-table")
    table.wait_for()
    heads = table.locator("caption").all_inner_texts()
    assert "tiny-model-a" in heads[0] and "tiny-model-b" in heads[1] and "this dataset" in heads[1]
    for ds, root in models.items():
        spans = independent.dataset_spans(root)
        for cat in {s["category"] for s in spans}:
            values = [s["entropy"] for s in spans if s["category"] == cat]
            cell = table.locator(f'tr[data-cat="{cat}"] td[data-dataset="{ds}"][data-key="entropy_median"]')
            assert cell.inner_text() == f"{statistics.median(values):.3f}", (ds, cat)
            count = table.locator(f'tr[data-cat="{cat}"] td[data-dataset="{ds}"][data-key="count"]')
            assert count.inner_text() == str(len(values))
    violations = run_axe(page, axe_source())
    assert violations == [], describe(violations)


def test_static_site_compares_too(browser, models, tmp_path_factory):
    """export-site of both datasets, on a plain file server: the same matches from the exported
    fingerprint shards, the same pairs and maps."""
    from backend.site import export_site
    from testkit.harness import static_server
    from tests.e2e.conftest import close_tab, open_tab

    root = tmp_path_factory.mktemp("compare-site")
    export_site(list(models.values()), root / "site")
    a, b = record(models["model-a"], "painting-1"), record(models["model-b"], "painting-1")
    with static_server(root) as host:
        tab = open_tab(browser, "test_static_site_compares_too")
        page = tab.page
        try:
            page.goto(host + "site/model-a~painting-1.html")
            page.get_by_test_id("compare-models").click()
            page.get_by_test_id("compare-view").wait_for()
            assert "same input image" in page.locator(".compare-col h3").nth(1).inner_text()
            assert "tiny-model-b" in page.locator(".compare-col h3").nth(1).inner_text()
            assert page.get_by_test_id("shared-phrase").all_inner_texts() == [f"{x} ↔ {y}{how}" for x, y, how in SHARED]
            wait_drawn(page, f"tam model-a span-{span_index(a, 'a small village')} ", "compare-map-0")
            wait_drawn(page, f"tam model-b span-{span_index(b, 'A small village')} ", "compare-map-1")
            # painting 3 is "harbour-renamed" in model-b: found by its input fingerprint
            page.goto(host + "site/model-a~painting-3.html")
            page.get_by_test_id("compare-models").click()
            page.get_by_test_id("compare-view").wait_for()
            assert page.get_by_test_id("compare-map-1").get_attribute("data-dataset") == "model-b"
            wait_drawn(page, "tam model-b span-", "compare-map-1")
            assert "harbour-renamed" in page.locator(".compare-col img").nth(1).get_attribute("src")
        finally:
            close_tab(tab)
