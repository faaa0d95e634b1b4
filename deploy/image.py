"""Build the images with podman anywhere, registry or not, and smoke-test an image (docs/deploy.md).

    python3 -m deploy.image build [--target serve|precompute] [--tag NAME] [--base IMAGE]
    python3 -m deploy.image base                    only make sure a Python base image is here
    python3 -m deploy.image smoke IMAGE [--engine docker]

What `build` adds to a plain `podman build -t tamscope .`, so that the same command works on a
laptop, behind an egress proxy that re-signs TLS, and on an air-gapped machine:

- The base. `python:3.11-slim` when it is here or can be pulled; where no registry answers, a
  Debian base bootstrapped from the host's own Debian mirror (mmdebstrap: python3 and a venv
  first on PATH, which plays the official image's part) and passed as PYTHON_IMAGE.
- pip's settings for the build only. The host's (`pip config list`: index URLs, find-links,
  constraints, CA bundle, timeouts) go into a temporary folder mounted read-only on /mnt (an
  empty folder of every Debian image) for the build, with the folders they name mounted below
  it, and pip is pointed at it with the PIP_CONFIG_FILE build argument. Mount points inside the
  mounted folder are made on the host, so not even an empty file or folder stays in a layer.
- `--format docker`, so the HEALTHCHECK is kept (podman's default OCI format drops it), and the
  host's network for the build.
- Where podman's default process limits exceed what the host allows (a container inside a
  container: "error setting rlimits"), a private containers.conf caps them at the host's hard
  limits and uses runc; podman's own configuration is used everywhere else.

Standard library only: it runs before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import ast
import configparser
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

REPO = Path(__file__).resolve().parents[1]
OFFICIAL_BASE = "docker.io/library/python:3.11-slim"
VENV_PATH = "/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUILD_MOUNT = "/mnt"  # where the build-only settings are mounted: empty in every Debian image
DOCKERFILES = {"serve": "Dockerfile", "precompute": "Dockerfile.precompute"}
TAGS = {"serve": "tamscope", "precompute": "tamscope-precompute"}
# pip options whose values name files, folders or file:// URLs (several values: whitespace-separated)
PATH_OPTIONS = {"cert", "client-cert", "constraint", "find-links", "index-url", "extra-index-url"}


class ImageError(RuntimeError):
    """The image cannot be built or does not pass; the message says why."""


def say(text: str) -> None:
    print(f"image: {text}", flush=True)


@dataclass
class Engine:
    """podman (or docker, for `smoke`) with the flags and environment every call shares."""

    program: str = "podman"
    storage: Path | None = None  # podman only: a private image store (the tests), removed by its owner
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def argv(self, *args: str) -> list[str]:
        store = ["--root", str(self.storage / "root"), "--runroot", str(self.storage / "run")] if self.storage else []
        return [self.program, *store, *args]

    def run(self, *args: str, check: bool = True, timeout: float | None = 600, stream: bool = False,
            log: Path | None = None) -> subprocess.CompletedProcess:
        """Run a subcommand and capture its output; `stream` lets it print as it goes (a build in a
        terminal), `log` sends it to a file instead (its end goes into an error message)."""
        argv = self.argv(*args)
        common = dict(env=self.env, stdin=subprocess.DEVNULL, timeout=timeout, text=True)
        if log is not None:
            with open(log, "w") as out:
                done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, **common)
            done.stdout = done.stderr = log.read_text()[-4000:]
        elif stream:
            done = subprocess.run(argv, **common)
            done.stdout = done.stderr = ""
        else:
            done = subprocess.run(argv, capture_output=True, **common)
        if check and done.returncode != 0:
            raise ImageError(f"`{' '.join(argv)}` failed ({done.returncode}):\n{(done.stderr or done.stdout).strip()}")
        return done

    def exists(self, image: str) -> bool:
        return self.run("image", "inspect", "--format", "{{.Id}}", image, check=False).returncode == 0


# ---- podman on hosts with lowered limits ---------------------------------------------------------
def containers_conf() -> str:
    """A containers.conf capping the containers' limits at this process's hard limits (processes
    also at the kernel's pid_max: a sandboxed host refused more, whatever its hard limit said)."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    nproc = pid_max if nproc == resource.RLIM_INFINITY else min(nproc, pid_max)
    runtime = '\n[engine]\nruntime = "runc"\n' if shutil.which("runc") else ""
    return f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n{runtime}'


def fit_limits(engine: Engine, image: str, scratch: Path) -> None:
    """Make sure podman can start a container from `image` here, with a private containers.conf
    only where its defaults fail on this host's limits."""
    probe = engine.run("run", "--rm", "--network=host", image, "true", check=False, timeout=120)
    if probe.returncode == 0:
        return
    if "rlimit" not in probe.stderr and "cgroups in hybrid mode" not in probe.stderr:
        raise ImageError(f"podman cannot start a container here:\n{probe.stderr.strip()}")
    conf = scratch / "containers.conf"
    conf.write_text(containers_conf())
    engine.env["CONTAINERS_CONF"] = str(conf)
    say("podman's default limits exceed this host's: using a containers.conf with the host's hard limits")
    probe = engine.run("run", "--rm", "--network=host", image, "true", check=False, timeout=120)
    if probe.returncode != 0:
        raise ImageError(f"podman cannot start a container here, even with the host's limits:\n{probe.stderr.strip()}")


# ---- the base image ------------------------------------------------------------------------------
def host_suite() -> str:
    fields = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    if fields.get("ID") != "debian" or not fields.get("VERSION_CODENAME"):
        raise ImageError("no base image can be pulled, and bootstrapping one needs a Debian host: "
                         "pass --base with a Python >= 3.11 image that is here")
    return fields["VERSION_CODENAME"].strip('"')


def host_sources() -> Path | None:
    """The host's Debian sources: its mirror (proxy or internal copy) is the one that answers."""
    for path in (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")):
        if path.is_file() and path.read_text().strip():
            return path
    return None


def debian_sources(suite: str) -> str:
    """What the image's apt is left with: Debian's own mirror, like the official images."""
    return (f"Types: deb\nURIs: http://deb.debian.org/debian\nSuites: {suite} {suite}-updates\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
            f"Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: {suite}-security\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")


def bootstrap_base(engine: Engine, scratch: Path) -> str:
    """A minimal Debian with python3 and a venv first on PATH, from the host's Debian mirror."""
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        raise ImageError("no base image can be pulled and mmdebstrap is missing: apt-get install mmdebstrap "
                         "(`make podman` does), or pass --base with a Python >= 3.11 image that is here")
    suite = host_suite()
    tag = f"localhost/tamscope-python:{suite}"
    if engine.exists(tag):
        return tag
    sources = scratch / "debian.sources"
    sources.write_text(debian_sources(suite))
    rootfs = scratch / "rootfs.tar"
    mirror = host_sources()
    say(f"bootstrapping {tag} from {mirror or 'deb.debian.org'} with mmdebstrap (about a minute)")
    argv = [mmdebstrap, "--variant=minbase", "--include=python3,python3-venv,ca-certificates,netbase,tzdata",
            '--customize-hook=chroot "$1" python3 -m venv /opt/venv',
            '--customize-hook=rm -f "$1"/etc/apt/sources.list "$1"/etc/apt/sources.list.d/*',
            f"--customize-hook=copy-in {sources} /etc/apt/sources.list.d/",
            suite, str(rootfs), *([str(mirror)] if mirror else [])]
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        raise ImageError(f"mmdebstrap failed:\n{done.stderr.strip()[-3000:]}")
    engine.run("import", "--change", f"ENV PATH={VENV_PATH}", "--change", "ENV LANG=C.UTF-8",
               "--change", 'CMD ["python3"]', str(rootfs), tag)
    rootfs.unlink()
    return tag


def ensure_base(engine: Engine, scratch: Path, base: str | None = None) -> str:
    """The image PYTHON_IMAGE names: `base`, else the official one, else one bootstrapped here."""
    wanted = base or OFFICIAL_BASE
    if engine.exists(wanted):
        return wanted
    pulled = engine.run("pull", "--quiet", wanted, check=False, timeout=900)
    if pulled.returncode == 0:
        return wanted
    reason = (pulled.stderr.strip().splitlines() or ["no answer"])[-1]
    if base:
        raise ImageError(f"the base image {base} is not here and cannot be pulled: {reason}")
    say(f"cannot pull {wanted}: {reason}")
    return bootstrap_base(engine, scratch)


# ---- pip's settings, for the build only -----------------------------------------------------------
def pip_config(pip: list[str] | None = None) -> dict[str, dict[str, str]]:
    """The effective pip settings by section ({"global": {"cert": ...}}); environment (PIP_*) wins."""
    pip = pip or [sys.executable, "-m", "pip"]
    try:
        listed = subprocess.run([*pip, "config", "list"], capture_output=True, text=True, timeout=60)
    except OSError:
        return {}
    if listed.returncode != 0:
        return {}
    files: dict[str, dict[str, str]] = {}
    env: dict[str, str] = {}
    for line in listed.stdout.splitlines():  # `global.cert='/etc/ssl/ca.pem'`, `:env:.timeout='60'`
        m = re.match(r"^([^=]+?)\.([A-Za-z0-9_-]+)=(.*)$", line)
        if not m:
            continue
        section, key, raw = m.groups()
        try:
            value = str(ast.literal_eval(raw))
        except (ValueError, SyntaxError):
            continue
        if section == ":env:":
            env[key] = value
        else:
            files.setdefault(section, {})[key] = value
    if env:
        files.setdefault("global", {}).update(env)
    return files


@dataclass
class BuildSettings:
    """pip's settings as the build sees them: a folder mounted on BUILD_MOUNT and the folders below it."""

    folder: Path
    volumes: list[str] = field(default_factory=list)  # -v arguments, the folder first
    config_file: str | None = None  # the PIP_CONFIG_FILE build argument

    @classmethod
    def make(cls, folder: Path, config: dict[str, dict[str, str]]) -> BuildSettings:
        folder.mkdir(parents=True, exist_ok=True)
        settings = cls(folder, [f"{folder}:{BUILD_MOUNT}:ro"])
        if not config:
            return settings
        mounted: dict[Path, str] = {}

        def inside(path: Path) -> str | None:
            """Where a host file or folder is seen in the build (None: not on this host)."""
            if not path.is_absolute() or not path.exists():
                return None
            if path.is_dir():
                if path not in mounted:
                    name = f"d{len(mounted)}"
                    (folder / name).mkdir()  # the mount point, made here rather than in the image
                    settings.volumes.append(f"{path}:{BUILD_MOUNT}/{name}:ro")
                    mounted[path] = f"{BUILD_MOUNT}/{name}"
                return mounted[path]
            copy = folder / f"f{len(list(folder.glob('f*')))}-{path.name}"
            shutil.copyfile(path, copy)
            return f"{BUILD_MOUNT}/{copy.name}"

        def rewrite(key: str, item: str) -> str:
            if item.startswith("file://"):
                path = Path(unquote(urlsplit(item).path))
                # a file:// simple index links to its files by relative URLs (../files/...): mount its parent
                if key.endswith("index-url") and (seen := inside(path.parent)):
                    return f"file://{seen}/{path.name}"
                return f"file://{seen}" if (seen := inside(path)) else item
            if item.startswith("/"):
                return inside(Path(item)) or item
            return item

        parser = configparser.ConfigParser(interpolation=None)
        for section, values in config.items():
            parser[section] = {key: " ".join(rewrite(key, item) for item in value.split()) if key in PATH_OPTIONS
                               else value for key, value in values.items()}
        with open(folder / "pip.conf", "w") as out:
            parser.write(out)
        settings.config_file = f"{BUILD_MOUNT}/pip.conf"
        return settings


# ---- build ----------------------------------------------------------------------------------------
def build(engine: Engine, target: str = "serve", tag: str | None = None, context: Path = REPO,
          base: str | None = None, serve_image: str | None = None, scratch: Path | None = None,
          stream: bool = True, pip: list[str] | None = None) -> str:
    """Build TARGET from CONTEXT; returns the tag. The serve image must exist for `precompute`."""
    tag = tag or TAGS[target]
    with tempfile.TemporaryDirectory(prefix="tamscope-image-") as tmp:
        scratch = scratch or Path(tmp)
        if target == "serve":
            parent_arg = ["--build-arg", f"PYTHON_IMAGE={ensure_base(engine, scratch, base)}"]
            parent = parent_arg[1].split("=", 1)[1]
        else:
            parent = serve_image or TAGS["serve"]
            if not engine.exists(parent):
                raise ImageError(f"the precompute image is built on {parent}: build it first (`make image`)")
            parent_arg = ["--build-arg", f"SERVE_IMAGE={parent}"]
        fit_limits(engine, parent, scratch)
        settings = BuildSettings.make(scratch / "build-settings", pip_config(pip))
        argv = ["build", "--format", "docker", "--network", "host", "--pull=never", *parent_arg,
                *[arg for volume in settings.volumes for arg in ("-v", volume)],
                *(["--build-arg", f"PIP_CONFIG_FILE={settings.config_file}"] if settings.config_file else []),
                "-f", str(context / DOCKERFILES[target]), "-t", tag, str(context)]
        say(f"building {tag} ({target}) from {context}")
        start = time.monotonic()
        engine.run(*argv, timeout=3600, stream=stream, log=None if stream else scratch / "build.log")
        size = int(engine.run("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())
        say(f"built {tag} in {time.monotonic() - start:.0f} s: {size / 1e9:.2f} GB")
    return tag


# ---- smoke test -----------------------------------------------------------------------------------
def http_get(url: str, timeout: float = 10) -> tuple[int, str, bytes]:
    """(status, content type, body) of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.headers.get("content-type", ""), response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("content-type", ""), err.read()


def wait_healthy(base_url: str, engine: Engine, name: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, _, body = http_get(base_url + "api/health", timeout=2)
            if status == 200:
                return json.loads(body)
        except OSError:
            pass
        state = engine.run("inspect", "--format", "{{.State.Status}}", name, check=False).stdout.strip()
        if state in ("exited", "dead", "stopped"):
            break
        time.sleep(0.3)
    logs = engine.run("logs", name, check=False)
    raise ImageError(f"{name} did not answer /api/health:\n{(logs.stdout + logs.stderr).strip()[-2000:]}")


def published_port(engine: Engine, name: str) -> int:
    mapping = engine.run("port", name, "8000/tcp").stdout.strip().splitlines()[0]  # 127.0.0.1:41234
    return int(mapping.rsplit(":", 1)[1])


def start(engine: Engine, image: str, *run_args: str) -> str:
    """Start a container of `image` publishing port 8000 on a free port of 127.0.0.1; returns its
    name. podman ends it after 15 minutes should whoever started it die before removing it."""
    name = f"tamscope-smoke-{uuid.uuid4().hex[:8]}"
    deadline = ["--timeout", "900"] if engine.program.endswith("podman") else []
    engine.run("run", "-d", "--name", name, "-p", "127.0.0.1::8000", *deadline, *run_args, image)
    return name


def smoke(engine: Engine, image: str, repo: Path = REPO) -> list[str]:
    """Run the image and check what a visitor and an operator rely on; returns what was checked.
    Expected bytes come from the checkout's embedded dataset, not from the server."""
    checked: list[str] = []
    health_interval = ["--health-interval", "2s"] if engine.program.endswith("docker") else []
    name = start(engine, image, *health_interval)
    try:
        base_url = f"http://127.0.0.1:{published_port(engine, name)}/"
        health = wait_healthy(base_url, engine, name)
        if health.get("datasets") != ["smoke"]:
            raise ImageError(f"/api/health: {health}")
        checked.append("health: the embedded smoke dataset")
        smoke_dir = repo / "data" / "smoke"
        pid = json.loads((smoke_dir / "manifest.json").read_text())["paintings"][0]["id"]
        expected = json.loads((smoke_dir / "paintings" / pid / "record.json").read_text())
        status, _, body = http_get(f"{base_url}api/datasets/smoke/paintings/{pid}")
        if status != 200 or json.loads(body) != expected:
            raise ImageError(f"the record of {pid}: HTTP {status}, not the checkout's record.json")
        checked.append(f"record {pid}")
        png = expected["tokens"][0]["map"]["png"]
        status, kind, body = http_get(f"{base_url}api/datasets/smoke/paintings/{pid}/tokens/0.png")
        if status != 200 or kind != "image/png" or body != (smoke_dir / "paintings" / pid / png).read_bytes():
            raise ImageError(f"the map of token 0 of {pid}: HTTP {status} {kind}, not the checkout's {png}")
        checked.append(f"map PNG {png}")
        status, _, body = http_get(base_url)
        if status != 200 or b'<script type="module" src="static/js/app.js?v=' not in body:
            raise ImageError(f"the explorer page: HTTP {status}")
        checked.append("explorer page")
        config = engine.run("image", "inspect", "--format", "{{json .Config.Healthcheck}}", image).stdout
        if "api/health" not in config:
            raise ImageError(f"the image has no HEALTHCHECK (built without --format docker?): {config.strip()}")
        if engine.program.endswith("podman"):
            engine.run("healthcheck", "run", name)
        else:
            deadline = time.monotonic() + 60
            while (state := engine.run("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip()) != "healthy":
                if time.monotonic() > deadline:
                    raise ImageError(f"the health check reports {state}")
                time.sleep(1)
        checked.append("HEALTHCHECK passes")
        uid = engine.run("exec", name, "id", "-u").stdout.strip()
        if uid != "1000":
            raise ImageError(f"the server runs as uid {uid}, not 1000")
        checked.append("runs as uid 1000")
        torch = engine.run("exec", name, "python", "-c", "import torch", check=False)
        if torch.returncode == 0 or "No module named 'torch'" not in torch.stderr:
            raise ImageError(f"torch is importable in the serve image ({torch.stderr.strip()[-200:]})")
        checked.append("torch is not importable")
        logs = engine.run("logs", name)
        line = next((x for x in (logs.stdout + logs.stderr).splitlines() if x.startswith("explorer: ")), "")
        if not line.startswith("explorer: http://127.0.0.1:8000/"):
            raise ImageError(f"the startup line names no address to open: {line!r}")
        checked.append(f"startup line: {line.split('   ')[0]}")
        engine.run("stop", "--time", "20", name)
        code = engine.run("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        if code != "0":
            raise ImageError(f"the server did not stop cleanly on SIGTERM (exit code {code})")
        checked.append("stops cleanly on SIGTERM")
    finally:
        engine.run("rm", "--force", name, check=False)
    return checked


# ---- command line ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m deploy.image", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build an image with podman")
    b.add_argument("--target", choices=sorted(DOCKERFILES), default="serve")
    b.add_argument("--tag", default=None, help="default: tamscope, tamscope-precompute")
    b.add_argument("--base", default=None, help=f"the Python image to build on (default: {OFFICIAL_BASE}, "
                                                "else one bootstrapped from the host's Debian mirror)")
    b.add_argument("--serve-image", default=None, help="for --target precompute (default: tamscope)")
    sub.add_parser("base", help="make sure a Python base image is here; print its name")
    s = sub.add_parser("smoke", help="run IMAGE and check health, a record, a map, the explorer, the health check")
    s.add_argument("image")
    s.add_argument("--engine", default="podman", help="podman or docker (default: podman)")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build(Engine(), args.target, args.tag, base=args.base, serve_image=args.serve_image)
        elif args.command == "base":
            with tempfile.TemporaryDirectory(prefix="tamscope-image-") as tmp:
                print(ensure_base(Engine(), Path(tmp)))
        else:
            for line in smoke(Engine(args.engine), args.image):
                say(f"ok: {line}")
    except ImageError as exc:
        say(str(exc))
        return 1
    except subprocess.TimeoutExpired as exc:
        say(f"`{' '.join(map(str, exc.cmd))}` took more than {exc.timeout:.0f} s and was stopped")
        return 1
    except FileNotFoundError as exc:
        say(f"{exc.filename} is not installed (`make podman` installs podman and mmdebstrap from Debian)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
