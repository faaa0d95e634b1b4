// The overlay's controls and key. Layers stack and are toggled one by one (the heatmap, the
// Otsu region as a contour, the SAM 3 mask as an outline or a hatch); the heatmap's look
// (hot areas only, or the full tint), colormap, opacity and "hide below" threshold. Every
// control writes the URL (replacing the history entry: settings are not Back steps).

import { h } from "../dom.js";
import { COLORMAPS, lut, OTSU_RGB, SAM_RGB } from "../lib/colormap.js";
import { fmtNum } from "../lib/format.js";
import { LAYERS } from "../lib/urlstate.js";

const LAYER_NAMES = { tam: "TAM heatmap", otsu: "Otsu region", sam: "SAM 3 mask" };

const control = (label, el) => h("label", { class: "control" }, h("span", {}, label), el);

/** A range input that writes the URL at most once per frame while it is dragged. */
function slider(attrs, onValue) {
  const input = h("input", { type: "range", ...attrs });
  let pending = null;
  input.addEventListener("input", () => {
    if (pending === null) requestAnimationFrame(() => { onValue(pending); pending = null; });
    pending = Number(input.value);
  });
  return { input, dragging: () => pending !== null };
}

/**
 * @param {(change: object, opts?: object) => void} navigate
 * @returns {{el: HTMLElement, sync: (state: object) => void}}
 */
export function layerControls(navigate) {
  const set = (change) => navigate(change, { replace: true });
  let layers = [];
  const toggles = LAYERS.map((layer) => h("button", { type: "button", "aria-pressed": "false", "data-testid": `layer-${layer}`,
    "data-value": layer, onclick: () => {
      const on = new Set(layers);
      if (on.has(layer)) on.delete(layer); else on.add(layer);
      set({ layers: LAYERS.filter((l) => on.has(l)) });
    } }, h("span", { class: `layer-swatch layer-${layer}`, "aria-hidden": "true" }), LAYER_NAMES[layer]));
  const group = h("div", { class: "seg layers", role: "group", "aria-label": "Layers" }, toggles);
  const look = h("select", { "data-testid": "look-select", onchange: (e) => set({ look: e.target.value }) },
    h("option", { value: "hot" }, "hot areas only"), h("option", { value: "tint" }, "full tint"));
  const cmap = h("select", { "data-testid": "cmap-select", onchange: (e) => set({ cmap: e.target.value }) },
    COLORMAPS.map((c) => h("option", { value: c }, c)));
  const opacity = slider({ min: 0.05, max: 1, step: 0.05, "data-testid": "opacity" }, (v) => set({ opacity: v }));
  const cut = slider({ min: 0, max: 0.95, step: 0.05, "data-testid": "cut" }, (v) => set({ cut: v }));
  const samstyle = h("select", { "data-testid": "samstyle-select", onchange: (e) => set({ samstyle: e.target.value }) },
    h("option", { value: "outline" }, "outline"), h("option", { value: "hatch" }, "hatch"));
  const el = h("div", { class: "layer-controls" }, group,
    h("div", { class: "layer-settings" }, control("Heatmap", look), control("Colormap", cmap),
      control("Opacity", opacity.input), control("Hide below", cut.input), control("SAM 3 as", samstyle)));

  function sync(state) {
    layers = state.layers;
    toggles.forEach((b) => b.setAttribute("aria-pressed", String(layers.includes(b.dataset.value))));
    look.value = state.look;
    cmap.value = state.cmap;
    if (!opacity.dragging()) opacity.input.value = String(state.opacity);
    if (!cut.dragging()) cut.input.value = String(state.cut);
    samstyle.value = state.samstyle;
    const tam = layers.includes("tam");
    look.disabled = cmap.disabled = cut.input.disabled = !tam;
    samstyle.disabled = !layers.includes("sam");
  }
  return { el, sync };
}

/** One line under the picture naming what each drawn layer's colours mean. */
export function layerKey({ layers, cmap, ref, threshold, samstyle, cut }) {
  const parts = [];
  if (layers.includes("tam")) {
    const bar = h("canvas", { width: 256, height: 1, class: "cbar", "aria-hidden": "true" });
    const ctx = bar.getContext("2d");
    const img = ctx.createImageData(256, 1), table = lut(cmap);
    for (let v = 0; v < 256; v++) {
      const hidden = v / 255 < cut; // "hide below": shown grey in the key
      img.data.set(hidden ? [90, 93, 102, 255] : [table[v * 3], table[v * 3 + 1], table[v * 3 + 2], 255], v * 4);
    }
    ctx.putImageData(img, 0, 0);
    const raw = ref && Number.isFinite(ref.lo) && Number.isFinite(ref.hi) && !(ref.lo === 0 && ref.hi === 1)
      ? ` (raw ${fmtNum(ref.lo, 3)} … ${fmtNum(ref.hi, 3)})` : "";
    parts.push(h("span", { class: "key-item" }, h("span", {}, "0"), bar, h("span", {}, "1"),
      h("span", { class: "muted" }, `map value${raw}`)));
  }
  const line = (layer, rgb, text) => h("span", { class: "key-item" },
    h("span", { class: `key-line key-${layer}`, style: { "--key": `rgb(${rgb.join(",")})` }, "aria-hidden": "true" }),
    h("span", { class: "muted" }, text));
  if (layers.includes("otsu")) parts.push(line("otsu", OTSU_RGB, Number.isFinite(threshold) ? `Otsu region (> ${threshold}/255)` : "Otsu region"));
  if (layers.includes("sam")) parts.push(line(samstyle === "hatch" ? "sam-hatch" : "sam", SAM_RGB, "SAM 3 mask"));
  return h("div", { class: "scale", "data-testid": "color-scale" }, parts);
}
