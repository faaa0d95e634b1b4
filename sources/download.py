"""Small HTTP download helper shared by `tamscope demo` and `tamscope fetch-wikiart`.

Standard library only (urllib), so the server install needs nothing more. One `Fetcher`:
- retries with exponential backoff on connection errors, dropped transfers, 408/425/429/5xx and
  content that fails its check; honours Retry-After; gives up at once on other 4xx;
- `download()` writes to `<name>.part` in the target folder and renames it over the final name
  only after the size check (Content-Length / Content-Range) and the caller's content check
  pass, so a final name never holds half a file. A file over the caller's `max_bytes` is
  refused as soon as its announced size or the bytes received exceed it, and not retried. A dropped transfer resumes with an HTTP Range
  request (guarded by If-Range with the ETag the first response carried, kept next to the part
  file so a re-run resumes too); a server that ignores Range answers 200 and we restart;
- a minimum delay between request starts (politeness towards public APIs);
- thread-safe: the demo fetches several files at once.
"""

from __future__ import annotations

import errno
import http.client
import os
import random
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path

CHUNK = 1 << 16
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("tamscope")
    except Exception:  # running from a checkout that is not installed
        return "0"


USER_AGENT = f"tamscope/{_version()} (research tool: where a multimodal LLM looks in paintings; Python urllib)"


class DownloadError(Exception):
    """A file could not be fetched; the message names the file and the reason."""


class Unreachable(DownloadError):
    """No connection to the host: DNS failure, connection refused, or a timeout."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message


class HTTPStatusError(DownloadError):
    def __init__(self, message: str, status: int, retry_after: float | None = None, body: bytes = b""):
        super().__init__(message)
        self.status, self.retry_after, self.body = status, retry_after, body


class ContentError(DownloadError):
    """Bytes arrived but are wrong: short, too long, or failing the caller's content check."""


class TooLarge(ContentError):
    """The file is larger than the caller accepts: retrying cannot help."""


class _Dropped(DownloadError):
    """The transfer stopped early (connection closed or reset mid-body): resume it."""


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _is_unreachable(reason: object) -> bool:
    """The host cannot be reached at all (as opposed to a server that misbehaves)."""
    if isinstance(reason, http.client.HTTPException | ssl.SSLError):  # it answered, badly
        return False
    if isinstance(reason, socket.gaierror | ConnectionRefusedError | TimeoutError):
        return True
    return isinstance(reason, OSError) and reason.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH)


@dataclass
class Fetcher:
    user_agent: str = USER_AGENT
    retries: int = 4  # attempts after the first
    backoff: float = 1.0  # seconds before the first retry, doubling (with jitter), capped at 60
    timeout: float = 30.0
    delay: float = 0.0  # minimum seconds between the starts of two requests
    max_retry_after: float = 300.0  # never wait longer than this for a Retry-After
    give_up: Callable[[HTTPStatusError], str | None] | None = None  # a reason to stop retrying at once
    log: Callable[[str], None] | None = None  # one line per retry (the progress bar's write)
    sleep: Callable[[float], None] = field(default=lambda s: time.sleep(s))
    requests: int = field(default=0, init=False)  # requests sent, for reports and tests
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _next_start: float = field(default=0.0, init=False, repr=False)

    # one request ------------------------------------------------------------------------
    def _throttle(self) -> None:
        """Wait until `delay` has passed since the previous request's actual start. The next
        start is set when a request leaves here (not when it queues), so an oversleeping
        thread never brings the next request closer than `delay`."""
        with self._lock:
            self.requests += 1
        while self.delay > 0:
            with self._lock:
                now = time.monotonic()
                if now >= self._next_start:
                    self._next_start = now + self.delay
                    return
                wait = self._next_start - now
            self.sleep(wait)

    def open(self, url: str, headers: dict[str, str] | None = None, timeout: float | None = None
             ) -> http.client.HTTPResponse:
        """One GET. Raises Unreachable, HTTPStatusError (with Retry-After) or DownloadError."""
        self._throttle()
        req = urllib.request.Request(url, headers={"User-Agent": self.user_agent, **(headers or {})})
        try:
            return urllib.request.urlopen(req, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as exc:
            with exc:
                body = exc.read(4096) if exc.fp else b""
            raise HTTPStatusError(f"HTTP {exc.code} {exc.reason}", exc.code,
                                  retry_after_seconds(exc.headers.get("Retry-After")), body) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            if _is_unreachable(reason):
                raise Unreachable(f"cannot connect: {reason}", str(reason)) from None
            raise DownloadError(f"request failed: {reason}") from None
        except (http.client.HTTPException, ValueError) as exc:
            raise DownloadError(f"request failed: {exc!r}") from None

    # retry policy -------------------------------------------------------------------------
    def _wait(self, attempt: int, exc: DownloadError) -> float:
        if isinstance(exc, HTTPStatusError) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_retry_after)
        return min(60.0, self.backoff * 2 ** attempt) * random.uniform(0.75, 1.0)

    def _retry(self, label: str, attempt_fn: Callable[[], object], retry_unreachable: bool = True):
        last: DownloadError | None = None
        for attempt in range(self.retries + 1):
            try:
                return attempt_fn()
            except Unreachable as exc:
                if not retry_unreachable:
                    raise Unreachable(f"{label}: {exc}", exc.reason) from None
                last = exc
            except HTTPStatusError as exc:
                reason = self.give_up(exc) if self.give_up else None
                if reason:
                    raise HTTPStatusError(f"{label}: {reason}", exc.status, exc.retry_after, exc.body) from None
                if exc.status not in RETRY_STATUS:
                    raise HTTPStatusError(f"{label}: {exc}", exc.status, exc.retry_after, exc.body) from None
                last = exc
            except TooLarge as exc:
                raise TooLarge(f"{label}: {exc}") from None
            except DownloadError as exc:
                last = exc
            if attempt < self.retries:
                wait = self._wait(attempt, last)
                if self.log:
                    self.log(f"{label}: {last}; retrying in {wait:.1f} s ({attempt + 1}/{self.retries})")
                self.sleep(wait)
        n = self.retries + 1
        message = f"{label}: {last} (after {n} attempt{'s' * (n > 1)})"
        if isinstance(last, HTTPStatusError):
            raise HTTPStatusError(message, last.status, last.retry_after, last.body)
        if isinstance(last, Unreachable):
            raise Unreachable(message, last.reason)
        raise (ContentError if isinstance(last, ContentError) else DownloadError)(message)

    # whole bodies (API calls, small JSON) ---------------------------------------------------
    def get(self, url: str, *, label: str | None = None, check: Callable[[bytes], None] | None = None,
            retry_unreachable: bool = True, timeout: float | None = None, max_bytes: int | None = None) -> bytes:
        """The body of url; `check(body)` raises ContentError for a wrong body (retried)."""

        def attempt() -> bytes:
            with self.open(url, timeout=timeout) as resp:
                body = _read_all(resp, max_bytes)
            if check:
                check(body)
            return body

        return self._retry(label or url, attempt, retry_unreachable)

    # files --------------------------------------------------------------------------------
    def download(self, url: str, dest: Path, *, label: str | None = None,
                 check: Callable[[Path], None] | None = None, on_bytes: Callable[[int], None] | None = None,
                 retry_unreachable: bool = True, timeout: float | None = None, max_bytes: int | None = None) -> int:
        """Fetch url into dest atomically; returns the bytes transferred.

        `check(path)` inspects the complete part file and raises ContentError when its content
        is wrong; the part file is then discarded and the download retried from zero.
        """
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        tag = dest.with_name(dest.name + ".part.etag")
        moved = [0]

        def attempt() -> int:
            _fetch_into(self, url, part, tag, moved, on_bytes, timeout, max_bytes)
            if check:
                try:
                    check(part)
                except ContentError:
                    _discard(part, tag)
                    raise
            with open(part, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(part, dest)
            tag.unlink(missing_ok=True)
            return moved[0]

        return self._retry(label or dest.name, attempt, retry_unreachable)


def _too_large(size: int, max_bytes: int | None) -> None:
    if max_bytes is not None and size > max_bytes:
        raise TooLarge(f"larger than the {max_bytes:,}-byte limit ({size:,} bytes or more)")


def _read_all(resp: http.client.HTTPResponse, max_bytes: int | None = None) -> bytes:
    expected = resp.headers.get("Content-Length")
    if expected is not None and expected.isdigit():
        _too_large(int(expected), max_bytes)
    try:
        body = resp.read() if max_bytes is None else resp.read(max_bytes + 1)
    except (http.client.IncompleteRead, ConnectionError, TimeoutError) as exc:
        raise _Dropped(f"transfer interrupted ({exc.__class__.__name__})") from None
    _too_large(len(body), max_bytes)
    if expected is not None and expected.isdigit() and len(body) != int(expected):
        raise _Dropped(f"got {len(body)} of {expected} bytes")
    return body


def _discard(part: Path, tag: Path) -> None:
    part.unlink(missing_ok=True)
    tag.unlink(missing_ok=True)


def _content_range(value: str | None) -> tuple[int, int | None] | None:
    """'bytes 100-199/1000' -> (100, 1000); total None for '*'."""
    if not value or not value.startswith("bytes "):
        return None
    try:
        span, total = value[6:].split("/")
        return int(span.split("-")[0]), (None if total.strip() == "*" else int(total))
    except ValueError:
        return None


def _fetch_into(fetcher: Fetcher, url: str, part: Path, tag: Path, moved: list[int],
                on_bytes: Callable[[int], None] | None, timeout: float | None, max_bytes: int | None) -> None:
    """One attempt: (re)start or resume part; raise _Dropped when it stays short."""
    have = part.stat().st_size if part.is_file() else 0
    headers = {}
    if have:
        headers["Range"] = f"bytes={have}-"
        if tag.is_file():  # only splice onto bytes of the same version of the file
            headers["If-Range"] = tag.read_text().strip()
    try:
        resp = fetcher.open(url, headers, timeout)
    except HTTPStatusError as exc:
        if exc.status == 416:  # our part is not a prefix the server can continue: start again
            _discard(part, tag)
            raise _Dropped("server cannot resume (HTTP 416); restarting") from None
        raise
    with resp:
        total: int | None
        if resp.status == 206 and have:
            rng = _content_range(resp.headers.get("Content-Range"))
            if rng is None or rng[0] != have:
                _discard(part, tag)
                raise _Dropped(f"server resumed at the wrong offset ({resp.headers.get('Content-Range')})")
            total, mode = rng[1], "ab"
        elif resp.status == 200:
            length = resp.headers.get("Content-Length")
            total, mode, have = (int(length) if length and length.isdigit() else None), "wb", 0
            etag = resp.headers.get("ETag")
            if etag and not etag.startswith("W/"):  # weak validators cannot guard a Range
                tag.write_text(etag)
            else:
                tag.unlink(missing_ok=True)
        else:
            raise DownloadError(f"unexpected HTTP {resp.status}")
        if total is not None and max_bytes is not None and total > max_bytes:
            _discard(part, tag)
            _too_large(total, max_bytes)
        size = have
        with open(part, mode) as f:
            try:
                while chunk := resp.read(CHUNK):
                    f.write(chunk)
                    size += len(chunk)
                    moved[0] += len(chunk)
                    if on_bytes:
                        on_bytes(len(chunk))
                    if max_bytes is not None and size > max_bytes:  # no Content-Length, or a lying one
                        break
            except (http.client.IncompleteRead, ConnectionError, TimeoutError) as exc:
                raise _Dropped(f"transfer interrupted at byte {size} ({exc.__class__.__name__})") from None
            finally:
                f.flush()
    if max_bytes is not None and size > max_bytes:
        _discard(part, tag)
        _too_large(size, max_bytes)
    # http.client returns b"" (no error) when the peer closes early: the size check catches it
    if total is not None and size < total:
        raise _Dropped(f"connection closed at byte {size} of {total}")
    if total is not None and size > total:
        _discard(part, tag)
        raise ContentError(f"got {size} bytes, the server announced {total}")
