"""The plumbing tests share (testkit/): the test HTTP server holds up under a burst of connections."""

from __future__ import annotations

import select
import socket
import time
from http.server import BaseHTTPRequestHandler

from testkit.net import free_port, http_server


def handshakes_completed(port: int, n: int, wait: float = 0.5) -> int:
    """Open n connections at once; how many the kernel completed. Nothing accepts them meanwhile:
    only the listening socket's queue (its backlog) holds them, the rest wait for a SYN retry."""
    socks = []
    try:
        for _ in range(n):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            socks.append(sock)
        done: set[socket.socket] = set()
        deadline = time.monotonic() + wait
        while len(done) < n and time.monotonic() < deadline:
            _, writable, _ = select.select([], [s for s in socks if s not in done], [], 0.05)
            done |= {s for s in writable if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0}
        return len(done)
    finally:
        for sock in socks:
            sock.close()


def test_test_server_queues_a_burst_of_connections():
    """A browser opens many connections at once, and on a busy machine the server's thread may
    not accept for a while: the static-site browser test got ERR_CONNECTION_RESET from the
    standard library's backlog of 5 (it completes 6 of these 64 handshakes)."""
    with http_server(BaseHTTPRequestHandler) as httpd:
        httpd.shutdown()  # still listening, no longer accepting: the worst case of a busy machine
        assert handshakes_completed(httpd.server_address[1], 64) == 64
        assert httpd.daemon_threads  # a handler still running never keeps the test process alive


def test_free_port_is_free():
    port = free_port()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # nothing listens
        s.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # and it can be bound
