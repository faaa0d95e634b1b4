"""`tamscope spans DATASET`: type the caption's phrases with a text LLM.

The LLM (default Qwen/Qwen3-4B-Instruct-2507; any causal LM id or folder) gets the caption
and returns JSON: exact phrases copied from it, each with a category. precompute.spanalign
parses the answer and finds each phrase in the caption (exactly, repaired for dropped
punctuation and split words, or approximately for a reworded phrase: contract.phrasealign),
then maps it to token indices through the tokens' character offsets. Phrases not in the caption, without letters, overlapping or covering no token are
rejected with a reason. A malformed answer (not JSON, wrong category, truncated) is retried
`--retries` times with the reason given back to the model, then recorded as the painting's
failure (its raw answers kept in the record) without stopping the stage.
`--batch-size N` asks the LLM about N captions at once (left-padded, each answer the one the
caption gets alone); each retry round asks again about the captions still without an answer.
The raw answers, rejections and match counts stay in the record's provenance; the match
rate (the reference pipeline matched ~47% of its spans to its words) of this run and of the
whole dataset is printed on every run and kept in stats.json (`span_matching`).

`--model lexicon` uses a small built-in keyword lexicon instead of an LLM: a documented
baseline for machines without an LLM (the embedded smoke dataset uses it, because a
random-weight LLM cannot write JSON).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path

from contract.schema import ModelRef, PaintingRecord, Span
from contract.stats import span_matching
from contract.store import Dataset
from precompute.lock import update_manifest, writer
from precompute.runner import (
    PaintingError,
    add_batch_option,
    add_model_options,
    add_run_options,
    check_batch_size,
    load_options,
    parse_shard,
    run_stage,
)
from precompute.spanalign import MalformedAnswer, align_spans, parse_span_answer
from precompute.textllm import DEFAULT_MODEL, NO_LLM, TextLLM

STAGE = "spans"
LEXICON_ID = NO_LLM

SYSTEM = "You annotate descriptions of paintings for an art-history study. You answer with JSON only."
INSTRUCTIONS = """Find the phrases of the description below that belong to one of these categories:
- CVO: a concrete visual object or scene element that could be outlined in the picture ("a small village", "the boat", "a woman in a blue dress").
- ICON: a named iconographic figure or symbol ("the Virgin Mary", "Saint Jerome", "a halo", "the Christ child").
- STYLE: style, technique, colour or composition ("vibrant brushstrokes", "Post-Impressionist style", "bold colors").
- AFFECT: mood, emotion or atmosphere ("a sense of calm", "melancholic", "dynamism").
- META: the artist, the title or the date of the work ("Vincent van Gogh", "The Starry Night", "painted in 1889").
Rules: copy each phrase EXACTLY as it appears in the description (same words, same spelling, same punctuation); keep phrases short (a noun phrase or a single word, not a sentence); copy a title without its quotation marks; do not overlap phrases; skip words that fit no category; list the phrases in order of appearance.
Answer with a JSON list only, like [{"text": "a small village", "category": "CVO"}].

Description:
"""

LEXICON = {
    "CVO": ["village", "town", "church", "trees", "tree", "sky", "stars", "star", "moon", "sun", "boat", "boats", "water",
            "sea", "river", "harbour", "harbor", "house", "houses", "table", "apple", "lemon", "fruit", "flowers", "woman",
            "man", "figure", "figures", "dress", "hat", "chair", "window", "mountain", "mountains", "clouds", "field"],
    "ICON": ["Virgin Mary", "Mary", "Christ", "child", "angel", "angels", "saint", "saints", "halo", "Madonna"],
    "STYLE": ["brushstrokes", "vibrant", "bold", "colors", "colours", "style", "Impressionism", "Post-Impressionism",
              "Expressionism", "Fauvism", "Baroque", "Renaissance", "golden", "dark", "light", "palette", "composition"],
    "AFFECT": ["sense", "emotion", "calm", "serene", "melancholic", "dynamism", "motion", "mood", "tranquil"],
    "META": ["van Gogh", "Gogh", "Vincent", "Monet", "portrait", "landscape", "cityscape"],
}
# META beyond the word list: a quoted title after "titled"/"called", and "by" + a capitalised name
WORD = r"[A-Z](?:[\w'-]+|\.)"  # a capitalised word or an initial ("P.")
NAME = rf"{WORD}(?: (?:van|de|da|di|von|der|del|la|le|{WORD}))*"
META_PATTERNS = [r"\b(?:titled|entitled|called) [\"“']([^\"”']{2,80})[\"”']", rf"\bby ({NAME})"]


def lexicon_answer(caption: str) -> list[dict]:
    """Every META pattern and lexicon word found (whole words), longest first, in caption order."""
    found = []
    for pattern in META_PATTERNS:
        for m in re.finditer(pattern, caption):
            text = m.group(1).rstrip(".'-")  # a name at the end of a sentence keeps its full stop out
            found.append((m.start(1), -len(text), text, "META"))
    for category, words in LEXICON.items():
        for word in sorted(words, key=len, reverse=True):
            for m in re.finditer(rf"\b{re.escape(word)}\b", caption, flags=re.I):
                found.append((m.start(), -len(word), caption[m.start():m.end()], category))
    found.sort()
    taken, items = [], []
    for start, neg_len, text, category in found:
        end = start - neg_len
        if any(start < e and s < end for s, e in taken):
            continue
        taken.append((start, end))
        items.append({"text": text, "category": category})
    return items


def classify_spans(caption: str, generate: Callable[[list[dict]], str], retries: int) -> tuple[list[dict], list[str]]:
    """Ask, parse, and on a malformed answer ask again with the reason. (items, raw answers)."""
    outcome, = classify_batch([caption], lambda chats: [generate(chat) for chat in chats], retries)
    if isinstance(outcome, PaintingError):
        raise outcome
    return outcome


def classify_batch(captions: list[str], generate_batch: Callable[[list[list[dict]]], list[str]],
                   retries: int) -> list[tuple[list[dict], list[str]] | PaintingError]:
    """classify_spans for several captions, each round asking the model about every caption still
    without a usable answer at once (one batch per round); a caption whose answers all stay
    malformed gets its PaintingError (with its raw answers) and the others their (items, raws)."""
    chats = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": INSTRUCTIONS + c}] for c in captions]
    raws: list[list[str]] = [[] for _ in captions]
    reasons = [""] * len(captions)
    outcomes: list = [None] * len(captions)
    waiting = list(range(len(captions)))
    for _attempt in range(retries + 1):
        if not waiting:
            break
        answers = generate_batch([chats[i] for i in waiting])
        still = []
        for i, raw in zip(waiting, answers, strict=True):
            raws[i].append(raw)
            try:
                outcomes[i] = (parse_span_answer(raw), raws[i])
            except MalformedAnswer as exc:
                reasons[i] = str(exc)
                chats[i] = chats[i] + [{"role": "assistant", "content": raw},
                                       {"role": "user", "content": f"That answer cannot be used: {reasons[i]}. "
                                                                   f"Answer again with the JSON list only."}]
                still.append(i)
        waiting = still
    for i in waiting:
        outcomes[i] = PaintingError(
            f"the span classifier gave no usable answer after {retries + 1} tries: {reasons[i]}",
            provenance={"span_classifier": {"raw": raws[i], "failed": reasons[i]}})
    return outcomes


def typed(record: PaintingRecord, items: list[dict], raws: list[str], totals: dict) -> PaintingRecord:
    """The record with the phrases `items` aligned to its caption as its spans."""
    offsets = [(t.start, t.end) for t in record.tokens]
    spans, rejected, counts = align_spans(record.caption, items, offsets)
    for key in counts:
        totals[key] = totals.get(key, 0) + counts[key]
    record.spans = [Span(index=i, **s) for i, s in enumerate(spans)]
    record.metadata = None  # graded from the spans: stale once they change (the runner redoes it)
    record.provenance["span_classifier"] = {"raw": raws, "rejected": rejected, "counts": counts}
    return record


def process(generate: Callable[[list[dict]], str] | None, retries: int, totals: dict):
    def apply(record: PaintingRecord) -> PaintingRecord:
        if not record.caption:
            raise PaintingError("no caption to classify")
        if generate is None:
            items, raws = lexicon_answer(record.caption), []
        else:
            items, raws = classify_spans(record.caption, generate, retries)
        return typed(record, items, raws, totals)

    return apply


def process_batch(generate_batch: Callable[[list[list[dict]]], list[str]], retries: int, totals: dict):
    """records -> each one's typed record or its error, the LLM asked about all of them at once
    (`--batch-size`): a painting without a caption or with malformed answers fails alone."""

    def apply(records: list[PaintingRecord]) -> list[PaintingRecord | Exception]:
        outcomes: list = [PaintingError("no caption to classify") for _ in records]
        asked = [i for i, r in enumerate(records) if r.caption]
        answers = classify_batch([records[i].caption for i in asked], generate_batch, retries)
        for i, answer in zip(asked, answers, strict=True):
            try:  # each painting on its own: the runner must not redo (and count twice) the others
                outcomes[i] = answer if isinstance(answer, Exception) else typed(records[i], *answer, totals)
            except Exception as exc:  # noqa: BLE001
                outcomes[i] = exc
        return outcomes

    return apply


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"causal LM id or folder, or '{LEXICON_ID}'")
    parser.add_argument("--max-new-tokens", type=int, default=512, help="answer length limit of the span classifier")
    parser.add_argument("--retries", type=int, default=2, help="retries after a malformed answer")
    add_model_options(parser)
    add_batch_option(parser)
    add_run_options(parser)


def rate_line(what: str, totals: dict) -> str:
    rate = totals.get("match_rate")
    return (f"{STAGE}: match rate {what}: {rate:.1%} of {totals['proposed']} proposed phrases "
            f"({totals['exact']} exact, {totals['repaired']} repaired, {totals.get('approximate', 0)} approximate, "
            f"{totals['rejected']} rejected)")


def run(args: argparse.Namespace) -> int:
    check_batch_size(args.batch_size)
    dataset = Dataset(args.dataset)
    lexicon = args.model == LEXICON_ID
    llm = None if lexicon else TextLLM(args.model, args.device, args.dtype, args.revision, args.max_new_tokens,
                                       stage=STAGE, **load_options(args))
    settings = {"model": args.model, "revision": args.revision, "retries": args.retries,
                "max_new_tokens": args.max_new_tokens, "prompt": None if lexicon else INSTRUCTIONS}
    totals: dict = {}
    shard = parse_shard(args.shard)
    with writer(args.dataset, shard):
        summary = run_stage(STAGE, dataset, settings, process(None if lexicon else llm.generate, args.retries, totals),
                            shard=shard, force=args.force,
                            batch=None if lexicon else process_batch(llm.generate_batch, args.retries, totals),
                            batch_size=args.batch_size)
        model_ref = ModelRef(id=LEXICON_ID, revision="built-in") if lexicon else (llm.ref() if llm.loaded else None)
        if model_ref:
            update_manifest(dataset, shard, models={"span_classifier": model_ref})
    if totals.get("proposed"):
        totals["match_rate"] = (totals["exact"] + totals["repaired"] + totals["approximate"]) / totals["proposed"]
        print(rate_line("this run", totals))
    overall = span_matching(dataset.records())
    if overall["proposed"]:
        print(rate_line(f"dataset ({overall['paintings']} paintings)", overall))
    return 1 if summary.failed else 0
