"""The explorer's page (frontend/index.html), a jinja2 template shared by the server and the
static export, and the page templates that extend it (backend/templates/).

Variables of the shell: `static(rel)` (the URL of an explorer asset), `csp` (a CSP <meta>, for
hosts that cannot send the header), `label` (the dataset's banner, shown before any script
runs), `credits` (the attributions of the data shown: a footer on every page). Autoescaping is
on: titles and captions come from datasets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from contract.schema import Attribution, DatasetManifest

TEMPLATES = Path(__file__).resolve().parent / "templates"


def environment(frontend: Path) -> Environment:
    # the page templates first, then the explorer's folder for the shell (index.html)
    return Environment(loader=FileSystemLoader([str(TEMPLATES), str(frontend)]), undefined=StrictUndefined,
                       autoescape=select_autoescape(["html"]), keep_trailing_newline=True)


def credits(manifests: Iterable[DatasetManifest]) -> list[Attribution]:
    """The attributions of these datasets, each once, in order."""
    found: list[Attribution] = []
    for manifest in manifests:
        if manifest.attribution is not None and manifest.attribution not in found:
            found.append(manifest.attribution)
    return found


def render(env: Environment, template: str, static: Callable[[str], str], csp: str | None = None,
           label: str | None = None, attributions: list[Attribution] = (), **context) -> str:
    # the CSP is ours, not data: its quotes stay as they are
    return env.get_template(template).render(static=static, csp=Markup(csp) if csp else None, label=label,
                                             credits=list(attributions), **context)
