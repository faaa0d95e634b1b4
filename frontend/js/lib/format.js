// Small number formatting and distribution helpers for the numbers shown next to the picture.

export const fmtNum = (x, digits = 2) => (typeof x === "number" && Number.isFinite(x) ? x.toFixed(digits) : "n/a");
export const fmtPct = (x) => (typeof x === "number" && Number.isFinite(x) ? `${Math.round(x * 100)}%` : "n/a");

/** Percentage of `sorted` (ascending) strictly below `value`, plus half the ties. */
export function percentileRank(value, sorted) {
  if (!sorted || sorted.length === 0 || !Number.isFinite(value)) return null;
  let below = 0, equal = 0;
  for (const x of sorted) { if (x < value) below++; else if (x === value) equal++; }
  return (100 * (below + equal / 2)) / sorted.length;
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
