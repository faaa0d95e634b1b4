"""The Ask view in Chromium against a real `tamscope serve --live` with the tiny random-weight
Qwen2-VL: upload an image, watch the tokens stream in, click a token and see its map, open
the result as a painting and reload its deep link."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

from backend import SMOKE
from testkit.net import free_port
from tests.e2e.conftest import close_tab, open_tab
from tests.e2e.explorer import read_overlay, wait_drawn

pytestmark = pytest.mark.e2e

# JS: every change to the caption, with its time, so the test can tell tokens that arrived one
# after another from a caption that appeared at once
WATCH = """() => {
  window.tokenBatches = [];
  const watch = () => {
    const caption = document.querySelector('[data-testid="ask-caption"]');
    if (!caption) return setTimeout(watch, 5);
    new MutationObserver(() => window.tokenBatches.push(
      [caption.querySelectorAll('[data-testid="ask-token"]').length, performance.now(),
       !!document.querySelector('[data-testid="ask-open"]')])).observe(caption, { childList: true });
  };
  watch();
}"""


@pytest.fixture(scope="module")
def live_base(tiny_qwen2vl_dir, tmp_path_factory):
    from tests.test_serve_cli import serve_process

    tmp = tmp_path_factory.mktemp("ask")
    port = free_port()
    argv = ["--data", str(SMOKE), "--port", str(port), "--live", "--live-data", str(tmp / "live"),
            "--captioner", str(tiny_qwen2vl_dir), "--device", "cpu", "--dtype", "float32",
            "--live-max-new-tokens", "12", "--log-level", "warning"]
    with serve_process(argv, port, tmp / "serve.log", env={"OMP_NUM_THREADS": "1"}):
        yield f"http://127.0.0.1:{port}/"


def test_ask_streams_tokens_shows_a_map_and_opens_as_a_painting(browser, live_base, tmp_path):
    picture = Image.new("RGB", (320, 240), (30, 60, 140))
    ImageDraw.Draw(picture).ellipse([120, 60, 220, 160], fill=(250, 210, 60))
    path = tmp_path / "sun over the sea.png"
    picture.save(path)
    tab = open_tab(browser, "ask")
    page = tab.page
    try:
        page.goto(f"{live_base}?view=ask")
        page.wait_for_selector('[data-testid="ask-view"]')
        assert page.locator('nav [data-nav="ask"]').is_visible()
        page.set_input_files('[data-testid="ask-file"]', str(path))
        page.wait_for_selector('[data-testid="ask-preview"]:not([hidden])')
        page.fill('[data-testid="ask-prompt"]', "What is in the sky?")
        page.evaluate(WATCH)
        page.click('[data-testid="ask-start"]')
        page.wait_for_selector('[data-testid="ask-job"]')
        assert "job=ask-" in page.url  # the question has its own address at once
        page.wait_for_selector('[data-testid="ask-token"]', timeout=180_000)  # the first question loads the model
        page.wait_for_selector('[data-testid="ask-token"]:not([disabled])', timeout=60_000)
        batches = page.evaluate("window.tokenBatches")
        counts = [n for n, _, opened in batches if not opened]
        assert len(set(counts)) >= 2, f"the caption arrived at once, not token by token: {batches}"
        total = page.locator('[data-testid="ask-token"]').count()
        assert 1 <= total <= 12
        assert int(page.get_attribute('[data-testid="ask-progress"]', "max")) == 12
        # a token's map on the model's own image
        clickable = page.locator('[data-testid="ask-token"]:not([disabled])').first
        index = clickable.get_attribute("data-index")
        clickable.click()
        wait_drawn(page, "tam", testid="ask-overlay")
        overlay = read_overlay(page, "ask-overlay")
        assert overlay["opaque"] > 0 and overlay["width"] > 1
        assert page.get_attribute('[data-testid="ask-overlay"]', "data-token") == index
        # the finished question is a painting with a deep link
        page.wait_for_selector('[data-testid="ask-open"]', timeout=60_000)
        job = page.get_attribute('[data-testid="ask-job"]', "data-job")
        page.click('[data-testid="ask-open"]')
        page.wait_for_selector(f'[data-testid="painting-view"][data-painting="{job}"]')
        assert "view=painting" in page.url and "dataset=live" in page.url and f"painting={job}" in page.url
        caption = page.locator('[data-testid="painting-view"]').inner_text()
        page.reload()
        page.wait_for_selector(f'[data-testid="painting-view"][data-painting="{job}"]')
        assert page.locator('[data-testid="painting-view"]').inner_text() == caption
        # ... and from there, ask about it
        page.click('[data-testid="ask-about"]')
        page.wait_for_selector('[data-testid="ask-about-note"]')
        assert f"painting={job}" in page.url and "view=ask" in page.url
        tab.shot("ask-about")
    finally:
        close_tab(tab)
