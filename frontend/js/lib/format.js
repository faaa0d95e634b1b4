// Small number formatting and distribution helpers for the numbers shown next to the picture.

export const fmtNum = (x, digits = 2) => (typeof x === "number" && Number.isFinite(x) ? x.toFixed(digits) : "n/a");
export const fmtPct = (x) => (typeof x === "number" && Number.isFinite(x) ? `${Math.round(x * 100)}%` : "n/a");

/**
 * Percentage of `sorted` (ascending) below `value`, plus half the ties. Values within
 * `tolerance` of `value` are ties: stats.json stores a category's values rounded (to 1e-4), so a
 * span's own unrounded value must tie with its rounded copy rather than fall above or below it.
 */
export function percentileRank(value, sorted, tolerance = 0) {
  if (!sorted || sorted.length === 0 || !Number.isFinite(value)) return null;
  let below = 0, equal = 0;
  for (const x of sorted) { if (Math.abs(x - value) <= tolerance) equal++; else if (x < value) below++; }
  return (100 * (below + equal / 2)) / sorted.length;
}

/** Where VALUE falls in a category (stats.json): its percentile rank among the stored sorted
 * `<metric>_values` and the number of spans that stands for, `<metric>_n`. Beyond 1,001 spans
 * the stored values are order statistics at evenly spaced ranks, not every span (the rank is
 * then within 0.1 point of the exact one); a stats.json without `_n` counts the values. */
export function placeAmong(value, values, n, tolerance = 0) {
  const rank = percentileRank(value, values, tolerance);
  if (rank === null) return null;
  return { rank, n: Number.isInteger(n) && n >= values.length ? n : values.length };
}

/** min, q1, median, q3, max with linear interpolation (numpy's default). */
export function quantiles(values) {
  const xs = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (xs.length === 0) return null;
  const q = (p) => {
    const pos = (xs.length - 1) * p, lo = Math.floor(pos), hi = Math.ceil(pos);
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo);
  };
  return { min: xs[0], q1: q(0.25), median: q(0.5), q3: q(0.75), max: xs[xs.length - 1] };
}

/**
 * Round axis bounds and ticks around [lo, hi] (about `count` ticks, steps 1, 2, 2.5 or 5 x 10^k).
 * @returns {{lo:number, hi:number, ticks:number[]}}
 */
export function niceTicks(lo, hi, count = 5) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return { lo: 0, hi: 1, ticks: [0, 0.25, 0.5, 0.75, 1] };
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) { const pad = Math.abs(lo) * 0.1 || 0.5; lo -= pad; hi += pad; }
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw * 0.999);
  const start = Math.floor(lo / step + 1e-9) * step, end = Math.ceil(hi / step - 1e-9) * step;
  const ticks = [];
  for (let v = start; v <= end + step * 1e-6; v += step) ticks.push(Number(v.toFixed(10)));
  return { lo: ticks[0], hi: ticks[ticks.length - 1], ticks };
}
