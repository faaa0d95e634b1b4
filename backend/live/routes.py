"""The live-questions API (docs/api.md, "Live questions"), mounted by `tamscope serve --live`.

    GET    /api/live                          what a client needs: the live dataset, limits, token or not, queue
    POST   /api/live/jobs?prompt=&max_new_tokens=&max_pixels=&filename=&title=
                                              body: the image (Content-Type image/...), or JSON
                                              {"dataset", "painting"} naming a served painting
    GET    /api/live/jobs/{job}               the job's status
    GET    /api/live/jobs/{job}/events        server-sent events: its progress, from the start (or Last-Event-ID)
    DELETE /api/live/jobs/{job}               cancel it

Every route but the first takes `Authorization: Bearer <token>` when the server has a token
(required when it listens beyond this machine). Creating a job is limited per client address
and refused with 429 and Retry-After when the client asks too often or the queue is full.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Annotated

import orjson
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from backend.catalog import PaintingUnavailable, ServedDataset
from backend.errors import error_response
from backend.live import uploads
from backend.live.jobs import Job, JobManager, QueueFull
from backend.live.ratelimit import RateLimit
from backend.live.served import LiveDataset
from backend.live.settings import LiveSettings
from contract.schema import ID_PATTERN

log = logging.getLogger("tamscope.serve")

JOB_ID = r"^ask-[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$"
PLAIN_NAME = re.compile(r"[^/\\\x00-\x1f\x7f]{1,255}")
JobId = Annotated[str, PathParam(pattern=JOB_ID, max_length=64)]
KEEPALIVE = 15.0  # seconds between SSE comments while a job is quiet (proxies close silent streams)


class AskPainting(BaseModel):
    """JSON body of POST /api/live/jobs: ask about a painting the server serves."""

    dataset: str = Field(pattern=ID_PATTERN, max_length=128)
    painting: str = Field(pattern=ID_PATTERN, max_length=128)


class JobStatus(BaseModel):
    id: str
    status: str  # queued, running, done, failed, cancelled, expired
    stage: str | None = None  # loading, describe, maps, spans, spanmaps, sam
    position: int | None = None  # in the queue, 1 = next
    prompt: str
    max_new_tokens: int
    max_pixels: int
    tokens: int  # generated so far
    dataset: str  # the live dataset
    painting: str | None = None  # its painting, once the caption and its maps are committed
    error: str | None = None
    created: str
    started: str | None = None
    finished: str | None = None
    events: str  # the URL of its event stream


def public_name(model: str | None) -> str | None:
    """A model's hub id as it is; a local folder by its name only (the server's paths are not the client's business)."""
    if model is None or not model.startswith(("/", ".", "~")):
        return model
    return PurePosixPath(model).name or model


def iso(t: float | None) -> str | None:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if t is not None else None


def sse(event) -> bytes:
    return f"id: {event.id}\nevent: {event.kind}\ndata: ".encode() + orjson.dumps(event.data) + b"\n\n"


def mount_live(app: FastAPI, catalog: dict[str, ServedDataset], settings: LiveSettings, target=None) -> JobManager:
    """Serve settings.dataset and add the live routes; returns the job manager (close() it on exit).
    `target`: the worker's entry point (tests pass a stand-in)."""
    from precompute.stages.describe import DEFAULT_PROMPT  # no torch at import

    live = LiveDataset(settings.dataset, catalog)
    manager = JobManager(settings, live.commit, target)
    manager.live = live
    rate = RateLimit(settings.rate, settings.rate_window)
    decodes = asyncio.Semaphore(2)
    app.state.live = manager

    def authorised(request: Request) -> None:
        if settings.token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), settings.token.encode()):
            raise HTTPException(401, "live questions need the server's token (Authorization: Bearer <token>)",
                                headers={"WWW-Authenticate": 'Bearer realm="tamscope live"'})

    Auth = Depends(authorised)

    def job_of(job: str) -> Job:
        found = manager.jobs.get(job)
        if found is None:
            raise HTTPException(404, f"no job {job!r} (jobs are kept in memory: a restarted server forgets them; "
                                     f"their paintings stay in the live dataset)")
        return found

    def status(job: Job) -> dict:
        return JobStatus(id=job.id, status=job.status, stage=job.stage, position=manager.position(job),
                         prompt=job.prompt, max_new_tokens=job.max_new_tokens, max_pixels=job.max_pixels,
                         tokens=job.tokens, dataset=live.id, painting=job.painting, error=job.error,
                         created=iso(job.created), started=iso(job.started), finished=iso(job.finished),
                         events=f"jobs/{job.id}/events").model_dump(exclude_none=True)

    def answer(body: dict, code: int = 200, headers: dict | None = None) -> Response:
        return Response(orjson.dumps(body), status_code=code, media_type="application/json",
                        headers={"cache-control": "no-store", **(headers or {})})

    @app.get("/api/live", summary="Live questions: the live dataset, limits, whether a token is needed, the queue",
             tags=["live"])
    async def live_info():
        return answer({"dataset": live.id, "token_required": settings.token is not None,
                       "default_prompt": DEFAULT_PROMPT,
                       "models": {"captioner": public_name(settings.captioner), "tam_variant": settings.tam_variant,
                                  "text_llm": public_name(settings.text_llm),
                                  "segmenter": public_name(settings.segmenter)},
                       "limits": {"max_new_tokens": settings.max_new_tokens, "max_pixels": settings.max_pixels,
                                  "min_pixels": settings.min_job_pixels, "max_upload_bytes": settings.max_upload_bytes,
                                  "max_upload_pixels": settings.max_upload_pixels, "time_limit": settings.time_limit,
                                  "queue": settings.queue, "rate": settings.rate, "rate_window": settings.rate_window,
                                  "types": list(uploads.TYPES)},
                       **manager.state()})

    body_doc = {"required": True, "content": {
        **{media: {"schema": {"type": "string", "format": "binary"}} for media in uploads.TYPES},
        "application/json": {"schema": AskPainting.model_json_schema()}}}

    @app.post("/api/live/jobs", status_code=202, tags=["live"], dependencies=[Auth],
              summary="Ask: a job for an uploaded image (the request body) or a served painting (JSON)",
              openapi_extra={"requestBody": body_doc},
              responses={202: {"model": JobStatus}, 401: {}, 413: {}, 415: {}, 422: {}, 429: {}})
    async def create_job(request: Request,
                         prompt: Annotated[str, Query(min_length=1, max_length=1000)] = DEFAULT_PROMPT,
                         max_new_tokens: Annotated[int | None, Query(ge=1, description=(
                             "at most the server's limit (GET /api/live); default the limit"))] = None,
                         max_pixels: Annotated[int | None, Query(ge=1, description=(
                             "image area the model sees at most, within the server's limits; default its limit"))] = None,
                         filename: Annotated[str | None, Query(max_length=255, description=(
                             "the upload's file name, kept for display only (a plain name, no path)"))] = None,
                         title: Annotated[str | None, Query(max_length=200)] = None):
        prompt = prompt.strip()
        if not prompt or "\x00" in prompt:
            raise HTTPException(422, "prompt: must be text, not empty")
        tokens = settings.max_new_tokens if max_new_tokens is None else max_new_tokens
        if tokens > settings.max_new_tokens:
            raise HTTPException(422, f"max_new_tokens: at most {settings.max_new_tokens} on this server")
        pixels = settings.max_pixels if max_pixels is None else max_pixels
        if not settings.min_job_pixels <= pixels <= settings.max_pixels:
            raise HTTPException(422, f"max_pixels: between {settings.min_job_pixels} and {settings.max_pixels} "
                                     f"on this server")
        if filename is not None and (not PLAIN_NAME.fullmatch(filename) or filename.strip(". ") == ""):
            raise HTTPException(422, "filename: a plain file name without folders or control characters")
        if manager.running is not None and len(manager.waiting) >= settings.queue:  # before reading the body
            wait = manager.retry_after()
            raise HTTPException(429, f"the queue is full; try again in about {wait} s",
                                headers={"Retry-After": str(wait)})
        media = uploads.media_type_of(request)
        if media not in uploads.TYPES and media != "application/json":  # refused before it counts or is read
            raise HTTPException(415, f"send the image as the request body with its Content-Type "
                                     f"({', '.join(uploads.TYPES)}), or JSON naming a served painting; "
                                     f"got {media or 'no Content-Type'}")
        client = request.client.host if request.client else "?"
        wait = rate.retry_after(client)
        if wait:
            raise HTTPException(429, f"too many questions from this address: at most {settings.rate} per "
                                     f"{settings.rate_window:g} s; try again in {wait} s",
                                headers={"Retry-After": str(wait)})
        if media == "application/json":
            upload, annotations, source = await painting_source(request)
        else:
            upload = await uploads.read_upload(request, settings.max_upload_bytes, settings.max_upload_pixels, decodes)
            annotations = {"title": title.strip()} if title and title.strip() else {}
            source = {"upload": {k: v for k, v in (("name", filename), ("type", upload.media_type),
                                                   ("bytes", len(upload.data))) if v is not None}}
        from precompute.liveworker import JobSpec  # stdlib only

        def spec(seq: int, job_id: str) -> JobSpec:
            return JobSpec(seq=seq, id=job_id, image=upload.data, file_name=f"{job_id}{upload.suffix}",
                           prompt=prompt, max_new_tokens=tokens, max_pixels=pixels,
                           min_pixels=min(settings.min_pixels, pixels), annotations=annotations, source=source)

        try:
            job = manager.submit(spec, prompt, tokens, pixels, source)
        except QueueFull as exc:
            raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
        return answer(status(job), 202, {"location": f"jobs/{job.id}"})

    async def painting_source(request: Request):
        raw = await uploads.read_body(request, 4096)
        try:
            ask = AskPainting.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise HTTPException(422, f"{'.'.join(map(str, first['loc'])) or 'body'}: {first['msg']}") from None
        served = catalog.get(ask.dataset)
        try:  # checked on first use like any served painting (backend.catalog)
            painting = await asyncio.to_thread(served.painting, ask.painting) if served else None
        except PaintingUnavailable:
            painting = None
        if painting is None or "canvas" not in painting.files:
            raise HTTPException(404, f"no painting {ask.painting!r} with a canvas in dataset {ask.dataset!r}")
        ref = painting.files["canvas"]
        try:
            data = (await asyncio.to_thread(ref.load)).body
        except OSError:
            raise HTTPException(404, f"the canvas of painting {ask.painting!r} is missing on the server") from None
        media = {".png": "image/png", ".webp": "image/webp"}.get(PurePosixPath(ref.rel).suffix.lower(), "image/jpeg")
        async with decodes:
            upload = await asyncio.to_thread(uploads.check_image, data, media, settings.max_upload_pixels)
        record = orjson.loads(painting.record.body)
        return upload, record.get("annotations") or {}, {"dataset": ask.dataset, "painting": ask.painting,
                                                        "version": served.version}

    @app.get("/api/live/jobs/{job}", summary="A job's status", tags=["live"], dependencies=[Auth],
             responses={200: {"model": JobStatus}, 401: {}, 404: {}})
    async def job_status(job: JobId):
        return answer(status(job_of(job)))

    @app.delete("/api/live/jobs/{job}", summary="Cancel a job (queued or running); frees the worker",
                tags=["live"], dependencies=[Auth], status_code=202,
                responses={202: {"model": JobStatus}, 401: {}, 404: {}})
    async def cancel_job(job: JobId):
        found = job_of(job)
        manager.cancel(found)
        return answer(status(found), 202)

    @app.get("/api/live/jobs/{job}/events", tags=["live"], dependencies=[Auth],
             summary="Server-sent events: queued, running, stage, token, caption, maps, spans, spanmaps, sam, "
                     "then done, failed, cancelled or expired",
             responses={200: {"content": {"text/event-stream": {}}}, 401: {}, 404: {}})
    async def job_events(request: Request, job: JobId):
        found = job_of(job)
        last = request.headers.get("last-event-id", "")
        start = int(last) + 1 if last.isdigit() and len(last) < 7 else 0

        async def stream():
            i = start
            while True:
                wake = found.wakeup  # taken before reading: an event published meanwhile sets it
                while i < len(found.events):
                    yield sse(found.events[i])
                    i += 1
                if found.terminal:
                    return
                try:
                    await asyncio.wait_for(wake.wait(), KEEPALIVE)
                except TimeoutError:
                    yield b": still working\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, exc: QueueFull):
        return error_response(429, str(exc), {"Retry-After": str(exc.retry_after)})

    return manager
