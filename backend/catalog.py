"""The datasets a server instance serves, loaded once at startup and kept in memory.

Records and manifests are held as ready-to-send blobs, and every file a client may fetch is
resolved here, from the records, into an absolute path inside its painting folder together
with its content hash. Request handlers only look ids up in these tables: a client never
supplies a path.

Each dataset gets a `version`: a hash over the manifest, the statistics, every record and
every file's content. A URL carrying `?v=<version>` therefore names content that cannot
change, and the server marks it immutable (backend.app).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from backend.blobs import Blob, content_hash
from contract.schema import DatasetManifest, PaintingRecord, is_valid_id
from contract.store import MANIFEST, PAINTINGS, RECORD, STATS
from contract.validate import validate_dataset

log = logging.getLogger("tamscope.serve")
SEARCH_CACHE = 512  # distinct listing queries kept per dataset


class StartupError(RuntimeError):
    """A dataset folder cannot be served; the message names the problem."""


@dataclass(frozen=True)
class FileRef:
    path: Path  # absolute, inside the painting folder
    etag: str  # '"<content hash>"' of the bytes seen at startup


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
    _searches: OrderedDict = field(default_factory=OrderedDict, repr=False)

    def listing(self) -> dict:
        m = self.manifest
        return {"id": self.id, "name": m.name, "description": m.description, "label": m.label,
                "n_paintings": len(self.paintings), "version": self.version, "has_stats": self.stats is not None}

    def search(self, q: str | None, category: str | None, artist: str | None, style: str | None,
               offset: int, limit: int) -> Blob:
        """One page of the gallery, filtered; identical queries are answered from a small cache."""
        key = (q.lower() if q else None, category, artist.strip().lower() if artist else None,
               style.strip().lower() if style else None, offset, limit)
        blob = self._searches.get(key)
        if blob is None:
            needle, category, artist, style = key[:4]
            items = [p.summary for p in self.paintings.values()
                     if (not needle or needle in p.search_text)
                     and (not category or p.summary.get("categories", {}).get(category))
                     and (not artist or (p.summary.get("artist") or "").strip().lower() == artist)
                     and (not style or (p.summary.get("style") or "").strip().lower() == style)]
            body = {"total": len(items), "offset": offset, "limit": limit, "items": items[offset:offset + limit]}
            blob = Blob.of(orjson.dumps(body), "application/json")
            self._searches[key] = blob
            if len(self._searches) > SEARCH_CACHE:
                self._searches.popitem(last=False)
        return blob


def dataset_id(root: Path, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", root.resolve().name).strip("-._") or "dataset"
    base = base if is_valid_id(base) else "dataset"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def painting_files(folder: Path, record: PaintingRecord) -> dict[str, FileRef]:
    paths: dict[str, Path] = {}
    if record.canvas:
        paths["canvas"] = folder / record.canvas.path
    if record.thumb:
        paths["thumb"] = folder / record.thumb.path
    for token in record.tokens:
        if token.map:
            paths[f"token/{token.index}"] = folder / token.map.png
    for span in record.spans:
        if span.map:
            paths[f"span/{span.index}"] = folder / span.map.png
        if span.sam and span.sam.mask:
            paths[f"sam/{span.index}"] = folder / span.sam.mask
    root = folder.resolve()
    files = {}
    for key, path in paths.items():
        resolved = path.resolve()  # follows symlinks: a link out of the folder is refused too
        # validated already; this guard is the one that matters for what the server may send
        if not resolved.is_relative_to(root) or not resolved.is_file():
            raise StartupError(f"{folder}: {key} ({path.name}) is not a file inside the painting folder")
        files[key] = FileRef(resolved, f'"{content_hash(resolved.read_bytes())}"')
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
    if not (root / MANIFEST).is_file():
        raise StartupError(f"{root} is not a dataset folder (no {MANIFEST}); build one with `tamscope precompute` "
                           f"or `tamscope import-tamart`")
    bad = split_violations(validate_dataset(root))
    if bad and (not skip_bad or "" in bad):
        lines = [line for lines in bad.values() for line in lines]
        more = f"\n  ... and {len(lines) - 20} more" if len(lines) > 20 else ""
        hint = "" if "" in bad else "\n(--skip-bad serves the dataset without these paintings)"
        raise StartupError(f"dataset {root} is invalid:\n  " + "\n  ".join(lines[:20]) + more + hint)
    manifest = DatasetManifest.model_validate_json((root / MANIFEST).read_bytes())
    paintings: dict[str, Painting] = {}
    for summary in manifest.paintings:
        if summary.id in bad:
            continue
        try:
            paintings[summary.id] = load_painting(root / PAINTINGS / summary.id, summary)
        except StartupError as exc:  # a file that resolves outside its folder (a symlink, say)
            if not skip_bad:
                raise
            bad[summary.id] = [str(exc)]
    if bad:
        manifest = manifest.model_copy(update={"paintings": [p for p in manifest.paintings if p.id not in bad]})
        for pid, lines in bad.items():
            log.warning("skipping painting %s of %s: %s", pid, root, "; ".join(lines))
    stats_path = root / STATS
    served = ServedDataset(
        id=ds_id, root=root, manifest=manifest,
        manifest_blob=Blob.of(orjson.dumps(manifest.model_dump(mode="json", exclude_none=True)), "application/json"),
        stats=Blob.of(stats_path.read_bytes(), "application/json") if stats_path.is_file() else None,
        paintings=paintings, skipped=bad)
    version = hashlib.sha256(served.manifest_blob.etag.encode())
    version.update(served.stats.etag.encode() if served.stats else b"-")
    for pid, painting in paintings.items():
        version.update(f"\n{pid} {painting.record.etag}".encode())
        version.update("".join(f" {k}={f.etag}" for k, f in sorted(painting.files.items())).encode())
    served.version = version.hexdigest()[:20]
    return served


def load_painting(folder: Path, summary) -> Painting:
    raw = (folder / RECORD).read_bytes()
    record = PaintingRecord.model_validate_json(raw)
    text = " ".join(filter(None, [summary.title, summary.artist, record.caption])).lower()
    return Painting(Blob.of(orjson.dumps(orjson.loads(raw)), "application/json"),
                    summary.model_dump(mode="json", exclude_none=True), text, painting_files(folder, record))


def load_catalog(roots: list[Path], skip_bad: bool = False) -> dict[str, ServedDataset]:
    catalog: dict[str, ServedDataset] = {}
    for root in roots:
        ds_id = dataset_id(root, set(catalog))
        catalog[ds_id] = load_dataset(root, ds_id, skip_bad)
    return catalog
