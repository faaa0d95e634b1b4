"""Replacing a painting's record and files as one step, so a crash never mixes two versions.

A painting folder holds its record.json and exactly the files the record references (canvas,
thumbnail, token and span maps, SAM masks, tam_raw). A stage that changes files builds the new
folder beside the old one and swaps it in:

    paintings/.<id>.staging/    the new files (new bytes written, unchanged ones hard-linked),
                                record.json written last: its presence means "complete"
    paintings/<id>/   ->  paintings/.<id>.replaced/      the old folder moved aside
    paintings/.<id>.staging/  ->  paintings/<id>/        the new folder in its place
    paintings/.<id>.replaced/   removed

A kill at any point leaves something `recover_painting` turns into the old complete folder or
the new complete one: a complete staging folder is rolled forward, an incomplete one removed,
a folder moved aside is put back if nothing replaced it. A change of the record alone (the set
of referenced files unchanged) is one atomic write of record.json.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from contract.schema import PaintingRecord, is_valid_id
from contract.store import PAINTINGS, RECORD, Dataset, atomic_write_bytes, atomic_write_json, dumps_json

STAGING, REPLACED = ".staging", ".replaced"
_SIDE_FOLDER = re.compile(r"^\.(?P<id>.+)(?P<kind>\.staging|\.replaced)$")
_TEMP_FILE = re.compile(r"^\..+\.tmp$")  # contract.store.atomic_write_bytes: .<name>.<random>.tmp

Step = Callable[[str], None]  # seam: called with "file", "staged", "moved-aside", "swapped"


def referenced_files(record: PaintingRecord) -> set[str]:
    """Every file of the painting folder the record points to (relative paths), record.json aside."""
    out = {ref.path for ref in (record.canvas, record.thumb) if ref is not None}
    out |= {item.map.png for item in [*record.tokens, *record.spans] if item.map is not None}
    out |= {span.sam.mask for span in record.spans if span.sam is not None and span.sam.mask is not None}
    out |= {m.map.png for span in record.spans if span.faithfulness is not None
            for m in span.faithfulness.methods.values()}
    raw = record.provenance.get("tam_raw")
    if isinstance(raw, str):
        out.add(raw)
    return out


def _side(dataset: Dataset, pid: str, kind: str) -> Path:
    dataset.painting_dir(pid)  # checks the id
    return dataset.root / PAINTINGS / f".{pid}{kind}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_tree(path: Path) -> None:
    """Remove a staging or moved-aside folder; its record first, so a half-removed staging
    folder never looks complete."""
    (path / RECORD).unlink(missing_ok=True)
    shutil.rmtree(path, ignore_errors=True)


def link_or_copy(src: Path, dst: Path) -> None:
    """DST as a hard link to SRC (a copy where the file system has none): for files never changed in place."""
    try:
        os.link(src, dst)  # files are never modified in place, so sharing the inode is safe
    except OSError:  # a file system without hard links
        shutil.copy2(src, dst)


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _old_references(dataset: Dataset, pid: str) -> set[str] | None:
    try:
        return referenced_files(dataset.record(pid))
    except (OSError, ValueError):  # no record yet, or one that does not parse
        return None


def commit_painting(dataset: Dataset, record: PaintingRecord, files: dict[str, bytes] | None = None,
                    on_step: Step | None = None) -> None:
    """Make `record` and `files` (relative path -> bytes, new or changed) the painting's content.

    Files the record references but `files` does not hold are kept from the current folder;
    files the record no longer references are gone afterwards.
    """
    record = PaintingRecord.model_validate(record.model_dump())  # an invalid record never reaches disk
    files = files or {}
    wanted = referenced_files(record)
    if set(files) - wanted:
        raise ValueError(f"files not referenced by the record: {sorted(set(files) - wanted)}")
    recover_painting(dataset, record.id)
    folder = dataset.painting_dir(record.id)
    old = _old_references(dataset, record.id)
    if not files and (old == wanted or (old is None and not wanted)):
        atomic_write_json(folder / RECORD, record)
        return
    step = on_step or (lambda _: None)
    staging, replaced = _side(dataset, record.id, STAGING), _side(dataset, record.id, REPLACED)
    staging.mkdir(parents=True)
    for rel in sorted(wanted):
        target = staging / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel in files:
            _write(target, files[rel])
        elif (folder / rel).is_file():
            link_or_copy(folder / rel, target)
        step("file")
    atomic_write_bytes(staging / RECORD, dumps_json(record))  # complete from here on
    step("staged")
    if folder.exists():
        os.rename(folder, replaced)
        step("moved-aside")
    os.rename(staging, folder)
    _fsync_dir(folder.parent)
    step("swapped")
    _remove_tree(replaced)


def recover_painting(dataset: Dataset, pid: str) -> bool:
    """Finish or undo an interrupted commit of painting `pid`; whether there was one."""
    folder = dataset.painting_dir(pid)
    staging, replaced = _side(dataset, pid, STAGING), _side(dataset, pid, REPLACED)
    if not (staging.exists() or replaced.exists()):
        return False
    if replaced.exists() and folder.exists() and not staging.exists():
        _remove_tree(replaced)  # killed after the swap: the new folder is in place
        return True
    if staging.exists():
        if (staging / RECORD).is_file():  # complete: roll forward
            if folder.exists():
                os.rename(folder, replaced)
            os.rename(staging, folder)
        else:
            _remove_tree(staging)
    if replaced.exists():
        if folder.exists():
            _remove_tree(replaced)
        else:  # moved aside and never replaced: put it back
            os.rename(replaced, folder)
    _fsync_dir(folder.parent)
    return True


def temp_files(root: Path) -> list[Path]:
    """Temporary files of atomic writes below root (left there only by a killed process)."""
    return sorted(p for p in root.rglob(".*.tmp") if _TEMP_FILE.match(p.name) and p.is_file())


def interrupted(dataset: Dataset) -> list[str]:
    """Ids with a staging or moved-aside folder (an interrupted commit)."""
    base = dataset.root / PAINTINGS
    if not base.is_dir():
        return []
    ids = {m["id"] for p in base.iterdir() if (m := _SIDE_FOLDER.match(p.name)) and is_valid_id(m["id"])}
    return sorted(ids)


def recover(dataset: Dataset, mine: Callable[[str], bool] = lambda pid: True, *, root_files: bool = True) -> list[str]:
    """Repair what killed runs left: interrupted commits and temporary files of the paintings
    `mine` selects (a shard passes its own test: other shards may be writing theirs) and, with
    root_files, of the dataset folder itself. Returns one line per repair."""
    done = []
    for pid in interrupted(dataset):
        if mine(pid) and recover_painting(dataset, pid):
            done.append(f"{PAINTINGS}/{pid}: finished an interrupted write")
    base = dataset.root / PAINTINGS
    folders = [p for p in base.iterdir() if is_valid_id(p.name) and mine(p.name)] if base.is_dir() else []
    candidates = [p for folder in folders if folder.is_dir() for p in temp_files(folder)]
    if root_files and dataset.root.is_dir():
        candidates += [p for p in dataset.root.glob(".*.tmp") if _TEMP_FILE.match(p.name)]
    for path in candidates:
        path.unlink(missing_ok=True)
        done.append(f"{path.relative_to(dataset.root)}: removed a temporary file")
    return done
