"""Expected values for the tests, derived independently of the code under test.

Each function re-derives a documented definition (docs/metrics.md, contract/textmatch.py's
docstring) with different, plain code: scipy's entropy, the Lorenz curve, a brute-force
Otsu search, bilinear interpolation written as two matrices, regular expressions and a longest
common subsequence for placing phrases. Nothing here imports contract.metrics,
contract.textmatch or contract.phrasealign, so a regression there
shows up as a disagreement instead of being copied into the expected value.

One step is shared on purpose: maps reach the canvas through cv2's bilinear resize, the
resampling docs/metrics.md names (at_canvas), so thresholds and IoUs compare exactly; that resize
is itself checked against bilinear interpolation in floats (bilinear).
"""

from __future__ import annotations

import base64
import functools
import json
import math
import re
import unicodedata
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from scipy import stats as st

# -- the raw files ---------------------------------------------------------------------------

def published_paintings(site: Path) -> list[dict]:
    """The authors' painting JSON files in index.json's order, as published."""
    index = json.loads((site / "assets/data/index.json").read_text())
    return [json.loads((site / f"assets/data/paintings/{p['stem']}.json").read_text()) for p in index["paintings"]]


def published_map(b64: str, grid_h: int, grid_w: int) -> np.ndarray:
    """A span map of the authors' JSON: base64 of grid_h * grid_w uint8 values, row-major."""
    return np.frombuffer(base64.b64decode(b64), dtype=np.uint8).reshape(grid_h, grid_w)


def gray(path: Path) -> np.ndarray:
    """An 8-bit grayscale PNG as uint8 (H, W)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("L"))


def published_mask(path: Path) -> np.ndarray:
    """The authors' SAM 3 masks are RGBA: the mask is alpha > 0."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGBA"))[..., 3] > 0


# -- how localised a map is (docs/metrics.md, "Per span") -----------------------------------

def entropy(values) -> float | None:
    """H(p) / log N with p = values / sum over all N cells (scipy drops the zero cells)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size < 2 or x.sum() <= 0:
        return None
    return float(st.entropy(x) / math.log(x.size))


def gini(values) -> float | None:
    """From the Lorenz curve: 1 - 2 * (area under it), the area summed as trapezoids, times
    N / (N - 1) so that one hot cell gives 1."""
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = x.size
    if n < 2 or x.sum() <= 0:
        return None
    lorenz = np.concatenate([[0.0], np.cumsum(x) / x.sum()])
    area = ((lorenz[:-1] + lorenz[1:]) / 2).sum() / n
    return float((1 - 2 * area) * n / (n - 1))


def top10_mass(values) -> float | None:
    """Share of the total in the ceil(N / 10) largest cells."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.sum() <= 0:
        return None
    k = -(-x.size // 10)
    return float(np.partition(x, x.size - k)[x.size - k:].sum() / x.sum())


# -- Otsu on the map at canvas size --------------------------------------------------------

def _interpolation(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) weights of linear interpolation with pixel centres aligned and the edges
    replicated: output pixel i samples input coordinate (i + 0.5) * n_in / n_out - 0.5."""
    src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    left = np.floor(src).astype(int)
    right = np.minimum(left + 1, n_in - 1)
    frac = src - left
    weights = np.zeros((n_out, n_in))
    np.add.at(weights, (np.arange(n_out), left), 1 - frac)
    np.add.at(weights, (np.arange(n_out), right), frac)
    return weights


def bilinear(grid: np.ndarray, width: int, height: int) -> np.ndarray:
    """The grid resized to (height, width) by bilinear interpolation, in floats:
    rows then columns, (H, gh) @ (gh, gw) @ (gw, W)."""
    g = np.asarray(grid, dtype=np.float64)
    return _interpolation(height, g.shape[0]) @ g @ _interpolation(width, g.shape[1]).T


def at_canvas(grid_u8: np.ndarray, width: int, height: int) -> np.ndarray:
    """The 8-bit map at canvas size by the resampling docs/metrics.md names: cv2's bilinear
    (INTER_LINEAR), which works in fixed point on 8-bit images. Called here directly, not through
    contract.metrics, so that thresholds compare exactly; test_metrics checks contract.metrics'
    resize against bilinear() above (floats): one level apart at most."""
    return cv2.resize(np.ascontiguousarray(grid_u8, dtype=np.uint8), (width, height),
                      interpolation=cv2.INTER_LINEAR)


def between_class_variance(u8: np.ndarray) -> np.ndarray:
    """sigma_b^2(t) for t = 0..255, splitting the pixels into {<= t} and {> t}; NaN where a
    class is empty. One plain loop over every threshold, no cumulative tricks."""
    hist = np.bincount(np.asarray(u8, dtype=np.uint8).ravel(), minlength=256).astype(np.float64)
    levels = np.arange(256, dtype=np.float64)
    total = hist.sum()
    out = np.full(256, np.nan)
    for t in range(256):
        low, high = hist[: t + 1], hist[t + 1:]
        w0, w1 = low.sum() / total, high.sum() / total
        if w0 == 0 or w1 == 0:
            continue
        mu0 = (low * levels[: t + 1]).sum() / low.sum()
        mu1 = (high * levels[t + 1:]).sum() / high.sum()
        out[t] = w0 * w1 * (mu0 - mu1) ** 2
    return out


def otsu_threshold(u8: np.ndarray) -> int:
    """Otsu's threshold under the convention of docs/metrics.md (cv2's): t is the last level of
    the lower class, so the mask is value > t; the smallest such t when several maximise the
    variance; 0 for an image with a single level (cv2's answer; skimage's threshold_otsu
    returns the level itself there)."""
    sigma = between_class_variance(u8)
    return 0 if np.isnan(sigma).all() else int(np.nanargmax(sigma))


def otsu_mask(grid_u8: np.ndarray, width: int, height: int) -> tuple[int, np.ndarray]:
    """(threshold, mask at canvas size) of an 8-bit grid map, by the definitions above."""
    resized = at_canvas(grid_u8, width, height)
    t = otsu_threshold(resized)
    return t, resized > t


def iou(a: np.ndarray, b: np.ndarray) -> float | None:
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    union = int(np.count_nonzero(a | b))
    return None if union == 0 else int(np.count_nonzero(a & b)) / union


def dataset_spans(root: Path) -> list[dict]:
    """Every span of a dataset folder measured from its files: entropy, Gini, top-10% mass of the
    span PNG, its Otsu threshold at the size of the canvas image, and for a span SAM 3 ran on
    (the record says which) whether it left a mask PNG and that mask's IoU with the Otsu mask."""
    out = []
    for record_path in sorted((root / "paintings").glob("*/record.json")):
        folder, rec = record_path.parent, json.loads(record_path.read_text())
        with Image.open(folder / rec["canvas"]["path"]) as im:
            width, height = im.size
        for span in rec["spans"]:
            grid = gray(folder / span["map"]["png"])
            threshold, otsu = otsu_mask(grid, width, height)
            sam = span.get("sam")
            mask = gray(folder / sam["mask"]) > 127 if sam and sam.get("mask") else None
            out.append({"painting": rec["id"], "index": span["index"], "category": span["category"],
                        "entropy": entropy(grid), "gini": gini(grid), "top10": top10_mass(grid),
                        "otsu_threshold": threshold, "sam_run": sam is not None, "detected": mask is not None,
                        "iou": iou(otsu, mask) if mask is not None else None})
    return out


def epsilon_squared(h: float, n: int) -> float:
    """Kruskal-Wallis effect size: H / ((n^2 - 1) / (n + 1)) = H / (n - 1)."""
    return h / (n - 1)


# -- placing phrases in their caption (contract/phrasealign.py's documented rule) ------------
# Regular expressions with look-arounds for the hits on whole words, Ratcliff-Obershelp matching
# written from its definition (brute force) where the product calls difflib, and an exhaustive
# memoised search for the chain where the product uses a Fenwick tree.

WORD_CHAR = r"[^\W_]"  # a letter or digit
SIMILAR = 0.8  # docs/metrics.md: the approximate matching threshold


def _without_accents(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFD", text) if not unicodedata.combining(ch))


def letters(text: str) -> str:
    """The letters and digits of `text`, lower case, accents removed: what a repair keeps."""
    return "".join(ch for ch in _without_accents(text).casefold() if ch.isalnum())


def _starts_after(pattern: str, text: str, flags=0) -> list[tuple[int, int]]:
    """Every match of `pattern`, overlapping ones too (a look-ahead consumes nothing)."""
    return [(m.start(1), m.end(1)) for m in re.finditer(f"(?=({pattern}))", text, flags)]


def exact_hits(caption: str, phrase: str) -> list[tuple[int, int]]:
    """The phrase as written (outer spaces aside), not glued to a letter or digit at either end."""
    p = phrase.strip()
    if not p:
        return []
    head = f"(?<!{WORD_CHAR})" if p[0].isalnum() else ""
    tail = f"(?!{WORD_CHAR})" if p[-1].isalnum() else ""
    return _starts_after(head + re.escape(p) + tail, caption)


def repaired_hits(caption: str, phrase: str) -> list[tuple[int, int]]:
    """Its letters and digits in order with only other characters between them (case and accents
    ignored; at least 2 of them), starting and ending on word boundaries."""
    chars = letters(phrase)
    if len(chars) < 2:
        return []
    body = r"[\W_]*".join(re.escape(ch) for ch in chars)
    return _starts_after(f"(?<!{WORD_CHAR}){body}(?!{WORD_CHAR})", _without_accents(caption), re.IGNORECASE)


def common_blocks(a: list, b: list) -> list[tuple[int, int, int]]:
    """Ratcliff-Obershelp matching, as difflib's SequenceMatcher(None, a, b) documents it: the
    longest block common to a and b (of equally long ones the first in a, then the first in b),
    then the same on each side of it. (i, j, size) triples, found by brute force."""
    def blocks(alo, ahi, blo, bhi):
        size, i0, j0 = 0, alo, blo
        for i in range(alo, ahi):
            for j in range(blo, bhi):
                k = 0
                while i + k < ahi and j + k < bhi and a[i + k] == b[j + k]:
                    k += 1
                if k > size:  # strictly longer: the first one found (smallest i, then j) keeps ties
                    size, i0, j0 = k, i, j
        if not size:
            return []
        return blocks(alo, i0, blo, j0) + [(i0, j0, size)] + blocks(i0 + size, ahi, j0 + size, bhi)
    return blocks(0, len(a), 0, len(b))


def letter_similarity(caption_word: str, word: str) -> float:
    """2 x (letters in common blocks) / (letters of both)."""
    return 2 * sum(k for _, _, k in common_blocks(list(caption_word), list(word))) / (len(caption_word) + len(word))


def approximate_hits(caption: str, phrase: str) -> list[tuple[int, int, float]]:
    """(start, end, similarity) of the runs of caption words most similar to the phrase, if at
    least SIMILAR: 2 x (the phrase words in common blocks with the run, a near word counting its
    letter similarity) / (phrase words + run words)."""
    runs = [(m.start(), m.end(), letters(m.group())) for m in re.finditer(f"{WORD_CHAR}+", caption)]
    vocabulary = {w for _, _, w in runs}
    phrase_words, worth = [], []
    for word in (letters(w) for w in re.findall(f"{WORD_CHAR}+", phrase)):
        if word not in vocabulary:  # the most similar caption word (ties: the larger, as difflib's)
            score, near = max(((letter_similarity(v, word), v) for v in vocabulary), default=(0.0, None))
            word, score = (near, score) if score >= SIMILAR else (None, 0.0)
        else:
            score = 1.0
        phrase_words.append(word)
        worth.append(score)
    n, hits = len(phrase_words), []
    # a run that starts or ends with a word the phrase does not hold has the same blocks as the run
    # without it, so a lower similarity: only runs from such a word to such a word can be the best
    ends = [j for j, (_, _, w) in enumerate(runs) if w in phrase_words]
    for i in ends:
        for j in (j for j in ends if i <= j < i + 2 * n):  # past 1.5 n run words 2n / (n + m) < 0.8
            run = [w for _, _, w in runs[i:j + 1]]
            matched = sum(worth[b + t] for _, b, k in common_blocks(run, phrase_words) for t in range(k))
            similarity = 2 * matched / (n + len(run))
            if similarity >= SIMILAR - 1e-9:
                hits.append((runs[i][0], runs[j][1], similarity))
    best = max((h[2] for h in hits), default=None)
    return [h for h in hits if abs(h[2] - best) < 1e-9]


def phrase_hits(caption: str, phrase: str) -> tuple[str | None, list[tuple[int, int, float | None]]]:
    """How the rule finds the phrase and its equally good hits: exact, else repaired, else
    approximate; (None, []) when nothing qualifies."""
    for kind, found in (("exact", exact_hits), ("repaired", repaired_hits)):
        hits = found(caption, phrase)
        if hits:
            return kind, [(s, e, None) for s, e in hits]
    hits = approximate_hits(caption, phrase) if any(ch.isalnum() for ch in phrase) else []
    return ("approximate", hits) if hits else (None, [])


def placements(caption: str, phrases: list[str], overlap: bool) -> list[dict | None]:
    """Each phrase's {start, end, match, similarity} or None, by the documented order rule: the
    longest chain of phrases in caption order (one hit each; nested but never the same range with
    overlap, else disjoint), ties to the chain placing earlier phrases earlier; then each phrase
    left out on a free hit between its chain neighbours, else the one nearest to them, stacked
    (overlap only) when every hit is taken. Found here by exhaustive memoised search."""
    found = [phrase_hits(caption, p) for p in phrases]

    def follows(before, hit):
        if before is None:
            return True
        return hit[:2] > before[:2] if overlap else hit[0] >= before[1]

    @functools.cache
    def best(i: int, before) -> tuple:
        """The choices (hit or None) for phrases i.. after the chain's last hit `before`."""
        if i == len(phrases):
            return ()
        options = [(None, *best(i + 1, before))]
        options += [(hit, *best(i + 1, hit)) for hit in found[i][1] if follows(before, hit)]
        return min(options, key=lambda seq: (-sum(h is not None for h in seq),
                                             [(1,) if h is None else (0, h[0], h[1]) for h in seq]))

    chain = list(best(0, None))
    out, taken = [], [h for h in chain if h is not None]
    for i, (kind, hits) in enumerate(found):
        hit = chain[i]
        if hit is None and hits:
            clash = (lambda h: any(h[:2] == t[:2] for t in taken)) if overlap else (
                lambda h: any(h[0] < t[1] and t[0] < h[1] for t in taken))
            free = [h for h in hits if not clash(h)] or (hits if overlap else [])
            after = ([h[0] for h in chain[:i] if h is not None] or [0])[-1]
            before = ([h[0] for h in chain[i + 1:] if h is not None] or [len(caption)])[0]
            inside = [h for h in free if after <= h[0] <= before]
            outside = sorted(free, key=lambda h: (after - h[0] if h[0] < after else h[0] - before, h[0]))
            hit = (inside or outside or [None])[0]
            if hit is not None:
                taken.append(hit)
        out.append(None if hit is None else {"start": hit[0], "end": hit[1], "match": kind, "similarity": hit[2]})
    return out


# -- grading claimed titles and artists (contract/textmatch.py's documented rules) -----------

def words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", _without_accents(text).casefold())


def _title_forms(title: str) -> list[list[str]]:
    """The title, the title without its parenthesis, and what the parenthesis holds; each
    without a leading English article."""
    parts = [title, re.sub(r"\(.*?\)", " ", title), *re.findall(r"\((.*?)\)", title)]
    forms = [words(p) for p in parts]
    return [f[1:] if len(f) > 1 and f[0] in ("the", "a", "an") else f for f in forms if f]


def same_title(claimed: str, truth: str) -> bool:
    """The same words in the same order, ignoring case, accents, punctuation and a leading
    article, against the title or its parenthesised alternative."""
    claim = _title_forms(claimed)
    return bool(claim) and claim[0] in _title_forms(truth)


def same_artist(claimed: str, truth: str) -> bool:
    """Names as sets of words: every word of the true name in the claim, or every word of the
    claim in the true name, an initial ("P.") standing for any word it starts, and at least one
    whole word claimed. (Name particles such as "van" are left in: the sample needs no more.)"""
    claim, name = set(words(claimed)), set(words(truth))
    if not claim or not name:
        return False
    if all(w in claim for w in name):
        return True
    whole = [w for w in claim if len(w) > 1]
    initials = [w for w in claim if len(w) == 1]
    return bool(whole) and all(w in name for w in whole) and all(
        any(n.startswith(i) for n in name) for i in initials)
