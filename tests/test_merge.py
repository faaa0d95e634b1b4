"""`tamscope merge`: what it says and its exit codes (docs/precompute.md): 0 done, 1 work left or
invalid, 2 nothing merged. The datasets are built in code (testkit.fixture_dataset); the
real-model path (shards + merge = one run) is in tests/test_pipeline.py and tests/test_slurm.py."""

from __future__ import annotations

import numpy as np
from PIL import Image

from contract.store import Dataset
from precompute.lock import writer
from precompute.runner import PaintingError, record_failure, stamp
from tamscope.cli import main
from testkit.fixture_dataset import make_dataset


def sharded_dataset(root):
    """Three paintings after shards that ran describe and reliance: p0 done, p1 failed in
    reliance, p2 not reached by reliance (its shard was killed)."""
    make_dataset(root, n_paintings=3, with_stats=False)
    ds = Dataset(root)
    ds.refresh_manifest(settings={"describe": {}, "reliance": {"blur": 1}})
    first, second, _ = (ds.record(pid) for pid in ds.painting_ids())
    ds.save_record(stamp(first, "reliance", {"blur": 1}))
    ds.save_record(record_failure(second, "reliance", PaintingError("no image tokens")))
    return ds


def merge(root, capsys, *extra) -> tuple[int, str]:
    code = main(["merge", str(root), *extra])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_failed_and_unfinished_paintings_exit_1_and_are_named(tmp_path, capsys):
    ds = sharded_dataset(tmp_path / "ds")
    done, failed, waiting = ds.painting_ids()
    code, out = merge(ds.root, capsys)
    assert code == 1
    assert f"1 painting(s) not finished by every stage, and not failed: their shard stopped before them " \
           f"(killed, out of time) or has not run: {waiting}" in out
    assert f"reliance: no image tokens [{failed}]" in out
    assert "merge: 1 painting(s) failed; 1 not finished. Run the shards concerned again" in out
    assert len(ds.manifest().paintings) == 3 and [f.painting for f in ds.manifest().failures] == [failed]


def test_every_stage_done_exits_0(tmp_path, capsys):
    ds = sharded_dataset(tmp_path / "ds")
    for pid in ds.painting_ids()[1:]:
        ds.save_record(stamp(ds.record(pid), "reliance", {"blur": 1}))  # the shards run again
    code, out = merge(ds.root, capsys)
    assert code == 0, out
    assert out.strip().endswith("merge: 3 paintings, every stage done, the dataset is valid")
    assert (ds.root / "stats.json").is_file()


def test_input_paintings_never_described_exit_1(tmp_path, capsys):
    ds = sharded_dataset(tmp_path / "ds")
    for pid in ds.painting_ids()[1:]:
        ds.save_record(stamp(ds.record(pid), "reliance", {"blur": 1}))
    folder = tmp_path / "in"
    folder.mkdir()  # the records are synthetic (no input file); this image is one no shard described
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "never-run.png")
    code, out = merge(ds.root, capsys, "--input", str(folder))
    assert code == 1
    assert "never-run.png: not in the dataset" in out and "1 difference(s) from the input folder" in out


def test_a_shard_still_writing_merges_nothing(tmp_path, capsys):
    ds = sharded_dataset(tmp_path / "ds")
    before = (ds.root / "manifest.json").read_bytes()
    with writer(ds.root, (1, 2)):
        code, out = merge(ds.root, capsys)
    assert code == 2 and "is being written by another tamscope run" in out
    assert (ds.root / "manifest.json").read_bytes() == before


def test_no_dataset_merges_nothing(tmp_path, capsys):
    code, out = merge(tmp_path / "nothing", capsys)
    assert code == 2 and "holds no paintings" in out and not (tmp_path / "nothing").exists()
