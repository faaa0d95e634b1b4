"""One writer at a time per dataset, or per shard: flock(2) on lock files in the dataset folder.

    DATASET/.tamscope-lock                 an unsharded run holds it alone; shard runs share it
    DATASET/.tamscope-lock-shard-K-of-N    a `--shard K/N` run holds its shard's alone

So a second unsharded run, or a second run of the same shard, stops at once with a message
naming the pid that holds the dataset, and runs of different shards (same N: other Ns overlap)
go on side by side. The one file they share, manifest.json, they update in turn
(`update_manifest`, on DATASET/.tamscope-lock-manifest), and only its fields: the painting list
is left to `tamscope merge`, which holds the dataset alone. The kernel drops a lock when its
process dies, even by kill -9: a lock file left behind holds nothing. The file holds the
holder's pid for the message; the last holder removes it on its way out (and whoever opened it
meanwhile sees it was unlinked and retries).

Taking the lock also repairs what a killed run left (contract.commit.recover): interrupted
painting commits and temporary files, of this shard's paintings only when sharded.
Re-entrant within a process: the pipeline holds it while it runs each stage, which asks again.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from contract.commit import recover
from contract.errors import UserError
from contract.store import Dataset
from precompute.shards import in_shard

LOCK = ".tamscope-lock"
MANIFEST_LOCK = f"{LOCK}-manifest"
_held: dict[tuple[str, tuple[int, int] | None], int] = {}  # (dataset, shard) -> nesting depth


class DatasetBusy(UserError):
    """Another process is writing this dataset (or this shard of it)."""


def _shard_lock(root: Path, shard: tuple[int, int]) -> Path:
    return root / f"{LOCK}-shard-{shard[0]}-of-{shard[1]}"


def _holders(root: Path, path: Path) -> str:
    """'pid 123' from the lock file, or the pids of the shard runs when shards hold the dataset."""
    def pid_in(p: Path) -> str:
        try:
            return p.read_text().strip()
        except OSError:
            return ""

    if pid_in(path):
        return f"pid {pid_in(path)}"
    shards = [f"pid {pid_in(p)} (shard {p.name.rsplit('-shard-', 1)[1].replace('-of-', '/')})"
              for p in sorted(root.glob(f"{LOCK}-shard-*")) if pid_in(p)]
    return ", ".join(shards) or "another process"


def _acquire(path: Path, shared: bool, busy: str, wait: bool = False) -> int:
    for _ in range(20):  # only a holder unlinking the file at this very moment makes us retry
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            raise DatasetBusy(f"{busy} ({_holders(path.parent, path)}); wait for it to finish, "
                              f"or split the work with --shard K/N") from None
        try:
            current = os.stat(path)
            ours = os.fstat(fd)
            same = (current.st_ino, current.st_dev) == (ours.st_ino, ours.st_dev)
        except FileNotFoundError:
            same = False
        if same:
            if not shared:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)  # locked a file its last holder had just removed: take the new one
    raise DatasetBusy(f"{busy}: its lock file {path} keeps changing")


def _release(fd: int, path: Path) -> None:
    """Unlock; the last holder (the one that can take it exclusively) removes the file."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino == os.stat(path).st_ino:
            path.unlink()
    except (BlockingIOError, FileNotFoundError):
        pass  # another holder still shares it, or it is gone already
    finally:
        os.close(fd)


@contextmanager
def writer(root: Path, shard: tuple[int, int] | None = None) -> Iterator[None]:
    """Hold the dataset (or the shard) for writing; repair leftovers of killed runs first."""
    root = Path(root)
    key = (os.path.realpath(root), shard)
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    root.mkdir(parents=True, exist_ok=True)
    taken: list[tuple[int, Path]] = []
    try:
        taken.append((_acquire(root / LOCK, shared=shard is not None,
                               busy=f"{root} is being written by another tamscope run"), root / LOCK))
        if shard is not None:
            path = _shard_lock(root, shard)
            taken.append((_acquire(path, shared=False,
                                   busy=f"shard {shard[0]}/{shard[1]} of {root} is being written by another run"),
                          path))
        _held[key] = 1
        repaired = recover(Dataset(root), lambda pid: in_shard(pid, shard), root_files=shard is None)
        if repaired:
            print(f"{root}: repaired what an interrupted run left: {len(repaired)} item(s), e.g. {repaired[0]}")
        yield
    finally:
        _held.pop(key, None)
        for fd, path in reversed(taken):
            _release(fd, path)


@contextmanager
def _turn(path: Path) -> Iterator[None]:
    """Hold `path` exclusively, waiting for the current holder (held for milliseconds)."""
    fd = _acquire(path, shared=False, busy=f"{path} is held", wait=True)
    try:
        yield
    finally:
        _release(fd, path)


def update_manifest(dataset: Dataset, shard: tuple[int, int] | None, **fields: Any) -> None:
    """Set manifest fields a stage knows (models, settings, prompt, name; contract.store).

    An unsharded run holds the dataset alone: it also rebuilds the painting list from every record.
    Shard runs write the manifest concurrently, so they take turns (a read-modify-write each, on
    DATASET/.tamscope-lock-manifest) and leave the painting list to `merge`: no shard loses another's
    model entry, and none reads every record of the dataset at the end of every stage.
    """
    if shard is None:
        dataset.refresh_manifest(**fields)
        return
    with _turn(dataset.root / MANIFEST_LOCK):
        dataset.refresh_manifest(list_paintings=False, **fields)
