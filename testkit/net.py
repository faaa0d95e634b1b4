"""Local network plumbing for tests and benchmarks: free ports and the one kind of test HTTP server.

`ThreadingHTTPServer` as the standard library builds it listens with a backlog of 5 and joins
its handler threads at close: on a busy machine a browser's burst of parallel requests
overflows that queue and gets ERR_CONNECTION_RESET (the static-site browser test did), and
a stuck handler holds up the test's exit. Every test HTTP server is made by `http_server`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    """A port nothing listens on now (bound, then released): for a server started next, or a refused connection."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    """Return once something accepts connections on the port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


class LocalHTTPServer(ThreadingHTTPServer):
    request_queue_size = 128  # the accept backlog: a browser opens many connections at once
    daemon_threads = True  # a handler still running never keeps the test process alive


@contextmanager
def http_server(handler: Callable[..., BaseHTTPRequestHandler], port: int = 0) -> Iterator[LocalHTTPServer]:
    """A threaded HTTP server on 127.0.0.1 (a free port unless given), serving in a daemon thread."""
    httpd = LocalHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=httpd.serve_forever, name=f"http-{httpd.server_address[1]}", daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
