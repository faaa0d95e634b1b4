import { test } from "node:test";
import assert from "node:assert/strict";
import { COLORMAPS, applyColormap, lut, lut32 } from "../js/lib/colormap.js";
import { bilinear, sampleAt } from "../js/lib/upsample.js";
import { maskAbove, otsuThreshold } from "../js/lib/otsu.js";
import { DEFAULTS, address, linkTo, pagePath, parseState, serializeState, stateAt } from "../js/lib/urlstate.js";
import { fmtNum, fmtPct, niceTicks, percentileRank, placeAmong, quantiles } from "../js/lib/format.js";
import { captionPieces, layoutSpans, matchNote, stepIn, tokenRuns } from "../js/lib/spans.js";
import { tamInfo, tokenMapNotes } from "../js/lib/tam.js";
import { relianceColor } from "../js/components/caption.js";
import { golden } from "./golden.mjs";

const lum = (t, v) => 0.2126 * t[v * 3] + 0.7152 * t[v * 3 + 1] + 0.0722 * t[v * 3 + 2];

test("colormaps: endpoints, monotonic luminance, unknown name", () => {
  assert.deepEqual([...lut("inferno").slice(0, 3)], [0, 0, 4]);
  assert.deepEqual([...lut("inferno").slice(255 * 3)], [252, 255, 164]);
  for (const name of ["inferno", "viridis", "grayscale", "magma"]) {
    const t = lut(name);
    for (let v = 1; v < 256; v++) assert.ok(lum(t, v) >= lum(t, v - 1) - 1.5, `${name} at ${v}`);
  }
  assert.throws(() => lut("jet"), /unknown colormap/);
  assert.ok(COLORMAPS.includes("viridis"));
  const out = applyColormap([0, 255], "grayscale", 0.5, new Uint8ClampedArray(8));
  assert.deepEqual([...out], [0, 0, 0, 128, 255, 255, 255, 128]);
});

test("bilinear matches OpenCV INTER_LINEAR", () => {
  const got = bilinear([0, 255, 255, 0], 2, 2, 4, 4);
  const want = [0, 63.75, 191.25, 255, 63.75, 95.625, 159.375, 191.25, 191.25, 159.375, 95.625, 63.75,
    255, 191.25, 63.75, 0];
  got.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-4, `${i}: ${v} vs ${want[i]}`));
  assert.ok(bilinear([7], 1, 1, 5, 3).every((v) => v === 7));
  assert.ok(bilinear([9, 9, 9, 9, 9, 9], 3, 2, 10, 7).every((v) => Math.abs(v - 9) < 1e-6));
  const src = [10, 200, 30, 90, 0, 250];
  assert.ok(bilinear(src, 3, 2, 17, 11).every((v) => v >= 0 && v <= 250));
  assert.equal(sampleAt([0, 255, 255, 0], 2, 2, 4, 4, 1.7, 0.2), 63.75);
});

test("otsu: bimodal split, OpenCV's known case, constant input", () => {
  assert.equal(otsuThreshold([0, 0, 0, 10, 10, 10, 200, 200, 210, 210]), 10);
  const t = otsuThreshold([...Array(50).fill(20), ...Array(50).fill(220)]);
  assert.ok(t >= 20 && t < 220);
  assert.equal(otsuThreshold([5, 5, 5]), 0);
  assert.deepEqual([...maskAbove([1, 10, 11], 10)], [0, 0, 1]);
});

test("url state round-trips and survives hostile input", () => {
  const s = { ...DEFAULTS, view: "painting", dataset: "tamart", painting: "0002_the-starry-night-1889", span: 3,
    layers: ["otsu", "sam"], look: "tint", cut: 0.25, samstyle: "hatch", highlight: "underline",
    cmap: "viridis", opacity: 0.35, reliance: true, compare: 5, q: "van gogh", cat: "CVO", page: 2,
    artist: "Giotto", style: "Early Renaissance" };
  assert.deepEqual(parseState(serializeState(s)), s);
  assert.deepEqual(parseState(serializeState({ ...DEFAULTS, layers: [] })).layers, []); // all layers off
  assert.match(serializeState({ ...DEFAULTS, layers: [] }), /layers=none/);
  // layers keep their drawing order whatever the URL says; unknown names are dropped
  assert.deepEqual(parseState("?layers=sam,bogus,tam").layers, ["tam", "sam"]);
  assert.deepEqual(parseState("?layers=bogus").layers, ["tam"]);
  // links from before layers could stack still open what they showed
  assert.deepEqual(parseState("?overlay=sam").layers, ["sam"]);
  assert.deepEqual(parseState("?overlay=none").layers, []);
  assert.deepEqual(parseState("?overlay=sam&layers=otsu").layers, ["otsu"]);
  assert.equal(parseState("?cut=0.99").cut, DEFAULTS.cut); // would hide everything
  assert.equal(parseState("?cut=0.333").cut, 0.33);
  assert.deepEqual(parseState(serializeState(DEFAULTS)), DEFAULTS);
  const evil = parseState("?dataset=../../etc&painting=javascript:alert(1)&span=-1&opacity=NaN&cmap=<script>"
    + `&view=admin&q=${"x".repeat(300)}&token=1e9&page=abc`);
  assert.equal(evil.dataset, null); assert.equal(evil.painting, null); assert.equal(evil.span, null);
  assert.equal(evil.opacity, DEFAULTS.opacity); assert.equal(evil.cmap, "inferno"); assert.equal(evil.view, "gallery");
  assert.equal(evil.q, DEFAULTS.q); assert.equal(evil.token, null); assert.equal(evil.page, 0);
  assert.deepEqual(parseState("%%%"), DEFAULTS);
  assert.deepEqual(parseState(undefined), DEFAULTS);
});

test("format helpers", () => {
  assert.equal(fmtNum(0.12345, 3), "0.123"); assert.equal(fmtNum(null), "n/a");
  assert.equal(fmtPct(0.826), "83%"); assert.equal(fmtPct(undefined), "n/a");
  assert.equal(percentileRank(5, [1, 2, 5, 9]), 62.5);
  assert.equal(percentileRank(5, []), null);
  // a span's own value against its category's values as stats.json stores them (4 decimals)
  assert.equal(percentileRank(0.88126, [0.8, 0.8813, 0.9, 0.95], 5e-5), 37.5);
  assert.equal(percentileRank(0.88126, [0.8, 0.8813, 0.9, 0.95]), 25);
  assert.deepEqual(quantiles([4, 1, 3, 2, 5]), { min: 1, q1: 2, median: 3, q3: 4, max: 5 });
  assert.equal(quantiles([NaN]), null);
});

test("a span placed among a large category's stored order statistics", () => {
  // 100,000 spans valued 1 .. 100000; stats.json keeps 1,001 of them: x[round(k * 99999 / 1000)]
  const stored = Array.from({ length: 1001 }, (_, k) => 1 + Math.round((k * 99999) / 1000));
  assert.equal(stored[0], 1); assert.equal(stored[1000], 100000);
  // by hand: 25,000 of the 100,000 spans lie below 25000.5, the 25.0th percentile
  const at = placeAmong(25000.5, stored, 100000);
  assert.equal(at.n, 100000);
  assert.ok(Math.abs(at.rank - 25) <= 0.1, `rank ${at.rank}`);
  assert.ok(Math.abs(placeAmong(99000.5, stored, 100000).rank - 99) <= 0.1);
  // a small category stores every value: its count is theirs, with or without `_n`
  assert.deepEqual(placeAmong(5, [1, 2, 5, 9], 4), { rank: 62.5, n: 4 });
  assert.deepEqual(placeAmong(5, [1, 2, 5, 9], undefined), { rank: 62.5, n: 4 });
  assert.equal(placeAmong(5, [], 0), null);
});

test("otsu equals cv2.threshold(THRESH_OTSU) on every golden case", () => {
  assert.ok(golden.otsu.length >= 20);
  for (const [k, c] of golden.otsu.entries()) assert.equal(otsuThreshold(c.values), c.threshold, `case ${k}`);
});

test("bilinear equals cv2.resize(INTER_LINEAR) on float grids", () => {
  for (const c of golden.resize) {
    const got = bilinear(c.grid, c.gw, c.gh, c.W, c.H);
    assert.equal(got.length, c.out.length);
    let worst = 0;
    got.forEach((v, i) => { worst = Math.max(worst, Math.abs(v - c.out[i])); });
    assert.ok(worst < 2e-3, `${c.gh}x${c.gw} -> ${c.H}x${c.W}: max error ${worst}`);
  }
});

test("Otsu mask of a grid map as the metrics compute it (cv2 resize of the uint8 map, then Otsu)", () => {
  // cv2 resizes uint8 in fixed point; the browser interpolates in floats and rounds: the
  // threshold may move by one level at most and the masks differ only on a few edge pixels
  for (const c of golden.maps) {
    const values = Uint8Array.from(bilinear(c.grid, c.gw, c.gh, c.W, c.H), (v) => Math.round(v));
    const t = otsuThreshold(values);
    assert.ok(Math.abs(t - c.threshold) <= 1, `threshold ${t} vs cv2 ${c.threshold}`);
    const inside = maskAbove(values, c.threshold).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(inside - c.mask_inside) <= Math.max(2, 0.01 * c.W * c.H), `mask ${inside} vs ${c.mask_inside}`);
  }
});

test("span layout: overlaps nest, null offsets are listed, every span stays reachable", () => {
  const caption = "surrounded by his disciples at a long table";
  const spans = [
    { index: 0, start: 0, end: 27 }, // surrounded by his disciples
    { index: 1, start: 14, end: 27 }, // his disciples (inside 0)
    { index: 2, start: null, end: null }, // named by the classifier, not in the caption
    { index: 3, start: 31, end: 43 }, // long table
    { index: 4, start: 28, end: 37 }, // "at a long" overlaps 3 partially, starts first
    { index: 5, start: 40, end: 99 }, // offsets outside the caption: unlocated, not a crash
    { index: 6, start: 5, end: 5 }, // empty
  ];
  const layout = layoutSpans(caption, spans);
  assert.deepEqual(layout.inline.map((s) => s.index), [0, 4]);
  assert.deepEqual(layout.nested.map((s) => s.index), [1, 3]);
  assert.deepEqual(layout.unlocated.map((s) => s.index), [2, 5, 6]);
  assert.deepEqual([...layout.order].sort(), [0, 1, 2, 3, 4, 5, 6]);
  const pieces = captionPieces(caption, layout.inline);
  assert.equal(pieces.map((p) => caption.slice(p.start, p.end)).join(""), caption);
  assert.deepEqual(pieces.map((p) => p.span?.index ?? null), [0, null, 4, null]);
  assert.deepEqual(layoutSpans("", [{ index: 0, start: null, end: null }]).unlocated.length, 1);
  assert.deepEqual(layoutSpans(null, undefined).order, []);
  // a longer span wins a tie on the start, whatever the input order
  assert.deepEqual(layoutSpans("a big red house", [{ index: 0, start: 2, end: 5 }, { index: 1, start: 2, end: 9 }])
    .inline.map((s) => s.index), [1]);
});

test("token runs and arrow-key stepping", () => {
  const tokens = [{ index: 0, start: 0, end: 4 }, { index: 1, start: 4, end: 8 }, { index: 2, start: 8, end: 8 },
    { index: 3, start: null, end: null }, { index: 4, start: 8, end: 12 }];
  assert.deepEqual(tokenRuns(tokens, 2, 9).map((r) => [r.token.index, r.start, r.end]), [[0, 2, 4], [1, 4, 8], [4, 8, 9]]);
  assert.deepEqual(tokenRuns(undefined, 0, 5), []);
  assert.equal(stepIn([3, 1, 7], null, 1), 3);
  assert.equal(stepIn([3, 1, 7], null, -1), 7);
  assert.equal(stepIn([3, 1, 7], 7, 1), 3);
  assert.equal(stepIn([3, 1, 7], 3, -1), 7);
  assert.equal(stepIn([], 3, 1), null);
});

test("axis ticks are round and cover the data", () => {
  const a = niceTicks(0.737, 0.984, 5);
  assert.ok(a.lo <= 0.737 && a.hi >= 0.984);
  assert.deepEqual(a.ticks, [0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1]);
  assert.deepEqual(niceTicks(0, 1, 4).ticks, [0, 0.25, 0.5, 0.75, 1]);
  const flat = niceTicks(0.5, 0.5);
  assert.ok(flat.lo < 0.5 && flat.hi > 0.5);
  assert.deepEqual(niceTicks(NaN, 1).ticks, [0, 0.25, 0.5, 0.75, 1]);
});

test("links keep the state and drop defaults, relative to the explorer's page", () => {
  const state = parseState("?dataset=tamart&view=painting&painting=p1&span=2&cmap=viridis");
  assert.equal(linkTo(state, { span: 5 }), "./?view=painting&dataset=tamart&painting=p1&span=5&cmap=viridis");
  assert.equal(linkTo(state, { layers: ["sam", "tam"] }), "./?view=painting&dataset=tamart&painting=p1&span=2&layers=tam%2Csam&cmap=viridis");
  assert.equal(linkTo(state, { view: "gallery", painting: null, span: null }), "./?dataset=tamart&cmap=viridis");
  assert.equal(linkTo(DEFAULTS), "./");
  // "./?..." from a painting's page of the static site leads back to the explorer's page
  assert.equal(new URL(linkTo(DEFAULTS, { view: "dashboard" }), "https://h/sub/tamart~p1.html").href,
    "https://h/sub/?view=dashboard");
});

test("painting pages of the static site: the path names the painting, the query the rest", () => {
  const at = stateAt("/sub/tamart~0010_impression-sunrise.html", "?span=3&layers=sam", true);
  assert.deepEqual(at, { ...DEFAULTS, view: "painting", dataset: "tamart", painting: "0010_impression-sunrise",
    span: 3, layers: ["sam"] });
  assert.equal(address(at, true), "tamart~0010_impression-sunrise.html?span=3&layers=sam");
  assert.equal(address({ ...at, span: null, layers: DEFAULTS.layers }, true), "tamart~0010_impression-sunrise.html");
  assert.equal(pagePath("smoke", "harbour-at-dusk"), "smoke~harbour-at-dusk.html");
  // the path wins over a query naming another painting; without pages the path means nothing
  assert.equal(stateAt("/tamart~p1.html", "?view=gallery&painting=p2", true).painting, "p1");
  assert.deepEqual(stateAt("/tamart~p1.html", "", false), DEFAULTS);
  // names that are not ids are no painting page
  assert.deepEqual(stateAt("/x/..~p1.html", "", true), DEFAULTS);
  assert.deepEqual(stateAt("/a~b~c.html", "", true), DEFAULTS);
  // gallery and dashboard stay on the explorer's page; a painting without dataset too
  assert.equal(address({ ...DEFAULTS, view: "dashboard", dataset: "tamart" }, true), "./?view=dashboard&dataset=tamart");
  assert.equal(address({ ...DEFAULTS, view: "painting", painting: "p1" }, true), "./?view=painting&painting=p1");
});

test("reliance shading: warm for the image, blue for language, none without a score", () => {
  assert.match(relianceColor(1.5), /^rgba\(242, 193, 78, 0\.450\)$/);
  assert.match(relianceColor(-9), /^rgba\(110, 150, 255, 0\.600\)$/);
  assert.equal(relianceColor(null), null);
  assert.equal(relianceColor(NaN), null);
});

test("packed colormap writes the same bytes as the per-channel one", () => {
  const values = Uint8ClampedArray.from({ length: 256 }, (_, v) => v);
  for (const name of COLORMAPS) {
    const slow = applyColormap(values, name, 0.6, new Uint8ClampedArray(256 * 4));
    const fast = new Uint8ClampedArray(256 * 4);
    const px = new Uint32Array(fast.buffer), table = lut32(name, 0.6);
    values.forEach((v, i) => { px[i] = table[v]; });
    assert.deepEqual(fast, slow, name);
  }
});

test("bilinear into 8 bits rounds the float result", () => {
  const c = golden.resize[1];
  const f = bilinear(c.grid, c.gw, c.gh, c.W, c.H);
  const u = bilinear(c.grid, c.gw, c.gh, c.W, c.H, new Uint8ClampedArray(c.W * c.H));
  f.forEach((v, i) => assert.ok(Math.abs(u[i] - v) <= 0.5 + 1e-6, `${i}: ${u[i]} vs ${v}`));
});

test("tam: the variant a painting's maps were made with, and token 0's map in the reference variant", () => {
  const reference = { provenance: { tam: { variant: "reference", first_prompt_class: { id: 279, text: " the" },
    nan_tokens: [3], undefined_tokens: [5] } } };
  const info = tamInfo(reference);
  assert.equal(info.variant, "reference");
  assert.match(info.label, /authors/);
  const zero = tokenMapNotes(info, 0).join(" ");
  assert.match(zero, /first prompt word's map/);
  assert.match(zero, /“the”/);
  assert.deepEqual(tokenMapNotes(info, 1), []);
  assert.match(tokenMapNotes(info, 3)[0], /NaN/);
  assert.match(tokenMapNotes(info, 5)[0], /fallback/);
  const corrected = tamInfo({ provenance: { tam: { variant: "corrected" } } });
  assert.equal(corrected.variant, "corrected");
  assert.deepEqual(tokenMapNotes(corrected, 0), []);
  for (const rec of [{}, { provenance: {} }, { provenance: { tam: { variant: "other" } } }, null]) {
    assert.equal(tamInfo(rec), null);
  }
  assert.deepEqual(tokenMapNotes(null, 0), []);
  const noPrompt = tamInfo({ provenance: { tam: { variant: "reference" } } });  // an empty prompt
  assert.match(tokenMapNotes(noPrompt, 0)[0], /closing line break/);
});

test("matchNote: approximate matches say their similarity and the phrase as named", () => {
  const approx = { text: "Rousseau", match: "approximate", similarity: 0.8571, phrase: "Rousse" };
  assert.equal(matchNote(approx), "approximate match (similarity 0.86) for “Rousse”");
  assert.equal(matchNote({ ...approx, phrase: undefined }), "approximate match (similarity 0.86)");
  assert.equal(matchNote({ ...approx, similarity: null }), "approximate match for “Rousse”");
  assert.equal(matchNote({ text: "large, bright red sun", match: "repaired", phrase: "large bright red sun" }),
    "named as “large bright red sun”");
  for (const plain of [{ text: "a boat", match: "exact" }, { text: "a boat" }, { text: "x", match: "repaired" }]) {
    assert.equal(matchNote(plain), null); // exact, older records without the field, nothing to add
  }
});

import { curvePath, curveRange, methodsOf, resultOf, tokenSubject } from "../js/lib/faithfulness.js";

test("faithfulness curves: path points by hand, clamping, range, methods of a span", () => {
  // 3 points over width 100, height 50: x = 0, 50, 100; y = (1 - v) * 50
  assert.equal(curvePath([1, 0.5, 0], 100, 50), "M0.0,0.0 L50.0,25.0 L100.0,50.0");
  assert.equal(curvePath([2, -1], 10, 10), "M0.0,0.0 L10.0,10.0"); // outside [lo, hi]: on the frame
  assert.equal(curvePath([0.5], 10, 10), "");
  assert.deepEqual(curveRange([[1, 1.2, 0], [0, -0.1]]), [-0.1, 1.2]);
  assert.deepEqual(curveRange([[0.2, 0.8]]), [0, 1]);
  const span = { faithfulness: { methods: { logit: { map: {} }, igos: { map: {} } } } };
  assert.deepEqual(methodsOf(span), ["logit", "igos"]);
  assert.deepEqual(methodsOf({}), []);
  assert.equal(resultOf(span, "nope"), null);
  assert.equal(resultOf(span, null), null);
});

test("url state keeps a map method and refuses hostile ones", () => {
  const s = parseState("?method=igos&cmethod=tam");
  assert.equal(s.method, "igos");
  assert.equal(s.cmethod, "tam");
  assert.equal(parseState("?method=../x").method, null);
  assert.equal(parseState("?method=IGOS").method, null);
  assert.equal(serializeState({ ...DEFAULTS, method: "logit" }), "?method=logit");
});

test("a token's own curves in a span's shape, none without them", () => {
  const curves = { method: "tam-reference", steps: 3, score_original: -0.5, score_baseline: -3,
    deletion: [1, 0.2, 0.1, 0], insertion: [0, 0.5, 0.8, 1], deletion_area: 0.2667, insertion_area: 0.6 };
  const subject = tokenSubject({ index: 4, faithfulness: curves });
  assert.deepEqual(methodsOf(subject), ["tam-reference"]);
  assert.equal(resultOf(subject, "tam-reference"), curves);
  assert.equal(subject.faithfulness.steps, 3);
  assert.equal(tokenSubject({ index: 4 }), null);
  assert.equal(tokenSubject(null), null);
});
