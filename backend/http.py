"""HTTP details kept out of the routes: conditional responses, compression, headers, logging."""

from __future__ import annotations

import logging
import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.catalog import Blob

log = logging.getLogger("tamscope.serve")

# No inline scripts or styles anywhere in the explorer; images may be blob:/data: (PNG export).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
REVALIDATE = "no-cache"  # datasets can be regenerated: clients revalidate with the ETag (cheap 304)
IMMUTABLE = "public, max-age=31536000, immutable"  # for URLs that carry their content hash


def send_blob(request: Request, blob: Blob, cache_control: str = REVALIDATE) -> Response:
    headers = {"etag": blob.etag, "cache-control": cache_control, "vary": "accept-encoding"}
    inm = request.headers.get("if-none-match")
    if inm is not None and (blob.etag in [tag.strip() for tag in inm.split(",")] or inm.strip() == "*"):
        return Response(status_code=304, headers=headers)
    body = blob.body
    if blob.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
        body = blob.gzipped
        headers["content-encoding"] = "gzip"
    return Response(body, media_type=blob.media_type, headers=headers)


class EdgeMiddleware:
    """Pure ASGI (no per-request task overhead): security headers and one log line per request."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            log.info("%s %s %d %.1fms", scope["method"], scope["path"][:200], status,
                     (time.perf_counter() - start) * 1000)
