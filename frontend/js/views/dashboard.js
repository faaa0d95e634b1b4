// Dashboard: per-category distributions (box plots in SVG), SAM 3 detection rate, artist vs
// title accuracy and the statistical tests, with links to example phrases.

import { CATEGORIES, CATEGORY_INFO, h } from "../dom.js";
import { fmtNum, fmtPct } from "../lib/format.js";

const SVG = "http://www.w3.org/2000/svg";
const s = (tag, attrs = {}, ...kids) => {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.append(...kids);
  return el;
};

function boxPlot(stats, metric, title) {
  const rows = CATEGORIES.filter((c) => stats[c] && stats[c][`${metric}_median`] != null);
  const width = 520, row = 34, left = 70, right = 20, height = rows.length * row + 30;
  const x = (v) => left + v * (width - left - right);
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${title} by category`,
    class: "boxplot", "data-testid": `boxplot-${metric}` });
  rows.forEach((c, i) => {
    const st = stats[c], y = 15 + i * row, color = CATEGORY_INFO[c].color;
    svg.append(s("text", { x: 4, y: y + 5, class: "axis" }, c),
      s("line", { x1: x(st[`${metric}_min`]), x2: x(st[`${metric}_max`]), y1: y, y2: y, stroke: color }),
      s("rect", { x: x(st[`${metric}_q1`]), y: y - 9, width: Math.max(1, x(st[`${metric}_q3`]) - x(st[`${metric}_q1`])),
        height: 18, fill: color, "fill-opacity": 0.35, stroke: color }),
      s("line", { x1: x(st[`${metric}_median`]), x2: x(st[`${metric}_median`]), y1: y - 9, y2: y + 9, stroke: "#fff",
        "stroke-width": 2 }),
      s("title", {}, `${c}: median ${fmtNum(st[`${metric}_median`], 3)}, mean ${fmtNum(st[`${metric}_mean`], 3)}, n=${st[`${metric}_n`] ?? st.count}`));
  });
  [0, 0.25, 0.5, 0.75, 1].forEach((v) => svg.append(s("text", { x: x(v) - 8, y: height - 4, class: "axis" }, String(v))));
  return h("figure", { class: "chart" }, h("figcaption", {}, title), svg);
}

function examples(stats, state, navigate) {
  return h("ul", { class: "examples" }, CATEGORIES.filter((c) => stats[c]?.examples?.length).map((c) => h("li", {},
    h("strong", { style: { color: CATEGORY_INFO[c].color } }, c), " ",
    stats[c].examples.map((ex) => h("a", { href: `?view=painting&dataset=${state.dataset}&painting=${ex.painting}&span=${ex.span}`,
      "data-testid": "example-link",
      onclick: (e) => { e.preventDefault(); navigate({ view: "painting", painting: ex.painting, span: ex.span, mode: "span" }); } },
    `${ex.text || ex.painting} (${fmtNum(ex.entropy, 2)})`)).flatMap((a) => [a, " "]))));
}

export async function renderDashboard(root, { source, state, navigate }) {
  const [manifest, stats] = await Promise.all([source.manifest(state.dataset), source.stats(state.dataset)]);
  if (!stats) {
    root.replaceChildren(h("p", { class: "muted" }, "This dataset has no statistics yet (run `tamscope stats DATASET`)."));
    return;
  }
  const table = h("table", { class: "summary", "data-testid": "category-table" },
    h("thead", {}, h("tr", {}, ["Category", "Spans", "Entropy mean", "Top-10% mean", "IoU mean", "SAM detections"]
      .map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, CATEGORIES.filter((c) => stats[c]).map((c) => h("tr", {},
      h("th", { scope: "row" }, c), h("td", {}, stats[c].count), h("td", {}, fmtNum(stats[c].entropy_mean, 3)),
      h("td", {}, fmtNum(stats[c].top10_mean, 3)), h("td", {}, fmtNum(stats[c].iou_mean, 3)),
      h("td", {}, stats[c].sam_runs ? `${stats[c].sam_detections}/${stats[c].sam_runs} (${fmtPct(stats[c].sam_detection_rate)})` : "—")))));
  const meta = stats.metadata || {};
  const acc = (k) => meta[k] ? `${fmtPct(meta[k].accuracy)} (${meta[k].correct}/${meta[k].graded})` : "n/a";
  const bars = h("div", { class: "bars", "data-testid": "metadata-accuracy" }, ["artist", "title"].map((k) => h("div", { class: "bar" },
    h("span", {}, `${k} right`), h("span", { class: "fill", style: { width: `${Math.round((meta[k]?.accuracy || 0) * 100)}%` } }),
    h("span", {}, acc(k)))));
  const tests = stats.tests || {};
  const testBlock = Object.entries(tests).map(([metric, t]) => h("section", { class: "tests", "data-testid": `tests-${metric}` },
    h("h4", {}, `${metric}: Kruskal–Wallis H = ${fmtNum(t.kruskal?.H, 2)}, p = ${t.kruskal?.p?.toExponential?.(2) ?? "n/a"}, ε² = ${fmtNum(t.kruskal?.epsilon_squared, 3)}`),
    h("table", {}, h("thead", {}, h("tr", {}, ["pair", "U", "p (Holm)", "Cliff's δ"].map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, (t.pairwise || []).map((p) => h("tr", {}, h("td", {}, `${p.a} vs ${p.b}`), h("td", {}, fmtNum(p.U, 0)),
        h("td", {}, p.p_holm?.toExponential?.(2) ?? "n/a"), h("td", {}, fmtNum(p.cliffs_delta, 3))))))));
  root.replaceChildren(h("section", { class: "dashboard" },
    h("h2", {}, `${manifest.name}: dashboard`),
    h("p", { class: "muted" }, `${stats.n_paintings ?? manifest.paintings.length} paintings. Entropy is normalised spatial entropy of the span map (0 = one cell, 1 = uniform).`),
    h("div", { class: "charts" }, boxPlot(stats, "entropy", "Entropy of span maps"), boxPlot(stats, "iou", "IoU of Otsu mask vs SAM 3")),
    table, h("h3", {}, "Does the caption name the painting?"), bars,
    h("h3", {}, "Tests across categories"), testBlock,
    h("h3", {}, "Example phrases (lowest, median, highest entropy)"), examples(stats, state, navigate)));
}
