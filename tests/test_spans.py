"""Span typing: parsing hand-written LLM answers (good and malformed), aligning phrases to
tokens, retries, failures recorded per painting, the match rate, and the real TextLLM path on
a tiny random-weight LM."""

from __future__ import annotations

import argparse

import pytest

from contract.schema import PaintingRecord
from contract.store import Dataset
from precompute.runner import PaintingError, run_stage
from precompute.spanalign import MalformedAnswer, align_spans, parse_span_answer
from precompute.stages import spans
from testkit.fixture_dataset import CAPTION, make_dataset, words

GOOD = '[{"text": "a small village", "category": "CVO"}, {"text": "Vibrant brushstrokes", "category": "STYLE"}]'


@pytest.mark.parametrize("raw", [
    GOOD,
    "Here are the phrases:\n```json\n" + GOOD + "\n```\nLet me know if you need more.",
    "<think>The user wants [spans].</think>\n" + GOOD,
    '{"spans": ' + GOOD + "}",
    GOOD.replace('"CVO"', '"cvo"'),  # case of the category does not matter
])
def test_usable_answers(raw):
    assert parse_span_answer(raw) == [{"text": "a small village", "category": "CVO"},
                                      {"text": "Vibrant brushstrokes", "category": "STYLE"}]


@pytest.mark.parametrize("raw, reason", [
    ("I cannot help with that.", "no JSON list"),
    ("", "it is empty"),
    ('[{"text": "a small village", "category": "CVO"}, {"text": "Vibrant brush', "cut off"),
    ('```json\n[{"text": "a small village", "category": "CVO"},\n', "cut off"),
    ('[{"text": "a small village", "category": "OBJECT"}]', "category 'OBJECT'"),
    ('[{"text": "a small village"}]', "category None"),
    ('[{"phrase": "a small village", "category": "CVO"}]', 'no "text" string'),
    ("[{'text': 'a small village', 'category': 'CVO'}]", "not valid JSON"),
    ("[1, 2, 3]", "no JSON list of objects"),
])
def test_malformed_answers_say_why(raw, reason):
    with pytest.raises(MalformedAnswer, match=reason):
        parse_span_answer(raw)


def offsets(caption: str) -> list[tuple[int, int]]:
    return words(caption)


def test_alignment_exact_repaired_and_rejected():
    caption = 'A large, bright red sun over "The Scream" and a boat. Later, a boat again.'
    items = [
        {"text": "large bright red sun", "category": "CVO"},  # dropped comma: repaired
        {"text": "The S cream", "category": "META"},  # split word: repaired
        {"text": "a boat", "category": "CVO"},  # exact, first occurrence
        {"text": "a boat", "category": "CVO"},  # the same phrase again: the next occurrence
        {"text": "a boat", "category": "CVO"},  # a third time: every occurrence is taken
        {"text": "a red boat at sunset", "category": "CVO"},  # paraphrase
        {"text": "bright red", "category": "STYLE"},  # inside an accepted span
        {"text": "...", "category": "STYLE"},  # punctuation only
        {"text": "", "category": "STYLE"},
    ]
    got, rejected, counts = align_spans(caption, items, offsets(caption))
    assert [(s["text"], s["category"]) for s in got] == [
        ("large, bright red sun", "CVO"), ("The Scream", "META"), ("a boat", "CVO"), ("a boat", "CVO")]
    for span in got:
        assert caption[span["start"]:span["end"]] == span["text"]
    assert got[2]["start"] < got[3]["start"]
    assert [r["reason"] for r in rejected] == ["overlaps another span", "not in the caption",
                                               "overlaps another span", "no letters or digits",
                                               "no letters or digits"]
    assert counts == {"proposed": 9, "exact": 2, "repaired": 2, "approximate": 0, "rejected": 5}
    assert [s["match"] for s in got] == ["repaired", "repaired", "exact", "exact"]
    assert [s.get("phrase") for s in got] == ["large bright red sun", "The S cream", None, None]


def test_alignment_approximate_whole_words_and_order():
    """A reworded phrase is placed approximately with its similarity and the model's phrase kept;
    a phrase is never found inside a word; spans follow the list's order."""
    caption = ("The Virgin Mary and the Christ Child at the center, painted by Henri Rousseau. "
               "A woman washing clothes, a cat, a woman washing clothes.")
    items = [{"text": "Virgin Mary and Christ Child at the center", "category": "ICON"},
             {"text": "Rousse", "category": "META"},  # a name cut at a token boundary
             {"text": "woman washing clothes", "category": "CVO"},
             {"text": "cat", "category": "CVO"},
             {"text": "woman washing clothes", "category": "CVO"}]
    got, rejected, counts = align_spans(caption, items, offsets(caption))
    assert rejected == [] and counts == {"proposed": 5, "exact": 3, "repaired": 0, "approximate": 2, "rejected": 0}
    virgin, rousseau, woman1, cat, woman2 = got
    # 8 phrase words all matched in a run of 9 caption words: 2 * 8 / (8 + 9)
    assert (virgin["text"], virgin["match"], virgin["similarity"]) == (
        "Virgin Mary and the Christ Child at the center", "approximate", round(16 / 17, 4))
    assert virgin["phrase"] == "Virgin Mary and Christ Child at the center"
    # "rousse" stands for "rousseau": 6 of their letters in common, 2 * 6 / (6 + 8); one word of one
    assert (rousseau["text"], rousseau["similarity"], rousseau["phrase"]) == ("Rousseau", round(12 / 14, 4), "Rousse")
    assert woman1["start"] < cat["start"] < woman2["start"] and woman1["text"] == woman2["text"]
    assert "similarity" not in woman1 and "phrase" not in woman1


def test_alignment_maps_to_token_indices():
    caption = "A small village under a starry sky."
    toks = offsets(caption)  # "A", " small", " village", " under", " a", " starry", " sky."
    got, _, _ = align_spans(caption, [{"text": "starry sky", "category": "CVO"},
                                      {"text": "small village", "category": "CVO"}], toks)
    assert [(s["text"], s["tokens"]) for s in got] == [("small village", [1, 2]), ("starry sky", [5, 6])]


def test_empty_tokens_of_a_split_character_belong_to_it():
    caption = "un café"
    toks = [(0, 2), (2, 6), (6, 6), (6, 7)]  # "é" is two byte-level tokens: the first adds no text
    got, _, _ = align_spans(caption, [{"text": "café", "category": "CVO"}], toks)
    assert got[0]["tokens"] == [1, 2, 3]


def test_phrase_covering_no_token_is_rejected():
    caption = "A small village under a starry sky."
    toks = [(0, 15)]  # the tokens end before "starry sky" (a caption longer than its tokens)
    got, rejected, _ = align_spans(caption, [{"text": "starry sky", "category": "CVO"}], toks)
    assert got == [] and rejected[0]["reason"] == "covers no token"


def scripted(*answers):
    """A fake LLM: returns the answers in turn and records the chats it was given."""
    calls = []

    def generate(messages):
        calls.append(messages)
        return answers[min(len(calls), len(answers)) - 1]

    return generate, calls


def test_retry_feeds_the_reason_back():
    generate, calls = scripted("Sure, here you go!", GOOD)
    items, raws = spans.classify_spans(CAPTION, generate, retries=2)
    assert len(items) == 2 and raws == ["Sure, here you go!", GOOD]
    assert "no JSON list" in calls[1][-1]["content"] and calls[1][-2]["content"] == "Sure, here you go!"


def test_bounded_retries_then_painting_error_with_raw_answers():
    generate, calls = scripted('[{"text": "x", "category": "NOUN"}]')
    with pytest.raises(PaintingError, match="after 3 tries: item 0 has category 'NOUN'") as err:
        spans.classify_spans(CAPTION, generate, retries=2)
    assert len(calls) == 3
    assert err.value.provenance["span_classifier"]["raw"] == ['[{"text": "x", "category": "NOUN"}]'] * 3


def test_stage_records_failures_and_goes_on(tmp_path):
    ds = Dataset(make_dataset(tmp_path / "ds", n_paintings=3, with_stats=False))
    answers = {"painting-0": GOOD, "painting-1": "not json at all",
               "painting-2": '[{"text": "the moon", "category": "CVO"}, {"text": "calm water", "category": "CVO"}]'}

    def by_painting(record: PaintingRecord):
        return lambda messages: answers[record.id]

    totals: dict = {}

    def process(record):
        return spans.process(by_painting(record), 1, totals)(record)

    summary = run_stage("spans", ds, {"model": "scripted"}, process)
    assert sorted(summary.done) == ["painting-0", "painting-2"]
    assert "no JSON list" in summary.failed["painting-1"]
    failed = ds.record("painting-1")
    assert failed.provenance["span_classifier"]["raw"] == ["not json at all"] * 2
    assert "spans" not in failed.stages and failed.spans  # the old spans stay, unstamped
    ok = ds.record("painting-2")
    assert [s.text for s in ok.spans] == ["calm water"]
    assert ok.provenance["span_classifier"]["rejected"] == [{"text": "the moon", "category": "CVO",
                                                            "reason": "not in the caption"}]
    from contract.stats import span_matching

    assert span_matching(ds.records()) == {"proposed": 4, "exact": 3, "repaired": 0, "approximate": 0, "rejected": 1,
                                           "paintings": 2, "match_rate": 0.75}


def test_new_spans_make_later_stages_stale(tmp_path):
    ds = Dataset(make_dataset(tmp_path / "ds", n_paintings=1, with_stats=False))
    rec = ds.record("painting-0")
    for later in ("spanmaps", "sam", "metadata"):
        rec.stages[later] = rec.stages["describe"]
    ds.save_record(rec)
    run_stage("spans", ds, {"model": "lexicon"}, spans.process(None, 0, {}))
    assert set(ds.record("painting-0").stages) == {"describe", "spans"}


def test_lexicon_baseline_finds_titles_and_names():
    caption = 'A painting titled "The Starry Night" by Vincent van Gogh shows a village under stars.'
    assert spans.lexicon_answer(caption) == [
        {"text": "The Starry Night", "category": "META"}, {"text": "Vincent van Gogh", "category": "META"},
        {"text": "village", "category": "CVO"}, {"text": "stars", "category": "CVO"}]


def test_real_text_llm_path_on_tiny_model(tmp_path, tiny_text_lm_dir, capsys):
    """A random-weight LM writes no JSON: every painting fails after the retries, with the raw
    answers kept, and the stage finishes."""
    root = make_dataset(tmp_path / "ds", n_paintings=2, with_stats=False)
    parser = argparse.ArgumentParser()
    spans.configure(parser)
    args = parser.parse_args([str(root), "--model", str(tiny_text_lm_dir), "--device", "cpu",
                              "--max-new-tokens", "8", "--retries", "1"])
    assert spans.run(args) == 1
    ds = Dataset(root)
    for record in ds.records():
        assert [f.stage for f in record.failures] == ["spans"]
        assert "after 2 tries" in record.failures[0].error
        raw = record.provenance["span_classifier"]["raw"]
        assert len(raw) == 2 and all(isinstance(r, str) for r in raw)
    assert ds.manifest().settings["spans"]["prompt"] == spans.INSTRUCTIONS
    assert "spans: 0 done, 0 already done, 2 failed" in capsys.readouterr().out


def test_docs_show_the_prompt():
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[1] / "docs" / "stages.md").read_text()
    assert spans.SYSTEM in docs
    assert all(line in docs for line in spans.INSTRUCTIONS.splitlines())
