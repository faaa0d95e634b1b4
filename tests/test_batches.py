"""--batch-size (issue 10, point 5): on the float64 tiny captioner a batch of 4 (left padding,
attention masks, M-RoPE positions from the model's get_rope_index with the mask) gives the same
captions, the same 8-bit maps and the same reliance as one painting at a time; a painting that
fails in a batch fails alone."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.numpy import load_file, save_file

from contract.schema import PaintingRecord
from contract.store import Dataset, read_png_u8
from precompute import runner
from precompute.models import load_captioner
from precompute.stages import describe, reliance
from testkit.harness import stage_args

torch.set_num_threads(1)
NEW_TOKENS = 12



@pytest.fixture(scope="module")
def paintings(tmp_path_factory):
    """The 4 smoke paintings (different sizes: different prompt lengths, so real padding), a
    fifth of another size and a file that is no image, in the middle of the first batch."""
    from precompute.smoke import write_smoke_paintings

    folder = write_smoke_paintings(tmp_path_factory.mktemp("paintings"))
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 255, (200, 520, 3), dtype=np.uint8)).save(folder / "wide-strip.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return folder


def described(paintings, model, root, batch: int) -> Dataset:
    code = describe.run(stage_args(describe, [paintings, root, "--model", model, "--device", "cpu", "--dtype", "float64",
                                         "--max-new-tokens", NEW_TOKENS, "--batch-size", batch]))
    assert code == 1  # the broken file fails
    return Dataset(root)


@pytest.fixture(scope="module")
def one_and_four(paintings, tiny_qwen2vl_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("batches")
    return (described(paintings, tiny_qwen2vl_dir, base / "one", 1),
            described(paintings, tiny_qwen2vl_dir, base / "four", 4))


def test_batch_of_four_describes_as_one_at_a_time(one_and_four):
    one, four = one_and_four
    assert one.painting_ids() == four.painting_ids() and len(one.painting_ids()) == 6
    sizes = set()
    for pid in one.painting_ids():
        a, b = one.record(pid), four.record(pid)
        if pid.startswith("broken"):  # recorded as this painting's failure, in both runs
            assert [f.stage for f in a.failures] == [f.stage for f in b.failures] == ["describe"]
            assert a.failures[0].error == b.failures[0].error and "describe" not in b.stages
            continue
        assert "describe" in b.stages and not b.failures
        sizes.add((a.grid.h, a.grid.w))
        assert a.caption == b.caption and [t.id for t in a.tokens] == [t.id for t in b.tokens]
        assert [(t.start, t.end) for t in a.tokens] == [(t.start, t.end) for t in b.tokens]
        for token in a.tokens:
            np.testing.assert_array_equal(read_png_u8(one.painting_dir(pid) / token.map.png),
                                          read_png_u8(four.painting_dir(pid) / token.map.png))
        raw_a = load_file(one.painting_dir(pid) / "tam_raw.safetensors")
        raw_b = load_file(four.painting_dir(pid) / "tam_raw.safetensors")
        np.testing.assert_allclose(raw_b["logp_image"], raw_a["logp_image"], rtol=0, atol=1e-9)
        np.testing.assert_allclose(raw_b["raw"], raw_a["raw"], rtol=1e-5, atol=1e-6)
    assert len(sizes) >= 3  # the batch really mixed prompt lengths (left padding at work)
    failures = {f.painting for f in four.manifest().failures}
    assert failures == {pid for pid in four.painting_ids() if pid.startswith("broken")}


def test_batched_reliance_scores_as_one_at_a_time(one_and_four, tiny_qwen2vl_dir, tmp_path):
    one, _ = one_and_four
    cap = load_captioner(str(tiny_qwen2vl_dir), device="cpu", dtype="float64")
    jobs = []
    for rec in one.records():
        if rec.tokens:
            with Image.open(one.painting_dir(rec.id) / "canvas.jpg") as im:
                canvas = im.convert("RGB")
            jobs.append((reliance.blurred(canvas, 0.1), rec.prompt, [t.id for t in rec.tokens][:NEW_TOKENS - len(jobs)]))
    assert len({len(j[2]) for j in jobs}) > 1  # answers of different lengths too
    together = reliance.batch_logprobs(cap, jobs)
    for job, got in zip(jobs, together, strict=True):
        np.testing.assert_allclose(got, reliance.batch_logprobs(cap, [job])[0], rtol=0, atol=1e-9)

    roots = {}
    old_style = next(rec.id for rec in one.records() if rec.tokens)
    for batch in (1, 4):
        roots[batch] = tmp_path / f"b{batch}"
        shutil.copytree(one.root, roots[batch])
        # one painting without describe's log P (described before it was kept): two passes in the batch
        path = Dataset(roots[batch]).painting_dir(old_style) / "tam_raw.safetensors"
        raw = load_file(path)
        del raw["logp_image"]
        save_file(raw, path)
        assert reliance.run(stage_args(reliance, [roots[batch], "--device", "cpu", "--dtype", "float64",
                                             "--batch-size", batch])) == 0
    a, b = Dataset(roots[1]), Dataset(roots[4])
    for rec in a.records():
        if "reliance" not in rec.stages:
            continue
        other = b.record(rec.id)
        np.testing.assert_allclose([t.reliance for t in other.tokens], [t.reliance for t in rec.tokens],
                                   rtol=0, atol=1.01e-4)  # rounded to 1e-4
        source = "teacher-forced pass" if rec.id == old_style else "describe"
        assert other.provenance["reliance"]["logp_image_from"] == rec.provenance["reliance"]["logp_image_from"] == source


def record(pid: str) -> PaintingRecord:
    return PaintingRecord(id=pid, source_file=f"{pid}.png")


def test_a_batch_that_raises_is_done_one_by_one():
    """The runner's fallback: one painting that breaks a whole batch fails alone."""
    def batch(records):
        if any(r.id == "bad" for r in records):
            raise RuntimeError("the batch broke")
        return [r for r in records]

    def one(rec):
        if rec.id == "bad":
            raise ValueError("bad painting")
        return rec

    outcomes = runner.batch_outcomes(batch, one, [record("a"), record("bad"), record("c")])
    assert [o.id for o in outcomes if isinstance(o, PaintingRecord)] == ["a", "c"]
    assert isinstance(outcomes[1], ValueError)
    assert runner.batch_outcomes(batch, one, [record("a"), record("c")])[1].id == "c"


def test_batch_size_below_one_is_refused(paintings, tmp_path):
    with pytest.raises(SystemExit, match="--batch-size"):
        describe.run(stage_args(describe, [paintings, tmp_path / "ds", "--batch-size", 0]))
