"""The explorer shows the faithfulness stage's data (issue 15, point 4): a method switch on the
painting view (same overlays), a side-by-side compare by method, the phrase's deletion and
insertion curves with their areas, and the dashboard's method x category table with the entropy
question. The dataset is the fixture one with hand-made method maps whose halves differ, so what
the overlay shows can be told apart."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from contract.commit import commit_painting
from contract.schema import MapRef, MethodResult, SpanFaithfulness
from contract.store import Dataset, encode_png
from testkit.fixture_dataset import make_dataset
from testkit.harness import api_server
from tests.e2e.axe import axe_source, describe, run_axe
from tests.e2e.conftest import close_tab, open_tab
from tests.e2e.explorer import read_overlay, wait_drawn

pytestmark = pytest.mark.e2e


def with_faithfulness(root):
    """Every span of every painting gets `logit` (left half hot) and `igos` (right half hot) maps
    and curves; areas differ by method so the table and panel can be checked."""
    ds = Dataset(root)
    for record in ds.records():
        files = {}
        gh, gw = record.grid.h, record.grid.w
        left = np.zeros((gh, gw), np.uint8)
        left[:, : gw // 2] = 255
        for span in record.spans:
            methods = {}
            for method, u8, d, i in (("logit", left, [1, 0.4, 0.1, 0], [0, 0.7, 0.9, 1]),
                                     ("igos", left[:, ::-1].copy(), [1, 0.8, 0.5, 0], [0, 0.2, 0.4, 1])):
                png = f"methods/{method}/{span.index}.png"
                files[png] = encode_png(u8)
                area = lambda c: sum((a + b) / 2 / 3 for a, b in zip(c, c[1:], strict=False))  # noqa: E731
                methods[method] = MethodResult(map=MapRef(png=png, lo=0, hi=1), tokens=span.tokens, deletion=d,
                                               insertion=i, deletion_area=round(area(d), 4),
                                               insertion_area=round(area(i), 4))
            span.faithfulness = SpanFaithfulness(score_original=-2, score_baseline=-6, steps=3, methods=methods)
        commit_painting(ds, record, files)
    from contract import stats

    stats.run(argparse.Namespace(dataset=root, json=False))
    return root


@pytest.fixture(scope="module")
def faith_server(tmp_path_factory):
    root = with_faithfulness(make_dataset(tmp_path_factory.mktemp("faith") / "faith", n_paintings=3))
    with api_server([root]) as base:
        yield base, root


def test_method_switch_compare_and_curves(browser, faith_server):
    base, root = faith_server
    tab = open_tab(browser, "faithfulness-painting")
    page = tab.page
    pid = Dataset(root).painting_ids()[0]
    page.goto(f"{base}?view=painting&dataset=faith&painting={pid}")
    wait_drawn(page, "tam span-")
    select = page.get_by_test_id("method-select")
    assert select.is_visible()
    assert [o for o in select.locator("option").all_inner_texts()] == ["map: TAM", "map: class logit (no ECI)",
                                                                        "map: iGOS++"]
    select.select_option("logit")
    wait_drawn(page, "tam span-")
    page.wait_for_function("() => document.querySelector('[data-testid=overlay]').dataset.drawn.endsWith(' logit')")
    assert "method=logit" in page.url
    shot = read_overlay(page)
    w, h = shot["width"], shot["height"]
    left, right = read_overlay(page, points=[[w // 8, h // 2], [7 * w // 8, h // 2]])["at"]
    assert left[3] > 0 and right[3] == 0  # the logit map is hot on the left half only
    panel = page.get_by_test_id("faithfulness-panel")
    assert panel.is_visible()
    assert page.get_by_test_id("curve-deletion-logit").count() == 1
    assert page.get_by_test_id("faithfulness-row-logit").inner_text().split("\t")[1:] == ["0.333", "0.700"]

    # side by side: the same phrase by iGOS++ (right half), curves of both
    page.get_by_test_id("compare-select").select_option("m:igos")
    wait_drawn(page, "tam span-", "compare-overlay")
    page.wait_for_function("() => document.querySelector('[data-testid=compare-overlay]').dataset.drawn.endsWith(' igos')")
    cl, cr = read_overlay(page, "compare-overlay", points=[[w // 8, h // 2], [7 * w // 8, h // 2]])["at"]
    assert cl[3] == 0 and cr[3] > 0
    assert page.get_by_test_id("curve-insertion-igos").count() == 1
    assert "(dashed)" in page.get_by_test_id("faithfulness-row-igos").inner_text()
    tab.shot("compare-by-method")
    violations = run_axe(page, axe_source())
    assert not violations, describe(violations)
    close_tab(tab)


def test_dashboard_table_and_entropy_question(browser, faith_server):
    base, _ = faith_server
    tab = open_tab(browser, "faithfulness-dashboard")
    page = tab.page
    page.goto(f"{base}?view=dashboard&dataset=faith")
    table = page.get_by_test_id("faithfulness-table")
    table.wait_for()
    logit = page.get_by_test_id("faithfulness-method-logit").inner_text()
    assert "del 0.333" in logit and "ins 0.700" in logit  # every span has the same areas: mean = that area
    assert "del 0.600" in page.get_by_test_id("faithfulness-method-igos").inner_text()
    answer = page.get_by_test_id("entropy-answer").inner_text()
    assert "class logit" in answer and "iGOS++" in answer
    tab.shot("dashboard")
    close_tab(tab)
