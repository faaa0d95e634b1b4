"""The FastAPI application: the explorer and a read-only JSON API over dataset folders.

Routes (docs/api.md; OpenAPI at /docs and /openapi.json):
    GET /api/health
    GET /api/datasets
    GET /api/datasets/{ds}                               manifest
    GET /api/datasets/{ds}/stats                         stats.json
    GET /api/datasets/{ds}/paintings?q=&category=&artist=&style=&year_min=&year_max=&sam=&...&sort=&order=
    GET /api/datasets/{ds}/facets                        what the gallery's filters offer, with counts
    GET /api/datasets/{ds}/spans?q=&category=&entropy_max=&...&sort=   the phrase atlas (backend.search)
    GET /api/datasets/{ds}/neighbours/{pid}              previous and next painting in the gallery's order
    GET /api/datasets/{ds}/paintings/{pid}               record
    GET /api/datasets/{ds}/paintings/{pid}/counterparts  the same painting in the other datasets (backend.compare)
    GET /api/datasets/{ds}/paintings/{pid}/canvas|thumb
    GET /api/datasets/{ds}/paintings/{pid}/tokens/{i}.png
    GET /api/datasets/{ds}/paintings/{pid}/spans/{i}.png
    GET /api/datasets/{ds}/paintings/{pid}/spans/{i}/sam.png
    GET /api/datasets/{ds}/paintings/{pid}/spans/{i}/methods/{method}.png   (faithfulness stage)
    GET /config.json, GET /, GET /static/{path}          the explorer (backend.pages)
    GET /openapi.json, GET /docs                         the API's schema and its reference page
    /api/live, /api/live/jobs...                         with `serve --live` only (backend.live.routes)
Every error is {"error": {"status", "code", "message"}} (backend.errors). Ids are checked
against the dataset's index; file paths come only from the records (backend.catalog).
Handlers are `async def` on purpose: most only look up bytes in memory, and a sync handler
would cost a thread-pool hop per request; index queries and a painting's first check run in
the thread pool.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import orjson
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response
from pydantic import BeforeValidator
from starlette.concurrency import run_in_threadpool

from backend import FRONTEND, compare, errors, shell
from backend import openapi as oa
from backend.blobs import Blob, BlobCache
from backend.catalog import Painting, PaintingUnavailable, ServedDataset, load_catalog
from backend.http import IMMUTABLE, REVALIDATE, EdgeMiddleware, relative_slash_redirects, send_blob
from backend.pages import mount_docs, mount_explorer
from backend.search import PAINTING_SORTS, SPAN_SORTS, PaintingFilter, SpanFilter
from contract.schema import ID_PATTERN, METHOD_PATTERN, Category


def canonical_integer(value):
    """Only the canonical decimal form: pydantic alone also reads '+10', '1_0', '10.0' and '010' as 10."""
    if isinstance(value, str) and not re.fullmatch(r"0|[1-9][0-9]*", value):
        raise ValueError("must be a decimal integer without sign, leading zero or separator")
    return value


Integer = BeforeValidator(canonical_integer)
Id = Annotated[str, PathParam(pattern=ID_PATTERN, max_length=128)]
Index = Annotated[int, Integer, PathParam(ge=0, le=100_000)]
MAX_QUERY = 500  # characters of a search: longer is 422 (a search is words, not a document)
Verdict = Literal["correct", "wrong", "ungraded"]
Order = Literal["asc", "desc"]
PaintingSort = Literal[tuple(PAINTING_SORTS)]  # type: ignore[valid-type]
SpanSort = Literal[tuple(SPAN_SORTS)]  # type: ignore[valid-type]
Method = Annotated[str, PathParam(pattern=METHOD_PATTERN, max_length=32)]  # looked up, never a path
Version = Annotated[str | None, Query(max_length=64, description=(
    "the dataset's `version` (from /api/datasets): when it matches, the response is cached as immutable"))]


def create_app(data_dirs: list[Path], skip_bad: bool = False, frontend: Path = FRONTEND, cache_mb: int = 256,
               live=None, live_target=None, checked_indexes: dict[str, str] | None = None):
    """The ASGI app. Raises backend.catalog.StartupError naming the problem if a dataset is broken.
    `live`: backend.live.settings.LiveSettings for `serve --live` (the app's state.live is then the
    job manager, to close() on exit); `live_target`: the worker's entry point (a test seam);
    `checked_indexes`: the indexes the parent process checked (backend.catalog.load_catalog)."""
    catalog = load_catalog([Path(d) for d in data_dirs], skip_bad=skip_bad, checked=checked_indexes)
    cache = BlobCache(cache_mb * 2**20)  # dataset files and gallery pages: one budget
    app = FastAPI(title="tamscope", version="0.1.0", summary="Token Activation Maps of painting captions",
                  description="Read-only JSON API over precomputed tamscope datasets. See docs/api.md.",
                  docs_url=None, redoc_url=None, openapi_url=None)
    relative_slash_redirects(app.router)
    app.state.catalog = catalog
    app.state.cache = cache
    errors.install(app)
    listing: list = [None, None]  # (versions, blob): redone when a dataset changes (the live one grows)

    def datasets_blob() -> Blob:
        versions = tuple((d.id, d.version) for d in catalog.values())
        if listing[0] != versions:
            listing[:] = [versions, Blob.of(orjson.dumps({"datasets": [d.listing() for d in catalog.values()]}),
                                            "application/json")]
        return listing[1]

    def dataset(ds: str) -> ServedDataset:
        found = catalog.get(ds)
        if found is None:
            raise HTTPException(404, f"no dataset {ds!r}")
        return found

    async def painting(ds: str, pid: str) -> Painting:
        served = dataset(ds)
        try:
            found = served.cached(pid)  # checked already: no thread-pool hop
            if found is None:
                found = await run_in_threadpool(served.painting, pid)  # first use: read and check it
            if isinstance(found, PaintingUnavailable):
                raise found
        except PaintingUnavailable as exc:
            raise HTTPException(404, f"painting {pid!r} cannot be served: {exc}") from None
        if found is None:
            raise HTTPException(404, f"no painting {pid!r} in dataset {ds!r}")
        return found

    def caching(ds: str, v: str | None) -> str:
        return IMMUTABLE if v is not None and v == catalog[ds].version else REVALIDATE

    async def query(request: Request, ds: str, key: tuple, make, v: str | None) -> Response:
        """An index query's answer, kept in the cache (the index only changes with the version)."""
        served = dataset(ds)
        blob = cache.get((ds, served.version, *key))
        if blob is None:
            blob = Blob.of(await run_in_threadpool(make, served.index), "application/json")
            cache.put((ds, served.version, *key), blob)
        return send_blob(request, blob, caching(ds, v))

    async def painting_file(request: Request, ds: str, pid: str, key: str, what: str, v: str | None) -> Response:
        found = await painting(ds, pid)
        ref = found.files.get(key)
        if ref is None:
            raise HTTPException(404, f"painting {pid!r} has no {what}")
        blob = cache.get(ref)
        if blob is None:
            try:
                blob = await run_in_threadpool(ref.load)  # disk reads stay off the event loop
            except OSError:  # deleted, or replaced by a link or a special file since startup
                raise HTTPException(404, f"the {what} of painting {pid!r} is missing on the server") from None
            cache.put(ref, blob)
        # a file regenerated since it was checked is not the content the dataset version names
        return send_blob(request, blob, caching(ds, v) if blob.etag == ref.etag and found.current else REVALIDATE)

    @app.get("/api/health", summary="Liveness: the served dataset ids", responses={200: {"model": oa.Health}})
    async def health():
        return Response(orjson.dumps({"status": "ok", "datasets": list(catalog)}), media_type="application/json",
                        headers={"cache-control": "no-store"})

    @app.get("/api/datasets", summary="The served datasets with name, label, size and version",
             responses={200: {"model": oa.DatasetList}})
    async def datasets(request: Request):
        return send_blob(request, datasets_blob())

    @app.get("/api/datasets/{ds}", summary="A dataset's manifest (docs/data-format.md)", responses=oa.MANIFEST)
    async def manifest(request: Request, ds: Id, v: Version = None):
        return send_blob(request, dataset(ds).manifest_blob, caching(ds, v))

    @app.get("/api/datasets/{ds}/stats", summary="Dashboard statistics (stats.json)", responses=oa.STATS)
    async def stats(request: Request, ds: Id, v: Version = None):
        blob = dataset(ds).stats
        if blob is None:
            raise HTTPException(404, f"dataset {ds!r} has no statistics (run `tamscope stats`)")
        return send_blob(request, blob, caching(ds, v))

    @app.get("/api/datasets/{ds}/paintings", summary="Paintings: searched, filtered, sorted and paged",
             responses=oa.PAGE)
    async def paintings(request: Request, ds: Id,
                        q: Annotated[str | None, Query(max_length=MAX_QUERY, description=(
                            "words of the title, artist, caption or a phrase, all required, the last as a prefix"))] = None,
                        category: Annotated[Category | None, Query(description=(
                            "only paintings whose caption has a span of this category"))] = None,
                        artist: Annotated[str | None, Query(max_length=200, description=(
                            "exact artist, case-insensitive"))] = None,
                        style: Annotated[str | None, Query(max_length=200, description=(
                            "exact style, case-insensitive"))] = None,
                        year_min: Annotated[int | None, Query(ge=-10_000, le=10_000)] = None,
                        year_max: Annotated[int | None, Query(ge=-10_000, le=10_000)] = None,
                        sam: Annotated[bool | None, Query(description=(
                            "true: SAM 3 found at least one phrase of the painting; false: none"))] = None,
                        title_verdict: Annotated[Verdict | None, Query()] = None,
                        artist_verdict: Annotated[Verdict | None, Query()] = None,
                        sort: Annotated[PaintingSort, Query(description="order (the manifest's), or a column")] = "order",
                        order: Annotated[Order, Query()] = "asc",
                        offset: Annotated[int, Integer, Query(ge=0, le=1_000_000)] = 0,
                        limit: Annotated[int, Integer, Query(ge=1, le=200)] = 50, v: Version = None):
        f = PaintingFilter(q.strip() if q and q.strip() else None, category.value if category else None,
                           artist.strip().lower() if artist else None, style.strip().lower() if style else None,
                           year_min, year_max, sam, title_verdict, artist_verdict)
        return await query(request, ds, ("paintings", f, sort, order, offset, limit),
                           lambda index: index.gallery(f, sort, order == "desc", offset, limit), v)

    @app.get("/api/datasets/{ds}/facets", summary="What the gallery's filters offer, with counts", responses=oa.FACETS)
    async def facets(request: Request, ds: Id, v: Version = None):
        return await query(request, ds, ("facets",), lambda index: orjson.dumps(index.facets()), v)

    @app.get("/api/datasets/{ds}/spans", summary="The phrase atlas: phrases across paintings, with summary numbers",
             responses=oa.ATLAS)
    async def spans(request: Request, ds: Id,
                    q: Annotated[str | None, Query(max_length=MAX_QUERY, description=(
                        "words of the phrase, all required, the last as a prefix"))] = None,
                    category: Annotated[Category | None, Query()] = None,
                    entropy_min: Annotated[float | None, Query(ge=0, le=1)] = None,
                    entropy_max: Annotated[float | None, Query(ge=0, le=1)] = None,
                    iou_min: Annotated[float | None, Query(ge=0, le=1)] = None,
                    iou_max: Annotated[float | None, Query(ge=0, le=1)] = None,
                    sam: Annotated[bool | None, Query(description=(
                        "true: SAM 3 found the phrase; false: it ran and found nothing"))] = None,
                    sort: Annotated[SpanSort, Query()] = "painting",
                    order: Annotated[Order, Query()] = "asc",
                    offset: Annotated[int, Integer, Query(ge=0, le=10_000_000)] = 0,
                    limit: Annotated[int, Integer, Query(ge=1, le=200)] = 48, v: Version = None):
        f = SpanFilter(q.strip() if q and q.strip() else None, category.value if category else None,
                       entropy_min, entropy_max, iou_min, iou_max, sam)
        return await query(request, ds, ("spans", f, sort, order, offset, limit),
                           lambda index: index.atlas(f, sort, order == "desc", offset, limit), v)

    @app.get("/api/datasets/{ds}/neighbours/{pid}", summary="The paintings before and after one, in the gallery's order",
             responses=oa.NEIGHBOURS)
    async def neighbours(request: Request, ds: Id, pid: Id, v: Version = None):
        served = dataset(ds)
        found = await run_in_threadpool(served.index.neighbours, pid)
        if found is None:
            raise HTTPException(404, f"no painting {pid!r} in dataset {ds!r}")
        return send_blob(request, Blob.of(orjson.dumps(found), "application/json"), caching(ds, v))

    @app.get("/api/datasets/{ds}/paintings/{pid}", summary="One painting's record (docs/data-format.md)",
             responses=oa.RECORD)
    async def record(request: Request, ds: Id, pid: Id, v: Version = None):
        found = await painting(ds, pid)
        return send_blob(request, found.record, caching(ds, v) if found.current else REVALIDATE)

    @app.get("/api/datasets/{ds}/paintings/{pid}/counterparts", responses=oa.json_ok(compare.Counterparts),
             summary="The same painting in the other served datasets (other models), by input fingerprint or id")
    async def counterparts(request: Request, ds: Id, pid: Id, v: Version = None):
        dataset(ds)
        body = await run_in_threadpool(compare.counterparts, catalog, ds, pid)
        if body is None:
            raise HTTPException(404, f"no painting {pid!r} in dataset {ds!r}")
        # never immutable: the answer depends on which other datasets this server serves, not on ds alone
        return send_blob(request, Blob.of(body, "application/json"), REVALIDATE)

    @app.get("/api/datasets/{ds}/paintings/{pid}/canvas", summary="The canvas image the maps align to",
             responses=oa.PICTURE, response_class=Response)
    async def canvas(request: Request, ds: Id, pid: Id, v: Version = None):
        return await painting_file(request, ds, pid, "canvas", "canvas", v)

    @app.get("/api/datasets/{ds}/paintings/{pid}/thumb", summary="The gallery thumbnail",
             responses=oa.PICTURE, response_class=Response)
    async def thumb(request: Request, ds: Id, pid: Id, v: Version = None):
        return await painting_file(request, ds, pid, "thumb", "thumbnail", v)

    @app.get("/api/datasets/{ds}/paintings/{pid}/tokens/{i}.png", summary="8-bit map of generated token i",
             responses=oa.PNG, response_class=Response)
    async def token_map(request: Request, ds: Id, pid: Id, i: Index, v: Version = None):
        return await painting_file(request, ds, pid, f"token/{i}", f"map for token {i}", v)

    @app.get("/api/datasets/{ds}/paintings/{pid}/spans/{i}.png", summary="8-bit map of span i",
             responses=oa.PNG, response_class=Response)
    async def span_map(request: Request, ds: Id, pid: Id, i: Index, v: Version = None):
        return await painting_file(request, ds, pid, f"span/{i}", f"map for span {i}", v)

    @app.get("/api/datasets/{ds}/paintings/{pid}/spans/{i}/sam.png", summary="SAM 3 mask of span i (canvas size)",
             responses=oa.PNG, response_class=Response)
    async def sam_mask(request: Request, ds: Id, pid: Id, i: Index, v: Version = None):
        return await painting_file(request, ds, pid, f"sam/{i}", f"SAM 3 mask for span {i}", v)

    @app.get("/api/datasets/{ds}/paintings/{pid}/spans/{i}/methods/{method}.png",
             summary="8-bit map of span i by another method (faithfulness stage)", responses=oa.PNG,
             response_class=Response)
    async def method_map(request: Request, ds: Id, pid: Id, i: Index, method: Method, v: Version = None):
        return await painting_file(request, ds, pid, f"method/{method}/{i}", f"{method} map for span {i}", v)

    schema: list[Blob] = []  # made on first request, when every route exists

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request):
        if not schema:
            schema.append(Blob.of(orjson.dumps(app.openapi()), "application/json"))
        return send_blob(request, schema[0])

    if live is not None:  # before the explorer: the live dataset is served like the others
        from backend.live.routes import mount_live

        mount_live(app, catalog, live, live_target)
    mount_docs(app)
    mount_explorer(app, Path(frontend).resolve(), shell.credits(d.manifest for d in catalog.values()),
                   live=live is not None)
    edge = EdgeMiddleware(app)
    edge.state = app.state  # tests and tools reach the catalog through the returned app
    edge.fastapi = app
    return edge
