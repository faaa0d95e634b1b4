// Painting view: the canvas with its stacked overlay layers, the caption with typed phrases
// (or every token), the selected phrase's numbers, the claimed-identity card and a
// side-by-side compare panel.
//
// The view is mounted once per painting and then updated in place from the URL state: a
// click on a phrase only flips aria-pressed, refreshes the small panels and repaints the
// overlay canvas (which keeps its box: no layout shift, no blank frame, focus stays put).
// A painting opens with its first phrase selected; selections replace the history entry, so
// Back leaves the painting instead of walking through every phrase clicked.

import { buildCaption } from "../components/caption.js";
import { curvesPanel } from "../components/faithfulness.js";
import { layerControls, layerKey } from "../components/layers.js";
import { legend, metadataCard, numbersPanel } from "../components/panels.js";
import { announce, h } from "../dom.js";
import { exportPng } from "../export.js";
import { categoryInfo } from "../lib/categories.js";
import { methodLabel, methodsOf, resultOf, tokenSubject } from "../lib/faithfulness.js";
import { fmtNum } from "../lib/format.js";
import { otsuThreshold } from "../lib/otsu.js";
import { layoutSpans, matchNote, stepIn } from "../lib/spans.js";
import { tamInfo, tokenMapNotes } from "../lib/tam.js";
import { linkTo } from "../lib/urlstate.js";
import { mapAtCanvas, paint, prefetch, prepare, probe, renderLayers } from "../overlay.js";

const MAX_SIDE = 2048; // overlay resolution cap: bounded memory and time on huge canvases
let view = null; // the mounted painting
const SELECT = { replace: true }; // selections and settings: no Back step of their own

export async function renderPainting(root, ctx) {
  const key = `${ctx.state.dataset}/${ctx.state.painting}`;
  let state = ctx.state;
  if (!view || view.key !== key || !root.contains(view.el)) {
    view = null;
    view = await mount(root, ctx, key);
    // a painting opens with its first phrase selected (recorded in the URL, so links and Back agree)
    if (state.mode === "span" && state.span === null && state.token === null && view.firstPhrase !== null) {
      state = { ...state, span: view.firstPhrase };
      ctx.settle({ span: view.firstPhrase });
    }
  }
  await view.update(state);
}

/** `serve --live`: a link to the Ask view with this painting as the image (none elsewhere). */
function askLink(source, ds, rec, navigate) {
  if (!source.live || !rec.canvas) return null;
  const change = { view: "ask", dataset: ds, painting: rec.id, span: null, token: null, compare: null, job: null };
  return h("a", { class: "button-link", href: linkTo({}, change), "data-testid": "ask-about",
    onclick: (e) => { if (e.button === 0 && !e.ctrlKey && !e.metaKey) { e.preventDefault(); navigate(change); } } },
  "Ask about this painting");
}

/** Otsu threshold of a token map computed here, as cv2 would (tokens carry no recorded threshold). */
const browserOtsu = new Map();
async function thresholdFor(url, W, H) {
  if (!browserOtsu.has(url)) browserOtsu.set(url, mapAtCanvas(url, W, H).then((v) => otsuThreshold(v)));
  return browserOtsu.get(url);
}

async function mount(root, { source, navigate, state }, key) {
  const ds = state.dataset;
  // the same painting in other served datasets (other models): a link to the compare view
  const counterparts = source.counterparts ? source.counterparts(ds, state.painting).catch(() => []) : Promise.resolve([]);
  const [rec, stats, around] = await Promise.all([source.record(ds, state.painting), source.stats(ds),
    source.neighbours(ds, state.painting).catch(() => ({ previous: null, next: null }))]);
  const W0 = rec.canvas?.width || 1, H0 = rec.canvas?.height || 1;
  const scale = Math.min(1, MAX_SIDE / Math.max(W0, H0));
  const W = Math.max(1, Math.round(W0 * scale)), H = Math.max(1, Math.round(H0 * scale));
  const caption = rec.caption || "";
  const layout = layoutSpans(caption, rec.spans || []);
  const hasTokens = (rec.tokens || []).some((t) => t.map);
  const hasReliance = (rec.tokens || []).some((t) => typeof t.reliance === "number");
  const ann = rec.annotations || {};
  const tam = tamInfo(rec); // which TAM variant made the token maps
  let current = state; // the state last applied
  let drawGen = 0, compareGen = 0;
  let shown = null; // what the overlay canvas holds now: {drawn, threshold} (for the export)

  // ---- the picture
  const img = h("img", { src: source.canvasUrl(ds, rec.id), alt: ann.title ? `${ann.title}${ann.artist ? `, ${ann.artist}` : ""}` : rec.id,
    width: W0, height: H0, class: "canvas-img", "data-testid": "painting-canvas", decoding: "async" });
  const overlay = h("canvas", { width: W, height: H, class: "overlay", "data-testid": "overlay", "data-drawn": "",
    role: "img", "aria-label": "map overlay" });
  // the box is reserved before anything loads (no layout shift); tall paintings fit the screen
  const box = { aspectRatio: `${W0} / ${H0}`, "--ratio": (W0 / H0).toFixed(4) };
  const stage = h("div", { class: "stage", style: box }, img, overlay);
  const figcaption = h("figcaption", { "data-testid": "selection" });
  const cmpImg = h("img", { alt: "", width: W0, height: H0, class: "canvas-img" });
  const cmpCanvas = h("canvas", { width: W, height: H, class: "overlay", "data-testid": "compare-overlay", "data-drawn": "" });
  const cmpCaption = h("figcaption", {});
  const comparePanel = h("figure", { class: "compare", "data-testid": "compare", hidden: true },
    h("div", { class: "stage", style: box }, cmpImg, cmpCanvas), cmpCaption);
  const readout = h("output", { class: "readout", "data-testid": "readout" }, "point at (or tap) the picture to read the map");
  const scaleBox = h("div", { class: "scale-box" });
  const note = h("p", { class: "note", "data-testid": "overlay-note" });
  img.decode().then(() => {
    if (!performance.getEntriesByName("tamscope:painting-shown").length) performance.mark("tamscope:painting-shown");
  }, () => {});

  // ---- controls (every change is a URL change: shareable; settings and selections replace the entry)
  const modeGroup = h("div", { class: "seg", role: "group", "aria-label": "Select by" },
    [["span", "Phrases"], ["token", "Tokens"]].map(([v, t]) => h("button", { type: "button", "aria-pressed": "false",
      "data-testid": `mode-${v}`, "data-value": v }, t)));
  const modeButtons = [...modeGroup.children];
  modeButtons.forEach((b) => b.addEventListener("click", () => navigate({ mode: b.dataset.value, span: null, token: null,
    compare: null }, SELECT)));
  if (!hasTokens) {
    modeButtons[1].disabled = true;
    modeButtons[1].title = "this dataset has no per-token maps";
  }
  const layers = layerControls(navigate);
  const relianceButton = h("button", { type: "button", "aria-pressed": "false", "data-testid": "reliance-toggle",
    disabled: !hasReliance, title: hasReliance ? "shade each token by log P(token | image) − log P(token | blurred image)"
      : "this dataset has no visual-reliance scores",
    onclick: () => navigate({ reliance: !current.reliance }, SELECT) }, "Visual reliance");
  const highlightSelect = h("select", { "data-testid": "highlight-select",
    onchange: (e) => navigate({ highlight: e.target.value }, SELECT) },
  h("option", { value: "solid" }, "solid colour"), h("option", { value: "underline" }, "underline"));
  const compareSelect = h("select", { class: "compare-select", "data-testid": "compare-select", "aria-label": "Compare with",
    onchange: (e) => {
      const v = e.target.value; // "m:<method>": this phrase by another method; a number: another phrase
      navigate(v.startsWith("m:") ? { compare: null, cmethod: v.slice(2) }
        : { compare: v === "" ? null : Number(v), cmethod: null }, SELECT);
    } });
  // the faithfulness stage's methods (docs/faithfulness.md): the map shown can be another method's
  const allMethods = [...new Set((rec.spans || []).flatMap(methodsOf))];
  const methodSelect = h("select", { class: "method-select", "data-testid": "method-select", "aria-label": "Map method",
    hidden: !allMethods.length, onchange: (e) => navigate({ method: e.target.value || null }, SELECT) },
  h("option", { value: "" }, "map: TAM"), ...allMethods.map((m) => h("option", { value: m }, `map: ${methodLabel(m)}`)));
  const exportButton = h("button", { type: "button", "data-testid": "export-png", onclick: async () => {
    const span = current.mode !== "token" ? rec.spans?.[current.span] : null;
    const token = current.mode === "token" ? rec.tokens?.[current.token] : null;
    const info = span ? categoryInfo(span.category) : null;
    const blob = await exportPng(img, overlay, { ...current, drawn: shown?.drawn || [], threshold: shown?.threshold,
      title: [ann.title || rec.id, ann.artist, ann.year].filter(Boolean).join(" — "),
      phrase: span ? `“${span.text}”` : token ? `token ${token.index} “${token.text.trim()}”` : "",
      category: info && { code: span.category, ...info } });
    const what = current.mode === "token" ? `token${current.token}` : `span${current.span}`;
    const a = h("a", { href: URL.createObjectURL(blob), download: `${rec.id}-${what}-${(shown?.drawn || []).join("-") || "none"}.png` });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  } }, "Export PNG");

  // ---- text column
  const captionHost = h("div", { class: "caption-host" });
  const numbersHost = h("div", { class: "numbers-host" });
  const relianceKey = h("p", { class: "muted small rel-key", hidden: true },
    h("span", { class: "rel", style: { backgroundColor: "rgba(242, 193, 78, 0.6)" } }, "warm"), " leans on the image, ",
    h("span", { class: "rel", style: { backgroundColor: "rgba(110, 150, 255, 0.6)" } }, "blue"),
    " on language (log-probability with the image minus with a blurred copy).");
  let captionView = null, captionKey = null;
  captionHost.addEventListener("keydown", (e) => {
    const keys = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1, Home: "first", End: "last" };
    if (e.key === "Escape") { navigate({ span: null, token: null, compare: null }, SELECT); return; }
    if (!(e.key in keys)) return;
    e.preventDefault();
    const tokenMode = current.mode === "token" && hasTokens;
    const order = tokenMode ? rec.tokens.filter((t) => t.map && t.end > t.start && caption.slice(t.start, t.end).trim()).map((t) => t.index) : layout.order;
    const at = tokenMode ? current.token : current.span;
    const step = keys[e.key];
    const next = step === "first" ? order[0] : step === "last" ? order[order.length - 1] : stepIn(order, at, step);
    if (next === null || next === undefined) return;
    if (tokenMode) navigate({ token: next, span: null }, { ...SELECT, focus: `token-${next}` });
    else navigate({ span: next, token: null }, { ...SELECT, focus: `span-${next}` });
  });

  const neighbour = (k) => (k < 0 ? around.previous : around.next);
  const go = (p) => p && h("a", { href: linkTo(state, { painting: p.id, span: null, token: null, compare: null }),
    "data-testid": "painting-nav", onclick: (e) => { e.preventDefault(); navigate({ painting: p.id, span: null, token: null, compare: null }); } },
  p.title || p.id);
  const head = h("header", { class: "painting-head" },
    h("nav", { class: "crumbs", "aria-label": "Paintings" },
      h("a", { href: linkTo(state, { view: "gallery", painting: null, span: null, token: null, compare: null }),
        "data-testid": "back-to-gallery",
        onclick: (e) => { e.preventDefault(); navigate({ view: "gallery", painting: null, span: null, token: null, compare: null }); } }, "← gallery"),
      neighbour(-1) ? h("span", {}, " · previous: ", go(neighbour(-1))) : null,
      neighbour(1) ? h("span", {}, " · next: ", go(neighbour(1))) : null,
      compareLink(await counterparts, state, navigate)),
    h("h2", {}, ann.title || rec.id),
    h("p", { class: "muted" }, [ann.artist, ann.year, ann.style, ann.genre].filter(Boolean).join(" · ")));

  const failed = !rec.caption ? h("p", { class: "error" }, "No caption: this painting failed to process.",
    ...(rec.failures || []).map((f) => h("span", { class: "failure" }, ` ${f.stage}: ${f.error}`))) : null;
  const el = h("article", { class: "painting", "data-testid": "painting-view", "data-painting": rec.id }, head,
    h("div", { class: "painting-body" },
      h("div", { class: "figure-col" },
        // the viewer: pictures, the value read under the pointer, the key (stays on screen on phones)
        h("div", { class: "viewer" },
          h("div", { class: "figures" }, h("figure", { class: "main-figure" }, stage, figcaption), comparePanel),
          h("div", { class: "under-figure" }, readout, scaleBox)),
        h("div", { class: "controls", role: "group", "aria-label": "Overlay settings" },
          modeGroup, layers.el, methodSelect, relianceButton, compareSelect, exportButton, askLink(source, ds, rec, navigate)),
        note),
      // the numbers come last: their height changes with the selection and nothing sits below them
      h("div", { class: "text-col" }, failed, captionHost, relianceKey,
        h("div", { class: "legend-row" }, legend(rec.spans || []),
          h("label", { class: "control small" }, h("span", {}, "Highlights"), highlightSelect)),
        metadataCard(rec), numbersHost)));
  root.replaceChildren(el);
  // while the reader looks: fetch every phrase's map and SAM 3 mask, then prepare the layers that
  // are on (upsampled maps, traced outlines), so a first click paints without that work
  prefetch([...(rec.spans || []).filter((x) => x.map).map((x) => source.spanMapUrl(ds, rec.id, x.index)),
    ...(rec.spans || []).filter((x) => x.sam?.mask).map((x) => source.samMaskUrl(ds, rec.id, x.index))]);
  prepare(layout.order.map((i) => rec.spans[i]).filter((x) => x.map).map((x) => ({ ...state,
    mapUrl: source.spanMapUrl(ds, rec.id, x.index), threshold: x.otsu_threshold,
    samUrl: x.sam?.mask ? source.samMaskUrl(ds, rec.id, x.index) : null })), W, H);

  // ---- readout: the map value (and mask membership) under the pointer, or where a finger tapped
  let spec = {};
  const where = (e) => {
    const r = overlay.getBoundingClientRect();
    return [Math.floor(((e.clientX - r.left) / r.width) * W), Math.floor(((e.clientY - r.top) / r.height) * H)];
  };
  const read = async (e) => {
    if (!spec.mapUrl && !spec.samUrl) return;
    const [x, y] = where(e);
    const at = await probe(spec, W, H, x, y);
    const parts = [];
    if (at.value !== undefined) {
      const v = at.value / 255, ref = spec.ref;
      parts.push(`map ${v.toFixed(2)}` + (ref && !(ref.lo === 0 && ref.hi === 1) ? ` (raw ≈ ${fmtNum(ref.lo + v * (ref.hi - ref.lo), 3)})` : ""));
    }
    if (at.otsu !== undefined) parts.push(at.otsu ? "inside Otsu region" : "outside Otsu region");
    if (at.sam !== undefined) parts.push(at.sam ? "inside SAM 3 mask" : "outside SAM 3 mask");
    readout.textContent = `(${Math.round(x / scale)}, ${Math.round(y / scale)}) ${parts.join(" · ")}`;
  };
  stage.addEventListener("pointermove", read);
  stage.addEventListener("pointerdown", read); // a tap has no hover: read where it landed
  stage.addEventListener("pointerleave", (e) => { // a lifted finger leaves too: keep what it read
    if (e.pointerType === "mouse") readout.textContent = "point at (or tap) the picture to read the map";
  });

  /** After a phrase is picked, the picture must be on screen (phones: it can be far above the caption). */
  function keepInView() {
    const r = stage.getBoundingClientRect();
    if (r.bottom < r.height / 3 || r.top > innerHeight - r.height / 3) stage.scrollIntoView({ block: "nearest" });
  }

  function describe(span, token) {
    if (span) return `${span.category} “${span.text}”`;
    if (token) return `token ${token.index} “${token.text.trim() || token.text}”`;
    return "nothing selected";
  }

  /** A deep link can name a phrase or token that is not there: say so instead of showing nothing. */
  function missing(next, tokenMode) {
    if (!tokenMode && next.span !== null && !rec.spans?.[next.span]) {
      const n = (rec.spans || []).length;
      return `This painting has no phrase ${next.span}: ${n ? `its ${n} phrases are numbered 0–${n - 1}` : "it has no phrases"}.`;
    }
    if (next.mode === "token" && next.token !== null && !hasTokens) {
      return `Token ${next.token} cannot be shown: this dataset has no per-token maps.`;
    }
    if (tokenMode && next.token !== null && !rec.tokens?.[next.token]) {
      return `This painting has no token ${next.token}: its ${rec.tokens.length} tokens are numbered 0–${rec.tokens.length - 1}.`;
    }
    return null;
  }

  /** What the overlay shows, in words (the note under the controls). */
  function explain(next, { span, token, mapUrl, threshold, browserThreshold, tokenMode }) {
    const on = new Set(next.layers);
    if (!span && !token) {
      return tokenMode ? "Click any word to see its own map (arrow keys move between tokens)."
        + (tam?.variant === "reference" ? " Token 0 shows the first prompt word's map, as in the paper's code." : "")
        : "Click a coloured phrase to see where the model looked (Tab to a phrase, Enter, then ← → between phrases).";
    }
    if (!on.size) return "Every layer is off: turn on the TAM heatmap, the Otsu region or the SAM 3 mask.";
    const out = [];
    if (!mapUrl && (on.has("tam") || on.has("otsu"))) out.push("No map was recorded for this selection.");
    if (on.has("tam") && mapUrl) {
      if (span && span.start == null) out.push(`“${span.text}” was named by the span classifier but does not occur in the caption; its map is shown as recorded.`);
      else if (span?.match === "approximate") out.push(`“${span.text}”: an ${matchNote(span)}, the caption's closest words.`);
      else if (span && span.tokens?.length) {
        out.push(`Mean of the maps of ${span.tokens.length} token${span.tokens.length === 1 ? "" : "s"}.`
          + (tam?.variant === "reference" && span.tokens.includes(0)
            ? " Token 0's among them is the first prompt word's map (the paper's code)." : ""));
      } else {
        out.push(`Where the model looked for “${span ? span.text : token.text.trim()}”: the hotter, the more it drew on that part of the painting.`);
        if (token) out.push(...tokenMapNotes(tam, token.index));
      }
    }
    if (on.has("otsu") && mapUrl) {
      out.push(!Number.isFinite(threshold) ? "No Otsu threshold could be computed for this map."
        : browserThreshold ? `Otsu region: the map above ${threshold}/255 (threshold computed here with cv2's method).`
          : `Otsu region: the map above ${threshold}/255, the threshold the metrics used.`);
    }
    if (on.has("sam")) {
      if (token) out.push("SAM 3 masks belong to phrases: switch to Phrases to see one.");
      else if (!span.sam) out.push(`SAM 3 does not apply to ${span.category} phrases: only concrete objects (CVO) and named figures (ICON) are segmented.`);
      else if (!span.sam.mask) out.push(`SAM 3 found nothing for “${span.text}”.`);
      else {
        out.push(`SAM 3 found ${span.sam.instances} instance${span.sam.instances === 1 ? "" : "s"} of “${span.text}”`
          + (Number.isFinite(span.sam.iou) ? `; IoU with the Otsu mask ${fmtNum(span.sam.iou, 3)}.` : "."));
      }
    }
    return out.join(" ");
  }

  async function update(next) {
    current = next;
    const tokenMode = next.mode === "token" && hasTokens;
    const span = !tokenMode && next.span !== null ? rec.spans?.[next.span] ?? null : null;
    const token = tokenMode && next.token !== null ? rec.tokens?.[next.token] ?? null : null;
    const wantKey = `${tokenMode}|${next.reliance}|${next.highlight}`;
    if (rec.caption && captionKey !== wantKey) {
      captionView = buildCaption(rec, layout, { tokenMode, reliance: next.reliance, highlight: next.highlight,
        onSpan: (i) => navigate({ span: i, token: null }, { ...SELECT, focus: `span-${i}` }).then(keepInView),
        onToken: (i) => navigate({ token: i, span: null }, { ...SELECT, focus: `token-${i}` }).then(keepInView) });
      captionHost.replaceChildren(captionView.el);
      captionKey = wantKey;
    }
    captionView?.select(span?.index ?? null, token?.index ?? null);
    relianceKey.hidden = !next.reliance;

    // controls mirror the state (also after Back/Forward)
    modeButtons.forEach((b) => b.setAttribute("aria-pressed", String((b.dataset.value === "token") === tokenMode)));
    layers.sync(next);
    relianceButton.setAttribute("aria-pressed", String(next.reliance));
    highlightSelect.value = next.highlight;
    highlightSelect.disabled = tokenMode;
    const method = span && resultOf(span, next.method) ? next.method : null; // another method's map of the phrase
    methodSelect.value = next.method && allMethods.includes(next.method) ? next.method : "";
    methodSelect.disabled = tokenMode;
    const mapRef = method ? resultOf(span, method).map : span?.map || token?.map || null;
    const mapUrl = method ? source.methodMapUrl(ds, rec.id, span.index, method)
      : span?.map ? source.spanMapUrl(ds, rec.id, span.index)
        : token?.map ? source.tokenMapUrl(ds, rec.id, token.index) : null;
    const samUrl = span?.sam?.mask ? source.samMaskUrl(ds, rec.id, span.index) : null;
    const otherMethods = span ? [...(method ? ["tam"] : []), ...methodsOf(span).filter((m) => m !== method)] : [];
    compareSelect.replaceChildren(...[h("option", { value: "" }, span ? "compare with…" : "compare: select a phrase first"),
      samUrl ? h("option", { value: span.index }, "its SAM 3 mask") : null,
      ...otherMethods.map((m) => h("option", { value: `m:${m}` }, `this phrase by ${m === "tam" ? "TAM" : methodLabel(m)}`)),
      ...(span ? (rec.spans || []).filter((x) => x !== span && x.map).map((x) => h("option", { value: x.index },
        `${x.category}: ${x.text}`)) : [])].filter(Boolean));
    compareSelect.disabled = !span;
    const cmethod = span && otherMethods.includes(next.cmethod) ? next.cmethod : null;
    const compareTo = cmethod ? span
      : span && next.compare !== null && (next.compare !== span.index || samUrl) ? rec.spans[next.compare] ?? null : null;
    compareSelect.value = cmethod ? `m:${cmethod}` : compareTo ? String(next.compare) : "";

    // overlay: what to draw and the note that explains it
    let threshold = method ? null : span?.otsu_threshold ?? null, browserThreshold = false;
    if (next.layers.includes("otsu") && mapUrl && !Number.isFinite(threshold)) {
      threshold = await thresholdFor(mapUrl, W, H).catch(() => null);
      browserThreshold = true;
    }
    const look = { cmap: next.cmap, opacity: next.opacity, look: next.look, cut: next.cut, samstyle: next.samstyle };
    spec = { layers: next.layers, mapUrl, samUrl, threshold, ref: mapRef, ...look };
    const target = span ? `span-${span.index}` : token ? `token-${token.index}` : "none";
    const problem = missing(next, tokenMode);
    note.textContent = problem || explain(next, { span, token, mapUrl, threshold, browserThreshold, tokenMode });
    note.classList.toggle("error", Boolean(problem));
    if (problem) announce(problem);
    figcaption.textContent = describe(span, token);
    scaleBox.replaceChildren(layerKey({ ...look, layers: next.layers, ref: mapRef, threshold }));
    numbersHost.replaceChildren(tokenMode ? tokenNumbers(token, tam) : numbersPanel(span, stats),
      ...(span && !tokenMode ? [curvesPanel(span, [method || "tam", cmethod].filter(Boolean), tam?.variant)] : [])
        .filter(Boolean),
      ...(tokenMode && tokenSubject(token) ? [curvesPanel(tokenSubject(token), [token.faithfulness.method], tam?.variant,
        "token")] : []).filter(Boolean)); // a token's own curves (faithfulness --per-token)
    if (method) note.textContent = `Map by ${methodLabel(method)} (faithfulness stage). ${note.textContent}`;
    exportButton.disabled = !mapUrl && !samUrl;

    // compare panel: the other phrase with the same layers, or this phrase's own SAM 3 mask
    comparePanel.hidden = !compareTo;
    if (compareTo) {
      if (!cmpImg.src) cmpImg.src = img.src;
      const own = compareTo === span && !cmethod;
      const cmpUrl = cmethod === "tam" ? source.spanMapUrl(ds, rec.id, span.index)
        : cmethod ? source.methodMapUrl(ds, rec.id, span.index, cmethod) : null;
      const cmpThreshold = cmethod === "tam" ? span.otsu_threshold
        : cmethod && next.layers.includes("otsu") ? await thresholdFor(cmpUrl, W, H).catch(() => null) : null;
      const cmpSpec = cmethod ? { ...look, layers: next.layers, mapUrl: cmpUrl, samUrl, threshold: cmpThreshold }
        : own ? { ...look, layers: ["sam"], samUrl, samstyle: "hatch" }
        : { ...look, layers: next.layers, mapUrl: compareTo.map ? source.spanMapUrl(ds, rec.id, compareTo.index) : null,
          samUrl: compareTo.sam?.mask ? source.samMaskUrl(ds, rec.id, compareTo.index) : null,
          threshold: compareTo.otsu_threshold };
      cmpCaption.textContent = cmethod ? `“${span.text}” by ${cmethod === "tam" ? "TAM" : methodLabel(cmethod)}`
        : own ? `SAM 3 mask of “${span.text}”` : describe(compareTo, null);
      const gen = ++compareGen;
      renderLayers(cmpSpec, W, H).then((drawn) => {
        if (gen !== compareGen) return;
        paint(cmpCanvas, drawn);
        cmpCanvas.dataset.drawn = drawn.drawn.length
          ? `${drawn.drawn.join("+")} span-${compareTo.index}${cmethod ? ` ${cmethod}` : ""}` : "none";
      }, () => { if (gen === compareGen) { paint(cmpCanvas, null); cmpCanvas.dataset.drawn = "error"; } });
    }

    // main overlay, painted only if no newer request came in meanwhile
    const gen = ++drawGen;
    let drawn = null;
    try {
      drawn = await renderLayers(spec, W, H);
    } catch (err) {
      if (gen === drawGen) note.textContent = `Could not load the map: ${err.message}`;
    }
    if (gen !== drawGen) return;
    paint(overlay, drawn?.drawn.length ? drawn : null);
    shown = { drawn: drawn?.drawn || [], threshold };
    overlay.dataset.drawn = shown.drawn.length
      ? `${shown.drawn.join("+")} ${target} ${next.cmap} ${next.opacity} ${next.look} ${next.cut}${method ? ` ${method}` : ""}`
      : "none";
    if (span || token) {
      const m = span?.metrics;
      announce(`Selected ${describe(span, token)}` + (m && Number.isFinite(m.entropy) ? `, entropy ${fmtNum(m.entropy, 2)}` : "")
        + (span?.sam ? (span.sam.mask ? `, SAM 3 ${span.sam.instances} instances` : ", SAM 3 found nothing") : ""));
    }
  }

  const firstPhrase = layout.order.find((i) => rec.spans[i]?.map) ?? null;
  return { key, el, update, firstPhrase };
}

/** " · compare N models" when other served datasets hold this painting (views/compare.js). */
function compareLink(counterparts, state, navigate) {
  const models = new Set(counterparts.map((c) => c.dataset)).size;
  if (!models) return null;
  const change = { view: "compare", span: null, token: null, compare: null, ospan: null, mode: "span" };
  return h("span", {}, " · ", h("a", { href: linkTo(state, change), "data-testid": "compare-models",
    onclick: (e) => { e.preventDefault(); navigate(change); } }, `compare ${models + 1} models`));
}

function tokenNumbers(token, tam) {
  if (!token) return h("p", { class: "muted numbers-empty" }, "Select a token to see its numbers.");
  const rows = [["Token", `#${token.index} “${token.text}” (id ${token.id})`]];
  if (tam) rows.push(["TAM variant", tam.label]);
  if (typeof token.reliance === "number") {
    rows.push(["Visual reliance", `${fmtNum(token.reliance, 3)}${token.visual ? " (visually relevant)" : ""}`]);
  }
  if (token.map) rows.push(["Map range", `${fmtNum(token.map.lo, 3)} … ${fmtNum(token.map.hi, 3)}`]);
  return h("table", { class: "numbers", "data-testid": "numbers" },
    rows.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v))));
}
