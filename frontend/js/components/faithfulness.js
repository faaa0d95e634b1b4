// The span's deletion and insertion curves with their areas, for the method shown and the one
// compared with (docs/faithfulness.md). A small SVG plus a table the screen reader can read.

import { h, svg } from "../dom.js";
import { fmtNum } from "../lib/format.js";
import { curvePath, curveRange, methodLabel, resultOf } from "../lib/faithfulness.js";

const s = svg;
const COLORS = { deletion: "#ef7470", insertion: "#62a8ee" }; // readable on the dark page (axe: 4.5:1)

/** methods: the method names to show (first solid, second dashed); "tam" means the dataset's TAM variant.
 *  what: what was scored, "phrase" (a span) or "token" (a token's own curves, lib/faithfulness tokenSubject). */
export function curvesPanel(span, methods, tamVariant, what = "phrase") {
  const f = span?.faithfulness;
  if (!f) return null;
  const named = methods.map((m) => (m === "tam" ? `tam-${tamVariant}` : m)).filter((m, i, all) => all.indexOf(m) === i);
  const shown = named.map((m) => [m, resultOf(span, m)]).filter(([, r]) => r);
  if (!shown.length) return null;
  const width = 240, height = 110, pad = 28;
  const [lo, hi] = curveRange(shown.flatMap(([, r]) => [r.deletion || [], r.insertion || []]));
  const svg = s("svg", { viewBox: `0 0 ${width + pad + 8} ${height + 24}`, class: "curves", role: "img",
    "aria-label": "deletion and insertion curves", "data-testid": "faithfulness-curves" });
  const g = s("g", { transform: `translate(${pad},6)` });
  g.append(s("rect", { x: 0, y: 0, width, height, class: "frame", fill: "none", stroke: "currentColor", "stroke-opacity": 0.3 }));
  for (const v of [0, 1]) {
    const y = (1 - (v - lo) / (hi - lo)) * height;
    g.append(s("line", { x1: 0, x2: width, y1: y, y2: y, stroke: "currentColor", "stroke-opacity": 0.15 }),
      s("text", { x: -4, y: y + 3, "text-anchor": "end", class: "axis" }, String(v)));
  }
  g.append(s("text", { x: width / 2, y: height + 16, "text-anchor": "middle", class: "axis" }, "share of pixels removed / inserted"));
  shown.forEach(([m, r], k) => {
    for (const kind of ["deletion", "insertion"]) {
      if (!r[kind]) continue;
      g.append(s("path", { d: curvePath(r[kind], width, height, lo, hi), fill: "none", stroke: COLORS[kind],
        "stroke-width": 2, "stroke-dasharray": k ? "5 4" : null, "data-testid": `curve-${kind}-${m}` },
      s("title", {}, `${methodLabel(m)}: ${kind}, area ${fmtNum(r[`${kind}_area`], 3)}`)));
    }
  });
  svg.append(g);
  const rows = shown.map(([m, r], k) => h("tr", { "data-testid": `faithfulness-row-${m}` },
    h("th", { scope: "row" }, `${methodLabel(m)}${shown.length > 1 ? (k ? " (dashed)" : " (solid)") : ""}`),
    h("td", {}, r.deletion_area == null ? "n/a" : fmtNum(r.deletion_area, 3)),
    h("td", {}, r.insertion_area == null ? "n/a" : fmtNum(r.insertion_area, 3))));
  const undefinedNote = shown.some(([, r]) => r.deletion_area == null)
    ? h("p", { class: "muted small" }, `n/a: ${what === "token" ? "this token scores" : "these tokens score"} the same with and without the image, so no curve can be normalised.`) : null;
  return h("section", { class: "faithfulness", "data-testid": what === "token" ? "token-faithfulness-panel" : "faithfulness-panel" },
    h("h4", {}, "Is the map faithful?"),
    h("p", { class: "muted small" }, "Pixels are removed from the painting (",
      h("span", { style: { color: COLORS.deletion } }, "deletion"), ") or restored on its blurred copy (",
      h("span", { style: { color: COLORS.insertion } }, "insertion"),
      `) in the order of the ${what === "token" ? "token's own map" : "map"}, ${f.steps} steps; the curve is the ${what}'s log-likelihood, 1 = as with the painting, 0 = as with the blurred copy. A faithful map has a small deletion area and a large insertion area.`),
    svg,
    h("table", { class: "numbers" }, h("thead", {}, h("tr", {}, ["method", "deletion area ↓", "insertion area ↑"]
      .map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows)),
    undefinedNote);
}

const ci = (x) => (x && x.mean != null
  ? `${fmtNum(x.mean, 3)}${x.lo != null ? ` [${fmtNum(x.lo, 2)}, ${fmtNum(x.hi, 2)}]` : ""}` : "—");

/** The answer to "does lower entropy go with better faithfulness?" for one method, in words. */
export function entropyAnswer(e) {
  const d = e?.deletion, i = e?.insertion;
  if (!d && !i) return "not enough phrases to tell";
  const excludes0 = (r) => r && r.lo != null && (r.lo > 0 || r.hi < 0);
  const part = (r, kind, good) => (r ? `${kind} ρ = ${fmtNum(r.rho, 2)}${r.lo != null ? ` [${fmtNum(r.lo, 2)}, ${fmtNum(r.hi, 2)}]` : ""}`
    + (excludes0(r) ? (Math.sign(r.rho) === good ? " (yes)" : " (the opposite)") : " (no clear link)") : `${kind}: n/a`);
  return `${part(d, "deletion", 1)}; ${part(i, "insertion", -1)}`;
}

/** Dashboard: method x category table of mean deletion / insertion areas with 95% intervals. */
export function faithfulnessSection(f, categories) {
  if (!f?.table) return null;
  const methods = Object.keys(f.table);
  const cats = [...categories.filter((c) => methods.some((m) => f.table[m][c])), "all"];
  return h("section", { class: "faithfulness-dash", "data-testid": "faithfulness-dashboard" },
    h("h3", {}, "Which map is faithful?"),
    h("p", { class: "muted small" }, "Mean deletion area (lower is better) / insertion area (higher is better) of each method's phrase maps, with 95% bootstrap intervals, per category (docs/faithfulness.md)."),
    h("div", { class: "table-scroll" }, h("table", { class: "summary", "data-testid": "faithfulness-table" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Method"), ...cats.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, methods.map((m) => h("tr", { "data-testid": `faithfulness-method-${m}` },
        h("th", { scope: "row" }, methodLabel(m)),
        ...cats.map((c) => {
          const cell = f.table[m][c];
          return h("td", {}, cell ? [h("span", { class: "del" }, `del ${ci(cell.deletion)}`), h("br"),
            h("span", { class: "ins" }, `ins ${ci(cell.insertion)}`), h("br"),
            h("span", { class: "muted small" }, `n = ${cell.deletion.n}`)] : "—");
        })))))),
    h("h4", {}, "Does lower entropy go with better faithfulness?"),
    h("p", { class: "muted small" }, "Spearman's ρ between a phrase's TAM entropy and the method's area, with a 95% bootstrap interval: yes when ρ > 0 for deletion and ρ < 0 for insertion, with intervals that exclude 0."),
    h("ul", { "data-testid": "entropy-answer" }, methods.map((m) => h("li", {}, h("strong", {}, methodLabel(m)), ": ",
      entropyAnswer(f.entropy?.[m])))));
}
