// Painting view: the canvas with its overlay, the caption with typed spans (or every token),
// the numbers of the selected span, the metadata card and a side-by-side compare panel.

import { announce, CATEGORIES, CATEGORY_INFO, h } from "../dom.js";
import { COLORMAPS } from "../lib/colormap.js";
import { fmtNum, fmtPct, percentileRank } from "../lib/format.js";
import { drawOverlay, exportPng, mapAtCanvas } from "../overlay.js";

const timings = (window.__tamscopeTimings = window.__tamscopeTimings || []);

function relianceStyle(token, on) {
  if (!on || typeof token.reliance !== "number") return {};
  const x = Math.max(-1, Math.min(1, token.reliance / 2)); // log-ratio: + leans on the image, - on language
  return { "--rel": x.toFixed(3) };
}

/** Caption pieces: text outside spans, and span runs; each made of token pieces when tokens exist. */
function captionPieces(rec) {
  const pieces = [];
  let at = 0;
  const spans = [...rec.spans].sort((a, b) => a.start - b.start);
  for (const span of spans) {
    if (span.start > at) pieces.push({ start: at, end: span.start, span: null });
    pieces.push({ start: span.start, end: span.end, span });
    at = span.end;
  }
  if (at < rec.caption.length) pieces.push({ start: at, end: rec.caption.length, span: null });
  return pieces;
}

function tokenRun(rec, start, end, state, onToken) {
  const toks = rec.tokens.filter((t) => t.end > start && t.start < end && t.end > t.start);
  if (!toks.length) return [rec.caption.slice(start, end)];
  const out = [];
  let at = start;
  for (const t of toks) {
    const a = Math.max(t.start, at), b = Math.min(t.end, end);
    if (a > at) out.push(rec.caption.slice(at, a));
    const text = rec.caption.slice(a, b);
    if (onToken) {
      out.push(h("button", { class: "tok", "aria-pressed": String(state.token === t.index), "data-testid": "token-button",
        "data-index": t.index, style: relianceStyle(t, state.reliance),
        title: typeof t.reliance === "number" ? `visual reliance ${t.reliance.toFixed(2)}` : null,
        onclick: () => onToken(t.index) }, text));
    } else {
      out.push(h("span", { class: state.reliance ? "tok rel" : "tok", style: relianceStyle(t, state.reliance) }, text));
    }
    at = b;
  }
  if (at < end) out.push(rec.caption.slice(at, end));
  return out;
}

function numbersPanel(span, stats) {
  if (!span) return h("p", { class: "muted" }, "Select a phrase to see its numbers.");
  const m = span.metrics || {};
  const cat = stats?.[span.category] || {};
  const rank = percentileRank(m.entropy, cat.entropy_values);
  const row = (label, value, note) => h("tr", {}, h("th", { scope: "row" }, label), h("td", {}, value),
    h("td", { class: "muted" }, note || ""));
  let sam = "does not apply (only CVO and ICON phrases are segmented)";
  if (span.sam) sam = span.sam.mask ? `${span.sam.instances} instance(s), IoU with Otsu ${fmtNum(span.sam.iou)}`
    : "SAM 3 found nothing for this phrase";
  return h("table", { class: "numbers", "data-testid": "numbers" },
    row("Entropy", fmtNum(m.entropy, 3), rank === null ? "" :
      `${Math.round(rank)}th percentile of ${span.category} (lower = more localised)`),
    row("Top-10% mass", fmtPct(m.top10_mass), "share of the map in its top tenth of cells"),
    row("Gini", fmtNum(m.gini, 3), ""),
    row("Otsu threshold", span.otsu_threshold ?? "n/a", "on the 8-bit map resized to the canvas"),
    row("SAM 3", span.sam?.mask ? `${span.sam.instances}` : "—", sam));
}

function metadataCard(rec) {
  const meta = rec.metadata, ann = rec.annotations || {};
  if (!meta) return null;
  const verdict = (ok) => (ok === true ? h("span", { class: "ok" }, "✓ correct") : ok === false
    ? h("span", { class: "wrong" }, "✗ wrong") : h("span", { class: "muted" }, "not graded"));
  return h("section", { class: "meta-card", "aria-label": "What the caption claims", "data-testid": "metadata-card" },
    h("h3", {}, "Claimed identity"),
    h("dl", {},
      h("dt", {}, "Title claimed"), h("dd", {}, meta.title_claimed || "none", " ", verdict(meta.title_correct)),
      h("dt", {}, "Artist claimed"), h("dd", {}, meta.artist_claimed || "none", " ", verdict(meta.artist_correct)),
      h("dt", {}, "Ground truth"), h("dd", {}, [ann.title, ann.artist].filter(Boolean).join(" — ") || "unknown")));
}

export async function renderPainting(root, { source, state, navigate }) {
  const [rec, statsAll] = await Promise.all([source.record(state.dataset, state.painting),
    source.stats(state.dataset)]);
  const W = rec.canvas?.width || 1, H = rec.canvas?.height || 1;
  const tokenMode = state.mode === "token" && rec.tokens.length > 0;
  const span = !tokenMode && state.span !== null ? rec.spans[state.span] : null;
  const token = tokenMode && state.token !== null ? rec.tokens[state.token] : null;
  const selectSpan = (i) => navigate({ span: i, token: null }, { replace: false, focus: `span-${i}` });

  const img = h("img", { src: source.canvasUrl(state.dataset, rec.id), alt: rec.annotations?.title || rec.id,
    width: W, height: H, class: "canvas-img", "data-testid": "painting-canvas" });
  const overlay = h("canvas", { width: W, height: H, class: "overlay", "data-testid": "overlay",
    "aria-label": "map overlay" });
  const readout = h("output", { class: "readout", "data-testid": "readout" }, "point at the picture to read the map");
  const stage = h("div", { class: "stage", style: { aspectRatio: `${W} / ${H}` } }, img, overlay);

  const mapUrl = span?.map ? source.spanMapUrl(state.dataset, rec.id, span.index)
    : token?.map ? source.tokenMapUrl(state.dataset, rec.id, token.index) : null;
  const samUrl = span?.sam?.mask ? source.samMaskUrl(state.dataset, rec.id, span.index) : null;
  const ref = span?.map || token?.map;
  stage.addEventListener("pointermove", async (e) => {
    if (!mapUrl) return;
    const box = overlay.getBoundingClientRect();
    const x = Math.floor(((e.clientX - box.left) / box.width) * W), y = Math.floor(((e.clientY - box.top) / box.height) * H);
    const values = await mapAtCanvas(mapUrl, W, H);
    const v = values[Math.max(0, Math.min(H - 1, y)) * W + Math.max(0, Math.min(W - 1, x))];
    readout.textContent = `map ${(v / 255).toFixed(2)}` + (ref ? ` (≈ ${(ref.lo + (v / 255) * (ref.hi - ref.lo)).toFixed(3)} raw)` : "");
  });

  // controls
  const control = (label, el) => h("label", { class: "control" }, h("span", {}, label), el);
  const overlaySelect = h("select", { "data-testid": "overlay-select", onchange: (e) => navigate({ overlay: e.target.value }, { replace: true }) },
    [["tam", "TAM heatmap"], ["otsu", "Otsu mask"], ["sam", "SAM 3 mask"], ["none", "none"]].map(([v, t]) =>
      h("option", { value: v, selected: state.overlay === v }, t)));
  const cmapSelect = h("select", { "data-testid": "cmap-select", onchange: (e) => navigate({ cmap: e.target.value }, { replace: true }) },
    COLORMAPS.map((c) => h("option", { value: c, selected: state.cmap === c }, c)));
  const opacity = h("input", { type: "range", min: 0, max: 1, step: 0.05, value: state.opacity, "data-testid": "opacity",
    onchange: (e) => navigate({ opacity: Number(e.target.value) }, { replace: true }) });
  const modeButtons = ["span", "token"].map((m) => h("button", { "aria-pressed": String((m === "token") === tokenMode),
    "data-testid": `mode-${m}`, disabled: m === "token" && !rec.tokens.length,
    onclick: () => navigate({ mode: m, span: null, token: null }) }, m === "span" ? "Phrases" : "Tokens"));
  const reliance = h("button", { "aria-pressed": String(state.reliance), "data-testid": "reliance-toggle",
    disabled: !rec.tokens.some((t) => typeof t.reliance === "number"),
    onclick: () => navigate({ reliance: !state.reliance }, { replace: true }) }, "Visual reliance");
  const exportButton = h("button", { "data-testid": "export-png", disabled: !mapUrl && !samUrl, onclick: async () => {
    const blob = await exportPng(img, overlay);
    const a = h("a", { href: URL.createObjectURL(blob), download: `${rec.id}-${span ? `span${span.index}` : `token${token?.index}`}-${state.overlay}.png` });
    document.body.append(a); a.click(); a.remove();
  } }, "Export PNG");
  const compareSelect = h("select", { "data-testid": "compare-select", disabled: !span,
    onchange: (e) => navigate({ compare: e.target.value === "" ? null : Number(e.target.value) }, { replace: true }) },
  h("option", { value: "" }, "compare with…"),
  span?.sam?.mask ? h("option", { value: span.index, selected: state.compare === span.index }, "this phrase's SAM 3 mask") : null,
  rec.spans.filter((s) => s !== span && s.map).map((s) => h("option", { value: s.index, selected: state.compare === s.index },
    `${s.category}: ${s.text}`)));

  // caption
  const pieces = captionPieces(rec);
  const caption = h("p", { class: "caption", "data-testid": "caption" }, pieces.map((piece) => {
    if (tokenMode) return tokenRun(rec, piece.start, piece.end, state, (i) => navigate({ token: i, span: null }));
    if (!piece.span) return tokenRun(rec, piece.start, piece.end, state, null);
    const s = piece.span;
    return h("button", { class: "span", id: `span-${s.index}`, "aria-pressed": String(state.span === s.index),
      "data-testid": "span-button", "data-index": s.index, "data-cat": s.category,
      style: { "--cat": CATEGORY_INFO[s.category].color }, title: CATEGORY_INFO[s.category].label,
      onclick: () => selectSpan(s.index) }, tokenRun(rec, s.start, s.end, state, null));
  }));
  caption.addEventListener("keydown", (e) => {
    if (tokenMode || !["ArrowRight", "ArrowLeft", "ArrowDown", "ArrowUp"].includes(e.key) || !rec.spans.length) return;
    e.preventDefault();
    const order = [...rec.spans].sort((a, b) => a.start - b.start).map((s) => s.index);
    const at = order.indexOf(state.span);
    const step = e.key === "ArrowRight" || e.key === "ArrowDown" ? 1 : -1;
    selectSpan(order[(at + step + order.length) % order.length] ?? order[0]);
  });
  const counts = Object.fromEntries(CATEGORIES.map((c) => [c, rec.spans.filter((s) => s.category === c).length]));
  const legend = h("ul", { class: "legend", "aria-label": "Categories" }, CATEGORIES.map((c) => h("li", {},
    h("span", { class: "swatch", style: { "--cat": CATEGORY_INFO[c].color } }), `${c} ${CATEGORY_INFO[c].label} (${counts[c]})`)));

  let note = "";
  if (!span && !token) note = tokenMode ? "Click a token to see its map." : "Click a coloured phrase to see where the model looked.";
  else if (state.overlay === "sam" && span && !span.sam) note = "SAM 3 does not apply to this category (only CVO and ICON).";
  else if (state.overlay === "sam" && span?.sam && !span.sam.mask) note = "SAM 3 found nothing for this phrase.";
  else if (state.overlay === "sam" && token) note = "SAM 3 masks belong to phrases; switch to phrases.";
  else if (state.overlay === "otsu" && span && span.otsu_threshold == null) note = "No Otsu threshold recorded.";
  const selection = span ? `${span.category} “${span.text}”` : token ? `token “${token.text}”` : "nothing selected";

  const comparePanel = span && state.compare !== null ? h("figure", { class: "compare", "data-testid": "compare" },
    h("div", { class: "stage", style: { aspectRatio: `${W} / ${H}` } },
      h("img", { src: img.src, alt: "", width: W, height: H, class: "canvas-img" }),
      h("canvas", { width: W, height: H, class: "overlay", "data-testid": "compare-overlay" })),
    h("figcaption", {}, state.compare === span.index ? "SAM 3 mask of this phrase"
      : `${rec.spans[state.compare]?.category}: ${rec.spans[state.compare]?.text}`)) : null;

  const ann = rec.annotations || {};
  root.replaceChildren(h("article", { class: "painting" },
    h("header", { class: "painting-head" },
      h("a", { href: `?dataset=${state.dataset}`, onclick: (e) => { e.preventDefault(); navigate({ view: "gallery", painting: null, span: null, token: null, compare: null }); } }, "← gallery"),
      h("h2", {}, ann.title || rec.id), h("p", { class: "muted" }, [ann.artist, ann.year, ann.style].filter(Boolean).join(" · "))),
    h("div", { class: "painting-body" },
      h("div", { class: "figure-col" },
        h("div", { class: "figures" }, h("figure", {}, stage, h("figcaption", {}, selection)), comparePanel),
        readout,
        h("div", { class: "controls", role: "group", "aria-label": "Overlay settings" },
          h("div", { class: "seg" }, modeButtons), control("Overlay", overlaySelect), control("Colormap", cmapSelect),
          control("Opacity", opacity), reliance, compareSelect, exportButton),
        h("p", { class: "note", "data-testid": "overlay-note" }, note)),
      h("div", { class: "text-col" },
        rec.caption ? caption : h("p", { class: "muted" }, "No caption: this painting failed to process.",
          ...(rec.failures || []).map((f) => h("span", { class: "failure" }, ` ${f.stage}: ${f.error}`))),
        legend, numbersPanel(span, statsAll), metadataCard(rec)))));

  // draw after layout: the box is reserved by aspect-ratio, so nothing shifts when it lands
  const t0 = performance.now();
  const kind = state.overlay;
  const drawn = await drawOverlay(overlay, { kind, mapUrl, samUrl, threshold: span?.otsu_threshold, cmap: state.cmap,
    opacity: state.opacity });
  overlay.dataset.drawn = drawn.drawn ? "1" : "0";
  if (state.clickedAt) timings.push({ what: "overlay", ms: performance.now() - state.clickedAt });
  timings.push({ what: "draw", ms: performance.now() - t0 });
  if (comparePanel) {
    const other = comparePanel.querySelector("canvas");
    const sameSam = state.compare === span.index;
    await drawOverlay(other, sameSam ? { kind: "sam", samUrl, opacity: state.opacity }
      : { kind: "tam", mapUrl: source.spanMapUrl(state.dataset, rec.id, state.compare), cmap: state.cmap, opacity: state.opacity });
  }
  announce(span || token ? `Selected ${selection}` : "");
}
