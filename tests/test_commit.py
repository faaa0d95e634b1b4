"""Committing a painting: a real crash (a forked child that _exits mid-commit, so no cleanup
runs) at every step leaves, after recovery, exactly the old painting or exactly the new one."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from contract.commit import commit_painting, interrupted, recover, referenced_files, temp_files
from contract.schema import Grid, ImageRef, MapRef, PaintingRecord, Span, Token
from contract.store import Dataset, encode_png
from contract.validate import validate_dataset
from precompute.lock import writer

PID = "p-0"


def png(value: int, shape=(2, 3)) -> bytes:
    return encode_png(np.full(shape, value, np.uint8))


def version(caption: str, n_tokens: int, value: int) -> tuple[PaintingRecord, dict[str, bytes]]:
    """A painting with n_tokens one-character tokens, each with a map, and one span over them."""
    tokens = [Token(index=i, id=i, text=caption[i], start=i, end=i + 1,
                    map=MapRef(png=f"tokens/{i}.png", lo=0, hi=1)) for i in range(n_tokens)]
    spans = [Span(index=0, text=caption[:n_tokens], start=0, end=n_tokens, category="CVO",
                  tokens=list(range(n_tokens)), map=MapRef(png="spans/0.png", lo=0, hi=1))]
    record = PaintingRecord(id=PID, caption=caption, canvas=ImageRef(path="canvas.png", width=3, height=2),
                            grid=Grid(h=2, w=3), tokens=tokens, spans=spans)
    files = {"canvas.png": png(value), "spans/0.png": png(value + 1)}
    files.update({f"tokens/{i}.png": png(value + 2 + i) for i in range(n_tokens)})
    return record, files


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def dataset(tmp_path) -> Dataset:
    ds = Dataset(tmp_path / "ds")
    record, files = version("abc", 3, 10)
    commit_painting(ds, record, files)
    ds.refresh_manifest(name="t")
    return ds


def crash_during_commit(dataset: Dataset, record, files, point: str, nth: int) -> int:
    """Commit in a forked child that dies (os._exit, no cleanup) at the nth step `point`."""
    pid = os.fork()
    if pid == 0:  # the child
        seen = []

        def step(name: str) -> None:
            seen.append(name)
            if seen.count(point) == nth:
                os._exit(9)

        try:
            commit_painting(dataset, record, files, on_step=step)
        finally:
            os._exit(0)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


# steps of committing the new version (2 tokens: canvas, spans/0, tokens/0, tokens/1 = 4 files)
CRASHES = [("file", 1, "old"), ("file", 4, "old"), ("staged", 1, "new"), ("moved-aside", 1, "new"),
           ("swapped", 1, "new")]


@pytest.mark.parametrize("point, nth, expected", CRASHES)
def test_a_crash_at_any_step_leaves_old_or_new(dataset, point, nth, expected):
    folder = dataset.painting_dir(PID)
    old = snapshot(folder)
    new_record, new_files = version("xy", 2, 50)
    assert crash_during_commit(dataset, new_record, new_files, point, nth) == 9
    assert interrupted(dataset) == [PID]  # something was left half done
    repaired = recover(dataset)
    assert repaired and interrupted(dataset) == [] and temp_files(dataset.root) == []
    now = snapshot(folder)
    if expected == "old":
        assert now == old
    else:  # exactly the new files, the third token's map gone
        assert set(now) == {"record.json", *new_files} and all(now[k] == v for k, v in new_files.items())
        assert dataset.record(PID).caption == "xy" and "tokens/2.png" not in now
    assert validate_dataset(dataset.root) == []


def test_without_a_crash_the_unreferenced_files_are_gone(dataset):
    new_record, new_files = version("xy", 2, 50)
    del new_files["canvas.png"]  # unchanged: kept from the old folder
    commit_painting(dataset, new_record, new_files)
    now = snapshot(dataset.painting_dir(PID))
    assert set(now) == {"record.json", "canvas.png", "spans/0.png", "tokens/0.png", "tokens/1.png"}
    assert now["canvas.png"] == png(10) and now["tokens/0.png"] == png(52)
    assert os.listdir(dataset.root / "paintings") == [PID]


def test_a_record_only_change_is_one_atomic_write(dataset):
    folder = dataset.painting_dir(PID)
    inode = folder.stat().st_ino
    record = dataset.record(PID)
    record.provenance["note"] = "x"
    commit_painting(dataset, record)
    assert folder.stat().st_ino == inode  # the folder was not swapped
    assert dataset.record(PID).provenance["note"] == "x"


def test_files_must_be_referenced(dataset):
    record, files = version("xy", 2, 50)
    with pytest.raises(ValueError, match="not referenced"):
        commit_painting(dataset, record, {**files, "stray.png": png(1)})


def test_referenced_files_lists_every_kind():
    record, files = version("abc", 3, 10)
    record.provenance["tam_raw"] = "tam_raw.safetensors"
    assert referenced_files(record) == set(files) | {"tam_raw.safetensors"}


def test_validate_reports_leftovers_and_the_next_writer_removes_them(dataset):
    assert crash_during_commit(dataset, *version("xy", 2, 50), "file", 2) == 9
    (dataset.painting_dir(PID) / ".record.json.k2j3.tmp").write_bytes(b"{")
    (dataset.root / ".manifest.json.x81a.tmp").write_bytes(b"{")
    found = [str(v) for v in validate_dataset(dataset.root)]
    assert len(found) == 3
    assert any(v.startswith(f"paintings/{PID}: an interrupted write") for v in found)
    assert f"paintings/{PID}/.record.json.k2j3.tmp: temporary file of an interrupted write" in " ".join(found)
    assert any(v.startswith(".manifest.json.x81a.tmp: temporary file") for v in found)
    with writer(dataset.root):
        pass
    assert validate_dataset(dataset.root) == []


def test_a_shard_repairs_only_its_own_paintings(tmp_path):
    from precompute.runner import in_shard

    ds = Dataset(tmp_path / "ds")
    ids = [f"p-{i}" for i in range(8)]
    for pid in ids:
        record, files = version("abc", 3, 10)
        commit_painting(ds, record.model_copy(update={"id": pid}), files)
        (ds.painting_dir(pid) / ".record.json.zz.tmp").write_bytes(b"")
    (ds.root / ".manifest.json.zz.tmp").write_bytes(b"")
    with writer(ds.root, (0, 2)):
        pass
    left = {p.parent.name for p in temp_files(ds.root / "paintings")}
    assert left == {pid for pid in ids if not in_shard(pid, (0, 2))} and left and len(left) < 8
    assert (ds.root / ".manifest.json.zz.tmp").exists()  # the dataset's own files: another shard may be writing
