"""The explorer shows the faithfulness stage's data (issue 15, point 4): a method switch on the
painting view (same overlays), a side-by-side compare by method, the phrase's deletion and
insertion curves with their areas, and the dashboard's method x category table with the entropy
question. The dataset is the fixture one with hand-made method maps whose halves differ, so what
the overlay shows can be told apart."""

from __future__ import annotations

import pytest

from contract.store import Dataset
from testkit.fixture_dataset import make_dataset
from testkit.fixture_faithfulness import with_faithfulness
from testkit.harness import api_server
from tests.e2e.axe import axe_source, describe, run_axe
from tests.e2e.conftest import close_tab, open_tab
from tests.e2e.explorer import read_overlay, wait_drawn

pytestmark = pytest.mark.e2e


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


def test_a_selected_token_shows_its_own_curves(browser, faith_server):
    """Per-token curves (`faithfulness --per-token`): the fixture gives tokens 0-2 curves with
    areas 0.2667 / 0.6 by hand; token 5 has none, and no panel."""
    base, root = faith_server
    tab = open_tab(browser, "faithfulness-token")
    page = tab.page
    pid = Dataset(root).painting_ids()[0]
    page.goto(f"{base}?view=painting&dataset=faith&painting={pid}&mode=token&token=1")
    panel = page.get_by_test_id("token-faithfulness-panel")
    panel.wait_for()
    assert page.get_by_test_id("curve-deletion-tam-reference").count() == 1
    assert page.get_by_test_id("faithfulness-row-tam-reference").inner_text().split("\t")[1:] == ["0.267", "0.600"]
    assert "token's log-likelihood" in panel.inner_text()
    assert page.get_by_test_id("faithfulness-panel").count() == 0  # no phrase panel in token mode
    violations = run_axe(page, axe_source())
    assert not violations, describe(violations)
    page.locator("[data-testid=token-button][data-index='5']").click()
    page.wait_for_function("() => !document.querySelector('[data-testid=token-faithfulness-panel]')")
    assert "token=5" in page.url
    close_tab(tab)
