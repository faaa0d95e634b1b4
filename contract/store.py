"""Reading and writing a dataset folder (the contract is in contract.schema).

Every write is atomic: bytes go to a temporary file in the same folder, are flushed to disk
and renamed over the target, so a crash leaves either the old file or the new one, never a
half-written one. Stages rely on this to resume: a record on disk is always complete.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
from PIL import Image

from contract.images import open_image
from contract.schema import (
    DatasetManifest,
    DatasetStats,
    Failure,
    PaintingRecord,
    PaintingSummary,
    is_valid_id,
)

MANIFEST = "manifest.json"
STATS = "stats.json"
RECORD = "record.json"
PAINTINGS = "paintings"


def utcnow() -> str:
    """Now in ISO 8601 UTC; SOURCE_DATE_EPOCH pins it so rebuilt datasets are byte-identical."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    now = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


_UMASK = os.umask(0o022)  # read once (os.umask can only be read by setting it), then restored
os.umask(_UMASK)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; datasets are served and shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dumps_json(obj: Any) -> bytes:
    """Stable, human-readable JSON (orjson; pydantic models dumped without None noise)."""
    if hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json", exclude_none=True)
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n"


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, dumps_json(obj))


def encode_png(array: np.ndarray) -> bytes:
    """8-bit grayscale (H, W) or RGBA (H, W, 4) array -> PNG bytes (deterministic)."""
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"PNG maps must be uint8, got {array.dtype}")
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=False, compress_level=9)
    return buf.getvalue()


def write_png(path: Path, array: np.ndarray) -> None:
    atomic_write_bytes(path, encode_png(array))


def read_png_u8(source: Path | IO[bytes]) -> np.ndarray:
    """PNG (a path or a file object) -> (H, W) uint8. RGBA masks (the published SAM masks) become
    their alpha > 0. Refuses other formats and images over the pixel limit (contract.images)."""
    with open_image(source, formats=("PNG",)) as im:
        if im.mode in ("RGBA", "LA"):
            return (np.asarray(im.getchannel("A")) > 0).astype(np.uint8) * 255
        return np.asarray(im.convert("L"))


class Dataset:
    """A dataset folder. Read-only use (the server) never calls the write methods."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    # paths -------------------------------------------------------------------------------
    def painting_dir(self, pid: str) -> Path:
        if not is_valid_id(pid):
            raise ValueError(f"invalid painting id {pid!r}")
        return self.root / PAINTINGS / pid

    def record_path(self, pid: str) -> Path:
        return self.painting_dir(pid) / RECORD

    # reading -----------------------------------------------------------------------------
    def has_manifest(self) -> bool:
        return (self.root / MANIFEST).is_file()

    def manifest(self) -> DatasetManifest:
        return DatasetManifest.model_validate_json((self.root / MANIFEST).read_bytes())

    def stats(self) -> DatasetStats | None:
        path = self.root / STATS
        return DatasetStats.model_validate_json(path.read_bytes()) if path.is_file() else None

    def has_record(self, pid: str) -> bool:
        return self.record_path(pid).is_file()

    def record(self, pid: str) -> PaintingRecord:
        return PaintingRecord.model_validate_json(self.record_path(pid).read_bytes())

    def painting_ids(self) -> list[str]:
        """Ids of the painting folders that hold a record, sorted."""
        base = self.root / PAINTINGS
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if is_valid_id(p.name) and (p / RECORD).is_file())

    def records(self) -> Iterator[PaintingRecord]:
        for pid in self.painting_ids():
            yield self.record(pid)

    # writing -----------------------------------------------------------------------------
    def save_record(self, record: PaintingRecord) -> None:
        # validate before writing so a bad producer never leaves an invalid record on disk
        record = PaintingRecord.model_validate(record.model_dump())
        atomic_write_json(self.record_path(record.id), record)

    def save_manifest(self, manifest: DatasetManifest) -> None:
        atomic_write_json(self.root / MANIFEST, DatasetManifest.model_validate(manifest.model_dump()))

    def save_stats(self, stats: DatasetStats) -> None:
        atomic_write_json(self.root / STATS, stats)

    def refresh_manifest(self, *, list_paintings: bool = True, **fields: Any) -> DatasetManifest:
        """Rebuild the painting list and failures from the records; keep or update other fields.

        Called by every stage at its end, so the manifest always reflects what is on disk.
        list_paintings=False keeps the list as it is (shard runs: `tamscope merge` lists them).
        """
        if self.has_manifest():
            manifest = self.manifest()
        else:
            manifest = DatasetManifest(name=fields.pop("name", self.root.name), created=utcnow())
        data = manifest.model_dump()
        for key, value in fields.items():
            if key == "settings":
                data["settings"] = {**data["settings"], **value}
            elif key == "models":
                data["models"] = {**data["models"], **{k: v.model_dump() if hasattr(v, "model_dump") else v
                                                       for k, v in value.items()}}
            else:
                data[key] = value.model_dump() if hasattr(value, "model_dump") else value
        if list_paintings:
            summaries, failures = [], []
            for record in self.records():
                summaries.append(summarise(record, self.root))
                failures.extend(Failure(painting=record.id, **f.model_dump(exclude={"painting"}))
                                for f in record.failures)
            data["paintings"] = [s.model_dump() for s in summaries]
            data["failures"] = [f.model_dump() for f in failures]
        manifest = DatasetManifest.model_validate(data)
        self.save_manifest(manifest)
        return manifest


def summarise(record: PaintingRecord, dataset_root: Path) -> PaintingSummary:
    cats = Counter(span.category for span in record.spans)
    thumb = None
    if record.thumb is not None:
        thumb = f"{PAINTINGS}/{record.id}/{record.thumb.path}"
    ann = record.annotations
    return PaintingSummary(
        id=record.id,
        title=ann.title,
        artist=ann.artist,
        year=ann.year,
        style=ann.style,
        genre=ann.genre,
        thumb=thumb,
        status="ok" if record.caption is not None else "failed",  # later-stage failures are listed apart
        n_tokens=len(record.tokens),
        n_spans=len(record.spans),
        n_sam=sum(1 for s in record.spans if s.sam is not None and s.sam.mask is not None),
        categories=dict(sorted(cats.items())),
        caption=record.caption,
    )
