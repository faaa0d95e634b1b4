"""The two HTML pages: the explorer (frontend/) and the API docs (Swagger UI, served offline).

index.html (a jinja2 template, backend/shell.py, rendered once at startup) is revalidated on
every load (no-cache) and names each asset with `?v=<hash>`, so the assets themselves are
cached as immutable; its footer credits the served datasets' authors. Swagger UI's files come from the
fastapi-offline package rather than a CDN: the docs work on an offline lab machine and the
page keeps the same strict CSP as the explorer (no third-party origin, no inline script).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException, Request

from backend import shell
from backend.assets import Assets
from backend.blobs import Blob
from backend.http import send_blob
from contract.schema import Attribution

STATIC = Path(__file__).resolve().parent / "static"


def explorer_files(root: Path) -> Assets:
    # the JS unit tests, the npm manifest and the page template are not served as files
    return Assets.tree(root, skip=lambda rel: rel.startswith("tests/") or rel in ("package.json", "index.html"))


def mount_explorer(app: FastAPI, root: Path, credits: list[Attribution] = (), live: bool = False) -> None:
    assets = explorer_files(root) if root.is_dir() else Assets({})
    index = None
    if (root / "index.html").is_file():  # cache-busting: the page names each asset with its hash
        html = shell.render(shell.environment(root), "index.html", static=lambda rel: f"static/{assets.url(rel)}",
                            attributions=credits)
        index = Blob.of(html.encode(), "text/html; charset=utf-8")
    # the frontend reads this at boot to choose its data source (the static export writes mode "static")
    # "live": the server takes questions (`serve --live`, backend.live): the explorer shows its Ask view
    config = Blob.of(b'{"mode": "api", "api": "api", "live": true}' if live else b'{"mode": "api", "api": "api"}',
                     "application/json")

    @app.get("/", include_in_schema=False)
    async def explorer(request: Request):
        if index is None:
            raise HTTPException(404, f"the explorer is not installed ({root}/index.html is missing)")
        return send_blob(request, index)

    @app.get("/config.json", include_in_schema=False)
    async def frontend_config(request: Request):
        return send_blob(request, config)

    @app.get("/static/{path:path}", include_in_schema=False)
    async def static(request: Request, path: str, v: str | None = None):
        return assets.respond(request, path, v)


def mount_docs(app: FastAPI) -> None:
    try:
        import fastapi_offline
    except ImportError:  # a dependency, but the API must not depend on its docs page
        return
    bundle = Path(fastapi_offline.__file__).parent / "static"
    assets = Assets({"swagger-ui-bundle.js": bundle / "swagger-ui-bundle.js",
                     "swagger-ui.css": bundle / "swagger-ui.css", "docs.js": STATIC / "docs.js"})
    page = Blob.of(f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>tamscope API</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="docs-assets/{assets.url('swagger-ui.css')}">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs-assets/{assets.url('swagger-ui-bundle.js')}"></script>
  <script src="docs-assets/{assets.url('docs.js')}"></script>
</body>
</html>
""".encode(), "text/html; charset=utf-8")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request):
        return send_blob(request, page)  # the strict CSP holds: checked in Chromium, Try-it-out included

    @app.get("/docs-assets/{name}", include_in_schema=False)
    async def docs_assets(request: Request, name: str, v: str | None = None):
        return assets.respond(request, name, v)
