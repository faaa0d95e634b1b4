"""The datasets a server instance serves, loaded once at startup and kept in memory.

Records and manifests are held as ready-to-send bytes (with their ETag and a gzip variant),
and every file a client may fetch is resolved here, from the records, into an absolute path
inside its dataset. Request handlers only look ids up in these tables: a client never
supplies a path.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from tamscope.schema import ID_RE, DatasetManifest, PaintingRecord
from tamscope.store import MANIFEST, PAINTINGS, RECORD, STATS
from tamscope.validate import validate_dataset

log = logging.getLogger("tamscope.serve")


class StartupError(RuntimeError):
    """A dataset folder cannot be served; the message names the problem."""


@dataclass(frozen=True)
class Blob:
    """Bytes ready to send: identity and gzip variants, a strong ETag."""

    body: bytes
    gzipped: bytes | None
    etag: str
    media_type: str

    @classmethod
    def of(cls, body: bytes, media_type: str) -> Blob:
        # gzip only text that is worth it; mtime=0 keeps the bytes stable across restarts
        zipped = gzip.compress(body, compresslevel=6, mtime=0) if media_type.startswith(("application/json",
                                                                                         "text/")) else None
        if zipped is not None and len(zipped) >= len(body):
            zipped = None
        return cls(body, zipped, '"' + hashlib.sha256(body).hexdigest()[:32] + '"', media_type)


@dataclass
class Painting:
    record: Blob
    summary: dict
    search_text: str  # lower-cased title, artist and caption
    files: dict[str, Path]  # "canvas", "thumb", "token/3", "span/2", "sam/2" -> absolute path


@dataclass
class ServedDataset:
    id: str
    root: Path
    manifest: DatasetManifest
    manifest_blob: Blob
    stats: Blob | None
    paintings: dict[str, Painting] = field(default_factory=dict)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # painting id -> its violations

    def listing(self) -> dict:
        m = self.manifest
        return {"id": self.id, "name": m.name, "description": m.description, "label": m.label,
                "n_paintings": len(self.paintings)}


def dataset_id(root: Path, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", root.resolve().name).strip("-._") or "dataset"
    base = base if ID_RE.match(base) else "dataset"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _media_type(path: Path) -> str:
    return {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}.get(
        path.suffix.lower(), "application/octet-stream")


def painting_files(folder: Path, record: PaintingRecord) -> dict[str, Path]:
    files: dict[str, Path] = {}
    if record.canvas:
        files["canvas"] = folder / record.canvas.path
    if record.thumb:
        files["thumb"] = folder / record.thumb.path
    for token in record.tokens:
        if token.map:
            files[f"token/{token.index}"] = folder / token.map.png
    for span in record.spans:
        if span.map:
            files[f"span/{span.index}"] = folder / span.map.png
        if span.sam and span.sam.mask:
            files[f"sam/{span.index}"] = folder / span.sam.mask
    root = folder.resolve()
    for key, path in files.items():  # validated already; this guard is the one that matters
        if not path.resolve().is_relative_to(root):
            raise StartupError(f"{folder}: {key} points outside the painting folder")
    return files


def load_dataset(root: Path, ds_id: str, skip_bad: bool) -> ServedDataset:
    root = Path(root)
    if not (root / MANIFEST).is_file():
        raise StartupError(f"{root} is not a dataset folder (no {MANIFEST}); build one with `tamscope precompute` "
                           f"or `tamscope import-tamart`")
    violations = validate_dataset(root)
    bad: dict[str, list[str]] = {}
    for v in violations:
        parts = v.location.split("/")
        if len(parts) >= 2 and parts[0] == PAINTINGS:
            bad.setdefault(parts[1].split(":")[0], []).append(str(v))
        else:
            bad.setdefault("", []).append(str(v))
    if bad and (not skip_bad or "" in bad):
        lines = [line for lines in bad.values() for line in lines]
        more = f"\n  ... and {len(lines) - 20} more" if len(lines) > 20 else ""
        hint = "" if "" in bad else "\n(--skip-bad serves the dataset without these paintings)"
        raise StartupError(f"dataset {root} is invalid:\n  " + "\n  ".join(lines[:20]) + more + hint)
    manifest = DatasetManifest.model_validate_json((root / MANIFEST).read_bytes())
    if bad:
        manifest = manifest.model_copy(update={"paintings": [p for p in manifest.paintings if p.id not in bad]})
        for pid, lines in bad.items():
            log.warning("skipping painting %s of %s: %s", pid, root, "; ".join(lines))
    stats_path = root / STATS
    served = ServedDataset(
        id=ds_id, root=root, manifest=manifest,
        manifest_blob=Blob.of(orjson.dumps(manifest.model_dump(mode="json", exclude_none=True)), "application/json"),
        stats=Blob.of(stats_path.read_bytes(), "application/json") if stats_path.is_file() else None,
        skipped=bad)
    for summary in manifest.paintings:
        folder = root / PAINTINGS / summary.id
        raw = (folder / RECORD).read_bytes()
        record = PaintingRecord.model_validate_json(raw)
        summary_json = summary.model_dump(mode="json", exclude_none=True)
        text = " ".join(filter(None, [summary.title, summary.artist, record.caption])).lower()
        served.paintings[summary.id] = Painting(Blob.of(orjson.dumps(orjson.loads(raw)), "application/json"),
                                                summary_json, text, painting_files(folder, record))
    return served


def load_catalog(roots: list[Path], skip_bad: bool = False) -> dict[str, ServedDataset]:
    catalog: dict[str, ServedDataset] = {}
    for root in roots:
        ds_id = dataset_id(root, set(catalog))
        catalog[ds_id] = load_dataset(root, ds_id, skip_bad)
    return catalog


def file_blob(path: Path) -> Blob:
    return Blob.of(path.read_bytes(), _media_type(path))
