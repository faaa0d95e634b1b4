"""uvicorn's HTTP protocol with the limits a server on an open port needs and uvicorn lacks.

uvicorn (0.55, httptools) keeps a request head of any size in memory (a 64 MB header was
accepted) and runs no timer before a connection's first request or while a request arrives:
its one timer, `timeout_keep_alive`, starts after a response and is cancelled by the first
byte of the next request. Its `h11_max_incomplete_event_size` bounds the head of the h11
protocol only, and `limit_concurrency` answers 503 to new requests but never closes a
connection. So, per connection, this subclass adds:

- a bound on the request head (request line and headers), MAX_HEAD_BYTES: the parser is fed
  at most that many bytes of a head, so no larger head is ever held; beyond it the client
  gets 431 and the connection is closed;
- an idle timeout: a connection that waits for a request and makes no progress (no byte
  received, no byte of a pending response taken) for `idle_timeout` seconds is closed (it
  is also uvicorn's keep-alive timeout);
- a request timeout: a request (head and any body) not fully received `request_timeout`
  seconds after its first byte, or after the connection opened, gets 408 and is closed.

A 431 or 408 is followed by a lingering close (as nginx does): the server stops writing and
reads, dropping it, what the client still sends, for up to `idle_timeout`. Closing at once
with unread bytes makes the kernel send a reset, which can destroy the answer before the
client reads it. One timer per connection checks the timeouts and re-arms itself: no timer
work per read.
Installed by ServerConfig (backend.cli passes it to uvicorn); tests/test_serve_cli.py drives
it with real sockets against `tamscope serve`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from backend.errors import error_body
from backend.http import SECURITY_HEADERS

log = logging.getLogger("tamscope.serve")

MAX_HEAD_BYTES = 64 * 1024  # request line and headers; browsers send a few KB (cookies included)


@dataclass(frozen=True)
class Limits:
    idle_timeout: float = 10.0  # seconds without progress while the server waits for the client
    request_timeout: float = 30.0  # seconds from a request's first byte to its last
    max_head_bytes: int = MAX_HEAD_BYTES


class ServerConfig(uvicorn.Config):
    """uvicorn's Config with our protocol and its limits. Picklable: worker processes get a copy."""

    def __init__(self, app, limits: Limits = Limits(), **options):
        super().__init__(app, http=LimitedHttpToolsProtocol, ws="none", timeout_keep_alive=limits.idle_timeout,
                         **options)
        self.limits = limits


def raw_error(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP/1.1 error response (our JSON error shape) that closes the connection."""
    body = error_body(status, message)
    head = [f"HTTP/1.1 {status} {reason}".encode(), b"content-type: application/json",
            b"content-length: " + str(len(body)).encode(), b"cache-control: no-store", b"connection: close",
            *(name + b": " + value for name, value in SECURITY_HEADERS)]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, config: uvicorn.Config, server_state, app_state, _loop: asyncio.AbstractEventLoop | None = None):
        super().__init__(config, server_state, app_state, _loop)
        self.limits: Limits = getattr(config, "limits", Limits())
        self.in_head = True  # bytes that arrive now belong to a request head
        self.head_bytes = 0  # of the current head, fed to the parser so far
        self.request_started: float | None = None  # loop time; None while no request is arriving
        self.last_progress = 0.0
        self.write_buffered = 0  # the transport's write buffer at the last check
        self.lingering = False  # refused: what still arrives is dropped
        self.watchdog: asyncio.TimerHandle | None = None

    # -- the connection ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.request_started = self.last_progress = self.loop.time()  # an open connection owes a request
        self.arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return
        self.last_progress = self.loop.time()
        # A head is fed in pieces that keep it within the limit: httptools joins a header's
        # pieces in memory, so what it is never given it cannot hold.
        while self.in_head and data:
            room = self.limits.max_head_bytes - self.head_bytes
            if room <= 0:
                self.refuse(431, "Request Header Fields Too Large",
                            f"the request line and headers exceed {self.limits.max_head_bytes} bytes")
                return
            piece, data = data[:room], data[room:]
            self.head_bytes += len(piece)
            super().data_received(piece)  # may complete the head (and, pipelined, whole requests)
            if self.transport.is_closing():  # a parse error: uvicorn answered 400
                return
        if data:
            super().data_received(data)

    # -- parser callbacks: where a request begins and ends ------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.request_started is None:
            self.request_started = self.loop.time()

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.in_head = True
        self.request_started = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.last_progress = self.loop.time()  # the client's turn starts now

    # -- the watchdog --------------------------------------------------------------------------

    def arm(self) -> None:
        due = self.last_progress + self.limits.idle_timeout
        if self.request_started is not None:
            due = min(due, self.request_started + self.limits.request_timeout)
        self.watchdog = self.loop.call_at(due, self.check)

    def answering(self) -> bool:
        """A response is under way: the application's time, not the client's."""
        return self.cycle is not None and not self.cycle.response_complete

    def check(self) -> None:
        self.watchdog = None
        now = self.loop.time()
        if self.answering():
            self.watchdog = self.loop.call_at(now + self.limits.idle_timeout, self.check)
            return
        buffered = self.transport.get_write_buffer_size()
        if buffered != self.write_buffered:  # the client is taking a response: progress too
            self.write_buffered = buffered
            self.last_progress = now
        if self.request_started is not None and now >= self.request_started + self.limits.request_timeout:
            self.expire(f"the request was not complete {self.limits.request_timeout:g} s after it began")
        elif now >= self.last_progress + self.limits.idle_timeout:
            self.expire(f"the request stalled for {self.limits.idle_timeout:g} s")
        else:
            self.arm()

    def expire(self, why: str) -> None:
        if self.request_started is not None and (self.head_bytes > 0 or not self.in_head):  # a request begun
            self.refuse(408, "Request Timeout", why)
        else:
            self.close_within(self.limits.idle_timeout)

    def refuse(self, status: int, reason: str, message: str) -> None:
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
        log.info("- - %d %s (client %s)", status, message, client)
        if self.answering():  # a pipelined head: no answer may overtake the pending one
            self.close_within(self.limits.idle_timeout)
            return
        self.transport.write(raw_error(status, reason, message))
        self.transport.write_eof()  # sent once the answer is: the client reads it, then the end
        self.lingering = True
        self.close_within(self.limits.idle_timeout, close=False)  # the client closes first, or is dropped

    def close_within(self, seconds: float, close: bool = True) -> None:
        """Close now (flushing what is buffered), and drop the connection if it is not gone in `seconds`."""
        if close:
            self.transport.close()
        if self.watchdog is not None:
            self.watchdog.cancel()
        self.watchdog = self.loop.call_later(seconds, self.transport.abort)
