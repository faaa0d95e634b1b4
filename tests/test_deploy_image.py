"""deploy/image.py without podman: the host's pip settings as the build sees them, and the
containers.conf for hosts with lowered limits. The image built for real is tests/test_image.py."""

from __future__ import annotations

import configparser
import resource
import sys
from pathlib import Path

from deploy.image import BUILD_MOUNT, BuildSettings, containers_conf, pip_config


def test_pip_settings_reach_the_build_through_one_mount(tmp_path):
    host = tmp_path / "host"
    (host / "pypi/simple").mkdir(parents=True)
    (host / "more/simple").mkdir(parents=True)
    (host / "wheels").mkdir()
    (host / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\nproxy\n")
    (host / "constraints.txt").write_text("torch<=2.14.1\n")
    config = {"global": {"cert": str(host / "ca.pem"), "index-url": "https://mirror.example/simple",
                         "extra-index-url": f"file://{host}/pypi/simple file://{host}/more/simple",
                         "find-links": str(host / "wheels"), "constraint": str(host / "constraints.txt"),
                         "default-timeout": "180", "trusted-host": "mirror.example"},
              "install": {"find-links": str(host / "wheels") + " /nowhere/on/this/host"}}
    settings = BuildSettings.make(tmp_path / "settings", config)
    conf = configparser.ConfigParser(interpolation=None)
    conf.read(settings.folder / "pip.conf")
    g = conf["global"]
    # every host path is replaced by where the build sees it, under the one mount point
    assert g["index-url"] == "https://mirror.example/simple" and g["default-timeout"] == "180"
    assert g["extra-index-url"] == f"file://{BUILD_MOUNT}/d0/simple file://{BUILD_MOUNT}/d1/simple"
    assert g["find-links"] == f"{BUILD_MOUNT}/d2"
    assert conf["install"]["find-links"] == f"{BUILD_MOUNT}/d2 /nowhere/on/this/host"  # one mount per folder
    files = {name: (settings.folder / Path(g[name]).name).read_text() for name in ("cert", "constraint")}
    assert files == {"cert": "-----BEGIN CERTIFICATE-----\nproxy\n", "constraint": "torch<=2.14.1\n"}
    assert str(host) not in (settings.folder / "pip.conf").read_text()
    # the settings folder first (read-only), then the folders below it, whose mount points exist on the host
    assert settings.volumes == [f"{settings.folder}:{BUILD_MOUNT}:ro", f"{host}/pypi:{BUILD_MOUNT}/d0:ro",
                                f"{host}/more:{BUILD_MOUNT}/d1:ro", f"{host}/wheels:{BUILD_MOUNT}/d2:ro"]
    assert all((settings.folder / f"d{i}").is_dir() for i in range(3))
    assert settings.config_file == f"{BUILD_MOUNT}/pip.conf"


def test_no_pip_settings_means_pip_defaults(tmp_path):
    settings = BuildSettings.make(tmp_path / "settings", {})
    assert settings.config_file is None and settings.volumes == [f"{tmp_path / 'settings'}:{BUILD_MOUNT}:ro"]


def test_pip_config_reads_pip_and_the_environment_wins(tmp_path):
    fake = tmp_path / "pip.py"  # prints what `pip config list` prints
    fake.write_text("print(\"global.cert='/etc/ssl/a.pem'\")\nprint(\"install.no-binary='x y'\")\n"
                    "print(\":env:.cert='/etc/ssl/b.pem'\")\nprint(\":env:.default-timeout='60'\")\n"
                    "print('not a setting')\n")
    assert pip_config([sys.executable, str(fake)]) == {
        "global": {"cert": "/etc/ssl/b.pem", "default-timeout": "60"}, "install": {"no-binary": "x y"}}
    assert pip_config([sys.executable, str(tmp_path / "missing.py")]) == {}


def test_containers_conf_caps_limits_at_the_hosts_hard_limits():
    conf = containers_conf()
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert f'"nofile={nofile}:{nofile}"' in conf
    nproc = int(conf.split('"nproc=')[1].split(":")[0])
    hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    assert 0 < nproc <= int(Path("/proc/sys/kernel/pid_max").read_text())
    assert hard == resource.RLIM_INFINITY or nproc <= hard
