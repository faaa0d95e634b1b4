"""Live questions (`tamscope serve --live`, backend/live, precompute/liveworker.py).

The queue, its bounds, the token, the rate limit and the upload checks run against the real app
with a stand-in worker (tests/live_stub_worker.py: spawned like the real one, no model). The
whole path, model included, runs once in a real `tamscope serve --live` process with the tiny
random-weight Qwen2-VL (real tokenizer): upload, stream, status, the painting served and valid,
asking about a served painting, a restart, and no torch in the server process.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from backend import SMOKE
from backend.live.ratelimit import RateLimit
from backend.live.settings import LiveSettings, is_loopback
from contract.store import Dataset
from contract.validate import validate_dataset
from testkit.net import free_port, wait_for_port
from tests import live_stub_worker

JOBS = "/api/live/jobs"


def png(size=(64, 48), mode="RGB", colour=(200, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, colour).save(buf, format="PNG")
    return buf.getvalue()


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*")}


def events_of(client: httpx.Client, url: str, headers: dict | None = None, timeout: float = 120) -> list[tuple[str, dict]]:
    """Every event of a job's stream until it ends: (kind, data)."""
    out, kind = [], None
    with client.stream("GET", url, headers=headers, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                out.append((kind, json.loads(line[6:])))
    return out


# --- units --------------------------------------------------------------------------------------

def test_rate_limit_counts_per_client_within_the_window():
    now = [0.0]
    rate = RateLimit(2, 60, keys=2, clock=lambda: now[0])
    assert rate.retry_after("a") == 0 and rate.retry_after("a") == 0
    assert rate.retry_after("a") == 60  # the first of the two leaves the window at t=60
    assert rate.retry_after("b") == 0  # another client has its own count
    now[0] = 30.0
    assert rate.retry_after("a") == 30
    now[0] = 60.0
    assert rate.retry_after("a") == 0
    rate.retry_after("c")  # a third key: the least recently seen ("b") is forgotten
    assert set(rate.seen) == {"a", "c"}


def test_loopback_addresses():
    assert all(map(is_loopback, ["127.0.0.1", "::1", "[::1]", "localhost", "127.8.0.1"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.4", "example.org"]))


def cli_args(*argv):
    import argparse

    from backend import cli

    parser = argparse.ArgumentParser()
    cli.configure(parser)
    return cli, parser.parse_args(list(argv))


def test_live_beyond_this_machine_needs_a_token(monkeypatch):
    monkeypatch.delenv("TAMSCOPE_LIVE_TOKEN", raising=False)
    cli, args = cli_args("--live", "--host", "0.0.0.0")
    with pytest.raises(ValueError, match="needs a token"):
        cli.live_settings(args)
    cli, args = cli_args("--live", "--host", "0.0.0.0", "--live-token", "s3cret")
    assert cli.live_settings(args).token == "s3cret"
    monkeypatch.setenv("TAMSCOPE_LIVE_TOKEN", "from-env")
    cli, args = cli_args("--live", "--host", "0.0.0.0")
    assert cli.live_settings(args).token == "from-env"
    cli, args = cli_args("--live", "--workers", "2")
    with pytest.raises(ValueError, match="--workers 1"):
        cli.live_settings(args)
    cli, args = cli_args()
    assert cli.live_settings(args) is None  # off by default


# --- the app with a stand-in worker -------------------------------------------------------------

@contextmanager
def live_app(tmp_path: Path, target=live_stub_worker.serve, **limits):
    """The real app with live mode (the smoke dataset served beside the live one) under uvicorn in
    a thread; yields (httpx client, live folder)."""
    import uvicorn

    from backend.app import create_app

    folder = tmp_path / "live"
    settings = LiveSettings(dataset=folder, captioner="unused-by-the-stub", **limits)
    app = create_app([SMOKE], live=settings, live_target=target)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client, folder
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        app.state.live.close()
        app.state.live.live.close()


def ask(client, prompt="quick", body=None, headers=None, **params):
    return client.post(JOBS, params={"prompt": prompt, **params}, content=png() if body is None else body,
                       headers={"content-type": "image/png", **(headers or {})})


def wait_status(client, job_id: str, wanted: set[str], timeout: float = 60, headers=None) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(f"{JOBS}/{job_id}", headers=headers).json()
        if status["status"] in wanted or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def wait_tokens(client, job_id: str, timeout: float = 60) -> dict:
    """The job's status once it has generated a token (its worker is up and at work)."""
    deadline = time.monotonic() + timeout
    while (status := client.get(f"{JOBS}/{job_id}").json())["tokens"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    return status


def test_queue_full_gets_429_and_cancel_frees_the_worker(tmp_path):
    with live_app(tmp_path, queue=1) as (client, _):
        first = ask(client, "slow")
        assert first.status_code == 202, first.text
        first = first.json()
        wait_tokens(client, first["id"])
        second = ask(client, "slow").json()
        assert second["status"] == "queued" and second["position"] == 1
        full = ask(client, "slow")
        assert full.status_code == 429 and full.json()["error"]["code"] == "too_many_requests"
        assert int(full.headers["retry-after"]) >= 5
        # cancelling the queued one frees its place; cancelling the running one frees the worker
        assert client.delete(f"{JOBS}/{second['id']}").json()["status"] == "cancelled"
        client.delete(f"{JOBS}/{first['id']}")
        assert wait_status(client, first["id"], {"cancelled"})["status"] == "cancelled"
        third = ask(client, "quick").json()
        done = wait_status(client, third["id"], {"done", "failed"})
        assert done["status"] == "done" and done["tokens"] == 3
        kinds = [k for k, _ in events_of(client, f"{JOBS}/{first['id']}/events")]
        assert kinds[0] == "queued" and kinds[1] == "running" and kinds[-1] == "cancelled" and "token" in kinds


def test_time_limit_stops_a_job_and_kills_a_worker_that_ignores_it(tmp_path):
    with live_app(tmp_path, time_limit=0.5, cancel_grace=1.0) as (client, _):
        slow = ask(client, "slow").json()
        status = wait_status(client, slow["id"], {"expired", "failed"})
        assert status["status"] == "expired" and "time limit" in status["error"]
        pid = int(client.get("/api/live").json().get("worker") == "up")  # a worker is up
        assert pid
        hung = ask(client, "hang").json()
        status = wait_status(client, hung["id"], {"expired", "failed"})
        assert status["status"] == "expired"  # stopped by killing the worker, 0.5 + 1 s later
        assert client.get("/api/live").json()["worker"] == "down"
        after = ask(client, "quick").json()  # the next job gets a new worker
        assert wait_status(client, after["id"], {"done", "failed"})["status"] == "done"
        stream = events_of(client, f"{JOBS}/{hung['id']}/events")
        assert stream[-1][0] == "expired" and "time limit" in stream[-1][1]["error"]


def test_a_late_or_resumed_stream_gets_every_event(tmp_path):
    with live_app(tmp_path) as (client, _):
        job = ask(client, "quick").json()
        wait_status(client, job["id"], {"done"})
        everything = events_of(client, f"{JOBS}/{job['id']}/events")
        assert [k for k, _ in everything] == ["queued", "running", "stage", "token", "token", "token", "done"]
        resumed = events_of(client, f"{JOBS}/{job['id']}/events", headers={"last-event-id": "4"})
        assert resumed == everything[5:]


def test_token_and_rate_limit(tmp_path):
    with live_app(tmp_path, token="s3cret", rate=2) as (client, _):
        assert client.get("/api/live").json()["token_required"] is True  # says so without the token
        refused = ask(client)
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        assert ask(client, headers={"authorization": "Bearer wrong"}).status_code == 401
        good = {"authorization": "Bearer s3cret"}
        job = ask(client, headers=good)
        assert job.status_code == 202
        assert client.get(f"{JOBS}/{job.json()['id']}").status_code == 401
        assert client.get(f"{JOBS}/{job.json()['id']}", headers=good).status_code == 200
        assert ask(client, headers=good).status_code == 202
        limited = ask(client, headers=good)
        assert limited.status_code == 429 and 0 < int(limited.headers["retry-after"]) <= 600
        assert "too many questions" in limited.json()["error"]["message"]


def bomb_png() -> bytes:
    """A valid PNG whose header says 30000 x 30000 (900 MP) and whose data is a few bytes."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")


def test_bad_uploads_get_clear_4xx_and_nothing_is_written(tmp_path):
    big = io.BytesIO()
    Image.new("L", (8000, 5000)).save(big, format="PNG", compress_level=1)  # 40 MP: over the 25 MP limit
    jpeg = io.BytesIO()
    Image.new("RGB", (64, 64)).save(jpeg, format="JPEG")
    with live_app(tmp_path, max_upload_bytes=2 * 2**20, rate=1000) as (client, folder):
        before = snapshot(folder)
        cases = {
            "empty": (ask(client, body=b""), 422, "empty"),
            "not an image": (ask(client, body=b"just some text, no picture " * 20), 422, "not an image"),
            "a header of 1 x 2 billion pixels": (ask(client, body=b"GIF89a? no, just text " * 20), 413, "MP"),
            "bomb": (ask(client, body=bomb_png()), 413, "MP limit"),
            "40 MP": (ask(client, body=big.getvalue()), 413, "megapixels"),
            "too many bytes": (ask(client, body=b"\x89PNG" + os.urandom(3 * 2**20)), 413, "MB"),
            "text/plain": (client.post(JOBS, content=png(), headers={"content-type": "text/plain"}), 415, "Content-Type"),
            "no type": (client.post(JOBS, content=png()), 415, "Content-Type"),
            "jpeg sent as png": (ask(client, body=jpeg.getvalue()), 415, "JPEG"),
            "truncated": (ask(client, body=png((300, 300), colour=None)[:200]), 422, ""),
            "path as name": (ask(client, filename="../../etc/passwd"), 422, "filename"),
            "windows path": (ask(client, filename="C:\\x\\y.png"), 422, "filename"),
            "dot dot": (ask(client, filename=".."), 422, "filename"),
            "control chars": (ask(client, filename="a\nb.png"), 422, "filename"),
            "tokens over the limit": (ask(client, max_new_tokens=100000), 422, "max_new_tokens"),
            "pixels under the limit": (ask(client, max_pixels=10), 422, "max_pixels"),
            "empty prompt": (ask(client, prompt="   "), 422, "prompt"),
            "tiny image": (ask(client, body=png((10, 10))), 422, "at least"),
        }
        for name, (response, code, words) in cases.items():
            assert response.status_code == code, (name, response.status_code, response.text)
            error = response.json()["error"]
            assert error["status"] == code and words in error["message"], (name, error)
        assert client.get("/api/live").json()["running"] is None  # no job was made
        assert snapshot(folder) == before


def test_sixteen_bit_cmyk_and_a_plain_name_are_accepted(tmp_path):
    sixteen, cmyk = io.BytesIO(), io.BytesIO()
    Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).save(sixteen, format="PNG")
    Image.new("CMYK", (64, 64), (0, 255, 255, 0)).save(cmyk, format="JPEG")
    with live_app(tmp_path, queue=4) as (client, _):
        assert ask(client, body=sixteen.getvalue(), filename="scan 16-bit.png").status_code == 202
        done = ask(client, body=cmyk.getvalue(), headers={"content-type": "image/jpeg"})
        assert done.status_code == 202, done.text


def test_ask_about_a_served_painting_checks_the_names(tmp_path):
    with live_app(tmp_path) as (client, _):
        headers = {"content-type": "application/json"}
        missing = client.post(JOBS, params={"prompt": "quick"}, content=b'{"dataset": "smoke", "painting": "nope"}',
                              headers=headers)
        assert missing.status_code == 404
        bad = client.post(JOBS, params={"prompt": "quick"}, content=b'{"dataset": "../smoke", "painting": "x"}',
                          headers=headers)
        assert bad.status_code == 422
        pid = Dataset(SMOKE).painting_ids()[0]
        job = client.post(JOBS, params={"prompt": "quick"}, headers=headers,
                          content=json.dumps({"dataset": "smoke", "painting": pid}).encode())
        assert job.status_code == 202, job.text


def test_routes_are_in_openapi(tmp_path):
    with live_app(tmp_path) as (client, _):
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/api/live", "/api/live/jobs", "/api/live/jobs/{job}", "/api/live/jobs/{job}/events"} <= set(paths)
        body = paths["/api/live/jobs"]["post"]["requestBody"]["content"]
        assert {"image/png", "image/jpeg", "application/json"} <= set(body)
        assert set(paths["/api/live/jobs/{job}"]) == {"get", "delete"}
        assert client.get("/config.json").json()["live"] is True
        doc = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()
        assert [p for p in paths if p.startswith("/api/live") and f"`{p}`" not in doc
                and not any(f"`{m.upper()} {p}`" in doc for m in paths[p])] == []


# --- the worker in this process, with the tiny model ---------------------------------------------

def test_the_worker_stops_generating_when_cancelled_and_writes_nothing(tiny_qwen2vl_dir, tmp_path):
    """Cancellation reaches into generation: the job stops after the token it was asked at, and a
    job stopped during describe leaves the dataset as it was."""
    from precompute.liveworker import JobSpec, Worker, WorkerSettings

    folder = tmp_path / "live"
    Dataset(folder).refresh_manifest(name="live")
    before = snapshot(folder)
    events: list = []
    settings = WorkerSettings(dataset=str(folder), captioner=str(tiny_qwen2vl_dir), device="cpu", dtype="float32")
    stop_after = 3  # tokens
    worker = Worker(settings, lambda job, kind, data: events.append((kind, data)),
                    lambda seq: sum(k == "token" for k, _ in events) >= stop_after)
    worker.run(JobSpec(seq=1, id="ask-20261202-000000-abcdef", image=png((96, 96)), file_name="x.png",
                       prompt="Describe this.", max_new_tokens=40, max_pixels=64 * 28 * 28, min_pixels=4 * 28 * 28))
    kinds = [k for k, _ in events]
    assert kinds.count("token") == stop_after and kinds[-1] == "cancelled" and "maps" not in kinds
    assert snapshot(folder) == before and Dataset(folder).painting_ids() == []


def test_a_missing_model_fails_the_question_with_its_reason(tmp_path):
    from precompute.liveworker import JobSpec, Worker, WorkerSettings

    folder = tmp_path / "live"
    Dataset(folder).refresh_manifest(name="live")
    events: list = []
    worker = Worker(WorkerSettings(dataset=str(folder), captioner=str(tmp_path / "no-such-model"), device="cpu"),
                    lambda job, kind, data: events.append((kind, data)), lambda seq: False)
    spec = JobSpec(seq=1, id="ask-20261202-000000-abcdef", image=png(), file_name="x.png", prompt="Describe.",
                   max_new_tokens=4, max_pixels=64 * 28 * 28, min_pixels=4 * 28 * 28)
    worker.run(spec)
    worker.run(spec)  # the next question gets the same answer at once (no second attempt to load)
    failures = [d["error"] for k, d in events if k == "failed"]
    assert len(failures) == 2 and all("no-such-model" in f and "does not exist" in f for f in failures)
    assert Dataset(folder).painting_ids() == []


# --- the real server with the tiny model --------------------------------------------------------

def mapped_libraries(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(c) for c in text]
    return found


@pytest.fixture(scope="module")
def live_server(tiny_qwen2vl_dir, tmp_path_factory):
    from tests.test_serve_cli import serve_process

    tmp = tmp_path_factory.mktemp("live-real")
    port = free_port()
    argv = ["--data", str(SMOKE), "--port", str(port), "--live", "--live-data", str(tmp / "live"),
            "--captioner", str(tiny_qwen2vl_dir), "--device", "cpu", "--dtype", "float32",
            "--live-max-new-tokens", "8", "--log-level", "warning"]
    with serve_process(argv, port, tmp / "serve.log", env={"OMP_NUM_THREADS": "1"}) as server:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            yield server, client, tmp / "live", tmp


def test_a_question_streams_tokens_and_becomes_a_valid_painting(live_server):
    server, client, folder, _ = live_server
    assert "libtorch" not in mapped_libraries(server.pid)  # nothing loaded before the first question
    created = ask(client, "What is in this picture?", body=png((120, 90)), filename="my photo.png", title="Mine")
    assert created.status_code == 202, created.text
    job = created.json()
    assert job["max_new_tokens"] == 8  # the server's limit is the default
    stream = events_of(client, f"/api/live/{job['events']}", timeout=300)
    kinds = [k for k, _ in stream]
    assert kinds[:2] == ["queued", "running"] and kinds[-1] == "done", stream
    assert kinds.index("caption") > max(i for i, k in enumerate(kinds) if k == "token")
    assert kinds.index("maps") < kinds.index("spans") < kinds.index("done")
    streamed = [d["text"] for k, d in stream if k == "token"]
    status = client.get(f"{JOBS}/{job['id']}").json()
    assert status["status"] == "done" and status["tokens"] == len(streamed) and status["dataset"] == "live"
    # the record, made by describe's own tokenisation, holds what was streamed, token for token
    record = client.get(f"/api/datasets/live/paintings/{status['painting']}").json()
    assert [t["text"] for t in record["tokens"]] == streamed and record["caption"] == "".join(streamed)
    assert record["prompt"] == "What is in this picture?" and record["annotations"]["title"] == "Mine"
    assert record["provenance"]["live"]["upload"]["name"] == "my photo.png"
    assert record["source_file"] == f"{job['id']}.png"  # the server's name, not the client's
    tile = client.get(f"/api/datasets/live/paintings/{status['painting']}/tokens/0.png")
    assert tile.status_code == 200 and tile.content.startswith(b"\x89PNG")
    assert [s["text"] for s in record["spans"]] == [s["text"] for s in dict(stream)["spans"]["spans"]]
    listing = {d["id"]: d for d in client.get("/api/datasets").json()["datasets"]}
    assert listing["live"]["n_paintings"] == 1
    assert validate_dataset(folder) == []
    # torch lives in the worker process only, which runs niced: the server's requests come first
    workers = [w for w in children(server.pid) if "libtorch" in mapped_libraries(w)]
    assert len(workers) == 1 and "libtorch" not in mapped_libraries(server.pid)
    # 10 steps below the server, as far as the kernel allows (19 is the lowest priority)
    assert os.getpriority(os.PRIO_PROCESS, workers[0]) == min(os.getpriority(os.PRIO_PROCESS, server.pid) + 10, 19)


def test_asking_about_a_served_painting_copies_its_annotations(live_server):
    _, client, folder, _ = live_server
    pid = Dataset(SMOKE).painting_ids()[0]
    job = client.post(JOBS, params={"prompt": "Who painted this?", "max_new_tokens": 4},
                      content=json.dumps({"dataset": "smoke", "painting": pid}).encode(),
                      headers={"content-type": "application/json"}).json()
    stream = events_of(client, f"/api/live/{job['events']}", timeout=300)
    assert stream[-1][0] == "done", stream
    record = client.get(f"/api/datasets/live/paintings/{job['id']}").json()
    assert record["annotations"] == Dataset(SMOKE).record(pid).annotations.model_dump(exclude_none=True)
    assert record["provenance"]["live"]["painting"] == pid and len(record["tokens"]) <= 4


def test_finished_questions_survive_a_restart(live_server):
    from tests.test_serve_cli import serve_process

    _, client, folder, tmp = live_server
    ids = Dataset(folder).painting_ids()
    assert ids, "run with the tests above"
    port = free_port()  # the live folder is held by the running server: served read-only here
    copy = tmp / "copy" / "live"
    import shutil

    shutil.copytree(folder, copy)
    restart = ["--data", str(SMOKE), "--port", str(port), "--live", "--live-data", str(copy), "--log-level", "warning"]
    with serve_process(restart, port, tmp / "restart.log"):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as again:
            assert again.get("/api/live").json()["dataset"] == "live"
            for pid in ids:
                assert again.get(f"/api/datasets/live/paintings/{pid}").json()["caption"]
                assert again.get(f"/api/datasets/live/paintings/{pid}/tokens/0.png").status_code == 200
            assert again.get(f"{JOBS}/{ids[0]}").status_code == 404  # jobs are not remembered, paintings are
            listed = again.get("/api/datasets/live/paintings").json()
            assert sorted(p["id"] for p in listed["items"]) == ids
    second = free_port()  # and a second live server on the same folder is refused, naming the holder
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "tamscope.cli", "serve", "--port", str(second), "--live",
                          "--live-data", str(folder)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "being written by another" in out.stderr
