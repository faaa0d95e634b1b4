"""The input folder `tamscope precompute` reads: paintings (images) plus optional annotations.

    my-paintings/
      starry-night.jpg, impression-sunrise.png, ...
      annotations.json   {"starry-night": {"title", "artist", "year", "style", "genre"}, ...}
                         or [{"file": "starry-night.jpg", "title": ...}, ...]
      annotations.csv    columns file,title,artist,year,style,genre (instead of the json)

A painting's id comes from its file name alone (contract.names.painting_id). Hidden files (a
name starting with a dot, like the `._x.jpg` macOS leaves on other file systems) are skipped and
listed, never silently. Annotations are
keyed by file name or by file stem (a stem applies to every image with that stem). A malformed
annotations file is an InputError naming the file and the problem: the run cannot start on
ground truth it misreads. `tamscope validate DATASET --input FOLDER` and the describe stage
compare a dataset with its input through `fingerprint`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from contract.errors import UserError
from contract.names import IMAGE_SUFFIXES, painting_id
from contract.schema import Annotations, PaintingRecord
from contract.store import Dataset

ANNOTATION_FIELDS = ("title", "artist", "year", "style", "genre")
TEXT_FIELDS = ("title", "artist", "style", "genre")
ANNOTATION_FILES = ("annotations.json", "annotations.csv")
YEAR_RE = re.compile(r"-?\d{1,5}")  # a year, BCE ones negative


class InputError(UserError):
    """The input folder cannot be read as documented (the message names the file)."""


@dataclass(frozen=True)
class PaintingInput:
    id: str
    path: Path
    annotations: Annotations


@dataclass
class InputFolder:
    paintings: list[PaintingInput]
    unmatched: list[str] = field(default_factory=list)  # annotation keys that name no image
    hidden: list[str] = field(default_factory=list)  # image files skipped for a leading dot

    def by_id(self) -> dict[str, PaintingInput]:
        return {p.id: p for p in self.paintings}


def fingerprint(path: Path) -> str:
    """SHA-256 of the file's bytes: what a record remembers of the image it was made from."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_of(record: PaintingRecord) -> dict | None:
    """What describe read for the record, provenance.input = {file, sha256, notes} (None for
    records made otherwise, e.g. imported); sha256 is absent when describing failed."""
    source = record.provenance.get("input")
    return source if isinstance(source, dict) else None


def vanished(dataset: Dataset, present: set[str], mine=lambda pid: True) -> list[tuple[str, str]]:
    """(id, file) of the paintings `mine` selects that were read from an input file whose id is
    not in `present` (the input folder's ids): their file is gone, or was renamed."""
    out = []
    for pid in dataset.painting_ids():
        if pid in present or not mine(pid):
            continue
        try:
            source = input_of(dataset.record(pid))
        except ValueError:  # a record that does not parse: validate reports it as such
            continue
        if source is not None:
            out.append((pid, str(source.get("file"))))
    return out


def _annotation(fields: dict[str, Any], where: str, allowed: tuple[str, ...]) -> Annotations:
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: unknown field {', '.join(map(repr, unknown))} (known: {', '.join(allowed)})")
    out: dict[str, Any] = {}
    for key in TEXT_FIELDS:
        value = fields.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{where}: {key} is {value!r}, not text")
        out[key] = (value or "").strip() or None
    year = fields.get("year")
    if isinstance(year, str):
        year = year.strip() or None
        if year is not None and not YEAR_RE.fullmatch(year):
            raise ValueError(f"{where}: year {year!r} is not a number")
    if year is not None and (isinstance(year, bool) or not isinstance(year, int | str)):
        raise ValueError(f"{where}: year is {year!r}, not a whole number")
    out["year"] = int(year) if year is not None else None
    return Annotations(**out)


def _json_rows(data: bytes) -> list[tuple[str, str, dict]]:
    """(key, where, fields) of every entry of annotations.json."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None
    try:
        parsed = orjson.loads(data.removeprefix(b"\xef\xbb\xbf"))
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    rows = []
    if isinstance(parsed, dict):
        for key, fields in parsed.items():
            if not isinstance(fields, dict):
                raise ValueError(f"entry {key!r} is {type(fields).__name__}, not an object of fields")
            rows.append((key, f"entry {key!r}", fields))
    elif isinstance(parsed, list):
        for i, row in enumerate(parsed):
            where = f"entry {i}"
            if not isinstance(row, dict):
                raise ValueError(f"{where} is {type(row).__name__}, not an object")
            name = row.get("file")
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"{where} has no 'file' naming its image")
            rows.append((name.strip(), f"{where} ({name.strip()!r})", {k: v for k, v in row.items() if k != "file"}))
    else:
        raise ValueError("must be an object keyed by file stem or a list of objects with a 'file'")
    return rows


def _csv_rows(data: bytes) -> list[tuple[str, str, dict]]:
    try:
        text = data.decode("utf-8-sig")  # a spreadsheet's byte-order mark is fine
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                         f"save it as CSV UTF-8") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames or "file" not in reader.fieldnames:
        raise ValueError(f"no 'file' column (columns: {', '.join(reader.fieldnames or [])})")
    rows = []
    try:
        for row in reader:
            where = f"line {reader.line_num}"
            if None in row:
                raise ValueError(f"{where} has more cells than the header has columns")
            name = (row.pop("file") or "").strip()
            if not name:
                raise ValueError(f"{where} has no file")
            rows.append((name, f"{where} ({name!r})", {k: v or None for k, v in row.items()}))
    except csv.Error as exc:
        raise ValueError(f"line {reader.line_num}: {exc}") from None
    return rows


def load_annotations(folder: Path) -> dict[str, Annotations]:
    """Key (file name or stem) -> Annotations, from annotations.json or annotations.csv (if present)."""
    present = [folder / name for name in ANNOTATION_FILES if (folder / name).is_file()]
    if not present:
        return {}
    if len(present) > 1:
        raise InputError(f"{folder}: both annotations.json and annotations.csv are present; keep one")
    path = present[0]
    try:
        rows = (_json_rows if path.suffix == ".json" else _csv_rows)(path.read_bytes())
        out: dict[str, Annotations] = {}
        for key, where, fields in rows:
            if key in out:
                raise ValueError(f"{where}: {key!r} is annotated twice")
            out[key] = _annotation(fields, where, ANNOTATION_FIELDS)
    except (ValueError, ValidationError) as exc:
        raise InputError(f"{path}: {exc}") from None
    return out


def scan_input(folder: Path) -> InputFolder:
    """Every image of the folder (sorted by name) with its id and annotations."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"input folder {folder} does not exist")
    annotations = load_annotations(folder)
    images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    files = [p for p in images if not p.name.startswith(".")]
    paintings, used, by_id = [], set(), {}
    for path in files:
        key = path.name if path.name in annotations else path.stem
        used.add(key)
        painting = PaintingInput(painting_id(path.name), path, annotations.get(key, Annotations()))
        if painting.id in by_id:  # 32 bits of hash over names with one slug: practically never
            raise InputError(f"{by_id[painting.id].name} and {path.name} both give painting id {painting.id}; "
                             f"rename one")
        by_id[painting.id] = path
        paintings.append(painting)
    return InputFolder(paintings, sorted(set(annotations) - used),
                       [p.name for p in images if p.name.startswith(".")])
