// The phrase atlas: where does the model look when it says "Madonna", "sky" or "brushstrokes"?
// Phrases searched across every painting of the dataset (words of the phrase, a category, a
// highest entropy), shown as a grid of painting crops with the phrase's map over each, sortable
// by metric; every crop links to its painting with the phrase selected. Above the grid, the
// matches' numbers (n, median entropy, median IoU with SAM 3) next to their category's.
// The whole query lives in the URL (aq, acat, emax, asort, adesc, page): a deep link like any other.

import { h } from "../dom.js";
import { CATEGORIES, categoryInfo } from "../lib/categories.js";
import { categoryChip, pagerNav } from "../components/panels.js";
import { lut } from "../lib/colormap.js";
import { fmtNum } from "../lib/format.js";
import { linkTo } from "../lib/urlstate.js";
import { loadGrid } from "../overlay.js";

const PAGE = 48;
const CROP = 168; // px: the side of a crop's box
const SORTS = [["painting", "painting order"], ["entropy", "entropy"], ["gini", "Gini"], ["top10", "top-10% mass"],
  ["iou", "IoU with SAM 3"], ["text", "phrase"]];

/** The grid cells of a map at or above its Otsu threshold, as a box in 0..1 of the picture,
 *  widened to a square-ish context (the phrase alone is often a few cells). */
export function cropBox(values, w, h, threshold) {
  let x0 = w, y0 = h, x1 = -1, y1 = -1;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    if (values[y * w + x] >= threshold) { x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y); }
  }
  if (x1 < 0) return { x: 0, y: 0, w: 1, h: 1 };
  // one cell of margin, and at least 40% of each side
  const side = (a, b, n) => {
    let lo = Math.max(0, a - 1), hi = Math.min(n, b + 2);
    const min = Math.ceil(0.4 * n);
    while (hi - lo < min) { if (lo > 0) lo--; if (hi - lo < min && hi < n) hi++; }
    return [lo / n, (hi - lo) / n];
  };
  const [x, cw] = side(x0, x1, w), [y, ch] = side(y0, y1, h);
  return { x, y, w: cw, h: ch };
}

async function drawCrop(canvas, thumbUrl, mapUrl, threshold) {
  const [img, grid] = await Promise.all([new Promise((resolve, reject) => {
    const im = new Image();
    im.onload = () => resolve(im);
    im.onerror = () => reject(new Error(`thumbnail ${thumbUrl}`));
    im.src = thumbUrl;
  }), mapUrl ? loadGrid(mapUrl) : null]);
  const box = grid ? cropBox(grid.values, grid.w, grid.h, threshold ?? 128) : { x: 0, y: 0, w: 1, h: 1 };
  const sw = box.w * img.naturalWidth, sh = box.h * img.naturalHeight;
  const scale = Math.min(CROP / sw, CROP / sh);
  canvas.width = Math.round(sw * scale);
  canvas.height = Math.round(sh * scale);
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, box.x * img.naturalWidth, box.y * img.naturalHeight, sw, sh, 0, 0, canvas.width, canvas.height);
  if (!grid) return;
  // the map in inferno, its alpha rising with the value (the painting shows where the map is low)
  const colours = lut("inferno");
  const cells = new ImageData(grid.w, grid.h);
  for (let i = 0; i < grid.values.length; i++) {
    const v = grid.values[i];
    cells.data.set([colours[v * 3], colours[v * 3 + 1], colours[v * 3 + 2], Math.round(v * 0.8)], i * 4);
  }
  const small = new OffscreenCanvas(grid.w, grid.h);
  small.getContext("2d").putImageData(cells, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(small, box.x * grid.w, box.y * grid.h, box.w * grid.w, box.h * grid.h, 0, 0, canvas.width, canvas.height);
  canvas.dataset.drawn = "1";
}

function summaryTable(result, state) {
  const cats = state.acat ? [state.acat] : CATEGORIES.filter((c) => result.categories[c]);
  const row = (label, n, ent, iou, attrs = {}) => h("tr", attrs, h("th", { scope: "row" }, label), h("td", {}, String(n)),
    h("td", {}, fmtNum(ent, 3)), h("td", {}, fmtNum(iou, 3)));
  const s = result.summary;
  return h("table", { class: "atlas-summary", "data-testid": "atlas-summary" },
    h("caption", {}, "The matching phrases and, for comparison, every phrase of their category in the dataset"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "phrases"), h("th", { scope: "col" }, "n"),
      h("th", { scope: "col" }, "median entropy"), h("th", { scope: "col" }, "median IoU"))),
    h("tbody", {},
      row("these matches", s.n, s.median_entropy, s.median_iou, { "data-testid": "atlas-summary-matches" }),
      ...cats.filter((c) => result.categories[c]).map((c) => {
        const k = result.categories[c];
        return row(`all ${c}`, k.n, k.median_entropy, k.median_iou, { "data-testid": `atlas-summary-${c}` });
      })));
}

export async function renderAtlas(root, { source, state, navigate }) {
  const query = { q: state.aq, category: state.acat, entropy_max: state.emax, sort: state.asort,
    order: state.adesc ? "desc" : "asc", offset: state.page * PAGE, limit: PAGE };
  const [manifest, result] = await Promise.all([source.manifest(state.dataset), source.atlas(state.dataset, query)]);
  const box = h("input", { type: "search", id: "atlas-search", value: state.aq, placeholder: "madonna, sky, brushstrokes…",
    autocomplete: "off", "data-testid": "atlas-search" });
  const commit = () => navigate({ aq: box.value.trim(), page: 0 }, { focus: "atlas-search" });
  box.addEventListener("keydown", (e) => { if (e.key === "Enter") commit(); });
  box.addEventListener("change", commit);
  const choose = (id, label, value, options, onchange) => h("label", { class: "control", for: id }, h("span", {}, label),
    h("select", { id, "data-testid": id, onchange: (e) => onchange(e.target.value) },
      options.map(([v, t]) => h("option", { value: v, selected: String(v) === String(value ?? "") }, t))));
  const filters = h("div", { class: "filters", role: "search", "aria-label": "Search phrases" },
    h("label", { class: "control", for: "atlas-search" }, h("span", {}, "Phrase"), box),
    choose("atlas-category", "Category", state.acat, [["", "any category"], ...CATEGORIES.map((c) => [c, `${c}: ${categoryInfo(c).label}`])],
      (v) => navigate({ acat: v, page: 0 }, { focus: "atlas-category" })),
    choose("atlas-emax", "Entropy", state.emax, [["", "any entropy"], ...[0.5, 0.6, 0.7, 0.8, 0.9, 0.95].map((x) => [x, `below ${x}`])],
      (v) => navigate({ emax: v === "" ? null : Number(v), page: 0 }, { focus: "atlas-emax" })),
    choose("atlas-sort", "Sort by", state.asort, SORTS, (v) => navigate({ asort: v, page: 0 }, { focus: "atlas-sort" })),
    choose("atlas-order", "Order", state.adesc ? "1" : "", [["", "ascending"], ["1", "descending"]],
      (v) => navigate({ adesc: v === "1", page: 0 }, { focus: "atlas-order" })));
  const cards = result.items.map((item) => {
    const change = { view: "painting", painting: item.painting, span: item.index, token: null, compare: null, mode: "span" };
    const canvas = h("canvas", { class: "atlas-crop", width: CROP, height: CROP, role: "img",
      "aria-label": `${item.text} in ${item.title || item.painting}: the phrase's map over the painting` });
    const mapUrl = item.has_map ? source.spanMapUrl(state.dataset, item.painting, item.index, item.map) : null;
    drawCrop(canvas, source.thumbUrl(state.dataset, item.painting, item.thumb), mapUrl, item.otsu)
      .catch(() => canvas.classList.add("atlas-crop-failed"));
    return h("li", { class: "card atlas-card" },
      h("a", { href: linkTo(state, change), "data-testid": "atlas-item", "data-painting": item.painting,
        "data-span": String(item.index), "data-entropy": item.entropy ?? "",
        onclick: (e) => {
          if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
          e.preventDefault();
          navigate(change);
        } },
      h("span", { class: "thumb" }, canvas),
      h("span", { class: "card-title" }, categoryChip(item.category), " ", item.text),
      h("span", { class: "card-meta" }, [item.title || item.painting, item.artist].filter(Boolean).join(", ")),
      h("span", { class: "card-meta" }, `entropy ${fmtNum(item.entropy, 3)}`,
        item.iou != null ? ` · IoU ${fmtNum(item.iou, 3)}` : item.sam === false ? " · SAM 3: nothing" : "")));
  });
  const pager = pagerNav(Math.ceil(result.total / PAGE), state.page, navigate);
  root.replaceChildren(h("section", { class: "atlas gallery", "aria-labelledby": "atlas-heading", "data-testid": "atlas" },
    h("div", { class: "toolbar" },
      h("h2", { id: "atlas-heading" }, `${manifest.name}: phrase atlas`),
      h("span", { class: "count", "data-testid": "atlas-count", role: "status" },
        `${result.total} phrase${result.total === 1 ? "" : "s"}`)),
    h("p", { class: "muted" }, "Where the model looks when it says a phrase, across every painting: each crop shows "
      + "the phrase's map (brighter = more attention) over the part of the painting it covers."),
    filters, summaryTable(result, state),
    cards.length ? h("ul", { class: "cards" }, cards)
      : h("p", { class: "muted", "data-testid": "atlas-empty" }, result.needs_words
        ? "Type a word of a phrase: this static copy of the explorer finds phrases by their words."
        : "No phrase matches."),
    pager));
}
