"""Importing the paper authors' published data (../shared/reference/tamart-site-sample)."""

import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from contract.store import Dataset, read_png_u8
from contract.textmatch import find_phrase
from contract.validate import validate_dataset
from sources.tamart_import import LayoutError, import_tamart, locate_spans
from tests import independent


def test_sample_imports_valid_and_faithful(tamart_dataset, tamart_sample):
    assert validate_dataset(tamart_dataset) == []
    ds = Dataset(tamart_dataset)
    assert len(ds.painting_ids()) == 30
    rec = ds.record("0002_the-starry-night-1889")
    source = json.loads((tamart_sample / "assets/data/paintings/0002_the-starry-night-1889.json").read_text())
    assert rec.caption == source["caption"] and (rec.grid.h, rec.grid.w) == (32, 39)
    assert rec.annotations.artist == "van Gogh Vincent" and rec.metadata.artist_claimed == "Vincent van Gogh"
    assert [s.text for s in rec.spans][:4] == ["Starry Night", "Vincent van Gogh", "starry night sky",
                                               "swirling, luminous stars"]
    for span in rec.spans:
        assert rec.caption[span.start:span.end] == span.text
    assert len(rec.spans) == len(source["spans"])  # every published span, in published order
    village = next(s for s in rec.spans if s.text == "small village or town")
    mask = read_png_u8(ds.painting_dir(rec.id) / village.sam.mask)
    published = np.asarray(Image.open(tamart_sample / "assets/masks/0002_the-starry-night-1889__7.png"))[..., 3] > 0
    assert mask.shape == (797, 1000) and ((mask > 0) == published).all()
    assert village.sam.instances == 1 and 0 <= village.sam.iou <= 1
    span_map = read_png_u8(ds.painting_dir(rec.id) / rec.spans[0].map.png)
    import base64
    assert (span_map.ravel() == np.frombuffer(base64.b64decode(source["spans"][0]["map"]), np.uint8)).all()
    no_detection = [s for s in rec.spans if s.category in ("CVO", "ICON") and s.sam.mask is None]
    assert no_detection and all(s.sam.iou is None and s.sam.instances == 0 for s in no_detection)
    assert ds.manifest().provenance["repository"] == "nicolafan/tamart"


def test_span_matching_counts(tamart_dataset, tamart_sample):
    """Each published phrase is placed exactly, repaired, approximately or not at all as
    contract/phrasealign.py's rule says; what to expect is derived from the raw JSON by
    tests/independent.py (regular expressions, Ratcliff-Obershelp from its definition, an
    exhaustive search for the order), and the record's counts, offsets and match fields agree."""
    ds = Dataset(tamart_dataset)
    totals, n_published = Counter(), 0
    for source in independent.published_paintings(tamart_sample):
        stem, caption = source["stem"], source["caption"]
        words = [raw["word"] for raw in source["spans"]]
        expected = independent.placements(caption, words, overlap=True)
        kinds = [e["match"] if e else None for e in expected]
        rec = ds.record(stem)
        counts = rec.provenance["span_matching"]
        assert [counts[k] for k in ("exact", "repaired", "approximate", "not_in_caption")] == [
            kinds.count("exact"), kinds.count("repaired"), kinds.count("approximate"), kinds.count(None)], stem
        assert len(rec.spans) == len(source["spans"])  # every published span, in published order
        for span, word, want in zip(rec.spans, words, expected, strict=True):
            if want is None:  # kept with its map and metrics, never given invented offsets
                assert span.start is None and span.end is None and span.tokens == [] and span.text == word
                assert span.match is None and span.phrase is None and span.map is not None
                assert span.metrics.entropy is not None
                continue
            assert (span.start, span.end, span.match) == (want["start"], want["end"], want["match"]), (stem, word)
            assert span.text == caption[span.start:span.end]
            if want["match"] == "approximate":
                assert span.similarity == pytest.approx(want["similarity"], abs=5e-5)
            else:
                assert span.similarity is None
            if want["match"] == "exact":
                assert span.text == word.strip() and span.phrase is None
            else:  # their phrase stays next to the caption's words
                assert span.phrase == word != span.text
            if want["match"] == "repaired":
                assert independent.letters(span.text) == independent.letters(word)
        totals.update(kinds)
        n_published += len(source["spans"])
    assert sum(totals.values()) == n_published and all(totals[k] for k in ("repaired", "approximate", None))
    provenance = ds.manifest().provenance
    assert provenance["spans_not_in_caption"] == totals[None]
    assert {k: provenance["span_matching"][k] for k in ("exact", "repaired", "approximate", "not_in_caption")} == {
        "exact": totals["exact"], "repaired": totals["repaired"], "approximate": totals["approximate"],
        "not_in_caption": totals[None]}


def test_placed_where_the_authors_pointed(tamart_dataset, tamart_sample):
    """Where the authors' highlighted segment of a span (from the token indices their span LLM
    gave) holds its phrase as written, that is the occurrence they meant: the span sits on it,
    also when their list is out of caption order (the Thunderstorm names "style of the painting"
    after the sky, and the caption has it at its start and its end). No span cuts a word."""
    ds = Dataset(tamart_dataset)
    checked = 0
    for source in independent.published_paintings(tamart_sample):
        rec, caption, at, segment = ds.record(source["stem"]), source["caption"], 0, {}
        for piece in source["segments"]:
            if piece["s"] >= 0:
                segment.setdefault(piece["s"], (at, at + len(piece["t"])))
            at += len(piece["t"])
        for span, raw in zip(rec.spans, source["spans"], strict=True):
            if span.start is not None:
                glued_before = span.start > 0 and caption[span.start - 1].isalnum() and caption[span.start].isalnum()
                glued_after = span.end < len(caption) and caption[span.end - 1].isalnum() and caption[span.end].isalnum()
                assert not (glued_before or glued_after), (source["stem"], span.text)
            seg = segment.get(span.index)
            if seg and raw["word"].strip() in caption[seg[0]:seg[1]]:
                checked += 1
                assert span.start < seg[1] and seg[0] < span.end, (source["stem"], raw["word"], span.start, seg)
    assert checked > 300


def test_unlocated_span_keeps_its_published_map(tamart_dataset, tamart_sample):
    import base64

    ds = Dataset(tamart_dataset)
    rec = next(r for r in ds.records() if any(not s.located for s in r.spans))
    span = next(s for s in rec.spans if not s.located)
    source = json.loads((tamart_sample / f"assets/data/paintings/{rec.id}.json").read_text())
    published = source["spans"][span.index]
    assert published["word"] == span.text
    stored = read_png_u8(ds.painting_dir(rec.id) / span.map.png).ravel()
    assert (stored == np.frombuffer(base64.b64decode(published["map"]), np.uint8)).all()


@pytest.mark.parametrize("caption, phrase, want", [
    ("a large, bright red sun", "large bright red sun", (2, 23, "repaired")),
    ("by Henri Rousseau", "Rousse", None),  # never inside a word
    ("painted by Edvard Munch.", "Ed vard M unch", (11, 23, "repaired")),
    ("a cat and a cat", "a cat", (10, 15, "exact")),
    ("nothing here", "a dog", None),
    ("quote \"Starry Night\"", "starry night", (7, 19, "repaired")),
])
def test_find_phrase(caption, phrase, want):
    assert find_phrase(caption, phrase, anchor=len(caption) if phrase == "a cat" else 0) == want


def test_malformed_site(tmp_path):
    with pytest.raises(LayoutError, match="index.json is missing"):
        import_tamart(tmp_path, tmp_path / "out")
    with pytest.raises(LayoutError, match="segments do not rebuild"):
        locate_spans({"stem": "x", "caption": "abc", "segments": [{"t": "ab", "s": -1}], "spans": []})


def test_a_bad_painting_is_recorded_and_the_import_goes_on(tamart_sample, tmp_path):
    import shutil

    site = tmp_path / "site"
    stems = ["0002_the-starry-night-1889", "0010_impression-sunrise", "0029_the-scream-1893"]
    for sub in ("img", "masks"):
        shutil.copytree(tamart_sample / "assets" / sub, site / "assets" / sub)
    (site / "assets/data/paintings").mkdir(parents=True)
    index = json.loads((tamart_sample / "assets/data/index.json").read_text())
    index["paintings"] = [p for p in index["paintings"] if p["stem"] in stems]
    (site / "assets/data/index.json").write_text(json.dumps(index))
    for stem in stems:
        shutil.copy(tamart_sample / f"assets/data/paintings/{stem}.json", site / "assets/data/paintings")
    (site / "assets/data/paintings/0010_impression-sunrise.json").write_text('{"stem": "0010_impression-sun')
    (site / "assets/masks/0002_the-starry-night-1889__7.png").unlink()
    ds = import_tamart(site, tmp_path / "out")
    failures = {f.painting: f.error for f in ds.manifest().failures}
    assert set(failures) == {"0002_the-starry-night-1889", "0010_impression-sunrise"}
    assert "not valid JSON" in failures["0010_impression-sunrise"]
    assert "0002_the-starry-night-1889__7.png" in failures["0002_the-starry-night-1889"]
    status = {p.id: p.status for p in ds.manifest().paintings}
    assert status == {"0002_the-starry-night-1889": "failed", "0010_impression-sunrise": "failed",
                      "0029_the-scream-1893": "ok"}
    assert validate_dataset(ds.root) == []
