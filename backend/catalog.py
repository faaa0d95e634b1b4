"""The datasets a server instance serves: opened at startup from their index, read lazily.

Startup opens each dataset's index (contract/index.py; rebuilt there if it is missing, stale or
corrupt) and reads nothing else but the statistics: no record is read or validated, so it takes
the same second for 4 paintings or 100,000, and memory does not grow with the paintings. The
records were validated when the dataset was written (and again while it was indexed: a record
that does not parse is in the index's `bad` list, refused at startup or left out with
--skip-bad).

A painting is checked the first time it is served: its record is read and validated against the
contract (contract.validate.record_violations) and every file it names is read once, through
backend.datafiles (no symbolic link, a regular file), checked (a readable image of the right
size: contract.validate.image_violations) and hashed. The result, or
the reason it cannot be served, is kept in a bounded table (most recently used paintings). Request
handlers only look ids up: a client never supplies a path. Every read goes through
backend.datafiles (no symbolic link followed, regular files only).

A dataset's `version` is its content version (contract.index): a URL carrying `?v=<version>`
names content that cannot change, and the server marks it immutable (backend.app). A record
rewritten since the index was built, or a file whose bytes changed since its painting was first
served, is served as revalidate-only under its new ETag.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import orjson
from pydantic import ValidationError

from backend.blobs import Blob, content_hash, media_type
from backend.datafiles import UnsafeFile, read_dataset_file
from backend.search import IndexQueries
from contract.index import (
    NO_FOLDER,
    IndexUnavailable,
    checked_by_another,
    ensure_index,
    record_identity,
    take_checked,
)
from contract.schema import DatasetManifest, PaintingRecord, is_valid_id
from contract.store import MANIFEST, PAINTINGS, RECORD, STATS
from contract.validate import LINK, NamedFile, image_violations, named_files, record_violations

log = logging.getLogger("tamscope.serve")


class StartupError(RuntimeError):
    """A dataset folder cannot be served; the message names the problem."""


@dataclass(frozen=True)
class FileRef:
    root: Path  # the dataset folder, resolved at startup
    rel: str  # inside it: "paintings/<id>/tokens/3.png"
    etag: str  # '"<content hash>"' of the bytes seen at startup

    def load(self) -> Blob:
        """The file's bytes now (blocking: the server calls this off the event loop)."""
        return Blob.of(read_dataset_file(self.root, self.rel), media_type(PurePosixPath(self.rel)))


@dataclass
class Painting:
    record: Blob
    files: dict[str, FileRef]  # "canvas", "thumb", "token/3", "span/2", "sam/2", "method/igos/2"
    current: bool  # the record is the one the index (and so the dataset's version) describes


class PaintingUnavailable(Exception):
    """A painting of the index that cannot be served; the message says why."""


PAINTINGS_KEPT = 4096  # checked paintings kept per dataset (a record blob and its file table each)


@dataclass
class ServedDataset:
    id: str
    root: Path
    real: Path
    manifest: DatasetManifest  # the manifest without its painting list
    manifest_blob: Blob
    stats: Blob | None
    index: IndexQueries
    n_paintings: int
    skipped: dict[str, list[str]] = field(default_factory=dict)  # painting id -> why it is left out
    version: str = ""
    checked_index: str = ""  # contract.index.checked_by_another: handed to worker processes
    checked: OrderedDict = field(default_factory=OrderedDict)  # pid -> Painting | PaintingUnavailable
    lock: threading.Lock = field(default_factory=threading.Lock)

    def listing(self) -> dict:
        m = self.manifest
        return {"id": self.id, "name": m.name, "description": m.description, "label": m.label,
                "n_paintings": self.n_paintings, "version": self.version, "has_stats": self.stats is not None}

    def cached(self, pid: str) -> Painting | PaintingUnavailable | None:
        with self.lock:
            found = self.checked.get(pid)
            if found is not None:
                self.checked.move_to_end(pid)
            return found

    def painting(self, pid: str) -> Painting | None:
        """The painting, checked on first use (blocking: the server calls it off the event loop).
        None if the index does not list it; PaintingUnavailable if it cannot be served."""
        found = self.cached(pid)
        if found is None:
            if not self.index.has(pid):
                return None
            try:
                found = load_painting(self.real, pid, self.index.record_identity(pid))
            except PaintingUnavailable as exc:
                log.warning("painting %s of %s cannot be served: %s", pid, self.root, exc)
                found = exc
            with self.lock:
                self.checked[pid] = found
                while len(self.checked) > PAINTINGS_KEPT:
                    self.checked.popitem(last=False)
        if isinstance(found, PaintingUnavailable):
            raise found
        return found


def dataset_id(root: Path, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", root.resolve().name).strip("-._") or "dataset"
    base = base if is_valid_id(base) else "dataset"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def checked_file(root: Path, pid: str, named: NamedFile) -> FileRef:
    """One file a record names, read as the server reads it (backend.datafiles: no link followed,
    a regular file) and checked as `tamscope validate` checks it (a readable image of its size)."""
    path = f"{PAINTINGS}/{pid}/{named.rel}"
    try:
        body = read_dataset_file(root, path)
    except UnsafeFile as exc:
        reason = LINK if exc.errno in (errno.ELOOP, errno.ENOTDIR) else f"is {exc.strerror}"  # not a regular file
        raise PaintingUnavailable(f"{named.where}: {named.rel} {reason}") from None
    except FileNotFoundError:
        raise PaintingUnavailable(f"{named.where}: {named.rel} does not exist") from None
    except OSError as exc:
        raise PaintingUnavailable(f"{path}: {named.key} cannot be served: {exc.strerror or exc}") from None
    problems = image_violations(body, named.rel, named.where, named.size)
    if problems:
        raise PaintingUnavailable(str(problems[0]))
    return FileRef(root, path, f'"{content_hash(body)}"')


def load_painting(root: Path, pid: str, indexed_identity: str | None) -> Painting:
    """Read, validate and check one painting: its record, and every file it names, each read once
    (the check and the ETag's hash use the same bytes)."""
    rel = f"{PAINTINGS}/{pid}/{RECORD}"
    identity = record_identity(root, pid)
    try:
        raw = read_dataset_file(root, rel)
    except OSError as exc:
        raise PaintingUnavailable(f"{rel} cannot be served: {exc.strerror or exc}") from None
    try:
        record = PaintingRecord.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise PaintingUnavailable(f"{rel}:{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    problems = record_violations(pid, record, rel)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise PaintingUnavailable(f"{problems[0]}{more}")
    files = {named.key: checked_file(root, pid, named) for named in named_files(record, rel)}
    return Painting(Blob.of(orjson.dumps(orjson.loads(raw)), "application/json"), files,
                    current=identity == indexed_identity)


def load_dataset(root: Path, ds_id: str, skip_bad: bool, checked: str | None = None) -> ServedDataset:
    """CHECKED: the index as another process of this server checked it a moment ago
    (ServedDataset.checked_index, passed to worker processes), used if it is still that file."""
    root = Path(root)
    real = root.resolve()  # the files are read below the real folder: an operator's link is followed once, here
    if not (root / MANIFEST).is_file():
        raise StartupError(f"{root} is not a dataset folder (no {MANIFEST}); build one with `tamscope precompute` "
                           f"or `tamscope import-tamart`")
    links = [name for name in (MANIFEST, STATS, PAINTINGS) if (root / name).is_symlink()]
    if links:
        raise StartupError(f"dataset {root} is invalid:\n  " + "\n  ".join(f"{n}: {LINK}" for n in links))
    try:
        opened = (checked and take_checked(real, checked)) or ensure_index(real)
    except IndexUnavailable as exc:
        raise StartupError(f"dataset {root} cannot be served: {exc}") from None
    if opened.rebuilt:
        log.info("indexed %s (%s): %s", root, opened.reason, opened.path)
    index = IndexQueries(opened.path)
    bad = {pid: [f"{PAINTINGS}/{pid}/{RECORD}: {error}"] for pid, error in index.bad().items()}
    own = [line for pid, lines in bad.items() for line in lines if NO_FOLDER in line]  # the manifest's own problem
    if bad and (not skip_bad or own):
        lines = own if own and skip_bad else [line for lines in bad.values() for line in lines]
        more = f"\n  ... and {len(lines) - 20} more" if len(lines) > 20 else ""
        hint = "" if own else "\n(--skip-bad serves the dataset without these paintings)"
        raise StartupError(f"dataset {root} is invalid:\n  " + "\n  ".join(lines[:20]) + more + hint)
    for pid, lines in bad.items():
        log.warning("skipping painting %s of %s: %s", pid, root, "; ".join(lines))
    header = orjson.loads(index.meta["manifest"])
    try:
        stats = Blob.of(read_dataset_file(real, STATS), "application/json") if os.path.lexists(real / STATS) else None
    except OSError as exc:  # replaced since indexing
        raise StartupError(f"dataset {root} cannot be served: {exc.filename}: {exc.strerror or exc}") from None
    n = index.count()
    # the manifest without its painting list (100,000 captions are not for the browser): n_paintings counts them
    body = {**header, "n_paintings": n}
    return ServedDataset(
        id=ds_id, root=root, real=real, manifest=DatasetManifest.model_validate({**header, "paintings": []}),
        manifest_blob=Blob.of(orjson.dumps(body), "application/json"), stats=stats, index=index, n_paintings=n,
        skipped=bad, version=opened.version, checked_index=checked_by_another(opened))


def load_catalog(roots: list[Path], skip_bad: bool = False, checked: dict[str, str] | None = None
                 ) -> dict[str, ServedDataset]:
    """CHECKED: dataset folder (as given) -> its index as another process checked it (load_dataset)."""
    catalog: dict[str, ServedDataset] = {}
    for root in roots:
        ds_id = dataset_id(root, set(catalog))
        catalog[ds_id] = load_dataset(root, ds_id, skip_bad, (checked or {}).get(str(root)))
    return catalog
