// Painting view: the canvas with its overlay, the caption with typed phrases (or every token),
// the selected phrase's numbers, the claimed-identity card and a side-by-side compare panel.
//
// The view is mounted once per painting and then updated in place from the URL state: a
// click on a phrase only flips aria-pressed, refreshes the small panels and repaints the
// overlay canvas (which keeps its box: no layout shift, no blank frame, focus stays put).

import { buildCaption } from "../components/caption.js";
import { colorScale, legend, metadataCard, numbersPanel } from "../components/panels.js";
import { announce, h } from "../dom.js";
import { COLORMAPS } from "../lib/colormap.js";
import { fmtNum } from "../lib/format.js";
import { otsuThreshold } from "../lib/otsu.js";
import { layoutSpans, stepIn } from "../lib/spans.js";
import { tamInfo, tokenMapNotes } from "../lib/tam.js";
import { linkTo } from "../lib/urlstate.js";
import { exportPng, mapAtCanvas, OTSU_RGB, paint, prefetch, probe, renderOverlay, SAM_RGB } from "../overlay.js";

const MAX_SIDE = 2048; // overlay resolution cap: bounded memory and time on huge canvases
const OVERLAYS = [["tam", "TAM"], ["otsu", "Otsu mask"], ["sam", "SAM 3 mask"], ["none", "None"]];
let view = null; // the mounted painting

export async function renderPainting(root, ctx) {
  const key = `${ctx.state.dataset}/${ctx.state.painting}`;
  if (!view || view.key !== key || !root.contains(view.el)) {
    view = null;
    view = await mount(root, ctx, key);
  }
  await view.update(ctx.state);
}

/** Otsu threshold of a token map computed here, as cv2 would (tokens carry no recorded threshold). */
const browserOtsu = new Map();
async function thresholdFor(url, W, H) {
  if (!browserOtsu.has(url)) browserOtsu.set(url, mapAtCanvas(url, W, H).then((v) => otsuThreshold(v)));
  return browserOtsu.get(url);
}

async function mount(root, { source, navigate, state }, key) {
  const ds = state.dataset;
  const [rec, stats, manifest] = await Promise.all([source.record(ds, state.painting), source.stats(ds),
    source.manifest(ds)]);
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

  // ---- the picture
  const img = h("img", { src: source.canvasUrl(ds, rec.id), alt: ann.title ? `${ann.title}${ann.artist ? `, ${ann.artist}` : ""}` : rec.id,
    width: W0, height: H0, class: "canvas-img", "data-testid": "painting-canvas", decoding: "async" });
  const overlay = h("canvas", { width: W, height: H, class: "overlay", "data-testid": "overlay", "data-drawn": "",
    role: "img", "aria-label": "map overlay" });
  // the box is reserved before anything loads (no layout shift); tall paintings fit the screen
  const box = { aspectRatio: `${W0} / ${H0}`, maxWidth: `calc(70vh * ${(W0 / H0).toFixed(4)})` };
  const stage = h("div", { class: "stage", style: box }, img, overlay);
  const figcaption = h("figcaption", { "data-testid": "selection" });
  const cmpImg = h("img", { alt: "", width: W0, height: H0, class: "canvas-img" });
  const cmpCanvas = h("canvas", { width: W, height: H, class: "overlay", "data-testid": "compare-overlay", "data-drawn": "" });
  const cmpCaption = h("figcaption", {});
  const comparePanel = h("figure", { class: "compare", "data-testid": "compare", hidden: true },
    h("div", { class: "stage", style: box }, cmpImg, cmpCanvas), cmpCaption);
  const readout = h("output", { class: "readout", "data-testid": "readout" }, "point at the picture to read the map");
  const scaleBox = h("div", { class: "scale-box" });
  const note = h("p", { class: "note", "data-testid": "overlay-note" });
  img.decode().then(() => {
    if (!performance.getEntriesByName("tamscope:painting-shown").length) performance.mark("tamscope:painting-shown");
  }, () => {});

  // ---- controls (every change is a URL change: shareable, and Back undoes selections)
  const seg = (items, testid, label) => h("div", { class: "seg", role: "group", "aria-label": label }, items.map(([v, t]) =>
    h("button", { type: "button", "aria-pressed": "false", "data-testid": `${testid}-${v}`, "data-value": v }, t)));
  const modeGroup = seg([["span", "Phrases"], ["token", "Tokens"]], "mode", "Select by");
  const overlayGroup = seg(OVERLAYS, "overlay", "Overlay");
  const modeButtons = [...modeGroup.children], overlayButtons = [...overlayGroup.children];
  modeButtons.forEach((b) => b.addEventListener("click", () => navigate({ mode: b.dataset.value, span: null, token: null,
    compare: null })));
  if (!hasTokens) {
    modeButtons[1].disabled = true;
    modeButtons[1].title = "this dataset has no per-token maps";
  }
  overlayButtons.forEach((b) => b.addEventListener("click", () => navigate({ overlay: b.dataset.value }, { replace: true })));
  const cmapSelect = h("select", { "data-testid": "cmap-select", "aria-label": "Colormap",
    onchange: (e) => navigate({ cmap: e.target.value }, { replace: true }) },
  COLORMAPS.map((c) => h("option", { value: c }, c)));
  const opacity = h("input", { type: "range", min: 0.05, max: 1, step: 0.05, "data-testid": "opacity", "aria-label": "Opacity" });
  let pendingOpacity = null; // coalesce slider events to one repaint per frame
  opacity.addEventListener("input", () => {
    if (pendingOpacity === null) requestAnimationFrame(() => {
      navigate({ opacity: pendingOpacity }, { replace: true });
      pendingOpacity = null;
    });
    pendingOpacity = Number(opacity.value);
  });
  const relianceButton = h("button", { type: "button", "aria-pressed": "false", "data-testid": "reliance-toggle",
    disabled: !hasReliance, title: hasReliance ? "shade each token by log P(token | image) − log P(token | blurred image)"
      : "this dataset has no visual-reliance scores",
    onclick: () => navigate({ reliance: !current.reliance }, { replace: true }) }, "Visual reliance");
  const compareSelect = h("select", { class: "compare-select", "data-testid": "compare-select", "aria-label": "Compare with",
    onchange: (e) => navigate({ compare: e.target.value === "" ? null : Number(e.target.value) }, { replace: true }) });
  const exportButton = h("button", { type: "button", "data-testid": "export-png", onclick: async () => {
    const blob = await exportPng(img, overlay);
    const what = current.mode === "token" ? `token${current.token}` : `span${current.span}`;
    const a = h("a", { href: URL.createObjectURL(blob), download: `${rec.id}-${what}-${current.overlay}.png` });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  } }, "Export PNG");
  const control = (label, el) => h("label", { class: "control" }, h("span", {}, label), el);

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
    if (e.key === "Escape") { navigate({ span: null, token: null, compare: null }); return; }
    if (!(e.key in keys)) return;
    e.preventDefault();
    const tokenMode = current.mode === "token" && hasTokens;
    const order = tokenMode ? rec.tokens.filter((t) => t.map && t.end > t.start && caption.slice(t.start, t.end).trim()).map((t) => t.index) : layout.order;
    const at = tokenMode ? current.token : current.span;
    const step = keys[e.key];
    const next = step === "first" ? order[0] : step === "last" ? order[order.length - 1] : stepIn(order, at, step);
    if (next === null || next === undefined) return;
    if (tokenMode) navigate({ token: next, span: null }, { focus: `token-${next}` });
    else navigate({ span: next, token: null }, { focus: `span-${next}` });
  });

  const index = manifest.paintings.findIndex((p) => p.id === rec.id);
  const neighbour = (k) => manifest.paintings[index + k];
  const go = (p) => p && h("a", { href: linkTo(state, { painting: p.id, span: null, token: null, compare: null }),
    "data-testid": "painting-nav", onclick: (e) => { e.preventDefault(); navigate({ painting: p.id, span: null, token: null, compare: null }); } },
  p.title || p.id);
  const head = h("header", { class: "painting-head" },
    h("nav", { class: "crumbs", "aria-label": "Paintings" },
      h("a", { href: linkTo(state, { view: "gallery", painting: null, span: null, token: null, compare: null }),
        "data-testid": "back-to-gallery",
        onclick: (e) => { e.preventDefault(); navigate({ view: "gallery", painting: null, span: null, token: null, compare: null }); } }, "← gallery"),
      neighbour(-1) ? h("span", {}, " · previous: ", go(neighbour(-1))) : null,
      neighbour(1) ? h("span", {}, " · next: ", go(neighbour(1))) : null),
    h("h2", {}, ann.title || rec.id),
    h("p", { class: "muted" }, [ann.artist, ann.year, ann.style, ann.genre].filter(Boolean).join(" · ")));

  const failed = !rec.caption ? h("p", { class: "error" }, "No caption: this painting failed to process.",
    ...(rec.failures || []).map((f) => h("span", { class: "failure" }, ` ${f.stage}: ${f.error}`))) : null;
  const el = h("article", { class: "painting", "data-testid": "painting-view", "data-painting": rec.id }, head,
    h("div", { class: "painting-body" },
      h("div", { class: "figure-col" },
        h("div", { class: "figures" }, h("figure", { class: "main-figure" }, stage, figcaption), comparePanel),
        h("div", { class: "under-figure" }, readout, scaleBox),
        h("div", { class: "controls", role: "group", "aria-label": "Overlay settings" },
          modeGroup, overlayGroup, control("Colormap", cmapSelect), control("Opacity", opacity), relianceButton,
          compareSelect, exportButton),
        note),
      // the numbers come last: their height changes with the selection and nothing sits below them
      h("div", { class: "text-col" }, failed, captionHost, relianceKey, legend(rec.spans || []), metadataCard(rec),
        numbersHost)));
  root.replaceChildren(el);
  prefetch((rec.spans || []).filter((x) => x.map).map((x) => source.spanMapUrl(ds, rec.id, x.index)));

  // ---- pointer readout: the map value (and mask membership) under the pointer
  let spec = {};
  const where = (e) => {
    const box = overlay.getBoundingClientRect();
    return [Math.floor(((e.clientX - box.left) / box.width) * W), Math.floor(((e.clientY - box.top) / box.height) * H)];
  };
  stage.addEventListener("pointermove", async (e) => {
    if (!spec.mapUrl && !spec.samUrl) return;
    const [x, y] = where(e);
    const at = await probe(spec, W, H, x, y);
    const parts = [];
    if (at.value !== undefined) {
      const v = at.value / 255, ref = spec.ref;
      parts.push(`map ${v.toFixed(2)}` + (ref && !(ref.lo === 0 && ref.hi === 1) ? ` (raw ≈ ${fmtNum(ref.lo + v * (ref.hi - ref.lo), 3)})` : ""));
    }
    if (at.otsu !== undefined) parts.push(at.otsu ? "inside Otsu mask" : "outside Otsu mask");
    if (at.sam !== undefined) parts.push(at.sam ? "inside SAM 3 mask" : "outside SAM 3 mask");
    readout.textContent = `(${Math.round(x / scale)}, ${Math.round(y / scale)}) ${parts.join(" · ")}`;
  });
  stage.addEventListener("pointerleave", () => { readout.textContent = "point at the picture to read the map"; });

  function describe(span, token) {
    if (span) return `${span.category} “${span.text}”`;
    if (token) return `token ${token.index} “${token.text.trim() || token.text}”`;
    return "nothing selected";
  }

  async function update(next) {
    current = next;
    const tokenMode = next.mode === "token" && hasTokens;
    const span = !tokenMode && next.span !== null ? rec.spans?.[next.span] ?? null : null;
    const token = tokenMode && next.token !== null ? rec.tokens?.[next.token] ?? null : null;
    const wantKey = `${tokenMode}|${next.reliance}`;
    if (rec.caption && captionKey !== wantKey) {
      captionView = buildCaption(rec, layout, { tokenMode, reliance: next.reliance,
        onSpan: (i) => navigate({ span: i, token: null }, { focus: `span-${i}` }),
        onToken: (i) => navigate({ token: i, span: null }, { focus: `token-${i}` }) });
      captionHost.replaceChildren(captionView.el);
      captionKey = wantKey;
    }
    captionView?.select(span?.index ?? null, token?.index ?? null);
    relianceKey.hidden = !next.reliance;

    // controls mirror the state (also after Back/Forward)
    modeButtons.forEach((b) => b.setAttribute("aria-pressed", String((b.dataset.value === "token") === tokenMode)));
    overlayButtons.forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.value === next.overlay)));
    cmapSelect.value = next.cmap;
    cmapSelect.disabled = next.overlay !== "tam";
    if (pendingOpacity === null) opacity.value = String(next.opacity);
    relianceButton.setAttribute("aria-pressed", String(next.reliance));
    const mapRef = span?.map || token?.map || null;
    const mapUrl = span?.map ? source.spanMapUrl(ds, rec.id, span.index)
      : token?.map ? source.tokenMapUrl(ds, rec.id, token.index) : null;
    const samUrl = span?.sam?.mask ? source.samMaskUrl(ds, rec.id, span.index) : null;
    compareSelect.replaceChildren(...[h("option", { value: "" }, span ? "compare with…" : "compare: select a phrase first"),
      samUrl ? h("option", { value: span.index }, "its SAM 3 mask") : null,
      ...(span ? (rec.spans || []).filter((x) => x !== span && x.map).map((x) => h("option", { value: x.index },
        `${x.category}: ${x.text}`)) : [])].filter(Boolean));
    compareSelect.disabled = !span;
    const compareTo = span && next.compare !== null && (next.compare !== span.index || samUrl) ? rec.spans[next.compare] : null;
    compareSelect.value = compareTo ? String(next.compare) : "";

    // overlay: what to draw and the note that explains it
    let threshold = span?.otsu_threshold ?? null, browserThreshold = false;
    if (next.overlay === "otsu" && mapUrl && !Number.isFinite(threshold)) {
      threshold = await thresholdFor(mapUrl, W, H).catch(() => null);
      browserThreshold = true;
    }
    spec = { kind: next.overlay, mapUrl, samUrl, threshold, cmap: next.cmap, opacity: next.opacity, ref: mapRef };
    const target = span ? `span-${span.index}` : token ? `token-${token.index}` : "none";
    const signature = `${next.overlay} ${target} ${next.cmap} ${next.opacity}`;
    let text = "";
    if (!span && !token) {
      text = tokenMode ? "Click any word to see its own map (arrow keys move between tokens)."
        + (tam?.variant === "reference" ? " Token 0 shows the first prompt word's map, as in the paper's code." : "")
        : "Click a coloured phrase to see where the model looked (Tab to a phrase, Enter, then ← → between phrases).";
    } else if (!mapUrl && next.overlay !== "sam") text = "No map was recorded for this selection.";
    else if (next.overlay === "sam" && token) text = "SAM 3 masks belong to phrases: switch to Phrases to see one.";
    else if (next.overlay === "sam" && !span.sam) {
      text = `SAM 3 does not apply to ${span.category} phrases: only concrete objects (CVO) and iconographic figures (ICON) are segmented.`;
    } else if (next.overlay === "sam" && !span.sam.mask) text = `SAM 3 found nothing for “${span.text}”.`;
    else if (next.overlay === "sam") {
      text = `SAM 3 found ${span.sam.instances} instance${span.sam.instances === 1 ? "" : "s"} of “${span.text}”`
        + (Number.isFinite(span.sam.iou) ? `; IoU with the Otsu mask ${fmtNum(span.sam.iou, 3)}.` : ".");
    } else if (next.overlay === "otsu") {
      text = !Number.isFinite(threshold) ? "No Otsu threshold could be computed for this map."
        : browserThreshold ? `Otsu mask: the map above ${threshold}/255 (threshold computed here with cv2's method).`
          : `Otsu mask: the map above ${threshold}/255, the threshold the metrics used.`;
    } else if (next.overlay === "none") text = "Overlay hidden.";
    else if (span && span.start == null) text = `“${span.text}” was named by the span classifier but does not occur in the caption; its map is shown as recorded.`;
    else if (span && span.tokens?.length) {
      text = `Mean of the maps of ${span.tokens.length} token${span.tokens.length === 1 ? "" : "s"}.`
        + (tam?.variant === "reference" && span.tokens.includes(0)
          ? " Token 0's among them is the first prompt word's map (the paper's code)." : "");
    } else if (token) text = tokenMapNotes(tam, token.index).join(" ");
    note.textContent = text;
    figcaption.textContent = describe(span, token);
    scaleBox.replaceChildren(colorScale({ kind: mapUrl || samUrl ? next.overlay : "none", cmap: next.cmap, ref: mapRef,
      threshold, rgb: next.overlay === "otsu" ? OTSU_RGB : SAM_RGB }));
    numbersHost.replaceChildren(tokenMode ? tokenNumbers(token, tam) : numbersPanel(span, stats));
    exportButton.disabled = !mapUrl && !samUrl;

    // compare panel
    comparePanel.hidden = !compareTo;
    if (compareTo) {
      if (!cmpImg.src) cmpImg.src = img.src;
      const own = compareTo === span;
      const otherSam = compareTo.sam?.mask ? source.samMaskUrl(ds, rec.id, compareTo.index) : null;
      const cmpSpec = own ? { kind: "sam", samUrl, opacity: next.opacity }
        : { kind: next.overlay, mapUrl: compareTo.map ? source.spanMapUrl(ds, rec.id, compareTo.index) : null,
          samUrl: otherSam, threshold: compareTo.otsu_threshold, cmap: next.cmap, opacity: next.opacity };
      cmpCaption.textContent = own ? `SAM 3 mask of “${span.text}”` : describe(compareTo, null);
      const gen = ++compareGen;
      renderOverlay(cmpSpec, W, H).then((image) => {
        if (gen !== compareGen) return;
        paint(cmpCanvas, image);
        cmpCanvas.dataset.drawn = image ? `${cmpSpec.kind} span-${compareTo.index}` : "none";
      }, () => { if (gen === compareGen) { paint(cmpCanvas, null); cmpCanvas.dataset.drawn = "error"; } });
    }

    // main overlay, painted only if no newer request came in meanwhile
    const gen = ++drawGen;
    let image = null;
    try {
      image = await renderOverlay(spec, W, H);
    } catch (err) {
      if (gen === drawGen) note.textContent = `Could not load the map: ${err.message}`;
    }
    if (gen !== drawGen) return;
    paint(overlay, image);
    overlay.dataset.drawn = image ? signature : "none";
    if (span || token) {
      const m = span?.metrics;
      announce(`Selected ${describe(span, token)}` + (m && Number.isFinite(m.entropy) ? `, entropy ${fmtNum(m.entropy, 2)}` : "")
        + (span?.sam ? (span.sam.mask ? `, SAM 3 ${span.sam.instances} instances` : ", SAM 3 found nothing") : ""));
    }
  }

  return { key, el, update };
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
