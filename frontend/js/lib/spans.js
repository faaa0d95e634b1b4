// Where each typed span goes on the page. Pure functions (unit-tested with node).
//
// A caption is shown once, with its spans as inline buttons; buttons cannot nest, so spans
// have to be laid out without overlap. Real data has overlaps (imported records hold
// "surrounded by his disciples" and "his disciples") and spans the classifier named that the
// caption does not contain (start = end = null). Neither may be dropped or crash the page:
//   inline    - placed in the caption, left to right, never overlapping (longer span wins a tie)
//   nested    - located spans that overlap an inline one: listed under the caption
//   unlocated - no valid offsets: listed under the caption as "not found in the caption"
// Every span keeps its own button, so every map stays reachable.

const located = (span, n) => Number.isInteger(span.start) && Number.isInteger(span.end)
  && span.start >= 0 && span.start < span.end && span.end <= n;

/**
 * @param {string} caption
 * @param {Array<{index:number,start:number|null,end:number|null}>} spans
 * @returns {{inline: object[], nested: object[], unlocated: object[], order: number[]}}
 *   order: span indices in page order (inline, then nested, then unlocated), for arrow keys
 */
export function layoutSpans(caption, spans) {
  const n = (caption || "").length;
  const inline = [], nested = [], unlocated = [];
  const candidates = [];
  for (const span of spans || []) (located(span, n) ? candidates : unlocated).push(span);
  candidates.sort((a, b) => a.start - b.start || (b.end - b.start) - (a.end - a.start) || a.index - b.index);
  let reached = 0;
  for (const span of candidates) {
    if (span.start >= reached) { inline.push(span); reached = span.end; } else nested.push(span);
  }
  unlocated.sort((a, b) => a.index - b.index);
  return { inline, nested, unlocated, order: [...inline, ...nested, ...unlocated].map((s) => s.index) };
}

/**
 * Cut the caption into runs: plain text and inline spans, covering it exactly once.
 * @returns {Array<{start:number,end:number,span:object|null}>}
 */
export function captionPieces(caption, inline) {
  const pieces = [];
  let at = 0;
  for (const span of inline) {
    if (span.start > at) pieces.push({ start: at, end: span.start, span: null });
    pieces.push({ start: span.start, end: span.end, span });
    at = span.end;
  }
  if (at < (caption || "").length) pieces.push({ start: at, end: caption.length, span: null });
  return pieces;
}

/**
 * Tokens overlapping caption[start:end], clipped to it: [{token, start, end}]. Tokens with
 * empty or missing offsets (a byte-level token that only starts a character) are skipped.
 */
export function tokenRuns(tokens, start, end) {
  const out = [];
  for (const t of tokens || []) {
    if (!Number.isInteger(t.start) || !Number.isInteger(t.end) || t.end <= t.start) continue;
    if (t.end <= start || t.start >= end) continue;
    out.push({ token: t, start: Math.max(t.start, start), end: Math.min(t.end, end) });
  }
  return out;
}

/**
 * How a located phrase was found, when it is not verbatim: an approximate match (a reworded
 * phrase placed on the caption words most like it) with its similarity and the phrase as named,
 * or a repair (the same letters, other punctuation). null for exact matches and older records.
 * @param {{match?: string, similarity?: number, phrase?: string, text: string}} span
 */
export function matchNote(span) {
  const named = span.phrase && span.phrase !== span.text ? `“${span.phrase}”` : null;
  if (span.match === "approximate") {
    const similarity = Number.isFinite(span.similarity) ? ` (similarity ${span.similarity.toFixed(2)})` : "";
    return `approximate match${similarity}${named ? ` for ${named}` : ""}`;
  }
  return span.match === "repaired" && named ? `named as ${named}` : null;
}

/** The next index in `order` from `current` (wrapping); the first one when nothing is selected. */
export function stepIn(order, current, step) {
  if (!order.length) return null;
  const at = order.indexOf(current);
  if (at < 0) return step > 0 ? order[0] : order[order.length - 1];
  return order[(at + step + order.length) % order.length];
}
