// Compare view: one painting as described by several models (one dataset each), phrase by phrase.
// The painting of the dataset in the URL is the base; its counterparts in the other served
// datasets (the same input image, else the same id: backend/compare.py) are the other models.
// Each other model's phrases are paired with the base's (lib/phrasematch.js: same or close);
// a shared phrase (the URL's `span`, an index into the base's spans) shows every model's map of
// it side by side, each on its own canvas, with its numbers; phrases only one model has are
// listed under its caption and can be shown too (`span` stays the base's, `ospan` names
// "<dataset>~<index>" of another model's phrase).

import { categoryChip } from "../components/panels.js";
import { announce, h } from "../dom.js";
import { categoryInfo } from "../lib/categories.js";
import { fmtNum, fmtPct } from "../lib/format.js";
import { captionerOf, pairPhrases } from "../lib/phrasematch.js";
import { linkTo } from "../lib/urlstate.js";
import { paint, renderLayers } from "../overlay.js";

const MAX_SIDE = 1024; // each model's overlay: several side by side, each smaller than the painting view's
let view = null;

export async function renderCompare(root, ctx) {
  const key = `${ctx.state.dataset}/${ctx.state.painting}`;
  if (!view || view.key !== key || !root.contains(view.el)) {
    view = null;
    view = await mount(root, ctx, key);
    if (ctx.state.span === null && view.firstShared !== null) {
      ctx.settle({ span: view.firstShared });
      ctx = { ...ctx, state: { ...ctx.state, span: view.firstShared } };
    }
  }
  await view.update(ctx.state);
}

/** Mean visual reliance of a span's tokens (log P with the image − with a blurred one), or null. */
export function spanReliance(rec, span) {
  const xs = (span.tokens || []).map((t) => rec.tokens?.[t]?.reliance).filter((x) => typeof x === "number");
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
}

async function mount(root, { source, navigate, state }, key) {
  const ds = state.dataset;
  const [base, found] = await Promise.all([source.record(ds, state.painting),
    source.counterparts ? source.counterparts(ds, state.painting).catch(() => []) : []]);
  // one counterpart per dataset (the first: the same image described twice is rare)
  const others = found.filter((c, k) => found.findIndex((x) => x.dataset === c.dataset) === k);
  const records = await Promise.all(others.map((c) => source.record(c.dataset, c.painting)));
  const manifests = await Promise.all([ds, ...others.map((c) => c.dataset)].map((d) => source.manifest(d).catch(() => null)));
  const models = [{ dataset: ds, painting: base.id, rec: base, match: null },
    ...others.map((c, k) => ({ dataset: c.dataset, painting: c.painting, rec: records[k], match: c.match }))]
    .map((m, k) => ({ ...m, model: captionerOf(manifests[k]) || others[k - 1]?.captioner?.id || "model not recorded" }));
  const spansOf = (rec) => (rec.spans || []).filter((x) => typeof x.text === "string");
  const pairings = models.slice(1).map((m) => pairPhrases(spansOf(base), spansOf(m.rec)));
  // shared rows: a base phrase and its partner in each other model (or null)
  const shared = spansOf(base).filter((x) => pairings.some((p) => p.pairs.some((q) => q.a === x.index)))
    .map((x) => ({ base: x.index, partners: pairings.map((p) => p.pairs.find((q) => q.a === x.index) || null) }));
  const ann = base.annotations || {};
  const back = { view: "painting", span: null, ospan: null };

  const head = h("header", { class: "painting-head" },
    h("nav", { class: "crumbs", "aria-label": "Paintings" },
      h("a", { href: linkTo(state, back), "data-testid": "back-to-painting",
        onclick: (e) => { e.preventDefault(); navigate(back); } }, "← painting")),
    h("h2", {}, ann.title || base.id),
    h("p", { class: "muted" }, `Compared across ${models.length} model${models.length === 1 ? "" : "s"}: `,
      [ann.artist, ann.year].filter(Boolean).join(" · ")));
  if (models.length < 2) {
    const el = h("article", { class: "compare-view", "data-testid": "compare-view" }, head,
      h("p", { class: "muted", "data-testid": "compare-empty" }, "No other served dataset holds this painting: serve datasets made by other models ",
        "from the same images (tamscope serve --data A --data B) to compare them."));
    root.replaceChildren(el);
    return { key, el, update: async () => {}, firstShared: null };
  }

  // ---- one column per model: its figure, numbers, caption and phrases of its own
  const columns = models.map((m, k) => {
    const rec = m.rec, W0 = rec.canvas?.width || 1, H0 = rec.canvas?.height || 1;
    const scale = Math.min(1, MAX_SIDE / Math.max(W0, H0));
    const W = Math.max(1, Math.round(W0 * scale)), H = Math.max(1, Math.round(H0 * scale));
    const canvas = h("canvas", { width: W, height: H, class: "overlay", "data-testid": `compare-map-${k}`, "data-drawn": "",
      "data-dataset": m.dataset, role: "img", "aria-label": `map of ${m.model}` });
    const caption = h("figcaption", { "data-testid": `compare-caption-${k}` });
    const numbers = h("div", { class: "numbers-host" });
    const own = k === 0 ? pairings.map((p) => p.onlyA).reduce((acc, xs) => acc.filter((i) => xs.includes(i)))
      : pairings[k - 1].onlyB;
    const ownList = h("ul", { class: "compare-own", "data-testid": `compare-own-${k}` }, own.map((i) => {
      const x = rec.spans[i];
      return h("li", {}, categoryChip(x.category), " ", h("button", { type: "button",
        "data-testid": "own-phrase", "data-index": i, "aria-pressed": "false", disabled: !x.map,
        onclick: () => navigate({ ospan: `${m.dataset}~${i}` }, { replace: true }) }, x.text));
    }));
    const figure = h("figure", { class: "compare-model", "data-testid": `compare-model-${k}` },
      h("div", { class: "stage", style: { aspectRatio: `${W0} / ${H0}`, "--ratio": (W0 / H0).toFixed(4) } },
        h("img", { src: source.canvasUrl(m.dataset, m.painting), alt: "", width: W0, height: H0, class: "canvas-img" }), canvas),
      caption);
    const el = h("section", { class: "compare-col", "aria-label": m.model },
      h("h3", {}, m.model, " ", h("span", { class: "muted small" }, `(dataset ${m.dataset}`,
        m.match ? `, ${m.match === "input" ? "same input image" : "same painting id"}` : "", ")")),
      figure, numbers,
      h("p", { class: "compare-text", "data-testid": `compare-text-${k}` }, rec.caption || "(no caption)"),
      h("h4", {}, own.length ? "Phrases only this model has" : "Every phrase of this model is shared"), ownList);
    return { ...m, W, H, canvas, caption, numbers, el, ownList, gen: 0 };
  });

  // ---- the shared phrases, one row each: base phrase ↔ its partner in each other model
  const rowLabel = (row) => [base.spans[row.base].text, ...row.partners.map((p, k) => (p
    ? `${models[k + 1].rec.spans[p.b].text}${p.how === "close" ? " (close)" : ""}` : "—"))].join(" ↔ ");
  const sharedList = h("ul", { class: "shared-phrases", "data-testid": "shared-phrases",
    "aria-label": "Phrases the models share" }, shared.map((row) => h("li", {}, categoryChip(base.spans[row.base].category), " ",
    h("button", { type: "button", "data-testid": "shared-phrase", "data-index": row.base,
      "aria-pressed": "false", onclick: () => navigate({ span: row.base, ospan: null }, { replace: true }) }, rowLabel(row)))));
  const el = h("article", { class: "compare-view", "data-testid": "compare-view", "data-painting": base.id }, head,
    h("section", { "aria-labelledby": "shared-title" }, h("h3", { id: "shared-title" }, "Shared phrases"),
      shared.length ? sharedList : h("p", { class: "muted", "data-testid": "no-shared" }, "The captions share no phrase."),
      h("p", { class: "muted small" }, "Same: equal ignoring case, accents, punctuation and a leading article. ",
        "Close: every content word of one is in the other.")),
    h("div", { class: "compare-grid" }, columns.map((c) => c.el)));
  root.replaceChildren(el);

  function numbersOf(rec, span) {
    if (!span) return h("p", { class: "muted" }, "This model has no such phrase.");
    const m = span.metrics || {}, rel = spanReliance(rec, span);
    const iou = span.sam?.mask && Number.isFinite(span.sam.iou) ? fmtNum(span.sam.iou, 3) : span.sam ? "SAM 3 found nothing" : "—";
    const rows = [["Phrase", `“${span.text}” (${categoryInfo(span.category).label})`], ["Entropy", fmtNum(m.entropy, 3)],
      ["Top-10% mass", fmtPct(m.top10_mass)], ["Gini", fmtNum(m.gini, 3)], ["IoU Otsu vs SAM 3", iou],
      ["Visual reliance", rel === null ? "—" : `${fmtNum(rel, 3)} (mean over its tokens)`]];
    return h("table", { class: "numbers", "data-testid": "compare-numbers" },
      rows.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v))));
  }

  async function update(next) {
    const row = shared.find((r) => r.base === next.span) || null;
    // a phrase shown alone: another model's (ospan), or a phrase of the base no other model shares
    const own = next.ospan ? { dataset: next.ospan.split("~")[0], index: Number(next.ospan.split("~")[1]) }
      : !row && base.spans?.[next.span] ? { dataset: ds, index: next.span } : null;
    sharedList.querySelectorAll("[data-testid=shared-phrase]").forEach((b) =>
      b.setAttribute("aria-pressed", String(!own && Number(b.dataset.index) === next.span)));
    const look = { cmap: next.cmap, opacity: next.opacity, look: next.look, cut: next.cut, samstyle: next.samstyle };
    columns.forEach((c, k) => {
      c.ownList.querySelectorAll("[data-testid=own-phrase]").forEach((b) =>
        b.setAttribute("aria-pressed", String(own?.dataset === c.dataset && Number(b.dataset.index) === own.index)));
      // the span this column shows: its own phrase, or its partner of the selected shared phrase
      let span = null;
      if (own) span = own.dataset === c.dataset ? c.rec.spans?.[own.index] ?? null : null;
      else if (row) span = k === 0 ? base.spans[row.base] : (row.partners[k - 1] ? c.rec.spans[row.partners[k - 1].b] : null);
      c.caption.textContent = span ? `${span.category} “${span.text}”` : own ? "" : "no such phrase";
      c.numbers.replaceChildren(...(own && !span ? [] : [numbersOf(c.rec, span)]));
      const gen = ++c.gen;
      const spec = { ...look, layers: ["tam"], mapUrl: span?.map ? source.spanMapUrl(c.dataset, c.painting, span.index) : null };
      (spec.mapUrl ? renderLayers(spec, c.W, c.H) : Promise.resolve(null)).then((drawn) => {
        if (gen !== c.gen) return;
        paint(c.canvas, drawn?.drawn.length ? drawn : null);
        c.canvas.dataset.drawn = drawn?.drawn.length ? `tam ${c.dataset} span-${span.index} ${next.cmap}` : "none";
      }, () => { if (gen === c.gen) { paint(c.canvas, null); c.canvas.dataset.drawn = "error"; } });
    });
    if (row) announce(`Compared “${base.spans[row.base].text}” across ${models.length} models`);
  }

  return { key, el, update, firstShared: shared[0]?.base ?? null };
}
