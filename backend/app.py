"""The FastAPI application: the explorer and a read-only JSON API over dataset folders.

Routes (docs/api.md; OpenAPI at /docs and /openapi.json):
    GET /api/health
    GET /api/datasets
    GET /api/datasets/{ds}                               manifest
    GET /api/datasets/{ds}/stats                         stats.json
    GET /api/datasets/{ds}/paintings?q=&category=&artist=&style=&offset=&limit=
    GET /api/datasets/{ds}/paintings/{pid}               record
    GET /api/datasets/{ds}/paintings/{pid}/canvas|thumb
    GET /api/datasets/{ds}/paintings/{pid}/tokens/{i}.png
    GET /api/datasets/{ds}/paintings/{pid}/spans/{i}.png
    GET /api/datasets/{ds}/paintings/{pid}/spans/{i}/sam.png
    GET /config.json, GET /, GET /static/{path}          the explorer
Every error is {"error": {"status", "code", "message"}}. Ids are checked against the
in-memory catalog; file paths come only from the records (backend.catalog).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.catalog import Blob, ServedDataset, file_blob, load_catalog
from backend.http import IMMUTABLE, EdgeMiddleware, send_blob
from tamscope.schema import ID_PATTERN, Category

FRONTEND = Path(__file__).resolve().parents[1] / "frontend"
CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 414: "uri_too_long",
         422: "invalid", 500: "internal"}
Id = Annotated[str, PathParam(pattern=ID_PATTERN, max_length=128)]
Index = Annotated[int, PathParam(ge=0, le=100_000)]
MAX_QUERY = 4096


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "code": CODES.get(status, "error"), "message": message}},
                        status_code=status)


def create_app(data_dirs: list[Path], skip_bad: bool = False, frontend: Path = FRONTEND) -> FastAPI:
    catalog = load_catalog([Path(d) for d in data_dirs], skip_bad=skip_bad)
    app = FastAPI(title="tamscope", version="0.1.0", summary="Token Activation Maps of painting captions",
                  docs_url="/docs", redoc_url=None)
    app.state.catalog = catalog

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error(422, f"{where}: {first.get('msg', 'invalid request')}"[:300])

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):  # never a stack trace to the client
        return error(500, "internal error")

    def dataset(ds: str) -> ServedDataset:
        found = catalog.get(ds)
        if found is None:
            raise HTTPException(404, f"no dataset {ds!r}")
        return found

    def painting(ds: str, pid: str):
        found = dataset(ds).paintings.get(pid)
        if found is None:
            raise HTTPException(404, f"no painting {pid!r} in dataset {ds!r}")
        return found

    def painting_file(request: Request, ds: str, pid: str, key: str, what: str) -> Response:
        path = painting(ds, pid).files.get(key)
        if path is None:
            raise HTTPException(404, f"painting {pid!r} has no {what}")
        return send_blob(request, cached_file(path))

    @app.get("/api/health")
    def health():
        return {"status": "ok", "datasets": list(catalog)}

    @app.get("/api/datasets")
    def datasets():
        return {"datasets": [d.listing() for d in catalog.values()]}

    @app.get("/api/datasets/{ds}")
    def manifest(request: Request, ds: Id):
        return send_blob(request, dataset(ds).manifest_blob)

    @app.get("/api/datasets/{ds}/stats")
    def stats(request: Request, ds: Id):
        blob = dataset(ds).stats
        if blob is None:
            raise HTTPException(404, f"dataset {ds!r} has no statistics (run `tamscope stats`)")
        return send_blob(request, blob)

    @app.get("/api/datasets/{ds}/paintings")
    def paintings(ds: Id, q: Annotated[str | None, Query(max_length=200)] = None,
                  category: Category | None = None,
                  artist: Annotated[str | None, Query(max_length=200)] = None,
                  style: Annotated[str | None, Query(max_length=200)] = None,
                  offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
                  limit: Annotated[int, Query(ge=1, le=200)] = 50):
        items = []
        needle = q.lower() if q else None
        for p in dataset(ds).paintings.values():
            s = p.summary
            if needle and needle not in p.search_text:
                continue
            if category and not s.get("categories", {}).get(category.value):
                continue
            if artist and (s.get("artist") or "").strip().lower() != artist.strip().lower():
                continue
            if style and (s.get("style") or "").lower() != style.lower():
                continue
            items.append(s)
        return {"total": len(items), "offset": offset, "limit": limit, "items": items[offset:offset + limit]}

    @app.get("/api/datasets/{ds}/paintings/{pid}")
    def record(request: Request, ds: Id, pid: Id):
        return send_blob(request, painting(ds, pid).record)

    @app.get("/api/datasets/{ds}/paintings/{pid}/canvas")
    def canvas(request: Request, ds: Id, pid: Id):
        return painting_file(request, ds, pid, "canvas", "canvas")

    @app.get("/api/datasets/{ds}/paintings/{pid}/thumb")
    def thumb(request: Request, ds: Id, pid: Id):
        return painting_file(request, ds, pid, "thumb", "thumbnail")

    @app.get("/api/datasets/{ds}/paintings/{pid}/tokens/{i}.png")
    def token_map(request: Request, ds: Id, pid: Id, i: Index):
        return painting_file(request, ds, pid, f"token/{i}", f"map for token {i}")

    @app.get("/api/datasets/{ds}/paintings/{pid}/spans/{i}.png")
    def span_map(request: Request, ds: Id, pid: Id, i: Index):
        return painting_file(request, ds, pid, f"span/{i}", f"map for span {i}")

    @app.get("/api/datasets/{ds}/paintings/{pid}/spans/{i}/sam.png")
    def sam_mask(request: Request, ds: Id, pid: Id, i: Index):
        return painting_file(request, ds, pid, f"sam/{i}", f"SAM 3 mask for span {i}")

    mount_frontend(app, frontend.resolve())
    wrapped = EdgeMiddleware(guard_query(app))
    wrapped.state = app.state  # for tests that reach the catalog
    wrapped.fastapi = app
    return wrapped


def guard_query(app):
    """Refuse huge query strings and raw paths before routing (414, one JSON shape)."""
    async def guarded(scope, receive, send):
        if scope["type"] == "http" and (len(scope.get("query_string", b"")) > MAX_QUERY
                                        or len(scope.get("raw_path") or scope["path"]) > MAX_QUERY
                                        or "\x00" in scope["path"]):
            status = 414 if "\x00" not in scope["path"] else 400
            response = error(status, "request line too long" if status == 414 else "invalid path")
            await response(scope, receive, send)
            return
        await app(scope, receive, send)

    return guarded


@lru_cache(maxsize=4096)
def cached_file(path: Path) -> Blob:
    return file_blob(path)


def mount_frontend(app: FastAPI, root: Path) -> None:
    """index.html (no-cache, asset URLs carry ?v=<hash>) and the static tree (immutable when hashed)."""
    static_files = {p.relative_to(root).as_posix(): p for p in root.rglob("*")
                    if p.is_file() and "tests" not in p.relative_to(root).parts and p.name != "package.json"}
    hashes = {rel: hashlib.sha256(p.read_bytes()).hexdigest()[:12] for rel, p in static_files.items()}
    types = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".html": "text/html",
             ".svg": "image/svg+xml", ".png": "image/png", ".json": "application/json", ".ico": "image/x-icon"}

    def blob(rel: str) -> Blob:
        path = static_files[rel]
        media = types.get(path.suffix, "application/octet-stream")
        return Blob.of(path.read_bytes(), media + ("; charset=utf-8" if media.startswith("text/") else ""))

    index_blob = None
    if "index.html" in static_files:
        html = static_files["index.html"].read_text()
        for rel, digest in hashes.items():  # cache-busting: the page names each asset with its hash
            html = html.replace(f'"static/{rel}"', f'"static/{rel}?v={digest}"')
        index_blob = Blob.of(html.encode(), "text/html; charset=utf-8")
    config_blob = Blob.of(b'{"mode": "api", "api": "api"}', "application/json")

    @app.get("/", include_in_schema=False)
    def index(request: Request):
        if index_blob is None:
            raise HTTPException(404, "the explorer is not installed (frontend/index.html missing)")
        return send_blob(request, index_blob)

    @app.get("/config.json", include_in_schema=False)
    def config(request: Request):
        return send_blob(request, config_blob)

    @app.get("/static/{path:path}", include_in_schema=False)
    def static(request: Request, path: str, v: str | None = None):
        # only names from the startup listing are served: no filesystem lookup of client input
        if path not in static_files:
            raise HTTPException(404, "no such file")
        immutable = v is not None and v == hashes[path]
        return send_blob(request, blob_cache(path, blob), IMMUTABLE if immutable else "no-cache")

    cache: dict[str, Blob] = {}

    def blob_cache(rel: str, make) -> Blob:
        if rel not in cache:
            cache[rel] = make(rel)
        return cache[rel]
