"""The stage runner: resume, failures recorded per painting, sharding, atomic saves."""

from pathlib import Path

import pytest

from contract.schema import PaintingRecord
from contract.store import Dataset
from precompute.runner import PaintingError, ShardError, StopStage, in_shard, parse_shard, run_stage


def _dataset(tmp_path: Path, n: int = 4) -> Dataset:
    ds = Dataset(tmp_path / "ds")
    for i in range(n):
        rec = PaintingRecord(id=f"p{i}", caption="a caption")
        rec = PaintingRecord.model_validate({**rec.model_dump(), "stages": {"describe": {"finished": "x"}}})
        ds.save_record(rec)
    ds.refresh_manifest(name="t")
    return ds


def test_resume_skips_done_and_redoes_on_new_settings(tmp_path):
    ds = _dataset(tmp_path)
    calls = []

    def process(rec):
        calls.append(rec.id)
        rec.provenance["touched"] = len(calls)
        return rec

    first = run_stage("demo", ds, {"k": 1}, process)
    assert sorted(first.done) == ["p0", "p1", "p2", "p3"]
    again = run_stage("demo", ds, {"k": 1}, process)
    assert again.done == [] and len(again.skipped) == 4 and len(calls) == 4
    changed = run_stage("demo", ds, {"k": 2}, process)
    assert len(changed.done) == 4 and len(calls) == 8
    assert ds.manifest().settings["demo"] == {"k": 2}


def test_failure_is_recorded_and_stage_goes_on(tmp_path):
    ds = _dataset(tmp_path)

    def process(rec):
        if rec.id == "p1":
            raise PaintingError("image is 1x1 pixels")
        if rec.id == "p2":
            raise ZeroDivisionError("boom")
        return rec

    summary = run_stage("demo", ds, {}, process)
    assert sorted(summary.done) == ["p0", "p3"]
    assert summary.failed == {"p1": "image is 1x1 pixels", "p2": "ZeroDivisionError: boom"}
    assert [f.error for f in ds.record("p1").failures] == ["image is 1x1 pixels"]
    assert "demo" not in ds.record("p1").stages
    assert {f.painting for f in ds.manifest().failures} == {"p1", "p2"}
    # a successful retry clears the failure
    run_stage("demo", ds, {}, lambda rec: rec)
    assert ds.record("p1").failures == [] and ds.manifest().failures == []


@pytest.mark.parametrize("batch_size", [1, 3])
def test_a_stop_failure_is_recorded_and_the_rest_wait(tmp_path, batch_size):
    """StopStage (e.g. out of memory): its painting's failure is recorded, the paintings before it
    keep their results (a batch's others included), the ones after are not touched; a rerun resumes."""
    ds = _dataset(tmp_path, n=6)
    seen = []

    def process(rec):
        seen.append(rec.id)
        if rec.id == "p1":
            raise StopStage("out of memory: leave out gradient")
        return rec

    def batch(records):
        return [process(r) if r.id != "p1" else StopStage("out of memory: leave out gradient") for r in records]

    summary = run_stage("demo", ds, {}, process, batch=batch, batch_size=batch_size)
    assert summary.stopped == "out of memory: leave out gradient"
    assert summary.failed == {"p1": "out of memory: leave out gradient"}
    done = ["p0", "p2"] if batch_size == 3 else ["p0"]  # the batch p0..p2 was computed whole
    assert sorted(summary.done) == done
    assert "stopped before the others" in summary.line()
    untouched = [f"p{i}" for i in range(6) if f"p{i}" not in done and f"p{i}" != "p1"]
    assert all("demo" not in ds.record(p).stages and not ds.record(p).failures for p in untouched)
    assert [f.error for f in ds.record("p1").failures] == ["out of memory: leave out gradient"]
    again = run_stage("demo", ds, {}, lambda rec: rec)  # the cause removed: the rest resume
    assert sorted(again.done) == sorted(untouched + ["p1"]) and again.stopped is None


def test_needs_previous_stage(tmp_path):
    ds = _dataset(tmp_path)
    summary = run_stage("later", ds, {}, lambda rec: rec, needs="spans")
    assert summary.done == [] and summary.skipped == [] and len(summary.waiting) == 4
    assert summary.line() == "later: 0 done, 0 already done, 0 failed, 4 waiting for spans"


def test_shards_partition_the_ids():
    ids = [f"painting-{i}" for i in range(200)]
    shards = [[pid for pid in ids if in_shard(pid, (k, 3))] for k in range(3)]
    assert sorted(sum(shards, [])) == sorted(ids)
    assert all(len(s) > 30 for s in shards)


@pytest.mark.parametrize("text", ["3/3", "-1/2", "a/b", "1", "0/0"])
def test_bad_shard_is_rejected(text):
    with pytest.raises(ValueError):
        parse_shard(text)


def test_a_shard_out_of_range_says_how_shards_are_numbered():
    with pytest.raises(ShardError, match=r"--shard 1/1: K must be 0 to 0 \(shards are numbered from 0 to N-1\)"):
        parse_shard("1/1")  # `sbatch --array=1` of a script that took N from SLURM_ARRAY_TASK_COUNT


def test_no_temp_files_left(tmp_path):
    ds = _dataset(tmp_path)
    run_stage("demo", ds, {}, lambda rec: rec)
    assert not list(ds.root.rglob("*.tmp"))


def test_written_files_get_the_usual_permissions(tmp_path):
    """mkstemp creates 0600 files: a dataset served by another user (a web server, a container)
    must be readable, so atomic writes use the umask's mode like an ordinary open()."""
    import os

    from contract.store import atomic_write_bytes

    atomic_write_bytes(tmp_path / "a.json", b"{}")
    (tmp_path / "b.json").write_bytes(b"{}")
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == (tmp_path / "b.json").stat().st_mode & 0o777
    assert os.access(tmp_path / "a.json", os.R_OK)


def test_identical_errors_are_listed_once():
    from precompute.runner import StageSummary

    summary = StageSummary("describe", failed={"a": "model X is missing", "b": "model X is missing", "c": "corrupt"})
    assert summary.line() == ("describe: 0 done, 0 already done, 3 failed\n  a, b: model X is missing\n  c: corrupt")


def test_a_failed_rerun_keeps_the_earlier_result(tmp_path):
    """New settings, and the stage fails: the record keeps its result and stamp, the failure is appended."""
    ds = _dataset(tmp_path, n=2)
    run_stage("demo", ds, {"k": 1}, lambda rec: rec.model_copy(update={"caption": "first result"}))
    before = {pid: ds.record(pid) for pid in ds.painting_ids()}

    def fail(rec):
        rec.caption = "half-made result"  # changed in memory, then the stage fails
        raise PaintingError("the model is missing")

    summary = run_stage("demo", ds, {"k": 2}, fail)
    assert summary.kept == ["p0", "p1"] and "2 failed (2 keep their earlier result)" in summary.line()
    for pid, old in before.items():
        now = ds.record(pid)
        assert now.caption == "first result" and now.stages == old.stages
        assert [(f.stage, f.error) for f in now.failures] == [("demo", "the model is missing")]
    assert len(ds.manifest().failures) == 2


def test_a_failed_spanmaps_rerun_rewrites_no_file(tmp_path):
    """spanmaps used to write spans/<i>.png one by one and fail on a later span: the old record
    then pointed at new maps. Nothing is written now until the whole painting succeeded."""
    import argparse

    import numpy as np

    from contract.commit import commit_painting
    from contract.schema import Grid, ImageRef, MapRef, Span, StageStamp, Token
    from contract.store import encode_png
    from precompute.stages import spanmaps

    ds = Dataset(tmp_path / "ds")
    tokens = [Token(index=i, id=i, text=ch, start=i, end=i + 1, map=MapRef(png=f"tokens/{i}.png", lo=0, hi=1))
              for i, ch in enumerate("ab")]
    spans = [Span(index=0, text="a", start=0, end=1, category="CVO", tokens=[0], map=MapRef(png="spans/0.png", lo=0, hi=1)),
             Span(index=1, text="b", start=1, end=2, category="CVO", map=MapRef(png="spans/1.png", lo=0, hi=1))]
    stamps = {s: StageStamp(settings=settings, finished="t") for s, settings in
              (("describe", {}), ("spans", {}), ("spanmaps", {"how": "max"}))}
    record = PaintingRecord(id="p", caption="ab", canvas=ImageRef(path="canvas.png", width=4, height=4),
                            grid=Grid(h=2, w=2), tokens=tokens, spans=spans, stages=stamps)
    gradient = np.array([[0, 80], [160, 240]], np.uint8)
    files = {"canvas.png": encode_png(np.zeros((4, 4), np.uint8)), "tokens/0.png": encode_png(gradient),
             "tokens/1.png": encode_png(gradient), "spans/0.png": encode_png(np.full((2, 2), 7, np.uint8)),
             "spans/1.png": encode_png(gradient)}
    commit_painting(ds, record, files)
    ds.refresh_manifest(name="t")
    (ds.painting_dir("p") / "spans/1.png").unlink()  # span 1 (no tokens) keeps a map that is gone: it fails
    args = argparse.Namespace(dataset=ds.root, how="mean", shard=None, force=False)
    assert spanmaps.run(args) == 1
    assert (ds.painting_dir("p") / "spans/0.png").read_bytes() == files["spans/0.png"]
    now = ds.record("p")
    assert now.stages["spanmaps"].settings == {"how": "max"} and now.spans == record.spans
    assert [f.stage for f in now.failures] == ["spanmaps"] and "spans/1.png" in now.failures[0].error
