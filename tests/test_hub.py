"""Hub access when loading models (precompute.hub): downloads by default when the hub answers,
the cache only after a short probe without network, and nothing at all with --offline."""

from __future__ import annotations

import http.server
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from precompute import hub
from precompute.models import ModelNotAvailable, load_captioner
from precompute.runner import add_model_options

HUB_ID = "tamscope-test/tiny-qwen2-vl"  # an id that exists nowhere but in the fake caches below


def closed_port() -> int:
    """A local port nothing listens on (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No offline or online switch from the caller's environment, an empty hub cache, no
    remembered probe."""
    import huggingface_hub.constants

    for name in ("TAMSCOPE_ONLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    cache = tmp_path / "hub-cache"
    cache.mkdir()
    # huggingface_hub read HF_HOME when imported: the cache folder is its constant now
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    probe = hub.reachable  # a test may replace it; the remembered answers are the real one's
    probe.cache_clear()
    yield cache
    probe.cache_clear()


def cache_model(cache: Path, model_dir: Path, repo_id: str = HUB_ID) -> None:
    """Put a saved model into the hub cache the way `huggingface-cli download` leaves it."""
    commit = "0" * 40
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(model_dir, repo / "snapshots" / commit)


@pytest.fixture
def no_network(monkeypatch):
    """Every attempt to open a connection or resolve a name fails the test (and is counted)."""
    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def test_offline_loads_from_the_cache_without_touching_the_network(clean_env, tiny_qwen2vl_dir, no_network):
    cache_model(clean_env, tiny_qwen2vl_dir)
    captioner = load_captioner(HUB_ID, device="cpu", offline=True)
    assert type(captioner.model).__name__ == "Qwen2VLForConditionalGeneration"
    assert no_network == []


def test_offline_reports_a_model_missing_from_the_cache_without_touching_the_network(clean_env, no_network):
    with pytest.raises(ModelNotAvailable, match=r"'tamscope-test/absent' is not on this machine "
                                                r"\(offline mode: --offline\)"):
        load_captioner("tamscope-test/absent", device="cpu", offline=True)
    assert no_network == []


def test_hf_hub_offline_in_the_environment_is_respected(clean_env, monkeypatch, no_network):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailable, match=r"offline mode: HF_HUB_OFFLINE=1"):
        load_captioner("tamscope-test/absent", device="cpu")
    assert no_network == []


def test_an_unreachable_hub_fails_at_once_with_the_message(clean_env, monkeypatch):
    url = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("HF_ENDPOINT", url)
    with pytest.raises(ModelNotAvailable) as failure:
        load_captioner("tamscope-test/absent", device="cpu")
    message = str(failure.value)
    assert f"is not on this machine (offline mode: {url} cannot be reached)" in message
    assert "huggingface-cli download tamscope-test/absent" in message
    assert hub.hub_access() == hub.HubAccess(False, "unreachable", url)


def test_an_unreachable_hub_still_loads_what_the_cache_holds(clean_env, monkeypatch, tiny_qwen2vl_dir):
    cache_model(clean_env, tiny_qwen2vl_dir)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    assert load_captioner(HUB_ID, device="cpu").model_id == HUB_ID


def test_a_hub_that_never_answers_is_given_up_after_the_probe_timeout(clean_env, monkeypatch):
    """A black hole (the connection is accepted by the kernel, no byte ever comes back): the
    probe gives up after PROBE_TIMEOUT, not after transformers' retries. The time bound is a
    hang guard, 20x the timeout, not a speed target."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # never accepted, never answered
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        monkeypatch.setenv("HF_ENDPOINT", url)
        monkeypatch.setattr(hub, "PROBE_TIMEOUT", 0.3)
        start = time.monotonic()
        with pytest.raises(ModelNotAvailable, match="cannot be reached"):
            load_captioner("tamscope-test/absent", device="cpu")
        assert time.monotonic() - start < 20 * 0.3 + 5


class Answers404(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):  # noqa: N802 (http.server's naming)
        self.send_response(404)
        self.end_headers()

    do_GET = do_HEAD  # noqa: N815

    def log_message(self, *args):
        pass


def test_a_hub_that_answers_means_downloading(clean_env, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answers404)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("HF_ENDPOINT", url)
        assert hub.hub_access() == hub.HubAccess(True, "reachable", url)
        assert hub.hub_access(offline=True).online is False
    finally:
        server.shutdown()
        server.server_close()


def test_tamscope_online_skips_the_probe(clean_env, monkeypatch):
    monkeypatch.setenv("TAMSCOPE_ONLINE", "1")
    monkeypatch.setattr(hub, "reachable", lambda url: pytest.fail("probed despite TAMSCOPE_ONLINE=1"))
    assert hub.hub_access().online is True


def test_every_model_stage_and_the_pipeline_take_offline():
    import argparse

    from precompute import pipeline

    parser = argparse.ArgumentParser()
    add_model_options(parser)
    assert parser.parse_args(["--offline"]).offline is True and parser.parse_args([]).offline is False
    model_stages = ("describe", "reliance", "spans", "metadata", "sam", "faithfulness")
    for stage in model_stages:
        assert pipeline.stage_parser(stage).parse_args(
            ["in", "out"][: 2 if stage == "describe" else 1] + ["--offline"]).offline is True
    top = argparse.ArgumentParser()
    pipeline.configure(top)
    argvs = dict(pipeline.stage_argvs(top.parse_args(["in", "out", "--offline", "--faithfulness"])))
    assert {stage for stage, argv in argvs.items() if "--offline" in argv} == set(model_stages), argvs
