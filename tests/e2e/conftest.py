"""Browser-test fixtures: one headless system Chromium per session, the real server on a free
port over the fixture datasets (and the imported reference data where ../shared has it), a
fresh browser context per test that fails the test on any page error, console error or
request leaving 127.0.0.1."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from testkit.fixture_dataset import make_dataset
from testkit.harness import ARTIFACTS, api_server, chromium, chromium_path


@pytest.fixture(scope="session")
def e2e_datasets(tmp_path_factory, request) -> dict[str, Path]:
    """Dataset id -> folder. `fixture`: every feature; `bare`: no stats.json; `tamart`: the
    30 published paintings imported (no tokens, unlocated and overlapping spans), if present."""
    root = tmp_path_factory.mktemp("e2e")
    out = {"fixture": make_dataset(root / "fixture", n_paintings=4),
           "bare": make_dataset(root / "bare", n_paintings=2, with_stats=False, label=None)}
    try:
        out["tamart"] = request.getfixturevalue("tamart_dataset")
    except pytest.skip.Exception:
        pass  # the tests that need it ask for `reference` and skip with the reason
    return out


@pytest.fixture(scope="session")
def server(e2e_datasets) -> str:
    with api_server(list(e2e_datasets.values())) as base:
        yield base


@pytest.fixture(scope="session")
def reference(e2e_datasets) -> Path:
    if "tamart" not in e2e_datasets:
        pytest.skip("the published reference sample (../shared/reference/tamart-site-sample) is absent")
    return e2e_datasets["tamart"]


@pytest.fixture(scope="session")
def browser():
    if chromium_path() is None:
        pytest.skip("no Chromium: `make chromium` installs Debian's (make test-e2e does it for you)")
    with chromium() as b:
        yield b


@dataclass
class Tab:
    """A page plus what went wrong on it; tests may allow expected 404s (datasets without stats)."""

    page: object
    name: str
    errors: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    allow: list[str] = field(default_factory=list)  # regexes of console errors a test expects

    def shot(self, what: str, full_page: bool = True) -> Path:
        path = ARTIFACTS / "e2e" / f"{self.name}-{what}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


def open_tab(browser, name: str, width: int = 1280, height: int = 900, **context_options) -> Tab:
    """context_options: more of Playwright's new_context options (has_touch, is_mobile, ...)."""
    context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True, **context_options)
    page = context.new_page()
    page.set_default_timeout(10_000)
    tab = Tab(page, name)
    page.on("pageerror", lambda e: tab.errors.append(f"pageerror: {e}"))
    page.on("console", lambda m: tab.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)

    def guard(route):  # the explorer must never reach beyond the server it came from
        if re.match(r"^(https?://127\.0\.0\.1[:/]|data:|blob:)", route.request.url):
            route.continue_()
        else:
            tab.external.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    return tab


def close_tab(tab: Tab) -> None:
    tab.page.context.close()
    unexpected = [e for e in tab.errors if not any(re.search(a, e) for a in tab.allow)]
    assert not unexpected, f"errors on the page: {unexpected}"
    assert not tab.external, f"requests beyond 127.0.0.1: {tab.external}"


@pytest.fixture
def tab(browser, request):
    t = open_tab(browser, request.node.name)
    yield t
    close_tab(t)


@pytest.fixture
def phone(browser, request):
    t = open_tab(browser, request.node.name, width=390, height=844)
    yield t
    close_tab(t)
