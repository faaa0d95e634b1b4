// The panels beside the picture: category legend with counts, the selected span's numbers
// placed in its category's distribution, and the claimed-identity card.

import { h } from "../dom.js";
import { CATEGORIES, categoryInfo, categoryStyle } from "../lib/categories.js";
import { fmtNum, fmtPct, placeAmong } from "../lib/format.js";

const SVG = "http://www.w3.org/2000/svg";
const STORED_HALF_STEP = 5e-5; // stats.json keeps a category's `<metric>_values` to 4 decimals
const s = (tag, attrs = {}, ...kids) => {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.append(...kids);
  return el;
};

/** A category as a small solid tag in its colour ("CVO"), its name in the tooltip. */
export function categoryChip(category, text = category) {
  return h("span", { class: "cat-tag", style: categoryStyle(category), title: categoryInfo(category).label }, text);
}

export function legend(spans) {
  const counts = Object.fromEntries(CATEGORIES.map((c) => [c, spans.filter((x) => x.category === c).length]));
  return h("ul", { class: "legend", "aria-label": "Phrase categories with counts", "data-testid": "legend" },
    CATEGORIES.map((c) => h("li", { "data-cat": c },
      h("span", { class: "swatch", style: categoryStyle(c) }),
      h("abbr", { title: categoryInfo(c).label }, c), ` ${categoryInfo(c).label} `, h("span", { class: "count" }, `(${counts[c]})`))));
}

/** A one-line distribution: every span of the category as a tick, this one as a marker. */
function strip(values, value, color, label) {
  const xs = (values || []).filter(Number.isFinite);
  if (!xs.length || !Number.isFinite(value)) return null;
  const lo = Math.min(...xs, value), hi = Math.max(...xs, value), span = hi - lo || 1;
  const x = (v) => 4 + ((v - lo) / span) * 152;
  return s("svg", { viewBox: "0 0 160 18", class: "strip", role: "img", "aria-label": label },
    ...xs.map((v) => s("line", { x1: x(v), x2: x(v), y1: 5, y2: 13, stroke: color, "stroke-opacity": 0.45 })),
    s("circle", { cx: x(value), cy: 9, r: 4, fill: "#fff", stroke: "#000" }));
}

/** The selected span's numbers, each placed in its category's distribution (stats.json). */
export function numbersPanel(span, stats) {
  if (!span) return h("p", { class: "muted numbers-empty" }, "Select a phrase to see its numbers.");
  const m = span.metrics || {};
  const cat = stats?.[span.category] || {};
  const color = categoryInfo(span.category).color;
  const place = (value, key, what, lowMeans) => {  // key: the stats.json prefix (`entropy`, `top10`...)
    const values = cat[`${key}_values`] || [];
    const at = placeAmong(value, values, cat[`${key}_n`], STORED_HALF_STEP);
    if (at === null) return ["", null];
    return [`${Math.round(at.rank)}th percentile of ${at.n} ${span.category} spans (${lowMeans})`,
      strip(values, value, color, `${what} among ${span.category} spans`)];
  };
  const row = (label, value, [note, chart] = ["", null], testid = null) => h("tr", { "data-testid": testid },
    h("th", { scope: "row" }, label), h("td", {}, value), h("td", { class: "muted" }, note, chart));
  let sam = h("span", { class: "muted" }, "does not apply (only CVO and ICON phrases are segmented)");
  if (span.sam) {
    sam = span.sam.mask ? `${span.sam.instances} instance${span.sam.instances === 1 ? "" : "s"}`
      : h("span", { class: "wrong" }, "found nothing");
  }
  const iou = span.sam?.mask && Number.isFinite(span.sam.iou) ? span.sam.iou : null;
  return h("table", { class: "numbers", "data-testid": "numbers" },
    h("caption", { class: "visually-hidden" }, `Numbers of ${span.text}`),
    row("Entropy", fmtNum(m.entropy, 3), place(m.entropy, "entropy", "entropy", "lower = more localised"),
      "num-entropy"),
    row("Top-10% mass", fmtPct(m.top10_mass), place(m.top10_mass, "top10", "top-10% mass",
      "higher = more concentrated"), "num-top10"),
    row("Gini", fmtNum(m.gini, 3), place(m.gini, "gini", "Gini", "higher = more concentrated")),
    row("IoU Otsu vs SAM 3", iou === null ? "—" : fmtNum(iou, 3),
      iou === null ? [span.sam ? "no SAM 3 mask to compare" : "", null]
        : place(iou, "iou", "IoU", "higher = map agrees with the segmenter"), "num-iou"),
    row("SAM 3", sam, [span.sam?.scores?.length ? `scores ${span.sam.scores.map((x) => fmtNum(x, 2)).join(", ")}` : "", null],
      "num-sam"),
    row("Otsu threshold", span.otsu_threshold ?? "n/a", ["on the 8-bit map resized to the canvas (as the metric)", null]));
}

export function metadataCard(rec) {
  const meta = rec.metadata, ann = rec.annotations || {};
  if (!meta) return null;
  const verdict = (ok) => (ok === true ? h("span", { class: "ok" }, "✓ correct") : ok === false
    ? h("span", { class: "wrong" }, "✗ wrong") : h("span", { class: "muted" }, "not graded"));
  return h("section", { class: "meta-card", "aria-label": "What the caption claims", "data-testid": "metadata-card" },
    h("h3", {}, "Does the caption name the painting?"),
    h("dl", {},
      h("dt", {}, "Title claimed"), h("dd", { "data-testid": "title-claimed" }, meta.title_claimed || "none", " ",
        verdict(meta.title_correct)),
      h("dt", {}, "Artist claimed"), h("dd", { "data-testid": "artist-claimed" }, meta.artist_claimed || "none", " ",
        verdict(meta.artist_correct)),
      h("dt", {}, "Ground truth"), h("dd", {}, [ann.title, ann.artist].filter(Boolean).join(" — ") || "unknown")),
    meta.source === "tamart" ? h("p", { class: "muted small" }, "Verdicts as published by the paper's authors.") : null);
}

/** Previous / next page buttons for `pages` pages (page is 0-based); null for a single page. */
export function pagerNav(pages, page, navigate) {
  if (pages <= 1) return null;
  return h("nav", { class: "pager", "aria-label": "Pages" },
    h("button", { type: "button", disabled: page === 0, onclick: () => navigate({ page: page - 1 }) }, "← previous"),
    h("span", {}, `page ${page + 1} of ${pages}`),
    h("button", { type: "button", disabled: page + 1 >= pages, onclick: () => navigate({ page: page + 1 }) }, "next →"));
}
