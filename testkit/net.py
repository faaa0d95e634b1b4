"""Ports on 127.0.0.1 for test and benchmark servers."""

from __future__ import annotations

import socket
import time


def free_port() -> int:
    """A port nobody listens on right now (bound, then released): a server can take it, and a
    connection to it is refused until one does."""
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
