"""A private single-node SLURM cluster for the tests (Debian's slurm-wlm + munge, no systemd).

munged, slurmctld and slurmd are started by hand, as root, in a folder of their own: the
config, the controller's state, the spool, the logs, the pid files and munge's key and socket.
The clients find it through SLURM_CONF (Cluster.env), the daemons run on free ports, so a
system SLURM or munge on the machine is left alone. On the way out, the cluster's jobs are
cancelled and each daemon is stopped by the pid it wrote (checked against its command line,
so a reused pid is never signalled), whatever the test did.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from testkit.net import free_port

SBIN = "/usr/sbin:/usr/bin:/sbin:/bin"
PROGRAMS = ("munged", "munge", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo")
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL",
         "DEADLINE"}


def unavailable() -> str | None:
    """Why a cluster cannot run here, or None."""
    if not sys.platform.startswith("linux"):
        return "SLURM runs on Linux only"
    missing = [name for name in PROGRAMS if shutil.which(name, path=SBIN) is None]
    if missing:
        return (f"SLURM is not installed ({', '.join(missing)} missing): `make slurm` installs Debian's "
                f"slurm-wlm and munge when run as root")
    if os.geteuid() != 0:
        return "slurmd runs jobs as their users, so it needs root, and this test does not run as root"
    return None


def _config(root: Path, ports: tuple[int, int]) -> str:
    host = socket.gethostname().split(".")[0]
    mem_mb = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 * 85 // 100
    return f"""\
ClusterName=tamscopetest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge/socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
KillWait=2
MinJobAge=3600
SchedulerParameters=sched_interval=1
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={mem_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES State=UP MaxTime=INFINITE
"""


@dataclass
class Cluster:
    root: Path
    env: dict[str, str]  # the environment of this cluster's clients (SLURM_CONF)

    def run(self, *cmd: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(cmd, env=env or self.env, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)}: exit {done.returncode}: {done.stderr}{done.stdout}")
        return done.stdout

    def sbatch(self, *argv: str, env: dict[str, str] | None = None) -> str:
        return self.run("sbatch", "--parsable", *argv, env=env).strip().split(";")[0]

    def jobs(self, job_id: str) -> list[dict[str, str]]:
        """scontrol's fields of a job, one dict per array task."""
        out = self.run("scontrol", "-o", "show", "job", job_id)
        return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in out.splitlines() if line.strip()]

    def wait(self, job_id: str, timeout: float = 300) -> list[dict[str, str]]:
        """The job's tasks once every one has ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tasks = self.jobs(job_id)
            if tasks and all(t["JobState"] in FINAL for t in tasks):
                return tasks
            time.sleep(0.5)
        raise AssertionError(f"job {job_id} still running after {timeout} s: {self.jobs(job_id)}\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:])
                         for p in sorted((self.root / "log").glob("*.log")))


def _start(cmd: list[str], pid_file: Path, log: Path, root: Path) -> int:
    """Start a daemon that forks and writes its pid file; its pid."""
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    deadline = time.monotonic() + 20
    while done.returncode == 0 and time.monotonic() < deadline:
        if pid_file.is_file() and pid_file.read_text().strip().isdigit():
            return int(pid_file.read_text())
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
    raise AssertionError(f"{cmd[0]} did not start (exit {done.returncode}): {done.stderr}\n{tail}")


def _ours(pid: int, root: Path) -> bool:
    """The pid is alive (not a zombie) and one of this cluster's daemons (its command line names root)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, IndexError):
        return False
    return state != "Z" and str(root) in cmdline


def _stop(pid: int, root: Path) -> None:
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        if not _ours(pid, root):
            return
        os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while _ours(pid, root) and time.monotonic() < deadline:
            time.sleep(0.05)


@contextmanager
def single_node_cluster() -> Iterator[Cluster]:
    # munge wants its socket's folder (and those above it) open to everyone: not pytest's 0700 tmp
    root = Path(tempfile.mkdtemp(prefix="tamscope-slurm-"))
    root.chmod(0o755)
    for sub in ("munge", "state", "spool", "log"):
        (root / sub).mkdir(mode=0o755)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    conf = root / "slurm.conf"
    conf.write_text(_config(root, (free_port(), free_port())))
    env = {**os.environ, "SLURM_CONF": str(conf), "PATH": f"{os.environ.get('PATH', '')}:{SBIN}"}
    pids: list[int] = []
    cluster = Cluster(root, env)
    try:
        pids.append(_start([shutil.which("munged", path=SBIN), f"--socket={root}/munge/socket", f"--key-file={key}",
                            f"--pid-file={root}/munge/munged.pid", f"--log-file={root}/log/munged.log",
                            f"--seed-file={root}/munge/seed"], root / "munge" / "munged.pid",
                           root / "log" / "munged.log", root))
        for daemon in ("slurmctld", "slurmd"):
            pids.append(_start([shutil.which(daemon, path=SBIN), "-f", str(conf)], root / f"{daemon}.pid",
                               root / "log" / f"{daemon}.log", root))
        deadline = time.monotonic() + 30
        while cluster.run("sinfo", "-h", "-o", "%T").split() != ["idle"]:  # "idle*": not responding yet
            if time.monotonic() > deadline:
                raise AssertionError(f"the node never became idle: {cluster.run('sinfo')}\n{cluster.logs()}")
            time.sleep(0.2)
        yield cluster
    finally:
        if len(pids) == 3:  # jobs still there (a failed test) end before their daemons
            subprocess.run(["scancel", "--full", "--user", "root"], env=env, capture_output=True, timeout=30)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and subprocess.run(
                    ["squeue", "-h", "-t", "RUNNING,COMPLETING"], env=env, capture_output=True, text=True,
                    timeout=30).stdout.strip():
                time.sleep(0.2)
        for pid in reversed(pids):
            _stop(pid, root)
        shutil.rmtree(root, ignore_errors=True)
