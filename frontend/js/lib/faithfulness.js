// Faithfulness of a span's maps (the optional `tamscope faithfulness` stage, docs/faithfulness.md):
// which methods a span has, their names, and the deletion/insertion curves as SVG paths. Pure.

export const METHOD_LABELS = Object.freeze({
  tam: "TAM (the dataset's map)", "tam-reference": "TAM, authors' code", "tam-corrected": "TAM, corrected",
  logit: "class logit (no ECI)", attention: "last-layer attention", gradient: "gradient × input", igos: "iGOS++",
});

export const methodLabel = (m) => METHOD_LABELS[m] || m;

/** The methods recorded for a span, in the stage's order. */
export function methodsOf(span) {
  return Object.keys(span?.faithfulness?.methods || {});
}

/**
 * A token's own curves (`faithfulness --per-token`: Token.faithfulness) in a span's shape, so the
 * curves panel draws them like a span's: {faithfulness: {steps, methods: {<its method>: curves}}}.
 * null when the token has none.
 */
export function tokenSubject(token) {
  const f = token?.faithfulness;
  if (!f || !f.method) return null;
  return { faithfulness: { steps: f.steps, score_original: f.score_original, score_baseline: f.score_baseline,
    methods: { [f.method]: f } } };
}

/** The result of `method` for `span`, or null. */
export function resultOf(span, method) {
  return (method && span?.faithfulness?.methods?.[method]) || null;
}

/**
 * An SVG path through a curve's points: x = j / (n - 1) of `width`, y from `lo` (bottom) to `hi`
 * (top) of `height`. Values outside [lo, hi] are clamped onto the frame. "" for no curve.
 */
export function curvePath(values, width, height, lo = 0, hi = 1) {
  if (!Array.isArray(values) || values.length < 2) return "";
  const n = values.length - 1, span = hi - lo || 1;
  return values.map((v, j) => {
    const y = Math.min(1, Math.max(0, (v - lo) / span));
    return `${j ? "L" : "M"}${((j / n) * width).toFixed(1)},${((1 - y) * height).toFixed(1)}`;
  }).join(" ");
}

/** The vertical range that shows every curve: [0, 1] widened to any value outside it. */
export function curveRange(curves) {
  const all = curves.flat().filter(Number.isFinite);
  return [Math.min(0, ...all), Math.max(1, ...all)];
}
