"""The explorer as a place to look at paintings (issue 12): the painting stays visible under the
map, layers stack, phrases wrap and carry their category's colour, phones and touch work, history
and deep links behave, axe-core finds nothing, and every category keeps one name and colour.

Real published paintings (../shared reference sample, imported) where the point is about how art
looks; the fixture dataset (tests/e2e/test_explorer.py describes it) where exact values are needed.
Screenshots (test-artifacts/e2e/) at desktop and 390 px phone width.
"""

from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest
from PIL import Image

from testkit.harness import ARTIFACTS
from tests.e2e.axe import axe_source, describe, run_axe
from tests.e2e.conftest import close_tab, open_tab
from tests.e2e.explorer import EARLY_BREAKS, expected_map, ramp_alpha, read_overlay, wait_drawn

pytestmark = pytest.mark.e2e

FIXTURE = "?view=painting&dataset=fixture&painting={}"
STARRY = "0002_the-starry-night-1889"
# the authors' project page (nicolafan/tamart, js/app.js): names and colours of the categories
PAPER = {"CVO": ("Concrete object", (0x1F, 0x77, 0xB4)), "ICON": ("Named figure", (0x94, 0x67, 0xBD)),
         "STYLE": ("Style", (0x2C, 0xA0, 0x2C)), "AFFECT": ("Affect", (0xD6, 0x27, 0x28)),
         "META": ("Metadata", (0xFF, 0x7F, 0x0E))}


def record(root, pid):
    return json.loads((root / "paintings" / pid / "record.json").read_text())


def rgb(css: str) -> tuple[int, int, int]:
    return tuple(int(x) for x in re.findall(r"\d+", css)[:3])


def export(page, tmp_path) -> tuple[np.ndarray, str]:
    with page.expect_download() as info:
        page.get_by_test_id("export-png").click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    return np.asarray(Image.open(path).convert("RGB")).astype(np.float32), info.value.suggested_filename


def brightness(image: np.ndarray) -> float:
    return float((0.2126 * image[..., 0] + 0.7152 * image[..., 1] + 0.0722 * image[..., 2]).mean())


# ---- 1. the painting stays visible


def test_default_overlay_is_transparent_where_the_map_is_cold(tab, server, e2e_datasets):
    page = tab.page
    page.goto(server + FIXTURE.format("painting-1") + "&span=2")
    wait_drawn(page, "tam span-2 inferno 0.8 hot 0", exact=True)
    rec = record(e2e_datasets["fixture"], "painting-1")
    W, H = rec["canvas"]["width"], rec["canvas"]["height"]
    want = np.rint(expected_map(e2e_datasets["fixture"] / "paintings/painting-1/spans/2.png", W, H))
    rng = np.random.default_rng(1)
    points = [[int(x), int(y)] for x, y in zip(rng.integers(0, W, 400), rng.integers(0, H, 400), strict=True)]
    drawn = read_overlay(page, points=points)
    for (x, y), px in zip(points, drawn["at"], strict=True):
        assert abs(px[3] - ramp_alpha(want[y, x])) <= 3, (x, y, want[y, x], px)
    assert drawn["opaque"] < W * H  # transparent where the map is 0
    coldest = np.unravel_index(np.argmin(want), want.shape)
    assert read_overlay(page, points=[[int(coldest[1]), int(coldest[0])]])["at"][0][3] == 0

    # "hide below": nothing under the threshold, the ramp restarts above it
    page.get_by_test_id("cut").fill("0.5")
    wait_drawn(page, "tam span-2 inferno 0.8 hot 0.5", exact=True)
    assert "cut=0.5" in page.url
    drawn = read_overlay(page, points=points)
    for (x, y), px in zip(points, drawn["at"], strict=True):
        if abs(want[y, x] - 127.5) > 2:  # the browser's and cv2's rounding may differ by one level
            assert abs(px[3] - ramp_alpha(want[y, x], cut=0.5)) <= 3, (x, y, want[y, x], px)
    assert 0 < drawn["opaque"] < int((want >= 127).sum()) + W  # only the hot part is drawn
    tab.shot("hide-below")

    # the full tint stays as an option: one opacity over the whole canvas, as before
    page.get_by_test_id("look-select").select_option("tint")
    page.get_by_test_id("cut").fill("0")
    wait_drawn(page, "tam span-2 inferno 0.8 tint 0", exact=True)
    tint = read_overlay(page)
    assert tint["opaque"] == W * H and tint["alphas"] == [204]


@pytest.mark.parametrize("width", [1440, 390])
def test_the_painting_keeps_its_brightness_on_published_paintings(browser, server, reference, width, tmp_path):
    """The issue measured mean brightness 97 -> 52 under the old full tint; the default keeps the painting."""
    tab = open_tab(browser, f"test_painting_brightness_{width}", width=width, height=900 if width > 600 else 844)
    page = tab.page
    try:
        ratios = {"hot": [], "tint": []}
        for pid in [STARRY, "0010_impression-sunrise", "0029_the-scream-1893", "0062_the-last-supper-1495"]:
            canvas = np.asarray(Image.open(reference / "paintings" / pid / "canvas.jpg").convert("RGB")).astype(np.float32)
            for look in ("hot", "tint"):
                page.goto(server + f"?view=painting&dataset=tamart&painting={pid}&look={look}")
                wait_drawn(page, "tam span-")
                image, _ = export(page, tmp_path)
                shown = image[: canvas.shape[0]]  # the painting part of the export (the band is under it)
                ratios[look].append(brightness(shown) / brightness(canvas))
            if pid == STARRY:
                tab.shot("starry-default", full_page=False)
        assert min(ratios["hot"]) > 0.8, ratios  # the painting stays visible
        assert max(ratios["tint"]) < min(ratios["hot"]) - 0.1, ratios  # the old look darkened it
    finally:
        close_tab(tab)


def test_export_follows_the_same_rule(tab, server, e2e_datasets, tmp_path):
    """Where the map is below "hide below", the exported pixel is the painting's own."""
    page = tab.page
    page.goto(server + FIXTURE.format("painting-1") + "&span=2&cut=0.5")
    wait_drawn(page, "tam span-2 inferno 0.8 hot 0.5", exact=True)
    rec = record(e2e_datasets["fixture"], "painting-1")
    W, H = rec["canvas"]["width"], rec["canvas"]["height"]
    image, name = export(page, tmp_path)
    assert name == "painting-1-span2-tam.png"
    canvas = np.asarray(Image.open(e2e_datasets["fixture"] / "paintings/painting-1/canvas.jpg").convert("RGB"))
    want = expected_map(e2e_datasets["fixture"] / "paintings/painting-1/spans/2.png", W, H)
    diff = np.abs(image[:H] - canvas.astype(np.float32)).max(axis=2)
    assert np.percentile(diff[want < 120], 99) <= 3  # cold: the painting untouched (JPEG decoders may differ by a level)
    assert diff[want > 240].mean() > 40  # hot: coloured


# ---- 2. layers stack


def otsu_outline(root, pid, span, W, H, width):
    """Pixels within `width` of the border of the metric's Otsu mask (cv2.findContours, dilated)."""
    grid = cv2.imread(str(root / "paintings" / pid / "spans" / f"{span['index']}.png"), cv2.IMREAD_GRAYSCALE)
    mask = (cv2.resize(grid, (W, H), interpolation=cv2.INTER_LINEAR) > span["otsu_threshold"]).astype(np.uint8)
    return border(mask, width)


def border(mask: np.ndarray, width: int) -> np.ndarray:
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    lines = np.zeros_like(mask)
    cv2.drawContours(lines, contours, -1, 1, thickness=1)
    return cv2.dilate(lines, np.ones((2 * width + 1, 2 * width + 1), np.uint8)) > 0


def overlay_pixels(page) -> np.ndarray:
    data = page.evaluate("""() => { const c = document.querySelector('[data-testid=overlay]');
      return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }""")
    c = page.get_by_test_id("overlay")
    W, H = int(c.get_attribute("width")), int(c.get_attribute("height"))
    return np.array(data, np.uint8).reshape(H, W, 4)


def test_layers_stack_and_toggle_one_by_one(tab, server, e2e_datasets, tmp_path):
    page = tab.page
    root = e2e_datasets["fixture"]
    rec = record(root, "painting-1")
    span = rec["spans"][2]
    W, H = rec["canvas"]["width"], rec["canvas"]["height"]
    page.goto(server + FIXTURE.format("painting-1") + "&span=2&layers=otsu")
    wait_drawn(page, "otsu span-2")
    px = overlay_pixels(page)
    drawn = px[..., 3] > 0
    near = otsu_outline(root, "painting-1", span, W, H, width=3)
    assert drawn.sum() > 0 and (drawn & near).sum() / drawn.sum() > 0.99, "the Otsu contour is off the metric's mask border"
    assert (drawn & near).sum() / near.sum() > 0.5  # and follows all of it
    white = drawn & (px[..., :3].min(axis=2) > 200)
    assert white.sum() > 50  # the line itself is white (on a dark halo)

    # add the SAM 3 mask (outline) and the heatmap: all three at once
    page.get_by_test_id("layer-sam").click()
    wait_drawn(page, "otsu+sam span-2")
    page.get_by_test_id("layer-tam").click()
    wait_drawn(page, "tam+otsu+sam span-2")
    assert "layers=tam%2Cotsu%2Csam" in page.url or "layers=tam,otsu,sam" in page.url
    for layer in ("tam", "otsu", "sam"):
        assert page.get_by_test_id(f"layer-{layer}").get_attribute("aria-pressed") == "true"
    px = overlay_pixels(page)
    sam_mask = cv2.imread(str(root / "paintings/painting-1/sam/2.png"), cv2.IMREAD_GRAYSCALE) > 127
    cyan = (px[..., 2] > 200) & (px[..., 1] > 150) & (px[..., 0] < 80) & (px[..., 3] > 200)
    assert cyan.sum() > 50 and (cyan & border(sam_mask.astype(np.uint8), 3)).sum() / cyan.sum() > 0.99
    assert (px[..., 3] > 0).sum() > 0.3 * W * H  # the heatmap under the outlines
    note = page.get_by_test_id("overlay-note").inner_text()
    assert f"Otsu region: the map above {span['otsu_threshold']}/255" in note and "SAM 3 found 1 instance" in note
    key = page.get_by_test_id("color-scale").inner_text()
    assert "map value" in key and "Otsu region" in key and "SAM 3 mask" in key
    tab.shot("stacked")

    # the SAM mask as a hatch: stripes fill its inside
    page.get_by_test_id("samstyle-select").select_option("hatch")
    page.wait_for_url(re.compile(r"samstyle=hatch"))
    page.wait_for_function("() => document.querySelector('[data-testid=overlay]').dataset.drawn.startsWith('tam+otsu+sam')")
    page.wait_for_timeout(100)
    px = overlay_pixels(page)
    cyan = (px[..., 2] > 200) & (px[..., 1] > 150) & (px[..., 0] < 80)
    inner = cv2.erode(sam_mask.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    assert (cyan & inner).sum() > 0.15 * inner.sum(), "no hatch inside the SAM 3 mask"
    assert (cyan & ~cv2.dilate(sam_mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)).sum() == 0

    # the export holds what is shown plus a band naming the phrase, its category and the colour bar
    image, name = export(page, tmp_path)
    assert name == "painting-1-span2-tam-otsu-sam.png"
    assert image.shape[0] > H + 40 and image.shape[1] == W
    shown = overlay_pixels(page)
    painting = np.asarray(Image.open(root / "paintings/painting-1/canvas.jpg").convert("RGB")).astype(np.float32)
    a = shown[..., 3:4] / 255.0
    composite = painting * (1 - a) + shown[..., :3] * a  # the canvas holds un-premultiplied colours
    assert np.abs(image[:H] - composite).mean() < 3
    band = image[H:]
    cvo = np.array(PAPER["CVO"][1], np.float32)
    assert (np.abs(band - cvo).max(axis=2) <= 2).sum() > 100, "no category tag in the CVO colour"
    inferno_top = np.array([252, 255, 164], np.float32)
    assert (np.abs(band - inferno_top).max(axis=2) <= 3).sum() > 10, "no colour bar"
    Image.fromarray(image.astype(np.uint8)).save(ARTIFACTS / "e2e" / "test_layers_stack-export.png")


# ---- 3. phrases that read well


def test_phrases_wrap_across_lines_on_published_paintings(browser, server, reference):
    manifest = json.loads((reference / "manifest.json").read_text())
    for width in (1440, 390):
        tab = open_tab(browser, f"test_phrases_wrap_{width}", width=width, height=900 if width > 600 else 844)
        page = tab.page
        try:
            early, breaks, wrapped = 0, 0, 0
            for p in manifest["paintings"][:30]:
                page.goto(server + f"?view=painting&dataset=tamart&painting={p['id']}")
                page.get_by_test_id("caption").wait_for()
                found = page.evaluate(EARLY_BREAKS)
                early += found["early"]
                breaks += found["breaks"]
                assert not found["details"], (p["id"], found["details"])
                wrapped += page.evaluate("""() => [...document.querySelectorAll('[data-where=inline]')]
                  .filter((s) => s.getClientRects().length > 1).length""")
                if p["id"] == STARRY:
                    tab.shot("caption", full_page=True)
            assert breaks > 100 and early == 0
            assert wrapped > 10, "no phrase breaks across a line: highlights are not inline"
        finally:
            close_tab(tab)


def test_solid_highlights_underline_option_and_first_phrase(tab, server, reference):
    page = tab.page
    page.goto(server + f"?view=painting&dataset=tamart&painting={STARRY}")
    wait_drawn(page, "tam span-0")
    assert re.search(r"[?&]span=0(&|$)", page.url), "the first phrase is selected and in the URL"
    first = page.locator("#span-0")
    assert first.get_attribute("aria-pressed") == "true"
    rec = record(reference, STARRY)
    assert first.get_attribute("data-where") == "inline" and rec["spans"][0]["start"] == min(
        s["start"] for s in rec["spans"] if s.get("start") is not None)
    style = page.evaluate("""() => [...document.querySelectorAll('[data-where=inline]')].map((s) => {
      const c = getComputedStyle(s); return [s.dataset.cat, c.backgroundColor, c.color, c.display]; })""")
    for cat, bg, ink, display in style:
        assert rgb(bg) == PAPER[cat][1], (cat, bg)
        assert display == "inline"
        assert rgb(ink) in ((0, 0, 0), (255, 255, 255))
    tab.shot("solid")
    page.get_by_test_id("highlight-select").select_option("underline")
    page.wait_for_url(re.compile(r"highlight=underline"))
    page.locator(".caption.hl-underline").wait_for()
    style = page.evaluate("""() => [...document.querySelectorAll('[data-where=inline][aria-pressed=false]')].map((s) => {
      const c = getComputedStyle(s); return [s.dataset.cat, c.backgroundColor, c.borderBottomColor, c.borderBottomWidth]; })""")
    for cat, bg, line, w in style:
        assert bg == "rgba(0, 0, 0, 0)" and rgb(line) == PAPER[cat][1] and w == "3px", (cat, bg, line, w)
    tab.shot("underline")
    # token mode opens with nothing selected (a token is a choice, not a default)
    page.goto(server + FIXTURE.format("painting-0") + "&mode=token")
    page.get_by_test_id("token-button").first.wait_for()
    wait_drawn(page, "none")
    assert "span=" not in page.url


# ---- 5. phones and touch


@pytest.fixture
def touch_phone(browser, request):
    t = open_tab(browser, request.node.name, width=390, height=844, has_touch=True, is_mobile=True)
    yield t
    close_tab(t)


def in_view(page, testid) -> bool:
    box = page.get_by_test_id(testid).bounding_box()
    return box["y"] >= -1 and box["y"] + box["height"] <= 844 + 1 and box["height"] > 10


def test_phone_tap_keeps_the_painting_in_view_and_reads_the_map(touch_phone, server, reference):
    page = touch_phone.page
    page.goto(server + f"?view=painting&dataset=tamart&painting={STARRY}")
    wait_drawn(page, "tam span-0")
    last = page.locator('[data-where="inline"]').last
    last.scroll_into_view_if_needed()
    index = last.get_attribute("data-index")
    page.evaluate("() => window.scrollBy(0, 200)")  # the caption far down the page
    last.tap()
    wait_drawn(page, f"tam span-{index}")
    assert in_view(page, "overlay"), "the painting scrolled away when the phrase was tapped"
    assert in_view(page, "selection") and in_view(page, "readout"), "what is shown, and the value read, are on screen"
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    touch_phone.shot("tapped-phrase", full_page=False)
    # tapping the painting reads the map value there
    rec = record(reference, STARRY)
    W, H = rec["canvas"]["width"], rec["canvas"]["height"]
    want = expected_map(reference / "paintings" / STARRY / "spans" / f"{index}.png", W, H)
    y, x = np.unravel_index(np.argmax(want), want.shape)
    box = page.get_by_test_id("overlay").bounding_box()
    page.touchscreen.tap(box["x"] + (x + 0.5) * box["width"] / W, box["y"] + (y + 0.5) * box["height"] / H)
    page.wait_for_function("() => /map \\d/.test(document.querySelector('[data-testid=readout]').textContent)")
    page.wait_for_timeout(300)  # the lifted finger must not clear it
    assert in_view(page, "readout")
    shown = float(re.search(r"map (\d\.\d\d)", page.get_by_test_id("readout").inner_text()).group(1))
    # the tap lands within a css pixel of the peak: about 1.5 canvas pixels at this width
    assert abs(shown - want[y, x] / 255) < 0.05
    touch_phone.shot("tapped-painting", full_page=False)


@pytest.mark.parametrize("ds", ["fixture", "tamart"])
def test_dashboard_fits_a_phone(phone, server, e2e_datasets, ds):
    if ds not in e2e_datasets:
        pytest.skip("the published reference sample is absent")
    page = phone.page
    page.goto(server + f"?view=dashboard&dataset={ds}")
    page.get_by_test_id("dashboard").wait_for()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390, "sideways scrolling"
    wide = page.evaluate("""() => [...document.querySelectorAll('main *')].filter((e) => e.getBoundingClientRect().right > 391)
      .map((e) => e.tagName + '.' + e.className).slice(0, 5)""")
    assert not wide, wide
    phone.shot(f"dashboard-{ds}")


# ---- 6. history and links


def test_phrase_clicks_replace_history_and_paintings_push(tab, server):
    page = tab.page
    page.goto(server + "?dataset=fixture")
    page.get_by_test_id("gallery-item").first.click()
    wait_drawn(page, "tam span-0")
    for i in (2, 4, 5, 1, 3, 6, 2, 0, 4, 5):  # ten phrase clicks
        page.locator(f"#span-{i}").click()
        wait_drawn(page, f"tam span-{i}")
    page.get_by_test_id("layer-otsu").click()  # a setting too
    wait_drawn(page, "tam+otsu span-5")
    page.get_by_test_id("painting-nav").last.click()  # next painting: a new entry
    page.wait_for_function("() => document.querySelector('[data-testid=painting-view]')?.dataset.painting === 'painting-1'")
    wait_drawn(page, "tam+otsu span-0")
    page.go_back()  # the painting as it was left: phrase 5 with its settings
    wait_drawn(page, "tam+otsu span-5")
    assert page.get_by_test_id("painting-view").get_attribute("data-painting") == "painting-0"
    page.go_back()  # one Back leaves the painting
    page.get_by_test_id("gallery").wait_for()


def test_deep_links_to_missing_phrases_and_tokens_say_so(tab, server, e2e_datasets):
    page = tab.page
    page.goto(server + FIXTURE.format("painting-1") + "&span=99")
    page.wait_for_function("() => /no phrase 99/.test(document.querySelector('[data-testid=overlay-note]')?.textContent)")
    assert "numbered 0–6" in page.get_by_test_id("overlay-note").inner_text()
    assert "no phrase 99" in page.get_by_test_id("live").inner_text()
    wait_drawn(page, "none")
    n = len(record(e2e_datasets["fixture"], "painting-1")["tokens"])
    page.goto(server + FIXTURE.format("painting-1") + "&mode=token&token=5000")
    page.wait_for_function("() => /no token 5000/.test(document.querySelector('[data-testid=overlay-note]')?.textContent)")
    assert f"numbered 0–{n - 1}" in page.get_by_test_id("overlay-note").inner_text()
    if "tamart" in e2e_datasets:  # imported data has no token maps at all
        page.goto(server + f"?view=painting&dataset=tamart&painting={STARRY}&mode=token&token=3")
        page.wait_for_function("() => /no per-token maps/.test(document.querySelector('[data-testid=overlay-note]')?.textContent)")
    tab.shot("missing-token")


def test_dataset_picker_names_datasets_as_urls_do(tab, server, e2e_datasets):
    page = tab.page
    page.goto(server)
    page.get_by_test_id("gallery-item").first.wait_for()
    options = page.eval_on_selector_all('[data-testid="dataset-picker"] option', "os => os.map((o) => [o.value, o.textContent])")
    assert [v for v, _ in options] == list(e2e_datasets)
    for value, text in options:
        assert text.startswith(value + " ") or text.startswith(value + "("), text
    # "bare" is a folder whose manifest calls itself "fixture": the picker says both, the id first
    assert dict(options)["bare"] == "bare · fixture (2)"
    page.get_by_test_id("dataset-picker").select_option("bare")
    page.wait_for_url(re.compile(r"dataset=bare"))


# ---- 7. accessibility: axe-core, with the app's CSP on


def views(ds: str, painting: str, span: int) -> dict[str, str]:
    p = f"?view=painting&dataset={ds}&painting={painting}"
    return {"gallery": f"?dataset={ds}", "painting": p, "stacked": f"{p}&span={span}&layers=tam,otsu,sam&samstyle=hatch",
            "underline": f"{p}&span={span}&highlight=underline", "compare": f"{p}&span={span}&compare={span}",
            "dashboard": f"?view=dashboard&dataset={ds}"}


@pytest.mark.parametrize("width", [1280, 390])
@pytest.mark.parametrize("ds", ["fixture", "tamart"])
def test_axe_finds_no_violation(browser, server, e2e_datasets, ds, width):
    if ds not in e2e_datasets:
        pytest.skip("the published reference sample is absent")
    source = axe_source()
    tab = open_tab(browser, f"test_axe_{ds}_{width}", width=width, height=900 if width > 600 else 844)
    page = tab.page
    found = {}
    try:
        target = ("painting-2", 2) if ds == "fixture" else (STARRY, 3)
        for name, query in views(ds, *target).items():
            response = page.goto(server + query)
            assert "script-src 'self'" in response.headers["content-security-policy"]
            page.wait_for_function("() => document.getElementById('main').dataset.ready === '1'")
            if name not in ("gallery", "dashboard"):  # wait for the overlay's first paint
                page.wait_for_function("() => document.querySelector('[data-testid=overlay]').dataset.drawn !== ''")
            violations = run_axe(page, source)
            if violations:
                found[name] = describe(violations)
        assert not found, "\n".join(f"{k}:\n{v}" for k, v in found.items())
        # the policy stayed on: an injected inline script is still refused
        tab.allow.append(r"Content Security Policy")
        with pytest.raises(Exception, match="Content Security Policy"):
            page.add_script_tag(content="window.__injected = 1")
        assert page.evaluate("() => window.__injected") is None
    finally:
        close_tab(tab)


# ---- 8. one name and one colour per category


def test_category_names_and_colours_agree_everywhere(tab, server, e2e_datasets, tmp_path):
    page = tab.page
    page.goto(server + "?dataset=fixture")
    page.get_by_test_id("gallery-item").first.wait_for()
    chips = page.evaluate("""() => [...document.querySelectorAll('.card-cats .cat-tag')].map((c) =>
      [c.textContent.split(' ')[0], getComputedStyle(c).backgroundColor, c.title])""")
    assert chips
    for cat, bg, title in chips:
        assert rgb(bg) == PAPER[cat][1] and title == PAPER[cat][0]
    options = page.eval_on_selector_all("#gallery-category option", "os => os.map((o) => o.textContent)")
    assert "ICON: Named figure" in options

    page.goto(server + FIXTURE.format("painting-1") + "&span=4")
    wait_drawn(page, "tam span-4")
    legend = page.evaluate("""() => [...document.querySelectorAll('[data-testid=legend] li')].map((li) =>
      [li.dataset.cat, li.textContent, getComputedStyle(li.querySelector('.swatch')).backgroundColor])""")
    for cat, text, bg in legend:
        assert PAPER[cat][0] in text and rgb(bg) == PAPER[cat][1], (cat, text, bg)
    caption = page.evaluate("""() => [...document.querySelectorAll('[data-testid=span-button]')].map((b) =>
      [b.dataset.cat, getComputedStyle(b).backgroundColor, b.getAttribute('aria-label')])""")
    for cat, bg, label in caption:
        assert rgb(bg) == PAPER[cat][1] and label.endswith(f"({PAPER[cat][0]})")
    strip = page.evaluate("() => getComputedStyle(document.querySelector('.strip line')).stroke")
    assert rgb(strip) == PAPER["ICON"][1]  # the numbers' distribution strip of an ICON phrase
    image, _ = export(page, tmp_path)
    H = record(e2e_datasets["fixture"], "painting-1")["canvas"]["height"]
    assert (np.abs(image[H:] - np.array(PAPER["ICON"][1])).max(axis=2) <= 2).sum() > 100  # the export's tag

    page.goto(server + "?view=dashboard&dataset=fixture")
    page.get_by_test_id("chart-entropy").wait_for()
    dots = page.evaluate("""() => [...document.querySelectorAll('[data-testid=chart-entropy] > circle')].map((c) => c.getAttribute('fill'))""")
    assert {d.lower() for d in dots} <= {"#{:02x}{:02x}{:02x}".format(*PAPER[c][1]) for c in PAPER}
    rows = page.evaluate("""() => [...document.querySelectorAll('[data-testid=category-table] tbody th')].map((th) =>
      [th.querySelector('.cat-tag').textContent, getComputedStyle(th.querySelector('.cat-tag')).backgroundColor, th.textContent])""")
    for cat, bg, text in rows:
        assert rgb(bg) == PAPER[cat][1] and PAPER[cat][0] in text
    tab.shot("dashboard-colours")


def test_published_starry_night_views_for_the_eye(browser, server, reference):
    """Screenshots of a real painting at desktop and phone width in every look (read by a person)."""
    for width, height in ((1440, 900), (390, 844)):
        tab = open_tab(browser, f"test_published_views_{width}", width=width, height=height)
        page = tab.page
        try:
            base = server + f"?view=painting&dataset=tamart&painting={STARRY}&span=3"
            for name, extra in (("default", ""), ("stacked", "&layers=tam,otsu,sam"), ("hatch", "&layers=tam,sam&samstyle=hatch"),
                                ("tint", "&look=tint"), ("cut", "&cut=0.4"), ("underline", "&highlight=underline")):
                page.goto(base + extra)
                wait_drawn(page, "tam")
                tab.shot(name, full_page=False)
            page.goto(server + "?view=dashboard&dataset=tamart")
            page.get_by_test_id("chart-entropy").wait_for()
            tab.shot("dashboard", full_page=True)
        finally:
            close_tab(tab)
