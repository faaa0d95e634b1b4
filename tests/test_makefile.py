"""The Makefile's promises to a newcomer (README, first screen): `make demo` installs the
serve-only package (no torch, no dev tools); `make test` adds the model stack; the browser
tests use a Chromium that is already there without asking for root."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from testkit import REPO

MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def dry_run(target: str, venv: Path) -> list[str]:
    """The commands `make TARGET` would run on a fresh machine (no .venv yet)."""
    # --no-print-directory: under `make test` this runs as a sub-make, which would add "Entering directory" lines
    out = subprocess.run([MAKE, "--no-print-directory", "-n", target, f"VENV={venv}"], cwd=REPO, capture_output=True,
                         text=True, check=True)
    return out.stdout.splitlines()


def pip_installs(lines: list[str]) -> list[str]:
    """What gets installed, each once (a recursive make prints its own plan again)."""
    found = [m.group(1) for line in lines if (m := re.search(r"pip install (?:--quiet )?-e (\S+)", line))]
    return list(dict.fromkeys(found))


def test_demo_installs_the_serve_only_package(tmp_path):
    lines = dry_run("demo", tmp_path / ".venv")
    assert pip_installs(lines) == ["."]  # the base package: no [precompute] (torch), no [dev]
    assert lines[-1].endswith("tamscope demo")
    assert pip_installs(dry_run("serve", tmp_path / ".venv")) == ["."]


def test_test_and_precompute_add_the_model_stack(tmp_path):
    for target in ("test", "precompute"):
        assert pip_installs(dry_run(target, tmp_path / ".venv")) == [".", "'.[precompute,dev]'"], target


def fake_tools(folder: Path) -> Path:
    """A PATH holding only `id` and an apt-get that leaves a mark (and would need root)."""
    folder.mkdir()
    os.symlink(shutil.which("id"), folder / "id")
    (folder / "apt-get").write_text(f"#!/bin/sh\ntouch {folder}/apt-get-ran\nexit 100\n")
    (folder / "apt-get").chmod(0o755)
    return folder


def run_as(tools: Path, uid: int) -> None:
    """Make the recipes' `id -u` answer `uid`: what they do as root or as a user, tested as either."""
    (tools / "id").unlink()
    (tools / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (tools / "id").chmod(0o755)


def make_chromium(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([MAKE, "--no-print-directory", "chromium"], cwd=REPO, env=env, capture_output=True,
                          text=True)


def test_an_existing_chromium_needs_no_install(tmp_path):
    tools = fake_tools(tmp_path / "bin")
    fake = tmp_path / "bin" / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert make_chromium({"PATH": str(tools)}).returncode == 0  # on PATH
    fake.rename(tmp_path / "elsewhere-chromium")
    assert make_chromium({"PATH": str(tools), "TAMSCOPE_CHROMIUM": str(tmp_path / "elsewhere-chromium")}).returncode == 0
    assert not (tools / "apt-get-ran").exists()


def test_no_chromium_without_root_says_what_to_do(tmp_path):
    tools = fake_tools(tmp_path / "bin")
    run_as(tools, uid=1000)  # a user without root, whoever runs the test
    done = make_chromium({"PATH": str(tools)})
    assert done.returncode != 0 and "TAMSCOPE_CHROMIUM" in done.stderr and "apt-get install chromium" in done.stderr
    assert not (tools / "apt-get-ran").exists()


def test_test_targets_install_axe_with_npm_ci_from_the_lock(tmp_path):
    axe = "frontend/tests/node_modules/axe-core/axe.min.js"
    for target in ("test", "test-e2e"):
        assert any(f"make --no-print-directory {axe}" in line for line in dry_run(target, tmp_path / ".venv")), target
    forced = subprocess.run([MAKE, "-n", "-B", axe], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "npm ci --prefix frontend/tests" in forced  # installs exactly what the lock pins
    lock = (REPO / "frontend" / "tests" / "package-lock.json").read_text()
    assert '"axe-core"' in lock and '"integrity"' in lock  # pinned, checked by npm ci


def test_no_npm_is_a_message_not_a_failure(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    done = subprocess.run([MAKE, "--no-print-directory", "js-tools"], cwd=REPO, env={"PATH": str(empty)},
                          capture_output=True, text=True)
    assert done.returncode == 0 and "npm is missing" in done.stderr and "skipped" in done.stderr
def test_the_precompute_image_stays_out_of_every_test_run(tmp_path):
    """`make test` (what .ci/run runs) builds and tests the serve image only: torch's 6.6 GB image
    is `make image-precompute`, on top of the serve image, and nothing in CI calls it."""
    for target in ("test", "image-test"):
        plan = "\n".join(dry_run(target, tmp_path / ".venv"))
        assert "--target precompute" not in plan and "Dockerfile.precompute" not in plan, target
        assert "pytest -q" in plan
    assert "image-precompute" not in (REPO / ".ci" / "run").read_text()
    plan = dry_run("image-precompute", tmp_path / ".venv")
    builds = [line for line in plan if "deploy.image build" in line]
    assert builds[0].endswith("-m deploy.image build") and builds[-1].endswith("build --target precompute")


def make_podman(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([MAKE, "--no-print-directory", "podman"], cwd=REPO, env=env, capture_output=True, text=True)


def test_no_podman_without_root_is_a_skip_not_a_failure(tmp_path):
    tools = fake_tools(tmp_path / "bin")
    run_as(tools, uid=1000)  # a user without root, whoever runs the test
    done = make_podman({"PATH": str(tools)})
    assert done.returncode == 0 and "image test will skip" in done.stderr and "apt-get install podman" in done.stderr
    assert not (tools / "apt-get-ran").exists()
    podman = tools / "podman"  # a podman already there is enough where pulling the base works
    podman.write_text("#!/bin/sh\n")
    podman.chmod(0o755)
    done = make_podman({"PATH": str(tools)})
    assert done.returncode == 0 and done.stderr == "" and not (tools / "apt-get-ran").exists()


def make_slurm(env: dict) -> subprocess.CompletedProcess:
    # a program no machine has: SLURM counts as missing even where it is installed
    return subprocess.run([MAKE, "--no-print-directory", "slurm", "SLURM_PROGRAMS=tamscope-no-such-program"],
                          cwd=REPO, env=env, capture_output=True, text=True)


def test_test_installs_slurm_where_it_is_missing(tmp_path):
    plan = " ".join(dry_run("test", tmp_path / ".venv")).replace("\\ ", "")
    assert re.search(r"apt-get install [^;]*--no-install-recommends slurm-wlm munge", plan)


def test_no_slurm_without_root_is_a_message_not_a_failure(tmp_path):
    tools = fake_tools(tmp_path / "bin")
    run_as(tools, uid=1000)  # a user without root, whoever runs the test
    done = make_slurm({"PATH": str(tools)})
    assert done.returncode == 0 and "the real-cluster test will skip" in done.stderr
    assert not (tools / "apt-get-ran").exists()


def test_slurm_that_cannot_be_installed_is_a_message_not_a_failure(tmp_path):
    tools = fake_tools(tmp_path / "bin")
    run_as(tools, uid=0)  # root, whose apt-get fails (no network, no mirror)
    os.symlink(shutil.which("touch"), tools / "touch")  # for the apt-get stand-in's mark
    done = make_slurm({"PATH": str(tools)})
    assert done.returncode == 0 and "could not be installed: the SLURM test will skip" in done.stderr
    assert (tools / "apt-get-ran").exists()
