"""axe-core in the browser tests, with the app's Content-Security-Policy left on.

The policy (`script-src 'self'`) blocks every injected <script>, which is how axe is usually
added (Playwright's add_script_tag fails here, as it should). The DevTools protocol is not
bound by a page's policy: axe's source is evaluated in an isolated world of the page (its own
JavaScript globals, the same DOM), created through a CDP session. The app keeps its policy and
its global scope; axe reads the DOM and computed styles as it would anywhere.

axe-core comes from the npm registry (frontend/tests/package.json, installed by `make test-e2e`
and `make test` with `npm ci`); without it the accessibility tests skip and say how to get it.
"""

from __future__ import annotations

import json

import pytest

from testkit import REPO

AXE = REPO / "frontend" / "tests" / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.1 A/AA and best practices: every rule axe runs by default
RUN = "axe.run(document, {resultTypes: ['violations']}).then((r) => JSON.stringify(r.violations))"


def axe_source() -> str:
    if not AXE.is_file():
        pytest.skip(f"axe-core is not installed ({AXE.relative_to(REPO)}): run `npm ci --prefix frontend/tests` "
                    "(make test-e2e does it)")
    return AXE.read_text()


def run_axe(page, source: str) -> list[dict]:
    """axe's violations on the page as it is now (an isolated world per call: fresh globals)."""
    cdp = page.context.new_cdp_session(page)
    try:
        frame = cdp.send("Page.getFrameTree")["frameTree"]["frame"]["id"]
        world = cdp.send("Page.createIsolatedWorld", {"frameId": frame, "worldName": "axe-core"})["executionContextId"]
        loaded = cdp.send("Runtime.evaluate", {"expression": f"{source}\n;typeof axe", "contextId": world,
                                               "returnByValue": True})
        assert loaded["result"].get("value") == "object", f"axe did not load: {loaded}"
        found = cdp.send("Runtime.evaluate", {"expression": RUN, "contextId": world, "awaitPromise": True,
                                              "returnByValue": True})
        if "exceptionDetails" in found:
            raise AssertionError(f"axe failed: {found['exceptionDetails']}")
        return json.loads(found["result"]["value"])
    finally:
        cdp.detach()


def describe(violations: list[dict]) -> str:
    """Readable report: rule, impact, and the first few offending nodes with axe's advice."""
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']} [{len(v['nodes'])} nodes]")
        for node in v["nodes"][:4]:
            lines.append(f"    {' '.join(map(str, node['target']))}: {node['failureSummary'].splitlines()[-1].strip()}")
    return "\n".join(lines)
