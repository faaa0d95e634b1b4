"""`tamscope faithfulness`: method maps and deletion/insertion per span, stored in the contract,
validated, resumable, and refusing bad input (issue 15, point 3)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from contract.commit import commit_painting
from contract.store import Dataset, read_png_u8
from contract.validate import validate_dataset
from precompute.stages import faithfulness, reliance
from testkit.fixture_faithfulness import hand_spanned
from testkit.harness import stage_args

torch.set_num_threads(1)
FAST = ["--device", "cpu", "--steps", "4", "--igos-iterations", "1", "--igos-ig-steps", "1",
        "--methods", "tam-reference,logit,attention,gradient,igos"]



@pytest.fixture(scope="module")
def spanned(tiny_qwen2vl_dir, tmp_path_factory):
    """Two described paintings (float64) with reliance and two spans placed on tokens by hand."""
    return hand_spanned(tiny_qwen2vl_dir, tmp_path_factory.mktemp("spanned"), max_new_tokens=10, span_tokens=([1, 2, 3], [6]))


def test_stage_writes_maps_and_curves_and_resumes(spanned, tmp_path, capsys):
    root = tmp_path / "ds"
    shutil.copytree(spanned, root)
    assert faithfulness.run(stage_args(faithfulness, [root, *FAST])) == 0
    ds = Dataset(root)
    settings = ds.manifest().settings["faithfulness"]
    assert settings["steps"] == 4 and settings["methods"] == ["tam-reference", "logit", "attention", "gradient", "igos"]
    for record in ds.records():
        folder = ds.painting_dir(record.id)
        for span in record.spans:
            f = span.faithfulness
            assert f is not None and set(f.methods) == {"tam-reference", "logit", "attention", "gradient", "igos"}
            assert f.score_original <= 0 and f.score_baseline <= 0
            for method, result in f.methods.items():
                u8 = read_png_u8(folder / result.map.png)
                assert u8.shape == (record.grid.h, record.grid.w)
                assert result.map.png == f"methods/{method}/{span.index}.png"
                if result.deletion is not None:
                    assert len(result.deletion) == 5 and result.deletion[0] == 1 and result.deletion[-1] == 0
                    assert result.insertion[0] == 0 and result.insertion[-1] == 1
                    # the area is the trapezoid under the stored curve, steps of 1/4
                    trapezoid = sum((a + b) / 2 * 0.25 for a, b in zip(result.deletion, result.deletion[1:], strict=False))
                    assert result.deletion_area == pytest.approx(trapezoid, abs=1e-3)
        # the dataset's TAM variant is describe's span map: the same 8-bit map as the mean of token maps
        first = record.spans[0].faithfulness.methods["tam-reference"]
        from safetensors.numpy import load_file

        from contract.metrics import span_map

        maps = load_file(folder / "tam_raw.safetensors")["maps"]
        assert np.array_equal(read_png_u8(folder / first.map.png), span_map(maps[[1, 2, 3]])[0])
    assert validate_dataset(root) == []
    capsys.readouterr()

    # the same settings skip; new settings redo; --force redoes
    assert faithfulness.run(stage_args(faithfulness, [root, *FAST])) == 0
    assert "faithfulness: 0 done, 2 already done, 0 failed" in capsys.readouterr().out
    fewer = [a if a != "tam-reference,logit,attention,gradient,igos" else "logit" for a in FAST]
    assert faithfulness.run(stage_args(faithfulness, [root, *fewer])) == 0
    assert "faithfulness: 2 done" in capsys.readouterr().out
    for record in ds.records():
        assert all(set(s.faithfulness.methods) == {"logit"} for s in record.spans)
        assert not list((ds.painting_dir(record.id) / "methods").glob("attention/*"))  # unreferenced maps gone
    assert validate_dataset(root) == []

    # new reliance flags make it stale (iGOS++ scores the visually relevant tokens)
    assert reliance.run(stage_args(reliance, [root, "--device", "cpu", "--dtype", "float64", "--threshold", "0.01"])) == 0
    assert all("faithfulness" not in r.stages for r in ds.records())


def test_bad_options_stop_before_any_work(spanned, tmp_path):
    with pytest.raises(SystemExit, match="unknown"):
        faithfulness.run(stage_args(faithfulness, [spanned, "--methods", "tam-reference,gradcam"]))
    with pytest.raises(SystemExit, match="at least 1"):
        faithfulness.run(stage_args(faithfulness, [spanned, "--steps", "0"]))


def test_paintings_without_token_ids_fail_alone(spanned, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(spanned, root)
    ds = Dataset(root)
    broken, kept = ds.painting_ids()
    record = ds.record(broken)
    for token in record.tokens:
        token.id = None
    commit_painting(ds, record)
    assert faithfulness.run(stage_args(faithfulness, [root, *FAST[:-2], "--methods", "logit"])) == 1
    assert "tokenizer ids" in next(f.error for f in ds.record(broken).failures if f.stage == "faithfulness")
    assert ds.record(kept).spans[0].faithfulness is not None
    assert validate_dataset(root) == []


def test_max_spans_limits_the_work(spanned, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(spanned, root)
    assert faithfulness.run(stage_args(faithfulness, [root, *FAST[:-2], "--methods", "logit", "--max-spans", "1"])) == 0
    for record in Dataset(root).records():
        assert [s.faithfulness is not None for s in record.spans] == [True, False]
    with pytest.raises(SystemExit, match="max-spans"):
        faithfulness.run(stage_args(faithfulness, [root, "--max-spans", "-1"]))


def test_validate_sees_a_wrong_map_size_and_curve_length(spanned, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(spanned, root)
    assert faithfulness.run(stage_args(faithfulness, [root, *FAST[:-2], "--methods", "logit"])) == 0
    ds = Dataset(root)
    pid = ds.painting_ids()[0]
    record = ds.record(pid)
    result = record.spans[0].faithfulness.methods["logit"]
    from contract.store import write_png

    write_png(ds.painting_dir(pid) / result.map.png, np.zeros((3, 3), np.uint8))
    found = [str(v) for v in validate_dataset(root)]
    assert any("faithfulness.logit" in v for v in found)


def test_per_token_curves_for_every_token_and_resume(spanned, tmp_path, capsys):
    """--per-token: every token with a map gets its curves, ranked by its own map; its score with
    the canvas is its log P, as the reliance stage's own teacher-forced pass computes it."""
    from PIL import Image

    from precompute.models import load_captioner

    root = tmp_path / "ds"
    shutil.copytree(spanned, root)
    quick = [*FAST[:-2], "--methods", "logit", "--steps", "2", "--dtype", "float64"]
    assert faithfulness.run(stage_args(faithfulness, [root, *quick, "--per-token"])) == 0
    ds = Dataset(root)
    assert ds.manifest().settings["faithfulness"]["per_token"] is True
    captioner = load_captioner(ds.manifest().models["captioner"].id, device="cpu", dtype="float64")
    for record in ds.records():
        with Image.open(ds.painting_dir(record.id) / record.canvas.path) as im:
            logp = reliance.answer_logprobs(captioner, im.convert("RGB"), record.prompt, [t.id for t in record.tokens])
        assert len(record.tokens) > 3
        for token in record.tokens:
            f = token.faithfulness
            assert f is not None and f.method == "tam-reference" and f.steps == 2
            assert f.score_original == pytest.approx(float(logp[token.index]), abs=1e-3)
            assert f.score_baseline <= 0
            if f.deletion is not None:
                assert f.deletion[0] == 1 and f.deletion[-1] == 0 and f.insertion[0] == 0 and f.insertion[-1] == 1
                assert f.deletion_area == pytest.approx((f.deletion[0] + 2 * f.deletion[1] + f.deletion[2]) / 4,
                                                        abs=1e-3)
        assert record.spans[0].faithfulness is not None  # the span curves are written as before
    assert validate_dataset(root) == []
    capsys.readouterr()

    # resume: the same settings skip; a painting whose commit never happened (killed) is redone alone
    done = ds.record(ds.painting_ids()[0])
    before = [t.faithfulness for t in done.tokens]
    done.stages.pop("faithfulness")
    for token in done.tokens:
        token.faithfulness = None
    commit_painting(ds, done)
    assert faithfulness.run(stage_args(faithfulness, [root, *quick, "--per-token"])) == 0
    assert "faithfulness: 1 done, 1 already done, 0 failed" in capsys.readouterr().out
    assert [t.faithfulness for t in ds.record(done.id).tokens] == before  # the same curves again

    # without --per-token the per-token curves go (other settings: every painting redone)
    assert faithfulness.run(stage_args(faithfulness, [root, *quick])) == 0
    assert "faithfulness: 2 done" in capsys.readouterr().out
    assert all(t.faithfulness is None for r in ds.records() for t in r.tokens)
    assert "per_token" not in ds.manifest().settings["faithfulness"]


def test_running_out_of_memory_fails_the_painting_and_stops_with_advice(spanned, tmp_path, capsys):
    """On the CPU each painting runs under a memory cap (precompute.memory.capped): a method that
    needs more than it may have fails that painting with what to do instead and stops the stage
    (the others wait, resumable), where without the cap the kernel would kill the run. Here it may
    have 1 MiB (--max-memory). In a subprocess: torch's CPU kernels may stay broken in a process
    after a failed allocation, which must not leak into the other tests."""
    root = tmp_path / "ds"
    shutil.copytree(spanned, root)
    methods = ["--methods", "logit,gradient"]
    run = subprocess.run([sys.executable, "-m", "tamscope.cli", "faithfulness", str(root), *FAST[:-2], *methods,
                          "--max-memory", "1M"], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 1, run.stderr[-2000:]
    assert "1 failed, stopped before the others (run it again to resume)" in run.stdout, run.stdout
    ds = Dataset(root)
    first, second = ds.records()
    error = next(f.error for f in first.failures if f.stage == "faithfulness")
    assert "out of memory on the CPU while" in error and "0.0 GiB allowed" in error, error
    assert "leave out gradient" in error and "--methods logit;" in error, error
    assert "faithfulness" not in first.stages
    assert not second.failures and "faithfulness" not in second.stages  # not reached: waits
    assert validate_dataset(root) == []

    # without the cap (the machine's free memory) the same run does both
    assert faithfulness.run(stage_args(faithfulness, [root, *FAST[:-2], *methods])) == 0
    assert "faithfulness: 2 done" in capsys.readouterr().out
    assert all(set(s.faithfulness.methods) == {"logit", "gradient"} for r in ds.records() for s in r.spans)
    assert not any(f.stage == "faithfulness" for r in ds.records() for f in r.failures)


def test_memory_cap_and_sizes():
    """capped() turns numpy's and torch's failed allocations into OutOfMemory and lifts the cap after."""
    import resource

    from precompute.memory import OutOfMemory, capped, parse_size

    before = resource.getrlimit(resource.RLIMIT_AS)
    with pytest.raises(OutOfMemory, match="MemoryError"), capped(64 * 2**20):
        np.ones(2**28)  # 2 GiB asked for, 64 MiB allowed
    with pytest.raises(OutOfMemory, match="allocate"), capped(64 * 2**20):
        torch.empty(2**28, dtype=torch.float64)
    assert resource.getrlimit(resource.RLIMIT_AS) == before
    with capped(64 * 2**20):
        assert torch.ones(2**10).sum() == 2**10
    with pytest.raises(ValueError, match="positive"):  # the cap's own error is not swallowed
        with capped(64 * 2**20):
            raise ValueError("positive")
    assert (parse_size("8G"), parse_size("512m"), parse_size("1.5GiB"), parse_size("4096")) == (8 * 2**30, 512 * 2**20,
                                                                                              1.5 * 2**30, 4096)
    for bad in ("", "G", "-1G", "0", "nan", "1X"):
        with pytest.raises(ValueError):
            parse_size(bad)
