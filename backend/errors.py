"""One JSON shape for every error: {"error": {"status", "code", "message"}}.

Installed on the FastAPI app for its own errors (404 and 405 from routing, 422 from
parameter validation, anything unexpected as 500), used by the edge middleware for what it
refuses before routing (414, 400) and by the connection limits (backend.protocol: 408, 431).
Only uvicorn's answer to a request it cannot parse as HTTP at all never reaches the
application and keeps uvicorn's plain-text 400.
"""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("tamscope.serve")

CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 408: "request_timeout",
         414: "uri_too_long", 422: "invalid", 431: "header_too_large", 500: "internal",
         # live mode (backend.live)
         401: "unauthorized", 413: "too_large", 415: "unsupported_media_type", 429: "too_many_requests"}


def error_body(status: int, message: str) -> bytes:
    return orjson.dumps({"error": {"status": status, "code": CODES.get(status, "error"), "message": message}})


def error_response(status: int, message: str, headers: dict | None = None) -> Response:
    return Response(error_body(status, message), status_code=status, media_type="application/json",
                    headers={"cache-control": "no-store", **(headers or {})})


def with_head(allow: str) -> str:
    methods = [m.strip() for m in allow.split(",") if m.strip()]
    return ", ".join(methods + ["HEAD"] if "GET" in methods and "HEAD" not in methods else methods)


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        headers = dict(exc.headers or {})
        if "Allow" in headers:  # 405: HEAD is answered wherever GET is (backend.http.EdgeMiddleware)
            headers["Allow"] = with_head(headers["Allow"])
        return error_response(exc.status_code, str(exc.detail), headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(422, f"{where}: {first.get('msg', 'invalid request')}"[:300])

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):  # logged here, never a stack trace to the client
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal error")
