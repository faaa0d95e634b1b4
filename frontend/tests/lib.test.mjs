import { test } from "node:test";
import assert from "node:assert/strict";
import { COLORMAPS, applyColormap, lut } from "../js/lib/colormap.js";
import { bilinear, sampleAt } from "../js/lib/upsample.js";
import { maskAbove, otsuThreshold } from "../js/lib/otsu.js";
import { DEFAULTS, parseState, serializeState } from "../js/lib/urlstate.js";
import { fmtNum, fmtPct, percentileRank, quantiles } from "../js/lib/format.js";

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
    overlay: "sam", cmap: "viridis", opacity: 0.35, reliance: true, compare: 5, q: "van gogh", cat: "CVO", page: 2 };
  assert.deepEqual(parseState(serializeState(s)), s);
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
  assert.deepEqual(quantiles([4, 1, 3, 2, 5]), { min: 1, q1: 2, median: 3, q3: 4, max: 5 });
  assert.equal(quantiles([NaN]), null);
});
