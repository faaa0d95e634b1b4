// The overlay's layers and colours: the alpha ramp that keeps the painting visible, the
// contour tracing that outlines the Otsu region and the SAM 3 mask (checked against
// cv2.findContours), the SAM hatch, and the category colours with readable text on them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { lut, lut32 } from "../js/lib/colormap.js";
import { alphaRamp, GAMMA } from "../js/lib/ramp.js";
import { compressChain, traceContours } from "../js/lib/contour.js";
import { hatchGeometry, hatchToRgba } from "../js/lib/mask.js";
import { CATEGORIES, CATEGORY_INFO, categoryInfo, contrast, inkOn, luminance } from "../js/lib/categories.js";
import { golden } from "./golden.mjs";

test("alpha ramp: transparent where cold, growing with the value, full opacity at the peak", () => {
  const a = alphaRamp({ look: "hot", opacity: 0.8, cut: 0 });
  assert.equal(a[0], 0);
  assert.equal(a[255], 204); // 0.8 * 255
  // by hand: (128/255)^1.5 = 0.50196 * 0.70849 = 0.35564; * 204 = 72.55
  assert.equal(GAMMA, 1.5);
  assert.equal(a[128], 73);
  for (let v = 1; v < 256; v++) assert.ok(a[v] >= a[v - 1], `not monotonic at ${v}`);
  // a quarter of the way up is still nearly clear: (0.25)^1.5 = 0.125 of the opacity
  assert.ok(Math.abs(a[64] - 0.8 * 255 * (64 / 255) ** 1.5) < 0.51 && a[64] < 30);
});

test("alpha ramp: 'hide below' clears the values under the cut, the tint look is flat above it", () => {
  const hot = alphaRamp({ look: "hot", opacity: 1, cut: 0.5 });
  for (let v = 0; v < 128; v++) assert.equal(hot[v], 0, `${v} is below the cut`); // 127/255 < 0.5
  assert.equal(hot[255], 255);
  // halfway between the cut and the top: ((191.25/255 - 0.5) / 0.5)^1.5 = 0.5^1.5 = 0.3536
  assert.ok(Math.abs(hot[191] - 255 * ((191 / 255 - 0.5) / 0.5) ** 1.5) < 0.51);
  const tint = alphaRamp({ look: "tint", opacity: 0.6, cut: 0 });
  assert.ok(tint.every((x) => x === 153), "the full tint: one opacity everywhere, as before");
  const tintCut = alphaRamp({ look: "tint", opacity: 0.6, cut: 0.2 });
  assert.equal(tintCut[50], 0); // 50/255 = 0.196 < 0.2
  assert.equal(tintCut[52], 153);
  // the default look covers far less of the picture than the full tint
  const mean = (t) => t.reduce((s, x) => s + x, 0) / 256;
  assert.ok(mean(alphaRamp()) < 0.5 * mean(alphaRamp({ look: "tint" })));
  assert.ok(alphaRamp({ opacity: 7, cut: -3 })[255] === 255 && alphaRamp({ cut: 2 })[254] === 0); // clamped
});

test("colormap with a per-value alpha: colours unchanged, alpha from the ramp", () => {
  const alphas = alphaRamp({ look: "hot", opacity: 0.8, cut: 0.1 });
  const packed = lut32("viridis", alphas), table = lut("viridis");
  const bytes = new Uint8Array(packed.buffer);
  for (const v of [0, 30, 128, 255]) {
    assert.deepEqual([...bytes.slice(v * 4, v * 4 + 4)], [table[v * 3], table[v * 3 + 1], table[v * 3 + 2], alphas[v]]);
  }
});

test("contours equal cv2.findContours(RETR_CCOMP, CHAIN_APPROX_NONE) on every golden mask", () => {
  assert.ok(golden.contours.length >= 20);
  const canon = (list) => list.map((c) => `${c.hole ? "hole" : "outer"}:${[...c.points].join(",")}`).sort();
  for (const [k, c] of golden.contours.entries()) {
    const got = traceContours(c.mask, c.W, c.H);
    // same borders, each the same pixel chain in the same order from the same start pixel
    assert.deepEqual(canon(got), canon(c.contours), `case ${k} (${c.W}x${c.H})`);
  }
});

test("compressed chains equal cv2's CHAIN_APPROX_SIMPLE on every golden mask", () => {
  let points = 0, kept = 0;
  for (const [k, c] of golden.contours.entries()) {
    const got = traceContours(c.mask, c.W, c.H).map((x) => [...compressChain(x.points)].join(",")).sort();
    assert.deepEqual(got, c.contours.map((x) => x.simple.join(",")).sort(), `case ${k}`);
    if (c.W < 60) continue; // the smooth regions at canvas size, as the explorer outlines them
    points += c.contours.reduce((s, x) => s + x.points.length, 0);
    kept += c.contours.reduce((s, x) => s + x.simple.length, 0);
  }
  assert.ok(kept < points / 2, `straight runs were not cut: ${kept} of ${points}`);
});

test("contours by hand: a square, a ring with its hole, an empty mask", () => {
  const square = traceContours([1, 1, 1, 1], 2, 2);
  assert.equal(square.length, 1);
  assert.deepEqual([...square[0].points], [0, 0, 0, 1, 1, 1, 1, 0]); // down the left side, then up
  const ring = traceContours([1, 1, 1, 1, 0, 1, 1, 1, 1], 3, 3);
  assert.deepEqual(ring.map((c) => c.hole), [false, true]);
  assert.equal(ring[1].points.length / 2, 4); // the hole is bounded by the 4 pixels next to it
  assert.deepEqual(traceContours(new Uint8Array(12), 4, 3), []);
});

test("hatch: diagonal stripes inside the mask only", () => {
  const W = 10, H = 10, mask = new Uint8Array(W * H).fill(1);
  mask[0] = 0;
  const out = new Uint8ClampedArray(W * H * 4);
  const { inside, striped } = hatchToRgba(mask, W, H, [0, 200, 255], 1, out, { spacing: 5, width: 2 });
  assert.equal(inside, 99);
  // x + y takes each residue mod 5 equally often on a 10 x 10 grid: 20 pixels per residue,
  // stripes are residues 0 and 1, minus the one masked-out pixel (0, 0)
  assert.equal(striped, 39);
  assert.equal(out[3], 0); // (0, 0) is outside the mask
  assert.deepEqual([...out.slice(4, 8)], [0, 200, 255, 255]); // (1, 0): x + y = 1, a stripe
  assert.equal(out[(0 * W + 2) * 4 + 3], 0); // (2, 0): between stripes
  assert.deepEqual(hatchGeometry(1000, 797), { spacing: 10, width: 3 });
});

test("categories: the paper's wording, one colour each, readable text on every colour", () => {
  assert.deepEqual(CATEGORIES, ["CVO", "ICON", "STYLE", "AFFECT", "META"]);
  assert.equal(CATEGORY_INFO.ICON.label, "Named figure"); // the authors' page
  assert.equal(CATEGORY_INFO.CVO.label, "Concrete object");
  assert.equal(new Set(CATEGORIES.map((c) => CATEGORY_INFO[c].color)).size, 5);
  // WCAG reference values: black on white is 21:1, #777 on white 4.48:1
  assert.ok(Math.abs(contrast("#000000", "#ffffff") - 21) < 1e-9);
  assert.ok(Math.abs(contrast("#777777", "#ffffff") - 4.48) < 0.01);
  assert.equal(luminance("#ffffff"), 1);
  for (const c of CATEGORIES) {
    const { color, ink } = categoryInfo(c);
    assert.ok(contrast(color, ink) >= 4.5, `${c}: ${ink} on ${color} is ${contrast(color, ink).toFixed(2)}:1`);
  }
  assert.equal(inkOn("#ff7f0e"), "#000000"); // orange: dark text (8.3:1 against 2.5:1 for white)
  assert.equal(inkOn("#d62728"), "#ffffff"); // red: white text (5.0:1 against 4.2:1)
  assert.deepEqual(categoryInfo("NEW").label, "NEW");
  assert.throws(() => luminance("red"), /#rrggbb/);
});
