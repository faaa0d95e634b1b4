"""Plumbing shared by the browser tests and the explorer benchmark: servers on free ports in
threads (the real FastAPI app under uvicorn, or a plain static file server) and the system
Chromium driven by Playwright, kept off the network (shared/notes/browser-tests.md).

Playwright's own browser download is never used: the executable is the Debian Chromium
(`make chromium`), or TAMSCOPE_CHROMIUM when set.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import threading
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

from testkit import REPO
from testkit.net import free_port, http_server, wait_for_port

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync",
                  "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("TAMSCOPE_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@contextmanager
def api_server(data_dirs: list[Path]):
    """The real app (backend.app.create_app) under uvicorn in a thread; yields its base URL."""
    import uvicorn

    from backend.app import create_app

    port = free_port()
    config = uvicorn.Config(create_app(list(data_dirs)), host="127.0.0.1", port=port, log_level="warning",
                            access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-e2e", daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass


@contextmanager
def static_server(root: Path):
    """A plain file server (python's http.server), as any static host would serve the site."""
    with http_server(functools.partial(_QuietHandler, directory=str(root))) as httpd:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"


@contextmanager
def chromium():
    """One headless system Chromium; yields the Playwright Browser."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        raise RuntimeError("no Chromium found: `make chromium` installs Debian's (or set TAMSCOPE_CHROMIUM)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def stage_args(module, argv) -> argparse.Namespace:
    """A stage's parsed options, as its command line would give them (`module.configure`)."""
    parser = argparse.ArgumentParser()
    module.configure(parser)
    return parser.parse_args([str(a) for a in argv])
