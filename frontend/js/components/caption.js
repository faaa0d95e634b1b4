// The caption as buttons: typed phrases (span mode) or every generated token (token mode),
// optionally shaded by each token's visual reliance. Spans that cannot sit inline (overlapping
// another phrase, or not found in the caption at all) get buttons in lists under the caption.
// A phrase placed approximately (the span classifier reworded it) has a dotted outline and a
// tooltip with its similarity and the phrase as named.
// Built once per mode; selection changes only flip aria-pressed (no rebuild, no layout shift).
//
// Phrases inside the caption are inline elements with role="button", not <button>s: a
// <button> is an inline-block, so a long phrase would jump to the next line whole and leave
// a ragged gap; an inline element breaks across lines like the text around it. Their look
// (solid category colour or underline) is a class on the caption.

import { h } from "../dom.js";
import { categoryInfo, categoryStyle } from "../lib/categories.js";
import { captionPieces, matchNote, tokenRuns } from "../lib/spans.js";

/** Background for a token's visual reliance: warm leans on the image, blue on language. */
export function relianceColor(reliance) {
  if (typeof reliance !== "number" || !Number.isFinite(reliance)) return null;
  const a = (Math.min(1, Math.abs(reliance) / 2) * 0.6).toFixed(3); // |log-ratio| of 2 saturates
  return reliance >= 0 ? `rgba(242, 193, 78, ${a})` : `rgba(110, 150, 255, ${a})`;
}

function relianceTitle(t) {
  if (typeof t.reliance !== "number") return null;
  const lean = t.reliance >= 0 ? "more likely with the image" : "more likely from language alone";
  return `“${t.text}”: visual reliance ${t.reliance.toFixed(2)} (${lean}${t.visual ? ", visually relevant" : ""})`;
}

function textRun(rec, start, end, reliance) {
  // plain caption text, cut into token pieces only when shading needs them
  const runs = reliance ? tokenRuns(rec.tokens, start, end) : [];
  if (!runs.length) return [rec.caption.slice(start, end)];
  const out = [];
  let at = start;
  for (const r of runs) {
    if (r.start > at) out.push(rec.caption.slice(at, r.start));
    const bg = relianceColor(r.token.reliance);
    out.push(h("span", { class: "rel", style: bg ? { backgroundColor: bg } : null, title: relianceTitle(r.token) },
      rec.caption.slice(r.start, r.end)));
    at = r.end;
  }
  if (at < end) out.push(rec.caption.slice(at, end));
  return out;
}

function spanButton(rec, span, where, { reliance, onSpan }) {
  const info = categoryInfo(span.category);
  const inline = where === "inline";
  const note = matchNote(span);
  const attrs = { class: `span span-${where}${span.match === "approximate" ? " span-approx" : ""}`,
    id: `span-${span.index}`, "aria-pressed": "false",
    "data-testid": "span-button", "data-index": span.index, "data-cat": span.category, "data-where": where,
    style: categoryStyle(span.category), title: `${info.label}${span.map ? "" : " (no map)"}${note ? `: ${note}` : ""}`,
    "aria-label": `${span.text} (${info.label})`, onclick: () => onSpan(span.index) };
  if (!inline) return h("button", { type: "button", ...attrs }, span.text);
  return h("span", { role: "button", tabindex: "0", ...attrs, onkeydown: (e) => {
    if (e.key !== "Enter" && e.key !== " ") return;
    e.preventDefault(); // Space would scroll the page
    onSpan(span.index);
  } }, textRun(rec, span.start, span.end, reliance));
}

/**
 * @param {object} rec the painting record
 * @param {{inline, nested, unlocated}} layout from lib/spans.js layoutSpans
 * @param {{tokenMode: boolean, reliance: boolean, highlight: "solid"|"underline", onSpan: Function,
 *   onToken: Function}} opts
 * @returns {{el: HTMLElement, select: (span: number|null, token: number|null) => void}}
 */
export function buildCaption(rec, layout, opts) {
  const buttons = new Map(); // "span:3" / "token:7" -> button
  let body;
  if (opts.tokenMode) {
    const parts = [];
    let at = 0;
    for (const r of tokenRuns(rec.tokens, 0, rec.caption.length)) {
      if (r.start > at) parts.push(rec.caption.slice(at, r.start));
      // a token's leading/trailing spaces stay outside its button: buttons are inline-blocks,
      // which drop edge whitespace, and a highlighted space looks like a rendering bug
      const text = rec.caption.slice(r.start, r.end);
      const lead = text.length - text.trimStart().length, trail = text.length - text.trimEnd().length;
      if (!text.trim()) { parts.push(text); at = r.end; continue; }
      if (lead) parts.push(text.slice(0, lead));
      const t = r.token;
      const bg = opts.reliance ? relianceColor(t.reliance) : null;
      const b = h("button", { type: "button", class: "tok", id: `token-${t.index}`, "aria-pressed": "false",
        tabindex: "-1", "data-testid": "token-button", "data-index": t.index, disabled: !t.map,
        style: bg ? { backgroundColor: bg } : null, title: relianceTitle(t) || (t.map ? null : "no map"),
        onclick: () => opts.onToken(t.index) }, text.slice(lead, text.length - trail));
      buttons.set(`token:${t.index}`, b);
      parts.push(b);
      if (trail) parts.push(text.slice(text.length - trail));
      at = r.end;
    }
    if (at < rec.caption.length) parts.push(rec.caption.slice(at));
    body = [h("p", { class: "caption tokens", "data-testid": "caption", role: "group",
      "aria-label": "Caption tokens (arrow keys move between tokens)" }, parts)];
  } else {
    const pieces = captionPieces(rec.caption, layout.inline).map((piece) => {
      if (!piece.span) return textRun(rec, piece.start, piece.end, opts.reliance);
      const b = spanButton(rec, piece.span, "inline", opts);
      buttons.set(`span:${piece.span.index}`, b);
      return b;
    });
    const list = (spans, where, title, testid) => (spans.length ? h("section", { class: "extra-spans",
      "data-testid": testid }, h("h3", {}, title), h("ul", {}, spans.map((s) => {
      const b = spanButton(rec, s, where, opts);
      buttons.set(`span:${s.index}`, b);
      return h("li", {}, b);
    }))) : null);
    body = [h("p", { class: `caption hl-${opts.highlight || "solid"}`, "data-testid": "caption" }, pieces),
      list(layout.nested, "nested", "Phrases inside other phrases", "nested-spans"),
      list(layout.unlocated, "unlocated", "Named by the classifier, not found in the caption", "unlocated-spans")];
  }
  const el = h("div", { class: "caption-box" }, body);
  let pressed = [];
  function select(span, token) {
    for (const b of pressed) b.setAttribute("aria-pressed", "false");
    pressed = [buttons.get(`span:${span}`), buttons.get(`token:${token}`)].filter(Boolean);
    for (const b of pressed) b.setAttribute("aria-pressed", "true");
    if (opts.tokenMode) { // roving tabindex: one Tab stop for a caption of hundreds of tokens
      for (const b of buttons.values()) b.tabIndex = -1;
      const current = buttons.get(`token:${token}`) || [...buttons.values()].find((b) => !b.disabled);
      if (current) current.tabIndex = 0;
    }
  }
  return { el, select };
}
