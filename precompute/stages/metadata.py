"""`tamscope metadata DATASET`: the title and artist the caption claims, graded.

Per painting with META spans:
1. Claims. The LLM judge (the same text LLM as the span classifier, `--model`) is shown the
   caption, its META phrases and the ground truth, and answers one JSON object: the claimed
   title and artist (exact phrases, or null) and whether each is right. When its answer is valid
   its reading of the claims wins (it reads the sentence, null included); a claimed phrase that
   is not in the caption is discarded with a reason and that claim falls back to the heuristics.
   Without a valid answer (no LLM, `--model lexicon`, or malformed output) the claims come from
   the heuristics of precompute.claims ("titled ...", quotes, "by ...").
2. Deterministic string match, always (contract.textmatch): titles equal word for word
   ignoring case, accents, punctuation and a leading article (or the truth's parenthesised
   alternative); artists as word sets in any order ("van Gogh Vincent" = "Vincent van Gogh"),
   extra descriptive words allowed, or a part of the true name.
3. The verdict shown (`title_correct`, `artist_correct`) is the judge's when it gave one, else
   the string match. No claim or no ground truth: no verdict (None), so accuracy counts only
   graded claims. The judge's raw output is kept; a malformed answer leaves its verdicts None
   with the reason in `judge.error`, and the string match still counts. No retries: the string
   match is the fallback.
Paintings without META spans get an empty verdict and cost no LLM call.
`--batch-size N` asks the judge about N paintings at once (left-padded, each answer the one the
painting gets alone).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from contract.schema import Category, MetadataVerdict, PaintingRecord
from contract.store import Dataset
from contract.textmatch import artist_matches, find_phrase, title_matches
from precompute.claims import claims_from_spans
from precompute.llmjson import MalformedAnswer, extract_json
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
from precompute.textllm import DEFAULT_MODEL, NO_LLM, TextLLM

STAGE = "metadata"
NO_JUDGE = {NO_LLM, "none"}
KEYS = ("title_claimed", "artist_claimed", "title_correct", "artist_correct")

SYSTEM = "You check what descriptions of paintings claim, for an art-history study. You answer with JSON only."
JUDGE_PROMPT = """A model described a painting. These phrases of its description were marked as metadata (artist, title or date):
{phrases}

Description:
{caption}

The painting's actual title: {title}
The painting's actual artist: {artist}

Answer with one JSON object with these keys:
- "title_claimed": the phrase the description gives as the title of this painting, copied exactly from the description, or null if it names no title.
- "artist_claimed": the phrase it gives as the artist of this painting, copied exactly, or null if it names no artist.
- "title_correct": true if the claimed title names the same work as the actual title (a translation, an alternative title or a missing article is the same work), false if not, null if no title is claimed or the actual title is unknown.
- "artist_correct": true if the claimed artist is the actual artist (any spelling or order of the names), false if not, null if no artist is claimed or the actual artist is unknown.
Answer with the JSON object only, like {{"title_claimed": "The Starry Night", "artist_claimed": "Vincent van Gogh", "title_correct": true, "artist_correct": true}}."""


def _judge_shape(value) -> bool:
    return isinstance(value, dict) and any(key in value for key in KEYS)


def parse_judge(raw: str, caption: str) -> tuple[dict, dict[str, str]]:
    """The judge's {title_claimed, artist_claimed, title_correct, artist_correct} and what was
    discarded ({"title": reason}). MalformedAnswer when the answer is unusable."""
    answer = extract_json(raw, "{", _judge_shape, "JSON object with the claims")
    out, discarded = {}, {}
    for key in KEYS:
        value = answer.get(key)
        if key.endswith("_correct"):
            if value is not None and not isinstance(value, bool):
                raise MalformedAnswer(f"{key} is {value!r}, not true, false or null")
            out[key] = value
            continue
        if value is not None and not isinstance(value, str):
            raise MalformedAnswer(f"{key} is {value!r}, not a phrase or null")
        value = (value or "").strip().strip("\"'“”‘’ ") or None
        if value is not None and find_phrase(caption, value) is None:
            discarded[key.removesuffix("_claimed")] = f"{value!r} is not in the caption"
            value = None
        out[key] = value
    for field in ("title", "artist"):  # a verdict about a phrase we could not accept means nothing
        if out[f"{field}_claimed"] is None:
            out[f"{field}_correct"] = None
    return out, discarded


def judge_messages(record: PaintingRecord, phrases: list[str]) -> list[dict]:
    ann = record.annotations
    prompt = JUDGE_PROMPT.format(phrases=json.dumps(phrases, ensure_ascii=False), caption=record.caption,
                                 title=ann.title or "unknown", artist=ann.artist or "unknown")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]


def judge_chat(record: PaintingRecord) -> list[dict] | None:
    """The judge's chat for this painting, or None when it has no META span (no LLM call)."""
    meta = [s.text for s in record.spans if s.category == Category.META]
    return judge_messages(record, meta) if meta else None


def grade(record: PaintingRecord, judge: TextLLM | None) -> tuple[MetadataVerdict, dict]:
    """(verdict, provenance) of one painting."""
    chat = judge_chat(record) if judge is not None else None
    return graded(record, judge.generate(chat) if chat is not None else None)


def graded(record: PaintingRecord, raw: str | None) -> tuple[MetadataVerdict, dict]:
    """(verdict, provenance) of one painting given the judge's raw answer (None: no judge asked)."""
    meta = [s for s in record.spans if s.category == Category.META]
    heuristic = claims_from_spans(record.caption or "", meta)
    claims = {"title": heuristic.title, "artist": heuristic.artist}
    claims_from = {"title": "heuristics", "artist": "heuristics"}
    judged: dict | None = None
    if raw is not None:
        judged = {"title": None, "artist": None, "raw": raw}
        try:
            answer, discarded = parse_judge(raw, record.caption or "")
            judged.update({"title": answer["title_correct"], "artist": answer["artist_correct"]})
            for field in ("title", "artist"):
                if field in discarded:  # an invented phrase: keep the heuristic claim
                    judged.setdefault("discarded", {})[field] = discarded[field]
                else:
                    claims[field], claims_from[field] = answer[f"{field}_claimed"], "judge"
        except MalformedAnswer as exc:
            judged["error"] = str(exc)
    provenance = {"claims_from": claims_from, "roles": [list(r) for r in heuristic.roles]}
    truth = {"title": record.annotations.title, "artist": record.annotations.artist}
    matchers = {"title": title_matches, "artist": artist_matches}
    string, shown = {}, {}
    for field in ("title", "artist"):
        claimed, true = claims[field], truth[field]
        string[field] = matchers[field](claimed, true) if claimed and true else None
        judge_says = judged.get(field) if judged and claimed and true else None
        if judged is not None and not (claimed and true):
            judged[field] = None  # nothing to grade: the judge's verdict cannot stand
        shown[field] = judge_says if judge_says is not None else string[field]
    verdict = MetadataVerdict(title_claimed=claims["title"], artist_claimed=claims["artist"],
                              title_correct=shown["title"], artist_correct=shown["artist"],
                              title_string_match=string["title"], artist_string_match=string["artist"],
                              judge=judged, source="pipeline")
    return verdict, provenance


def process(judge: TextLLM | None):
    def apply(record: PaintingRecord) -> PaintingRecord:
        if record.caption is None:
            raise PaintingError("no caption to grade")
        record.metadata, record.provenance[STAGE] = grade(record, judge)
        return record

    return apply


def process_batch(judge: TextLLM):
    """records -> each one's graded record or its error, the judge asked about every painting
    with META spans at once (`--batch-size`); a painting's problem fails that painting only."""

    def apply(records: list[PaintingRecord]) -> list[PaintingRecord | Exception]:
        outcomes: list = [PaintingError("no caption to grade") for _ in records]
        chats = {i: judge_chat(r) for i, r in enumerate(records) if r.caption is not None}
        asked = [i for i, chat in chats.items() if chat is not None]
        raws = dict(zip(asked, judge.generate_batch([chats[i] for i in asked]) if asked else [], strict=True))
        for i in chats:
            try:
                records[i].metadata, records[i].provenance[STAGE] = graded(records[i], raws.get(i))
                outcomes[i] = records[i]
            except Exception as exc:  # noqa: BLE001
                outcomes[i] = exc
        return outcomes

    return apply


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"judge: causal LM id or folder; '{NO_LLM}' or 'none' for the string match only")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="answer length limit of the judge")
    add_model_options(parser)
    add_batch_option(parser)
    add_run_options(parser)


def run(args: argparse.Namespace) -> int:
    check_batch_size(args.batch_size)
    dataset = Dataset(args.dataset)
    judge = None if args.model in NO_JUDGE else TextLLM(args.model, args.device, args.dtype, args.revision,
                                                        args.max_new_tokens, stage=STAGE, **load_options(args))
    settings = {"model": args.model, "revision": args.revision, "max_new_tokens": args.max_new_tokens,
                "prompt": JUDGE_PROMPT if judge else None}
    shard = parse_shard(args.shard)
    with writer(args.dataset, shard):
        summary = run_stage(STAGE, dataset, settings, process(judge), shard=shard, force=args.force, needs="spans",
                            batch=None if judge is None else process_batch(judge), batch_size=args.batch_size)
        if judge is not None and judge.loaded:
            update_manifest(dataset, shard, models={"metadata_judge": judge.ref()})
    return 1 if summary.failed else 0
