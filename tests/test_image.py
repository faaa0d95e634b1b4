"""The serve image, built and run for real with podman (`make image-test`, marker `image`).

It is built from the files git tracks (what a clean clone holds: no .venv, downloads or local
datasets), with the tool operators use (deploy/image.py): where no registry answers, the base
is bootstrapped from the host's Debian mirror and the host's pip settings reach the build
through a mount. Everything lives in a private podman store that is removed at the end, so
the machine's own images and containers are never touched. Skipped, saying why, where podman
is missing or cannot start a container.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from deploy.image import (
    Engine,
    ImageError,
    build,
    ensure_base,
    fit_limits,
    http_get,
    pip_config,
    published_port,
    smoke,
    start,
    wait_healthy,
)
from testkit import REPO
from testkit.fixture_dataset import make_dataset

pytestmark = pytest.mark.image
# what the Dockerfile copies into /app, and what pip adds there
APP = {"pyproject.toml", "README.md", "tamscope", "contract", "sources", "backend", "precompute", "frontend", "data",
       "tamscope.egg-info"}


def tracked_copy(repo: Path, dest: Path) -> Path:
    """The files git tracks, as they are in the work tree: a clean clone of this state."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=repo, capture_output=True, check=True).stdout
    for rel in filter(None, listed.decode().split("\0")):
        src = repo / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel, follow_symlinks=False)
    return dest


def remove_store(engine: Engine) -> None:
    engine.run("rm", "--all", "--force", check=False)
    engine.run("rmi", "--all", "--force", check=False)
    if os.geteuid() != 0:  # rootless: the layers belong to sub-uids that only podman's namespace can delete
        engine.run("unshare", "rm", "-rf", str(engine.storage), check=False)
    shutil.rmtree(engine.storage, ignore_errors=True)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """(engine, tag, the build's context) of a freshly built serve image."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed: `make podman` installs it from Debian (as root), "
                    "or sudo apt-get install podman mmdebstrap")
    tmp = tmp_path_factory.mktemp("image")
    engine = Engine(storage=tmp / "podman")
    try:
        try:
            engine.run("info", timeout=120)  # fails at once where podman has no storage (inside a container)
            base = ensure_base(engine, tmp)
            fit_limits(engine, base, tmp)
        except (ImageError, FileNotFoundError) as exc:
            pytest.skip(f"podman cannot run here: {exc}")
        if shutil.which("git") is None or not (REPO / ".git").exists():
            pytest.skip("not a git checkout: the image is built from the files git tracks")
        context = tracked_copy(REPO, tmp / "clone")
        tag = f"localhost/tamscope-test:{uuid.uuid4().hex[:8]}"
        started = time.monotonic()
        build(engine, "serve", tag, context=context, base=base, scratch=tmp, stream=False)
        print(f"\nimage test: serve image built in {time.monotonic() - started:.0f} s")
        yield engine, tag, context
    finally:
        remove_store(engine)


def test_serve_image_answers_as_a_visitor_and_an_operator_expect(image):
    engine, tag, context = image
    checked = smoke(engine, tag, repo=context)
    assert len(checked) == 9, checked  # health, record, map, explorer, HEALTHCHECK, uid, torch, startup line, stop


def test_mounted_dataset_is_served_and_an_empty_one_refused(image, tmp_path):
    engine, tag, _ = image
    mine = make_dataset(tmp_path / "mine", n_paintings=2)
    for path in [tmp_path, *mine.rglob("*")]:  # pytest's folders are private; the server runs as uid 1000
        path.chmod(0o755 if path.is_dir() else 0o644)
    name = start(engine, tag, "-v", f"{mine}:/datasets/mine:ro", "-e", "TAMSCOPE_DATA=/datasets/mine")
    try:
        base_url = f"http://127.0.0.1:{published_port(engine, name)}/"
        assert wait_healthy(base_url, engine, name)["datasets"] == ["mine"]
        status, _, body = http_get(f"{base_url}api/datasets/mine/paintings/painting-1")
        assert status == 200 and json.loads(body) == json.loads((mine / "paintings/painting-1/record.json").read_text())
    finally:
        engine.run("rm", "--force", name, check=False)

    empty = tmp_path / "empty"
    empty.mkdir(mode=0o755)
    name = f"tamscope-empty-{uuid.uuid4().hex[:8]}"
    done = engine.run("run", "--name", name, "-v", f"{empty}:/datasets/empty:ro", "-e", "TAMSCOPE_DATA=/datasets/empty",
                      tag, check=False, timeout=120)
    engine.run("rm", "--force", name, check=False)
    said = done.stdout + done.stderr
    assert done.returncode == 2, said
    assert "/datasets/empty" in said and "not a dataset folder" in said


def test_build_settings_and_local_files_stay_out_of_the_image(image):
    engine, tag, _ = image
    seen = engine.run("run", "--rm", tag, "sh", "-c",
                      "ls -A /mnt; echo ---; ls -A /app; echo ---; ls -A /app/data; echo ---; "
                      "test -e /etc/pip.conf && echo pip.conf; pip config list").stdout.split("---\n")
    mnt, app, data, pip_settings = (part.split() for part in seen)
    assert mnt == []  # the mount point of the build settings is empty: no mount point left in a layer
    assert set(app) == APP and set(data) == {"smoke", "smoke-paintings"}
    assert pip_settings == [":env:.disable-pip-version-check='1'", ":env:.no-cache-dir='1'"]  # the Dockerfile's ENV
    described = engine.run("image", "inspect", tag).stdout + engine.run("history", "--no-trunc", tag).stdout
    host_values = [v for section in pip_config().values() for v in section.values() if "/" in v]
    assert not [v for v in host_values if v in described], "the host's pip settings are named in the image"
    assert "PIP_CONFIG_FILE=/mnt/pip.conf" in described  # the only trace: a neutral path, unset at run time
    env = json.loads(engine.run("image", "inspect", "--format", "{{json .Config.Env}}", tag).stdout)
    assert not [e for e in env if e.startswith("PIP_CONFIG_FILE")]
