"""`tamscope validate DATASET [--input FOLDER]`: list every violation of the contract, with its location.

Checks the JSON against the pydantic models (contract.schema) and then what JSON Schema
cannot see: that every referenced file exists inside its folder, that PNG maps have the
grid's size, masks the canvas size, that the manifest and the records agree, and that no
interrupted write left anything behind (staging folders, temporary files: the next precompute
run repairs them). With `--input`, also that the dataset matches the input folder it was made
from: every image described, from the same bytes, with the same annotations, and no painting
whose input file is gone. A dataset holds no symbolic links below its folder (the server
follows none, backend.datafiles), so every link is reported: a painting folder, a record or an
image that is one.
"""

from __future__ import annotations

import argparse
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from pydantic import ValidationError

from contract.commit import REPLACED, STAGING, interrupted, temp_files
from contract.index import INDEX, IndexUnavailable, matches_records
from contract.inputs import fingerprint, input_of, scan_input, vanished
from contract.schema import DatasetManifest, DatasetStats, PaintingRecord, is_valid_id
from contract.store import MANIFEST, PAINTINGS, RECORD, STATS, Dataset


@dataclass(frozen=True)
class Violation:
    location: str  # file path relative to the dataset, then a JSON location after ':'
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


def _pydantic_violations(where: str, err: ValidationError) -> list[Violation]:
    out = []
    for e in err.errors():
        loc = ".".join(str(part) for part in e["loc"])
        out.append(Violation(f"{where}:{loc}" if loc else where, e["msg"]))
    return out


def image_size(source: Path | bytes) -> tuple[int, int] | None:
    """(width, height) of the image at a path or in bytes; None if it is not a readable image."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            return im.size
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError):  # a header claiming 10^10 pixels
        return None


LINK = "is a symbolic link (a dataset holds none: the server follows no link)"


def _link_in(base: Path, rel: str) -> str | None:
    """The first component of BASE/REL (below BASE) that is a symbolic link, if any."""
    path = base
    for part in Path(rel).parts:
        path = path / part
        if path.is_symlink():
            return path.relative_to(base).as_posix()
        if not path.exists():
            return None
    return None


@dataclass(frozen=True)
class NamedFile:
    """A file a painting record names: the server's key for it, where it is, what it must be."""

    key: str  # "canvas", "thumb", "token/3", "span/2", "sam/2", "method/igos/2"
    rel: str  # below the painting folder
    where: str  # its JSON location, for messages
    size: tuple[int, int] | None  # (width, height) it must have


def named_files(record: PaintingRecord, where: str) -> list[NamedFile]:
    """Every file RECORD names (maps of a record without a grid are left out: record_violations
    reports them)."""
    canvas = (record.canvas.width, record.canvas.height) if record.canvas else None
    grid = (record.grid.w, record.grid.h) if record.grid else None
    out = []
    if record.canvas:
        out.append(NamedFile("canvas", record.canvas.path, f"{where}:canvas", canvas))
    if record.thumb:
        out.append(NamedFile("thumb", record.thumb.path, f"{where}:thumb", (record.thumb.width, record.thumb.height)))
    for kind, key, items in (("tokens", "token", record.tokens), ("spans", "span", record.spans)):
        for item in items:
            if item.map is not None and grid is not None:
                out.append(NamedFile(f"{key}/{item.index}", item.map.png, f"{where}:{kind}.{item.index}.map", grid))
    for span in record.spans:
        if span.sam is not None and span.sam.mask is not None:
            out.append(NamedFile(f"sam/{span.index}", span.sam.mask, f"{where}:spans.{span.index}.sam", canvas))
        for method, result in (span.faithfulness.methods.items() if span.faithfulness and grid else ()):
            out.append(NamedFile(f"method/{method}/{span.index}", result.map.png,
                                 f"{where}:spans.{span.index}.faithfulness.{method}", grid))
    return out


def record_violations(folder_name: str, record: PaintingRecord, where: str) -> list[Violation]:
    """What a record's JSON breaks beyond its schema, its files aside."""
    out: list[Violation] = []
    if record.id != folder_name:
        out.append(Violation(f"{where}:id", f"id {record.id!r} differs from its folder {folder_name!r}"))
    if record.grid is None:
        out += [Violation(f"{where}:{kind}.{item.index}.map", "a map without a grid")
                for kind, items in (("tokens", record.tokens), ("spans", record.spans))
                for item in items if item.map is not None]
    for span in record.spans:
        for method, result in (span.faithfulness.methods.items() if span.faithfulness else ()):
            at = f"{where}:spans.{span.index}.faithfulness.{method}"
            if record.grid is None:
                out.append(Violation(at, "a map without a grid"))
            if result.deletion is not None and len(result.deletion) != span.faithfulness.steps + 1:
                out.append(Violation(at, f"{len(result.deletion)} curve points for {span.faithfulness.steps} steps"))
    caption = record.caption or ""
    for token in record.tokens:
        if caption[token.start:token.end] != token.text:
            out.append(Violation(f"{where}:tokens.{token.index}", "text differs from the caption at its offsets"))
        if token.faithfulness is not None and token.map is None:  # the curves rank by the token's map
            out.append(Violation(f"{where}:tokens.{token.index}.faithfulness", "curves of a token without a map"))
    for span in record.spans:
        if span.located and caption[span.start:span.end] != span.text:
            out.append(Violation(f"{where}:spans.{span.index}", "text differs from the caption at its offsets"))
    return out


def image_violations(source: Path | bytes, rel: str, where: str, size: tuple[int, int] | None) -> list[Violation]:
    """A named file's content: a readable image, of SIZE when given."""
    actual = image_size(source)
    if actual is None:
        return [Violation(where, f"{rel} is not a readable image")]
    if size is not None and actual != size:
        return [Violation(where, f"{rel} is {actual[0]}x{actual[1]}, expected {size[0]}x{size[1]}")]
    return []


def _check_file(base: Path, rel: str, where: str, size: tuple[int, int] | None) -> list[Violation]:
    link = _link_in(base, rel)
    if link is not None:
        return [Violation(where, f"{link} {LINK}")]
    path = (base / rel).resolve()
    if not path.is_relative_to(base.resolve()):
        return [Violation(where, f"{rel} points outside its folder")]
    if not path.is_file():
        return [Violation(where, f"{rel} does not exist")]
    return image_violations(path, rel, where, size)


def check_record(folder: Path, record: PaintingRecord, where: str) -> list[Violation]:
    """File-level checks of one record (its JSON already validated). The server checks the same
    on the bytes it reads (backend.catalog.load_painting)."""
    out = record_violations(folder.name, record, where)
    for named in named_files(record, where):
        out += _check_file(folder, named.rel, named.where, named.size)
    return out


def index_violations(root: Path) -> list[Violation]:
    """The index (contract.index) is a cache: absent or stale is fine (it is rebuilt before use),
    current it must match the records."""
    if not (root / INDEX).exists():
        return []
    if (root / INDEX).is_symlink():
        return [Violation(INDEX, LINK)]
    try:
        return [Violation(INDEX, problem) for problem in matches_records(root)]
    except IndexUnavailable as exc:  # the manifest is broken: reported above
        return [Violation(INDEX, f"cannot be checked: {exc}")]


def leftover_violations(root: Path) -> list[Violation]:
    """What a killed writer left: half-committed painting folders and temporary files."""
    out = [Violation(f"{PAINTINGS}/{pid}", "an interrupted write left .staging/.replaced folders beside it "
                                           "(the next precompute run finishes or undoes it)")
           for pid in interrupted(Dataset(root))]
    out += [Violation(p.relative_to(root).as_posix(), "temporary file of an interrupted write "
                                                      "(the next precompute run removes it)")
            for p in temp_files(root)]
    return out


def input_violations(root: Path, folder: Path) -> list[Violation]:
    """Where the dataset does not match its input folder (contract.inputs)."""
    inputs, dataset, out = scan_input(folder), Dataset(root), []
    for painting in inputs.paintings:
        where = f"{PAINTINGS}/{painting.id}/{RECORD}"
        if not dataset.has_record(painting.id):
            out.append(Violation(str(painting.path), f"not in the dataset (painting id {painting.id}): run precompute"))
            continue
        try:
            record = dataset.record(painting.id)
        except ValueError:
            continue  # reported by the record checks
        if "describe" in record.stages and (input_of(record) or {}).get("sha256") != fingerprint(painting.path):
            out.append(Violation(f"{where}:provenance.input", f"described from other bytes than {painting.path} "
                                                              f"holds now: run precompute again"))
        if record.annotations != painting.annotations:
            out.append(Violation(f"{where}:annotations", f"differ from the annotations of {painting.path.name} "
                                                         f"in {folder}: run precompute again"))
    for pid, name in vanished(dataset, {p.id for p in inputs.paintings}):
        out.append(Violation(f"{PAINTINGS}/{pid}", f"its input file {name} is no longer in {folder} "
                                                   f"(delete the folder to drop the painting)"))
    return out


def validate_dataset(root: Path, input_folder: Path | None = None) -> list[Violation]:
    root = Path(root)
    if not root.is_dir():
        return [Violation(str(root), "not a folder")]
    out: list[Violation] = [Violation(name, LINK) for name in (MANIFEST, STATS, PAINTINGS) if (root / name).is_symlink()]
    if out:
        return out
    manifest = None
    try:
        manifest = DatasetManifest.model_validate_json((root / MANIFEST).read_bytes())
    except FileNotFoundError:
        out.append(Violation(MANIFEST, "missing"))
    except ValidationError as err:
        out += _pydantic_violations(MANIFEST, err)

    base = root / PAINTINGS
    side = {f".{pid}{kind}" for pid in interrupted(Dataset(root)) for kind in (STAGING, REPLACED)}
    on_disk = sorted(p.name for p in base.iterdir() if p.is_dir() and p.name not in side) if base.is_dir() else []
    linked = set()  # painting folders that are links, reported once
    for name in on_disk:
        where = f"{PAINTINGS}/{name}/{RECORD}"
        if not is_valid_id(name):
            out.append(Violation(f"{PAINTINGS}/{name}", "folder name is not a valid painting id"))
            continue
        link = _link_in(base, f"{name}/{RECORD}")
        if link is not None:
            out.append(Violation(f"{PAINTINGS}/{link}", LINK))
            linked.add(f"{PAINTINGS}/{link}")
            continue
        try:
            record = PaintingRecord.model_validate_json((base / name / RECORD).read_bytes())
        except FileNotFoundError:
            out.append(Violation(where, "missing"))
            continue
        except ValidationError as err:
            out += _pydantic_violations(where, err)
            continue
        out += check_record(base / name, record, where)

    if manifest is not None:
        listed = [p.id for p in manifest.paintings]
        for pid in sorted(set(listed) - set(on_disk)):
            out.append(Violation(f"{MANIFEST}:paintings", f"{pid!r} has no folder under {PAINTINGS}/"))
        for pid in sorted(set(on_disk) - set(listed)):
            out.append(Violation(f"{PAINTINGS}/{pid}", "not listed in the manifest"))
        for i, summary in enumerate(manifest.paintings):
            if summary.thumb is not None and _link_in(root, summary.thumb) not in linked:
                out += _check_file(root, summary.thumb, f"{MANIFEST}:paintings.{i}.thumb", None)

    if (root / STATS).is_file():
        try:
            DatasetStats.model_validate_json((root / STATS).read_bytes())
        except ValidationError as err:
            out += _pydantic_violations(STATS, err)
    out += index_violations(root)
    out += leftover_violations(root)
    if input_folder is not None:
        out += input_violations(root, Path(input_folder))
    return out


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path, help="dataset folder")
    parser.add_argument("--input", type=Path, default=None,
                        help="the input folder the dataset was made from: check that they match")


def run(args: argparse.Namespace) -> int:
    violations = validate_dataset(args.dataset, getattr(args, "input", None))
    for v in violations:
        print(v)
    if violations:
        print(f"{len(violations)} violation(s) in {args.dataset}")
        return 1
    print(f"{args.dataset}: valid")
    return 0
