"""`tamscope precompute` end to end on tiny random-weight models: every stage, span maps and SAM 3
checked against direct computations, sharding + merge, and kill-and-resume, each compared
byte for byte with one uninterrupted run."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from contract.index import INDEX
from contract.metrics import gini, iou, otsu, span_map, spatial_entropy, top_mass
from contract.names import painting_id
from contract.store import Dataset, read_png_u8
from contract.validate import validate_dataset
from precompute import merge, pipeline
from precompute.smoke import write_smoke_paintings
from tests.kill import kill_repeatedly

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]
EPOCH = "1767225600"
STAGES = {"describe", "reliance", "spans", "spanmaps", "sam", "metadata"}


def precompute_argv(paintings, out, qwen, sam, *extra) -> list[str]:
    return [str(paintings), str(out), "--captioner", str(qwen), "--text-llm", "lexicon", "--segmenter", str(sam),
            "--max-new-tokens", "24", "--sam-threshold", "0.2", "--device", "cpu", "--dtype", "float32",
            "--name", "t", *extra]


def run_precompute(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    pipeline.configure(parser)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOURCE_DATE_EPOCH", EPOCH)  # timestamps equal across runs, so bytes compare
        return pipeline.run(parser.parse_args(argv))


def files(root: Path) -> dict[str, bytes]:
    """Every file of a dataset but its index: a cache named by file identities (inode, mtime) and
    built time (contract/index.py), so it differs between two runs that wrote the same data."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != INDEX}


def assert_same_files(a: Path, b: Path) -> None:
    fa, fb = files(a), files(b)
    assert sorted(fa) == sorted(fb)
    assert [name for name in fa if fa[name] != fb[name]] == []


@pytest.fixture(scope="module")
def paintings(tmp_path_factory) -> Path:
    return write_smoke_paintings(tmp_path_factory.mktemp("paintings"))


@pytest.fixture(scope="module")
def reference(paintings, tiny_qwen2vl_dir, tiny_sam3_dir, tmp_path_factory) -> Path:
    """One uninterrupted, unsharded run: the baseline every other run is compared with."""
    out = tmp_path_factory.mktemp("reference") / "ds"
    assert run_precompute(precompute_argv(paintings, out, tiny_qwen2vl_dir, tiny_sam3_dir)) == 0
    return out


def test_every_stage_ran_and_the_dataset_is_valid(reference, capsys):
    assert validate_dataset(reference) == []
    ds = Dataset(reference)
    manifest = ds.manifest()
    assert len(manifest.paintings) == 4 and manifest.failures == []
    assert set(manifest.models) == {"captioner", "span_classifier", "segmenter"}
    assert STAGES <= set(manifest.settings)
    n_sam = 0
    for rec in ds.records():
        assert set(rec.stages) == STAGES
        assert all(t.reliance is not None and t.visual is not None for t in rec.tokens)
        assert rec.spans and all(s.map is not None and s.metrics is not None for s in rec.spans)
        for span in rec.spans:
            assert (span.sam is not None) == (span.category in ("CVO", "ICON"))
            n_sam += span.sam is not None and span.sam.mask is not None
        assert rec.metadata is not None and rec.metadata.source == "pipeline"
    assert n_sam > 0
    from tamscope.cli import main

    capsys.readouterr()
    assert main(["stats", str(reference), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["n_paintings"] == 4 and stats["span_matching"]["match_rate"] == 1.0
    assert all("entropy_mean" in stats[c] and "iou_mean" in stats[c] for c in ("CVO", "STYLE"))
    assert stats["CVO"]["iou_n"] > 0 and stats["CVO"]["reliance_n"] == stats["CVO"]["count"]


def test_span_maps_are_the_mean_of_their_token_maps(reference):
    """In the default `reference` TAM variant, of the stored 8-bit token maps (as the authors'
    pipeline; the float maps with `corrected`: tests/test_describe.py)."""
    ds = Dataset(reference)
    checked = 0
    for rec in ds.records():
        folder = ds.painting_dir(rec.id)
        assert rec.provenance["tam"]["variant"] == "reference"
        maps = np.stack([read_png_u8(folder / t.map.png) / 255.0 for t in rec.tokens])  # (T, h, w) in [0, 1]
        for span in rec.spans:
            mean = maps[span.tokens].mean(axis=0)
            u8, lo, hi = span_map(maps[span.tokens], "mean")
            stored = read_png_u8(folder / span.map.png)
            assert stored.shape == (rec.grid.h, rec.grid.w) and np.array_equal(stored, u8)
            assert (span.map.lo, span.map.hi) == pytest.approx((mean.min(), mean.max()))
            assert span.metrics.entropy == spatial_entropy(stored) and span.metrics.gini == gini(stored)
            assert span.metrics.top10_mass == top_mass(stored)
            assert span.otsu_threshold == otsu(stored, (rec.canvas.width, rec.canvas.height))[0]
            checked += 1
    assert checked > 20


def test_sam_union_scores_and_iou(reference, tiny_sam3_dir):
    """The stored mask is the union of the instances SAM 3 keeps above the threshold, at canvas
    size; the IoU is the one of that mask with the span's Otsu mask."""
    from PIL import Image
    from transformers import Sam3Model, Sam3Processor

    model, proc = Sam3Model.from_pretrained(tiny_sam3_dir).eval(), Sam3Processor.from_pretrained(tiny_sam3_dir)
    ds = Dataset(reference)
    rec = next(r for r in ds.records() if any(s.sam and s.sam.mask for s in r.spans))
    folder = ds.painting_dir(rec.id)
    image = Image.open(folder / "canvas.jpg").convert("RGB")
    span = next(s for s in rec.spans if s.sam and s.sam.mask)
    with torch.inference_mode():
        out = model(**proc(images=image, text=span.text, return_tensors="pt"))
    res = proc.post_process_instance_segmentation(out, threshold=0.2, mask_threshold=0.5,
                                                  target_sizes=[[image.height, image.width]])[0]
    union = res["masks"].bool().numpy().any(axis=0)
    stored = read_png_u8(folder / span.sam.mask) > 0
    assert stored.shape == (rec.canvas.height, rec.canvas.width) and np.array_equal(stored, union)
    assert span.sam.scores == pytest.approx(res["scores"].tolist(), abs=1e-4)
    assert span.sam.instances == len(res["scores"]) > 0
    _, otsu_mask = otsu(read_png_u8(folder / span.map.png), image.size)
    assert span.sam.iou == pytest.approx(iou(otsu_mask, stored))


def test_no_detection_is_recorded_as_such(reference, tiny_sam3_dir, tmp_path, capsys):
    import shutil

    from contract.stats import compute
    from precompute.stages import sam

    root = tmp_path / "ds"
    shutil.copytree(reference, root)
    parser = argparse.ArgumentParser()
    sam.configure(parser)
    # random weights score about 0.25: nothing passes the default 0.5
    assert sam.run(parser.parse_args([str(root), "--model", str(tiny_sam3_dir), "--device", "cpu"])) == 0
    assert "sam: 4 done" in capsys.readouterr().out  # new settings: every painting redone
    ds = Dataset(root)
    results = [s.sam for r in ds.records() for s in r.spans if s.category in ("CVO", "ICON")]
    assert results and all(r.instances == 0 and r.mask is None and r.iou is None and r.scores == [] for r in results)
    stats = compute(ds).model_dump()
    assert stats["CVO"]["sam_detection_rate"] == 0 and stats["CVO"]["iou_mean"] is None
    assert validate_dataset(root) == []


def test_two_shards_and_merge_equal_one_run(reference, paintings, tiny_qwen2vl_dir, tiny_sam3_dir, tmp_path, capsys):
    out = tmp_path / "ds"
    for shard in ("0/2", "1/2"):
        assert run_precompute(precompute_argv(paintings, out, tiny_qwen2vl_dir, tiny_sam3_dir, "--shard", shard)) == 0
        assert f"shard {shard} done" in capsys.readouterr().out
    assert not (out / "stats.json").exists()  # dataset-wide steps wait for the merge
    assert Dataset(out).manifest().paintings == []  # and so does the painting list: shards only set fields
    assert len(Dataset(out).painting_ids()) == 4
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOURCE_DATE_EPOCH", EPOCH)
        assert merge.run(argparse.Namespace(dataset=out)) == 0
    assert_same_files(reference, out)


def test_kill_and_resume_the_pipeline(reference, paintings, tiny_qwen2vl_dir, tiny_sam3_dir, tmp_path):
    out = tmp_path / "ds"
    args = ["precompute", *precompute_argv(paintings, out, tiny_qwen2vl_dir, tiny_sam3_dir)]
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH, "OMP_NUM_THREADS": "1"}
    slow = [sys.executable, "-m", "tests.slow_cli", "1"]  # a pause after each painting: the kill lands mid-stage
    proc = subprocess.Popen(slow + args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def spans_started() -> bool:
        for record in (out / "paintings").glob("*/record.json"):
            try:
                if "spans" in json.loads(record.read_bytes())["stages"]:
                    return True
            except ValueError:
                pass
        return False

    deadline = time.monotonic() + 180
    while not spans_started() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)  # in the middle of the spans stage
    proc.wait()
    ds = Dataset(out)
    stamped = [set(r.stages) for r in ds.records()]
    assert len(stamped) == 4 and all({"describe", "reliance"} <= s for s in stamped)
    assert any("spans" not in s for s in stamped), "the run finished before it could be killed"
    assert not list(out.rglob("*.tmp"))

    done = subprocess.run([sys.executable, "-m", "tamscope.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "describe: 0 done, 4 already done, 0 failed" in done.stdout
    assert "reliance: 0 done, 4 already done, 0 failed" in done.stdout
    assert "describe     4 done     0 failed" in done.stdout  # the summary, read from the records
    assert_same_files(reference, out)


def test_kill_spanmaps_at_random_moments_then_resume(reference, paintings, tiny_qwen2vl_dir, tiny_sam3_dir,
                                                    tmp_path):
    """spanmaps writes a PNG per span: kill -9 it four times at random moments, then finish the
    pipeline: every file is byte-identical to the uninterrupted run's."""
    out = tmp_path / "ds"
    argv = precompute_argv(paintings, out, tiny_qwen2vl_dir, tiny_sam3_dir)
    assert run_precompute([*argv, "--only", "describe,reliance,spans"]) == 0
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "tests.slow_cli", "0.1@spanmaps", "spanmaps", str(out)]
    stamped = []  # paintings with span maps after each kill
    delays = kill_repeatedly(cmd, env, out / "paintings", times=4, max_delay=0.2,
                             after=lambda: stamped.append(sum("spanmaps" in r.stages for r in Dataset(out).records())))
    assert stamped[0] < 4, f"the first kill came after the stage: {delays}, {stamped}"
    assert run_precompute(argv) == 0
    assert_same_files(reference, out)
    assert validate_dataset(out, paintings) == []


def test_failures_are_summarised_and_the_run_goes_on(paintings, tiny_qwen2vl_dir, tiny_sam3_dir, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.png").write_bytes((paintings / "red-still-life.png").read_bytes())
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "ds"
    capsys.readouterr()
    assert run_precompute(precompute_argv(folder, out, tiny_qwen2vl_dir, tiny_sam3_dir)) == 1
    printed = capsys.readouterr().out
    summary = printed[printed.index("== summary"):]
    assert "2 paintings" in summary and "describe     1 done     1 failed" in summary
    assert "metadata     1 done     0 failed" in summary
    assert "failures:\n  describe: broken.jpg is not an image" in summary
    assert f"[{painting_id('broken.jpg')}]" in summary
    assert "reliance: 1 done, 0 already done, 0 failed, 1 waiting for describe" in printed
    assert set(Dataset(out).record(painting_id("good.png")).stages) == STAGES
    assert validate_dataset(out) == []
