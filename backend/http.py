"""HTTP details kept out of the routes: conditional responses, compression, redirects, the edge middleware."""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.blobs import Blob
from backend.errors import error_response

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
MAX_TARGET = 4096  # bytes of path or query string; longer requests get 414 before routing
QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")  # RFC 9110 12.4.2


def etag_matches(if_none_match: str, *etags: str) -> bool:
    """Weak comparison (RFC 9110 13.1.2): a proxy may have turned our tag into W/"...". """
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") in etags for tag in if_none_match.split(","))


def accepts_gzip(accept_encoding: str) -> bool:
    """RFC 9110 12.5.3: gzip (or x-gzip, or *) listed with a q-value above 0. An item with a
    malformed q-value is ignored. (werkzeug has such a parser but is no dependency of the server.)"""
    named = star = None
    for item in accept_encoding.split(","):
        coding, *params = item.split(";")
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                q = float(value.strip()) if QVALUE.fullmatch(value.strip()) else None
        if q is None:
            continue
        coding = coding.strip().lower()
        if coding in ("gzip", "x-gzip"):
            named = max(named or 0.0, q)
        elif coding == "*":
            star = q
    q = named if named is not None else star
    return q is not None and q > 0


def send_blob(request: Request, blob: Blob, cache_control: str = REVALIDATE) -> Response:
    gzipped = blob.gzipped is not None and accepts_gzip(request.headers.get("accept-encoding", ""))
    etag = blob.etag_gzip if gzipped else blob.etag
    headers = {"etag": etag, "cache-control": cache_control}
    if blob.gzipped is not None:
        headers["vary"] = "accept-encoding"
    inm = request.headers.get("if-none-match")
    if inm is not None and etag_matches(inm, etag):  # only the variant this request would get
        return Response(status_code=304, headers=headers)
    if gzipped:
        headers["content-encoding"] = "gzip"
    return Response(blob.gzipped if gzipped else blob.body, media_type=blob.media_type, headers=headers)


def relative_slash_redirects(router: Router) -> None:
    """Redirect `/api/health/` to `/api/health` (and the reverse) as Starlette does, but with a
    Location relative to the request: Starlette writes an absolute URL from the client's own
    Host header. `../health` (or `./static/`) also stays right behind a proxy that mounts the
    server under a sub-path. One slash only: clients resolve `..` after empty segments
    differently (Python's urljoin drops them, browsers keep them), so `/api/health//` is 404."""
    fallback = router.default

    async def default(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        other = path[:-1] if path.endswith("/") else path + "/"
        if scope["type"] == "http" and path != "/" and not other.endswith("//") and any(
                route.matches(dict(scope, path=other))[0] is not Match.NONE for route in router.routes):
            last = quote(other.rstrip("/").rsplit("/", 1)[1])
            location = f"../{last}" if path.endswith("/") else f"./{last}/"  # "./": a ':' in `last` is no scheme
            query = scope.get("query_string", b"").decode("latin-1")
            await RedirectResponse(location + (f"?{query}" if query else ""))(scope, receive, send)
            return
        await fallback(scope, receive, send)

    router.redirect_slashes = False
    router.default = default


class EdgeMiddleware:
    """What every request goes through, as pure ASGI (no per-request task or body buffering):
    limits on the request target, HEAD as GET without a body, security headers on every
    response (a route may set its own CSP), and one log line per request."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        head = scope["method"] == "HEAD"
        if head:
            scope = dict(scope, method="GET")

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in SECURITY_HEADERS if name not in present]
                message = dict(message, headers=headers)
            elif head and message["type"] == "http.response.body":
                message = dict(message, body=b"")
            await send(message)

        try:
            refusal = self.refuse(scope)
            if refusal is not None:
                await refusal(scope, receive, send_with_headers)
            else:
                await self.app(scope, receive, send_with_headers)
        finally:
            # repr escapes control characters: a path with %0a cannot forge a log line
            log.info("%s %s %d %.1fms", "HEAD" if head else scope["method"], repr(scope["path"][:200])[1:-1], status,
                     (time.perf_counter() - start) * 1000)

    @staticmethod
    def refuse(scope: Scope) -> Response | None:
        """Huge targets and NUL bytes never reach routing (HTTP clients cannot normalise these away)."""
        if len(scope.get("query_string", b"")) > MAX_TARGET or len(scope.get("raw_path") or scope["path"]) > MAX_TARGET:
            return error_response(414, "request target too long")
        if "\x00" in scope["path"]:
            return error_response(400, "invalid path")
        return None
