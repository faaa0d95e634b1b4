"""--batch-size for the text LLM's stages, spans and metadata (issue 10, point 5): on the float64
tiny text LM with Qwen's real tokenizer a batch of 4 (left padding, attention mask) stores the
same answers as one painting at a time, compared as the stored records (timestamps aside); a
painting that fails in a batch fails alone and the others finish."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from contract.store import Dataset
from precompute.runner import run_stage
from precompute.stages import metadata, spans
from precompute.textllm import TextLLM
from testkit.fixture_dataset import CAPTION, make_dataset
from testkit.harness import stage_args

torch.set_num_threads(1)
# Sentences appended to the fixture's caption, one per painting: prompts of different lengths, so
# the rows of a batch really are padded (and the random model answers each differently).
EXTRA = ["", " Dusk falls.", " A boat rests on the shore while gulls circle above the masts.", " Quiet.",
         " The painter used thick layers of ochre and blue, scraped back in places with a knife.", " Night."]


@pytest.fixture(scope="module")
def tiny_text_lm_dir(tmp_path_factory):
    """The tiny text LM whose answers depend on the whole prompt (textlm.py: `varied`)."""
    from precompute.tiny.textlm import build_tiny_text_lm

    return build_tiny_text_lm(tmp_path_factory.mktemp("varied-text-lm"), varied=True)


def stored(ds: Dataset, pid: str) -> str:
    """The record file as stored, its timestamps (when a stage finished or failed) left out."""
    data = json.loads(ds.record_path(pid).read_bytes())
    for stage in data.get("stages", {}).values():
        stage.pop("finished", None)
    for failure in data.get("failures", []):
        failure.pop("time", None)
    return json.dumps(data, sort_keys=True)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Six fixture paintings with captions of different lengths and a seventh without a caption,
    in the middle of the first batch (it fails alone)."""
    root = make_dataset(tmp_path_factory.mktemp("text-batches") / "ds", n_paintings=7, with_stats=False)
    ds = Dataset(root)
    for i, pid in enumerate(sorted(ds.painting_ids())):
        rec = ds.record(pid)
        if i == 2:
            rec.caption, rec.tokens, rec.spans = None, [], []
        else:
            rec.caption = CAPTION + EXTRA[i if i < 2 else i - 1]
        ds.save_record(rec)
    return ds


def copy(ds: Dataset, path) -> Dataset:
    shutil.copytree(ds.root, path)
    return Dataset(path)


def test_spans_batch_of_four_stores_what_one_at_a_time_stores(dataset, tiny_text_lm_dir, tmp_path):
    runs = {}
    for batch in (1, 4):
        ds = copy(dataset, tmp_path / f"b{batch}")
        code = spans.run(stage_args(spans, [ds.root, "--model", tiny_text_lm_dir, "--device", "cpu",
                                            "--dtype", "float64", "--max-new-tokens", 16, "--retries", 1,
                                            "--batch-size", batch]))
        assert code == 1  # random weights write no JSON; the caption-less painting fails too
        runs[batch] = ds
    one, four = runs[1], runs[4]
    pids = sorted(one.painting_ids())
    assert [stored(four, pid) for pid in pids] == [stored(one, pid) for pid in pids]
    raws = []
    for pid in pids:
        rec = four.record(pid)
        if rec.caption is None:
            assert [f.error for f in rec.failures] == ["no caption to classify"]
            continue
        raw = rec.provenance["span_classifier"]["raw"]
        assert len(raw) == 2 and all(raw) and "after 2 tries" in rec.failures[0].error
        raws.append(raw[0])
    assert len(set(raws)) == len(raws) == 6  # each painting got its own answer (no row mixed up)


def test_metadata_batch_of_four_stores_what_one_at_a_time_stores(dataset, tiny_text_lm_dir, tmp_path):
    runs = {}
    for batch in (1, 4):
        ds = copy(dataset, tmp_path / f"b{batch}")
        run_stage("spans", ds, {}, lambda rec: rec)  # the fixture's spans (META included), stamped
        code = metadata.run(stage_args(metadata, [ds.root, "--model", tiny_text_lm_dir, "--device", "cpu",
                                                  "--dtype", "float64", "--max-new-tokens", 12,
                                                  "--batch-size", batch]))
        assert code == 1  # the caption-less painting
        runs[batch] = ds
    one, four = runs[1], runs[4]
    pids = sorted(one.painting_ids())
    assert [stored(four, pid) for pid in pids] == [stored(one, pid) for pid in pids]
    judged = [four.record(pid).metadata for pid in pids if four.record(pid).caption is not None]
    assert len(judged) == 6 and all(m.judge and isinstance(m.judge["raw"], str) for m in judged)
    assert len({m.judge["raw"] for m in judged}) > 1  # prompts differ (captions, titles): so do answers
    failed = four.record(pids[2])
    assert failed.metadata is not None and [f.stage for f in failed.failures] == ["metadata"]


def test_left_padded_rows_answer_as_alone(tiny_text_lm_dir):
    """The TextLLM call itself: chats of very different lengths, together and one by one."""
    llm = TextLLM(str(tiny_text_lm_dir), "cpu", "float64", None, 10, stage="spans")
    chats = [[{"role": "user", "content": text}] for text in ("hi", CAPTION, "a much shorter one", CAPTION * 3)]
    together = llm.generate_batch(chats)
    assert together == [llm.generate(chat) for chat in chats]


GOOD = '[{"text": "a small village", "category": "CVO"}, {"text": "calm water", "category": "CVO"}]'


def scripted_batches(answer_for):
    """A fake text LLM answering a batch of chats, each by answer_for(chat); it records the batches."""
    batches = []

    def generate_batch(chats):
        batches.append(len(chats))
        return [answer_for(chat) for chat in chats]

    return generate_batch, batches


def test_a_malformed_answer_fails_its_painting_alone_and_retries_only_it(tmp_path):
    ds = Dataset(make_dataset(tmp_path / "ds", n_paintings=4, with_stats=False))
    bad = sorted(ds.painting_ids())[1]
    rec = ds.record(bad)
    rec.caption = CAPTION + " Broken."  # the fake LLM recognises this painting by its caption
    ds.save_record(rec)
    chats_seen = []

    def answer_for(chat):
        chats_seen.append(chat)
        return "no JSON here" if "Broken." in chat[1]["content"] else GOOD

    generate_batch, batches = scripted_batches(answer_for)
    totals: dict = {}
    summary = run_stage("spans", ds, {"model": "scripted"}, spans.process(None, 2, totals),
                        batch=spans.process_batch(generate_batch, 2, totals), batch_size=4)
    assert batches == [4, 1, 1]  # the first round asks all four; the retries only the broken one
    assert sorted(summary.done) == sorted(set(ds.painting_ids()) - {bad})
    assert list(summary.failed) == [bad] and "after 3 tries: the answer holds no JSON list" in summary.failed[bad]
    assert ds.record(bad).provenance["span_classifier"]["raw"] == ["no JSON here"] * 3
    assert chats_seen[-1][-1]["content"].startswith("That answer cannot be used")
    for pid in summary.done:
        assert [s.text for s in ds.record(pid).spans] == ["a small village", "calm water"]
    assert totals["proposed"] == 6 and totals["exact"] == 6  # each painting counted once


def test_a_batch_that_breaks_is_redone_one_by_one(tmp_path):
    """A model call that raises for the whole batch (say, out of memory): the runner redoes the
    paintings one at a time, and each is typed once."""
    ds = Dataset(make_dataset(tmp_path / "ds", n_paintings=3, with_stats=False))

    def generate_batch(chats):
        if len(chats) > 1:
            raise RuntimeError("CUDA out of memory")
        return [GOOD]

    totals: dict = {}
    summary = run_stage("spans", ds, {"model": "scripted"}, spans.process(lambda chat: GOOD, 0, totals),
                        batch=spans.process_batch(generate_batch, 0, totals), batch_size=3)
    assert len(summary.done) == 3 and not summary.failed and totals["proposed"] == 6


def test_pipeline_passes_the_batch_size_to_the_text_llm_stages(tmp_path):
    from precompute import pipeline

    parser = pipeline.argparse.ArgumentParser()
    pipeline.configure(parser)
    args = parser.parse_args([str(tmp_path / "in"), str(tmp_path / "ds"), "--batch-size", "8"])
    argvs = dict(pipeline.stage_argvs(args))
    for stage in ("describe", "reliance", "spans", "metadata"):
        assert argvs[stage][argvs[stage].index("--batch-size") + 1] == "8"
