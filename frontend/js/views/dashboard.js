// Dashboard: per-category distributions (every span as a dot over a box plot, axes fitted to
// the data), SAM 3 detection rate, artist vs title accuracy and the statistical tests. Every
// chart links to example phrases (or paintings) that open in the painting view.

import { h, svg } from "../dom.js";
import { CATEGORIES, categoryInfo } from "../lib/categories.js";
import { faithfulnessSection } from "../components/faithfulness.js";
import { categoryChip } from "../components/panels.js";
import { fmtNum, fmtPct, niceTicks } from "../lib/format.js";
import { captionerOf } from "../lib/phrasematch.js";
import { linkTo } from "../lib/urlstate.js";

const s = svg;
const METRIC_INFO = {
  entropy: { title: "Entropy of span maps", note: "normalised spatial entropy: 0 = one cell, 1 = spread evenly (lower = more localised)" },
  top10: { title: "Top-10% mass of span maps", note: "share of the map in its top tenth of cells (higher = more concentrated)" },
  iou: { title: "IoU of the Otsu mask with SAM 3", note: "over phrases SAM 3 segmented (CVO and ICON)" },
};

function spanLink(state, navigate, ex, label, attrs = {}) {
  const change = { view: "painting", painting: ex.painting, span: ex.span ?? null, token: null, compare: null, mode: "span" };
  return h("a", { href: linkTo(state, change), "data-testid": "example-link", ...attrs,
    onclick: (e) => { if (e.ctrlKey || e.metaKey || e.shiftKey) return; e.preventDefault(); navigate(change); } }, label);
}

/** The values drawn as dots: all of them up to MAX_DOTS, else MAX_DOTS evenly spaced quantiles of
 *  the sorted values (the shape of the distribution, without 100,000 SVG circles to lay out). */
const MAX_DOTS = 400;
export function dots(sorted) {
  if (sorted.length <= MAX_DOTS) return sorted;
  return Array.from({ length: MAX_DOTS }, (_, k) => sorted[Math.round((k * (sorted.length - 1)) / (MAX_DOTS - 1))]);
}

/** A jitter in [-1, 1] that is the same on every render (no Math.random in charts). */
const jitter = (i) => ((Math.sin(i * 12.9898) * 43758.5453) % 1);

function distribution(stats, metric, state, navigate, examplesKey) {
  const rows = CATEGORIES.filter((c) => stats[c] && stats[c][`${metric}_median`] != null);
  if (!rows.length) return null;
  const info = METRIC_INFO[metric];
  const lows = rows.map((c) => stats[c][`${metric}_min`]), highs = rows.map((c) => stats[c][`${metric}_max`]);
  const axis = niceTicks(Math.min(...lows), Math.max(...highs), 5);
  const width = 560, row = 40, left = 62, right = 16, height = rows.length * row + 34;
  const x = (v) => left + ((v - axis.lo) / (axis.hi - axis.lo || 1)) * (width - left - right);
  // a group, not an image: it holds links (the example dots), which an image may not contain
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "group", class: "boxplot",
    "aria-label": `${info.title} by category: medians ${rows.map((c) => `${c} ${fmtNum(stats[c][`${metric}_median`], 3)}`).join(", ")}`,
    "data-testid": `chart-${metric}` });
  axis.ticks.forEach((v) => svg.append(s("line", { x1: x(v), x2: x(v), y1: 6, y2: height - 22, class: "grid" }),
    s("text", { x: x(v), y: height - 6, class: "axis", "text-anchor": "middle" }, String(v))));
  const links = [];
  rows.forEach((c, i) => {
    const st = stats[c], y = 22 + i * row, color = categoryInfo(c).color;
    const q = (k) => st[`${metric}_${k}`];
    svg.append(s("text", { x: 4, y: y + 4, class: "axis label" }, c),
      s("line", { x1: x(q("min")), x2: x(q("max")), y1: y, y2: y, stroke: color }),
      s("rect", { x: x(q("q1")), y: y - 10, width: Math.max(1, x(q("q3")) - x(q("q1"))), height: 20, fill: color,
        "fill-opacity": 0.22, stroke: color }),
      ...dots(st[`${metric}_values`] || []).map((v, k) => s("circle", { cx: x(v), cy: y + jitter(k + i * 997) * 7, r: 2,
        fill: color, "fill-opacity": 0.55 })),
      s("line", { x1: x(q("median")), x2: x(q("median")), y1: y - 11, y2: y + 11, stroke: "#fff", "stroke-width": 2 }),
      s("title", {}, `${c}: median ${fmtNum(q("median"), 3)}, mean ${fmtNum(q("mean"), 3)}, n = ${q("n") ?? st.count}`));
    for (const ex of (examplesKey ? st[examplesKey] : null) || []) {
      const v = ex[metric];
      if (!Number.isFinite(v)) continue;
      const change = { view: "painting", painting: ex.painting, span: ex.span, token: null, compare: null, mode: "span" };
      const a = s("a", { href: linkTo(state, change), class: "example", "data-testid": "chart-example" },
        s("circle", { cx: x(v), cy: y, r: 5.5, fill: "#fff", stroke: color, "stroke-width": 2 }),
        s("title", {}, `${c} “${ex.text}” (${fmtNum(v, 3)}): open`));
      a.addEventListener("click", (e) => { e.preventDefault(); navigate(change); });
      svg.append(a);
      links.push({ c, ex, v });
    }
  });
  const list = links.length ? h("p", { class: "examples small" }, "Open: ", links.map(({ c, ex, v }, k) => [k ? " · " : "",
    categoryChip(c), " ",
    spanLink(state, navigate, ex, `“${ex.text}” (${fmtNum(v, 2)})`)])) : null;
  return h("figure", { class: "chart" }, h("figcaption", {}, h("strong", {}, info.title), h("br"),
    h("span", { class: "muted small" }, info.note)), svg, list);
}

function barChart(title, note, bars, testid) {
  return h("figure", { class: "chart", "data-testid": testid }, h("figcaption", {}, h("strong", {}, title), h("br"),
    h("span", { class: "muted small" }, note)),
  h("div", { class: "bars" }, bars.map(({ label, value, text, color, links }) => h("div", { class: "bar" },
    h("span", { class: "bar-label" }, label),
    h("span", { class: "track", role: "img", "aria-label": `${label}: ${text}` },
      h("span", { class: "fill", style: { width: `${Math.round((value || 0) * 100)}%`, background: color || null } })),
    h("span", {}, text),
    links?.length ? h("span", { class: "bar-links small" }, links) : null))));
}

function samChart(stats, state, navigate) {
  const cats = CATEGORIES.filter((c) => stats[c]?.sam_runs);
  if (!cats.length) return null;
  return barChart("SAM 3 detection rate", "phrases for which SAM 3 segmented at least one instance", cats.map((c) => {
    const st = stats[c];
    const found = (st.iou_examples || []).slice(-1).map((ex) => spanLink(state, navigate, ex, `found: “${ex.text}”`));
    const missed = (st.sam_missed_examples || []).slice(0, 1).map((ex) => spanLink(state, navigate, ex, `missed: “${ex.text}”`));
    return { label: c, value: st.sam_detection_rate, color: categoryInfo(c).color,
      text: `${fmtPct(st.sam_detection_rate)} (${st.sam_detections}/${st.sam_runs})`,
      links: [...found, ...missed].flatMap((a, k) => (k ? [" · ", a] : [a])) };
  }), "chart-sam");
}

function metadataChart(meta, state, navigate) {
  if (!meta || !["artist", "title"].some((k) => meta[k]?.graded)) {
    return h("figure", { class: "chart", "data-testid": "metadata-accuracy" }, h("figcaption", {},
      h("strong", {}, "Does the caption name the painting?")),
    h("p", { class: "muted" }, "No caption of this dataset names a title or artist that could be graded."));
  }
  return barChart("Does the caption name the painting?", "share of captions whose claimed artist / title is right",
    ["artist", "title"].filter((k) => meta[k]?.graded).map((k) => {
      const ex = meta[k].examples || {};
      const links = [...(ex.correct || []).slice(0, 1).map((p) => spanLink(state, navigate, { painting: p }, "a right one")),
        ...(ex.wrong || []).slice(0, 1).map((p) => spanLink(state, navigate, { painting: p }, "a wrong one"))];
      return { label: `${k} right`, value: meta[k].accuracy, text: `${fmtPct(meta[k].accuracy)} (${meta[k].correct}/${meta[k].graded})`,
        links: links.flatMap((a, i) => (i ? [" · ", a] : [a])) };
    }), "metadata-accuracy");
}

const pFmt = (p) => (Number.isFinite(p) ? (p < 0.001 ? p.toExponential(1) : p.toFixed(3)) : "n/a");

function testsBlock(tests) {
  const entries = Object.entries(tests || {}).filter(([, t]) => t);
  if (!entries.length) return h("p", { class: "muted" }, "Not enough spans per category for the tests.");
  return entries.map(([metric, t]) => {
    const k = t.kruskal;
    return h("section", { class: "tests", "data-testid": `tests-${metric}` },
      h("h4", {}, `${METRIC_INFO[metric]?.title || metric}: `,
        k ? `Kruskal–Wallis H = ${fmtNum(k.H, 2)}, p = ${pFmt(k.p)}, ε² = ${fmtNum(k.epsilon_squared, 3)} (n = ${k.n})`
          : "Kruskal–Wallis not defined (identical values)"),
      h("table", {}, h("thead", {}, h("tr", {}, ["pair", "Mann–Whitney U", "p (Holm)", "Cliff's δ"].map((x) => h("th", { scope: "col" }, x)))),
        h("tbody", {}, (t.pairwise || []).map((p) => h("tr", { class: p.p_holm < 0.05 ? "significant" : null },
          h("td", {}, `${p.a} vs ${p.b}`), h("td", {}, fmtNum(p.U, 0)),
          h("td", {}, pFmt(p.p_holm), p.p_holm < 0.05 ? " *" : ""), h("td", {}, fmtNum(p.cliffs_delta, 3)))))));
  });
}

export async function renderDashboard(root, { source, state, navigate }) {
  const [manifest, stats] = await Promise.all([source.manifest(state.dataset), source.stats(state.dataset)]);
  if (!stats) {
    root.replaceChildren(h("section", { class: "dashboard" }, h("h2", {}, `${manifest.name}: dashboard`),
      h("p", { class: "muted", "data-testid": "no-stats" }, "This dataset has no statistics yet: run `tamscope stats DATASET`.")));
    return;
  }
  const models = await modelsSection(source, state.dataset);
  const cats = CATEGORIES.filter((c) => stats[c]);
  const reliance = cats.some((c) => Number.isFinite(stats[c].reliance_median)); // only when tokens had scores
  const table = h("table", { class: "summary", "data-testid": "category-table" },
    h("caption", { class: "muted small" }, "Medians per category"),
    h("thead", {}, h("tr", {}, ["Category", "Phrases", "Entropy", "Top-10%", "IoU", "SAM 3 found",
      reliance ? "Visual reliance" : null].filter(Boolean).map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, cats.map((c) => h("tr", {},
      h("th", { scope: "row" }, categoryChip(c), h("span", { class: "cat-name" }, " ", categoryInfo(c).label)),
      h("td", {}, stats[c].count), h("td", {}, fmtNum(stats[c].entropy_median, 3)),
      h("td", {}, fmtNum(stats[c].top10_median, 3)), h("td", {}, fmtNum(stats[c].iou_median, 3)),
      h("td", {}, stats[c].sam_runs ? `${stats[c].sam_detections}/${stats[c].sam_runs}` : "—"),
      reliance ? h("td", {}, fmtNum(stats[c].reliance_median, 3)) : null))));
  const sm = stats.span_matching;
  root.replaceChildren(h("section", { class: "dashboard", "data-testid": "dashboard" },
    h("h2", {}, `${manifest.name}: dashboard`),
    h("p", { class: "muted" }, `${stats.n_paintings ?? manifest.n_paintings ?? manifest.paintings?.length} paintings, ${stats.n_spans ?? "?"} typed phrases.`,
      sm?.proposed ? ` The span classifier proposed ${sm.proposed} phrases; ${sm.exact + sm.repaired + (sm.approximate || 0)} were found in the captions (${fmtPct(sm.match_rate)}${sm.approximate ? `, ${sm.approximate} approximately` : ""}).` : "",
      " Click a white dot or a phrase to open it."),
    table,
    models,
    h("div", { class: "charts" },
      distribution(stats, "entropy", state, navigate, "examples"),
      distribution(stats, "iou", state, navigate, "iou_examples"),
      samChart(stats, state, navigate),
      metadataChart(stats.metadata, state, navigate)),
    h("h3", {}, "Do the categories differ?"),
    h("p", { class: "muted small" }, "Kruskal–Wallis across categories, then pairwise two-sided Mann–Whitney U with Holm's correction; * marks p < 0.05. Cliff's δ is the effect size (−1 … 1) of the first category over the second."),
    h("div", { class: "tests-grid" }, testsBlock(stats.tests)),
    faithfulnessSection(stats.faithfulness, CATEGORIES)));
}

/** With several datasets served: each one's category medians side by side, one column group per
 *  model (its captioner), for the datasets that have statistics; null with one dataset. */
async function modelsSection(source, current) {
  const datasets = await source.listDatasets();
  if (datasets.length < 2) return null;
  const all = await Promise.all(datasets.map(async (d) => {
    const [manifest, stats] = await Promise.all([source.manifest(d.id).catch(() => null), source.stats(d.id)]);
    return { id: d.id, model: captionerOf(manifest) || "model not recorded", stats };
  }));
  const shown = all.filter((d) => d.stats);
  const without = all.filter((d) => !d.stats).map((d) => d.id);
  const cats = CATEGORIES.filter((c) => shown.some((d) => d.stats[c]));
  const metrics = [["count", "Phrases", (v) => v ?? 0], ["entropy_median", "Entropy", (v) => fmtNum(v, 3)],
    ["top10_median", "Top-10%", (v) => fmtNum(v, 3)], ["iou_median", "IoU", (v) => fmtNum(v, 3)]];
  // one table per model, side by side where the screen is wide enough, stacked on a phone
  const table = shown.length ? h("div", { class: "models-grid", "data-testid": "models-table" }, shown.map((d) =>
    h("table", { class: "summary models-table", "data-dataset": d.id },
      h("caption", {}, h("strong", {}, d.model), " ", h("span", { class: "muted small" },
        d.id === current ? `${d.id} (this dataset)` : d.id)),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Category"), metrics.map(([, label]) => h("th", { scope: "col" }, label)))),
      h("tbody", {}, cats.map((c) => h("tr", { "data-cat": c }, h("th", { scope: "row" }, categoryChip(c)),
        metrics.map(([key, , fmt]) => h("td", { "data-dataset": d.id, "data-key": key },
          d.stats[c] ? fmt(d.stats[c][key]) : "—")))))))) : null;
  return h("section", { class: "models", "data-testid": "models-section", "aria-labelledby": "models-title" },
    h("h3", { id: "models-title" }, "Models side by side"),
    table || h("p", { class: "muted" }, "No served dataset has statistics yet."),
    without.length ? h("p", { class: "muted small" }, `Without statistics: ${without.join(", ")}.`) : null);
}
