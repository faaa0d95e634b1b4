"""`make bench-align`: where the authors' published phrases land in their captions, now and under
the rule before issue 12. A measurement, not a test (the figures are in docs/metrics.md).

Now: contract.phrasealign, as `tamscope import-tamart` uses it (exact, repaired, approximate on
whole words; order-aware). Before: each phrase on its own, exactly or repaired, letters matched
anywhere (even inside a word), on the occurrence nearest to the start of the segment the authors
highlighted for it (the caption's start when they highlighted none). Printed: how many phrases
each rule places and how, placements that moved and those that cut a word, the similarities of
the approximate matches and of the best runs of the phrases left out, and agreement with the
authors' segments: of the phrases whose highlighted segment contains them as written, how many are
placed overlapping that segment (their span LLM pointed there).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from pathlib import Path

from contract.phrasealign import THRESHOLD, align_phrases, best_similarity
from contract.textmatch import phrase_occurrences, whole_words
from sources.tamart_format import INDEX, painting_json, read_index, read_painting


def segments(caption_pieces: list) -> dict[int, tuple[int, int]]:
    """{span index: (start, end) of the first caption piece the authors highlighted for it}."""
    out, at = {}, 0
    for piece in caption_pieces:
        if piece.s is not None and piece.s >= 0:
            out.setdefault(piece.s, (at, at + len(piece.t)))
        at += len(piece.t)
    return out


def former_rule(caption: str, word: str, anchor: int) -> tuple[int, int, str] | None:
    hits, how = phrase_occurrences(caption, word, inside_words=True)
    return (*min(hits, key=lambda h: abs(h[0] - anchor)), how) if hits else None


def measure(site: Path) -> dict:
    stems, _ = read_index((site / INDEX).read_bytes())
    now, before, tally = Counter(), Counter(), Counter()
    accepted, left_out = [], []
    for stem in stems:
        data = read_painting(stem, (site / painting_json(stem)).read_bytes())
        caption, highlighted = data.caption, segments(data.segments)
        words = [span.word for span in data.spans]
        for k, (word, where) in enumerate(zip(words, align_phrases(caption, words, overlap=True), strict=True)):
            old = former_rule(caption, word, highlighted.get(k, (0, 0))[0])
            now[where.match or "not placed"] += 1
            before[old[2] if old else "not placed"] += 1
            tally["cut a word before"] += bool(old) and not whole_words(caption, old[0], old[1])
            tally["cut a word now"] += where.placed and not whole_words(caption, where.start, where.end)
            tally["moved"] += bool(old) and where.placed and old[:2] != (where.start, where.end)
            if where.match == "approximate":
                accepted.append(where.similarity)
            if not where.placed:
                left_out.append(best_similarity(caption, word) or 0.0)
            seg = highlighted.get(k)
            if seg and word.strip() and word.strip() in caption[seg[0]:seg[1]]:
                tally["checkable"] += 1
                tally["agree now"] += where.placed and where.start < seg[1] and seg[0] < where.end
                tally["agree before"] += bool(old) and old[0] < seg[1] and seg[0] < old[1]
    return {"paintings": len(stems), "now": now, "before": before, "tally": tally,
            "accepted": sorted(accepted), "left_out": sorted(left_out)}


def report(m: dict) -> str:
    now, before, t = m["now"], m["before"], m["tally"]
    total = sum(now.values())
    rows = [f"phrase alignment on {m['paintings']} published paintings ({total} phrases)",
            f"{'':32}{'now':>8}{'before':>8}"]
    for kind in ("exact", "repaired", "approximate", "not placed"):
        rows.append(f"{kind:32}{now[kind]:8d}{before[kind]:8d}")
    rows.append(f"{'start or end inside a word':32}{t['cut a word now']:8d}{t['cut a word before']:8d}")
    rows.append(f"{'on their highlighted segment':32}{t['agree now']:8d}{t['agree before']:8d}"
                f"   of {t['checkable']} whose segment holds the phrase as written")
    rows.append(f"placed elsewhere than before: {t['moved']}")
    if m["accepted"]:
        acc = m["accepted"]
        rows.append(f"approximate similarity (threshold {THRESHOLD}): min {acc[0]:.3f}, "
                    f"median {statistics.median(acc):.3f}, max {acc[-1]:.3f}")
    if m["left_out"]:
        rows.append(f"not placed: best run similarity {', '.join(f'{s:.3f}' for s in m['left_out'])}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    from testkit import TAMART_SAMPLE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, nargs="?", default=TAMART_SAMPLE, help="folder in the project-page layout")
    args = parser.parse_args(argv)
    if not (args.site / INDEX).is_file():
        print(f"bench-align: no published sample at {args.site}")
        return 1
    print(report(measure(args.site)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
