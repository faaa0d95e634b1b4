"""A real HTTP server on 127.0.0.1 (free port, own thread) for the download tests.

Tests never contact the internet: the demo's downloader and the WikiArt client run against
this server, which records every request and can misbehave on demand.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

from testkit.net import free_port as closed_port  # noqa: F401 (a port nobody listens on: connections are refused)
from testkit.net import http_server


class Handler(BaseHTTPRequestHandler):
    app: Callable[[Handler], None]

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        type(self).app(self)

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
             length: int | None = None, stop_after: int | None = None) -> None:
        """Answer; `length` overrides Content-Length, `stop_after` closes the socket after that many body bytes."""
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if stop_after is None:
            self.wfile.write(body)
            return
        self.wfile.write(body[:stop_after])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)  # the drop: the client sees the stream end early


class LocalServer:
    """`with LocalServer(app) as srv:` — app(handler) answers each GET; srv.url ends with '/'."""

    def __init__(self, app: Callable[[Handler], None]):
        self.serving = http_server(type("AppHandler", (Handler,), {"app": staticmethod(app)}))
        self.url = ""

    def __enter__(self) -> LocalServer:
        self.httpd = self.serving.__enter__()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        return self

    def __exit__(self, *exc) -> None:
        self.serving.__exit__(*exc)
