"""`tamscope spans DATASET`: type the caption's phrases with a text LLM.

The LLM (default Qwen/Qwen3-4B-Instruct-2507; any causal LM id or folder) gets the caption
and returns JSON: exact phrases copied from it, each with a category. precompute.spanalign
parses the answer and finds each phrase in the caption (exactly, or repaired for dropped
punctuation and split words), then maps it to token indices through the tokens' character
offsets. Phrases not in the caption, overlapping or covering no token are rejected with a
reason. A malformed answer (not JSON, wrong category, truncated) is retried `--retries`
times with the reason given back to the model, then recorded as the painting's failure.
The raw answers, rejections and match counts stay in the record's provenance, and the match
rate (the reference pipeline matched ~47% of its spans to its words) is printed and stored
in the manifest on every run.

`--model lexicon` uses a small built-in keyword lexicon instead of an LLM: a documented
baseline for machines without an LLM (the embedded smoke dataset uses it, because a
random-weight LLM cannot write JSON).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path

from precompute.models import (
    ModelNotAvailable,
    load_pretrained,
    model_revision,
    resolve_device,
    resolve_dtype,
)
from precompute.runner import PaintingError, parse_shard, run_stage
from precompute.spanalign import MalformedAnswer, align_spans, parse_span_answer
from tamscope.schema import ModelRef, PaintingRecord, Span
from tamscope.store import Dataset

STAGE = "spans"
DEFAULT_MODEL = "Qwen/Qwen3-4B-Instruct-2507"
LEXICON_ID = "lexicon"

SYSTEM = "You annotate descriptions of paintings for an art-history study. You answer with JSON only."
INSTRUCTIONS = """Find the phrases of the description below that belong to one of these categories:
- CVO: a concrete visual object or scene element that could be outlined in the picture ("a small village", "the boat", "a woman in a blue dress").
- ICON: a named iconographic figure or symbol ("the Virgin Mary", "Saint Jerome", "a halo", "the Christ child").
- STYLE: style, technique, colour or composition ("vibrant brushstrokes", "Post-Impressionist style", "bold colors").
- AFFECT: mood, emotion or atmosphere ("a sense of calm", "melancholic", "dynamism").
- META: artist, title, date or movement named as metadata ("Vincent van Gogh", "The Starry Night", "painted in 1889").
Rules: copy each phrase EXACTLY as it appears in the description (same words, same punctuation), keep phrases short (a noun phrase, not a sentence), do not overlap phrases, list them in order of appearance.
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
    "META": ["van Gogh", "Gogh", "Vincent", "Monet", "titled", "portrait", "landscape", "cityscape"],
}


def lexicon_answer(caption: str) -> list[dict]:
    """Every lexicon word found as a whole word, longest first, in caption order."""
    found = []
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
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": INSTRUCTIONS + caption}]
    raws, reason = [], ""
    for _attempt in range(retries + 1):
        raw = generate(messages)
        raws.append(raw)
        try:
            return parse_span_answer(raw), raws
        except MalformedAnswer as exc:
            reason = str(exc)
            messages = messages + [{"role": "assistant", "content": raw},
                                   {"role": "user", "content": f"That answer cannot be used: {reason}. "
                                                               f"Answer again with the JSON list only."}]
    raise PaintingError(f"the span classifier gave no usable answer after {retries + 1} tries: {reason}")


class TextLLM:
    """A causal LM with a chat template, loaded on first use; greedy generation."""

    def __init__(self, model_id: str, device: str, dtype: str, revision: str | None, max_new_tokens: int):
        self.model_id, self.device_name, self.dtype_name = model_id, device, dtype
        self.revision, self.max_new_tokens = revision, max_new_tokens
        self.model = self.tokenizer = self.error = None

    def load(self):
        if self.error is not None:
            raise self.error
        if self.model is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            device = resolve_device(self.device_name)
            kw = {"revision": self.revision} if self.revision else {}
            try:
                self.tokenizer = load_pretrained(AutoTokenizer.from_pretrained, self.model_id, "text LLM", **kw)
                self.model = load_pretrained(AutoModelForCausalLM.from_pretrained, self.model_id, "text LLM",
                                             dtype=resolve_dtype(self.dtype_name, device), **kw).to(device).eval()
            except ModelNotAvailable as exc:
                self.error = exc
                print(f"{STAGE}: {exc}")
                raise
        return self

    def ref(self) -> ModelRef:
        return ModelRef(id=self.model_id, revision=model_revision(self.model, self.model_id, self.revision))

    def generate(self, messages: list[dict]) -> str:
        import torch

        self.load()
        enc = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True,
                                                 return_tensors="pt").to(self.model.device)
        with torch.inference_mode():
            out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id)
        return self.tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)


def process(generate: Callable[[list[dict]], str] | None, retries: int, totals: dict):
    def apply(record: PaintingRecord) -> PaintingRecord:
        if not record.caption:
            raise PaintingError("no caption to classify")
        if generate is None:
            items, raws = lexicon_answer(record.caption), []
        else:
            items, raws = classify_spans(record.caption, generate, retries)
        offsets = [(t.start, t.end) for t in record.tokens]
        spans, rejected, counts = align_spans(record.caption, items, offsets)
        for key in counts:
            totals[key] = totals.get(key, 0) + counts[key]
        record.spans = [Span(index=i, **s) for i, s in enumerate(spans)]
        record.metadata = None  # graded from the spans: stale once they change
        record.stages.pop("spanmaps", None)
        record.provenance["span_classifier"] = {"raw": raws, "rejected": rejected, "counts": counts}
        return record

    return apply


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"causal LM id or folder, or '{LEXICON_ID}'")
    parser.add_argument("--revision", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--retries", type=int, default=2, help="retries after a malformed answer")
    parser.add_argument("--shard", default=None)
    parser.add_argument("--force", action="store_true")


def match_rate(totals: dict) -> float | None:
    proposed = totals.get("proposed", 0)
    return (totals.get("exact", 0) + totals.get("repaired", 0)) / proposed if proposed else None


def run(args: argparse.Namespace) -> int:
    dataset = Dataset(args.dataset)
    lexicon = args.model == LEXICON_ID
    llm = None if lexicon else TextLLM(args.model, args.device, args.dtype, args.revision, args.max_new_tokens)
    settings = {"model": args.model, "revision": args.revision, "retries": args.retries,
                "max_new_tokens": args.max_new_tokens, "prompt": INSTRUCTIONS}
    totals: dict = {}
    summary = run_stage(STAGE, dataset, settings, process(None if lexicon else llm.generate, args.retries, totals),
                        shard=parse_shard(args.shard), force=args.force)
    rate = match_rate(totals)
    if totals:
        print(f"{STAGE}: match rate {rate:.1%} of {totals['proposed']} proposed phrases "
              f"({totals['exact']} exact, {totals['repaired']} repaired, {totals['rejected']} rejected)")
    model_ref = ModelRef(id=LEXICON_ID, revision="built-in") if lexicon else (llm.ref() if llm.model else None)
    manifest = dataset.manifest()
    provenance = {**manifest.provenance, "span_matching": {**totals, "match_rate": rate}}
    dataset.refresh_manifest(provenance=provenance, **({"models": {"span_classifier": model_ref}} if model_ref else {}))
    return 1 if summary.failed else 0
