"""The datasets a server instance serves, loaded once at startup and kept in memory.

Records and manifests are held as ready-to-send blobs, and every file a client may fetch is
named here, from the records, by its path inside the dataset folder together with its content
hash. Request handlers only look ids up in these tables: a client never supplies a path.
Every read goes through backend.datafiles (no symbolic link followed, regular files only).

Each dataset gets a `version`: a hash over the manifest, the statistics, every record and
every file's content. A URL carrying `?v=<version>` therefore names content that cannot
change, and the server marks it immutable (backend.app).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import NamedTuple

import orjson

from backend.blobs import Blob, content_hash, media_type
from backend.datafiles import read_dataset_file
from contract.schema import DatasetManifest, PaintingRecord, is_valid_id
from contract.store import MANIFEST, PAINTINGS, RECORD, STATS
from contract.validate import validate_dataset

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


class GalleryQuery(NamedTuple):
    """A gallery query, normalised: equal queries are one cache entry (backend.app)."""

    needle: str | None
    category: str | None
    artist: str | None
    style: str | None
    offset: int
    limit: int

    @classmethod
    def of(cls, q: str | None, category: str | None, artist: str | None, style: str | None,
           offset: int, limit: int) -> GalleryQuery:
        return cls(q.lower() if q else None, category, artist.strip().lower() if artist else None,
                   style.strip().lower() if style else None, offset, limit)


@dataclass
class Painting:
    record: Blob
    summary: dict
    search_text: str  # lower-cased title, artist and caption
    files: dict[str, FileRef]  # "canvas", "thumb", "token/3", "span/2", "sam/2"


@dataclass
class ServedDataset:
    id: str
    root: Path
    manifest: DatasetManifest
    manifest_blob: Blob
    stats: Blob | None
    paintings: dict[str, Painting] = field(default_factory=dict)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # painting id -> its violations
    version: str = ""

    def listing(self) -> dict:
        m = self.manifest
        return {"id": self.id, "name": m.name, "description": m.description, "label": m.label,
                "n_paintings": len(self.paintings), "version": self.version, "has_stats": self.stats is not None}

    def search(self, query: GalleryQuery) -> Blob:
        """One page of the gallery, filtered."""
        needle, category, artist, style, offset, limit = query
        items = [p.summary for p in self.paintings.values()
                 if (not needle or needle in p.search_text)
                 and (not category or p.summary.get("categories", {}).get(category))
                 and (not artist or (p.summary.get("artist") or "").strip().lower() == artist)
                 and (not style or (p.summary.get("style") or "").strip().lower() == style)]
        body = {"total": len(items), "offset": offset, "limit": limit, "items": items[offset:offset + limit]}
        return Blob.of(orjson.dumps(body), "application/json")


def dataset_id(root: Path, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", root.resolve().name).strip("-._") or "dataset"
    base = base if is_valid_id(base) else "dataset"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def painting_files(root: Path, pid: str, record: PaintingRecord) -> dict[str, FileRef]:
    rels: dict[str, str] = {}
    if record.canvas:
        rels["canvas"] = record.canvas.path
    if record.thumb:
        rels["thumb"] = record.thumb.path
    for token in record.tokens:
        if token.map:
            rels[f"token/{token.index}"] = token.map.png
    for span in record.spans:
        if span.map:
            rels[f"span/{span.index}"] = span.map.png
        if span.sam and span.sam.mask:
            rels[f"sam/{span.index}"] = span.sam.mask
    files = {}
    for key, rel in rels.items():
        path = f"{PAINTINGS}/{pid}/{rel}"
        try:  # validated already; this read is the guard that matters for what the server may send
            body = read_dataset_file(root, path)
        except OSError as exc:
            raise StartupError(f"{path}: {key} cannot be served: {exc.strerror or exc}") from None
        files[key] = FileRef(root, path, f'"{content_hash(body)}"')
    return files


def split_violations(violations) -> dict[str, list[str]]:
    """Violations by painting id; "" collects those of the dataset itself (manifest, stats)."""
    bad: dict[str, list[str]] = {}
    for v in violations:
        parts = v.location.split("/")
        pid = parts[1].split(":")[0] if len(parts) >= 2 and parts[0] == PAINTINGS else ""
        bad.setdefault(pid, []).append(str(v))
    return bad


def load_dataset(root: Path, ds_id: str, skip_bad: bool) -> ServedDataset:
    root = Path(root)
    real = root.resolve()  # the files are read below the real folder: an operator's link is followed once, here
    if not (root / MANIFEST).is_file():
        raise StartupError(f"{root} is not a dataset folder (no {MANIFEST}); build one with `tamscope precompute` "
                           f"or `tamscope import-tamart`")
    bad = split_violations(validate_dataset(root))
    if bad and (not skip_bad or "" in bad):
        lines = [line for lines in bad.values() for line in lines]
        more = f"\n  ... and {len(lines) - 20} more" if len(lines) > 20 else ""
        hint = "" if "" in bad else "\n(--skip-bad serves the dataset without these paintings)"
        raise StartupError(f"dataset {root} is invalid:\n  " + "\n  ".join(lines[:20]) + more + hint)
    try:
        manifest = DatasetManifest.model_validate_json(read_dataset_file(real, MANIFEST))
        stats = Blob.of(read_dataset_file(real, STATS), "application/json") if os.path.lexists(real / STATS) else None
    except OSError as exc:  # replaced since validation
        raise StartupError(f"dataset {root} cannot be served: {exc.filename}: {exc.strerror or exc}") from None
    paintings: dict[str, Painting] = {}
    for summary in manifest.paintings:
        if summary.id in bad:
            continue
        try:
            paintings[summary.id] = load_painting(real, summary)
        except StartupError as exc:  # a file changed since validation (a link put in place, say)
            if not skip_bad:
                raise
            bad[summary.id] = [str(exc)]
    if bad:
        manifest = manifest.model_copy(update={"paintings": [p for p in manifest.paintings if p.id not in bad]})
        for pid, lines in bad.items():
            log.warning("skipping painting %s of %s: %s", pid, root, "; ".join(lines))
    served = ServedDataset(
        id=ds_id, root=root, manifest=manifest,
        manifest_blob=Blob.of(orjson.dumps(manifest.model_dump(mode="json", exclude_none=True)), "application/json"),
        stats=stats,
        paintings=paintings, skipped=bad)
    served.version = version_of(served)
    return served


def version_of(served: ServedDataset) -> str:
    """The dataset's version: a hash of everything it serves (also redone when the live dataset grows)."""
    version = hashlib.sha256(served.manifest_blob.etag.encode())
    version.update(served.stats.etag.encode() if served.stats else b"-")
    for pid, painting in served.paintings.items():
        version.update(f"\n{pid} {painting.record.etag}".encode())
        version.update("".join(f" {k}={f.etag}" for k, f in sorted(painting.files.items())).encode())
    return version.hexdigest()[:20]


def load_painting(root: Path, summary) -> Painting:
    rel = f"{PAINTINGS}/{summary.id}/{RECORD}"
    try:
        raw = read_dataset_file(root, rel)
    except OSError as exc:
        raise StartupError(f"{rel} cannot be served: {exc.strerror or exc}") from None
    record = PaintingRecord.model_validate_json(raw)
    text = " ".join(filter(None, [summary.title, summary.artist, record.caption])).lower()
    return Painting(Blob.of(orjson.dumps(orjson.loads(raw)), "application/json"),
                    summary.model_dump(mode="json", exclude_none=True), text, painting_files(root, summary.id, record))


def load_catalog(roots: list[Path], skip_bad: bool = False) -> dict[str, ServedDataset]:
    catalog: dict[str, ServedDataset] = {}
    for root in roots:
        ds_id = dataset_id(root, set(catalog))
        catalog[ds_id] = load_dataset(root, ds_id, skip_bad)
    return catalog
