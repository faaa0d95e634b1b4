// The explorer's state in the URL query, so any view can be shared and Back works.
// Parsing never throws: unknown keys are ignored, malformed values fall back to defaults.

export const LAYERS = Object.freeze(["tam", "otsu", "sam"]); // drawn in this order, bottom up
export const DEFAULTS = Object.freeze({
  view: "gallery", dataset: null, painting: null, span: null, token: null, compare: null,
  mode: "span", layers: Object.freeze(["tam"]), look: "hot", cmap: "inferno", opacity: 0.8, cut: 0,
  samstyle: "outline", highlight: "solid", reliance: false, q: "", cat: "", artist: "", style: "", page: 0,
  // the phrase atlas (views/atlas.js): phrase words, category, highest entropy, sort and direction
  aq: "", acat: "", emax: null, asort: "painting", adesc: false,
  method: null, cmethod: null, // faithfulness stage: the map method shown, and the one compared with ("tam": the TAM)
  job: null, // the Ask view's question (`serve --live`): its job id
  ospan: null, // compare view: another model's phrase shown alone, "<dataset>~<span index>"
});
const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const METHOD = /^[a-z][a-z0-9-]{0,31}$/; // contract/schema.py METHOD_PATTERN
const JOB = /^ask-[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$/; // backend/live/routes.py JOB_ID
const OSPAN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}~(?:0|[1-9]\d{0,5})$/;
const CHOICES = {
  view: ["gallery", "painting", "dashboard", "atlas", "compare", "ask"], mode: ["span", "token"], look: ["hot", "tint"],
  cmap: ["inferno", "viridis", "magma", "grayscale"], samstyle: ["outline", "hatch"], highlight: ["solid", "underline"],
  cat: ["", "CVO", "ICON", "STYLE", "AFFECT", "META"],
  acat: ["", "CVO", "ICON", "STYLE", "AFFECT", "META"],
  asort: ["painting", "entropy", "gini", "top10", "iou", "text"],
};
// links made before layers could stack name one overlay: ?overlay=sam
const LEGACY_OVERLAY = { tam: ["tam"], otsu: ["otsu"], sam: ["sam"], none: [] };
const ORDER = Object.keys(DEFAULTS);

function int(v, max) {
  return /^\d{1,6}$/.test(v) && Number(v) <= max ? Number(v) : null;
}

/** A fraction 0..max rounded to hundredths, or null. */
function fraction(v, max = 1) {
  const x = Number(v);
  return v !== "" && Number.isFinite(x) && x >= 0 && x <= max ? Math.round(x * 100) / 100 : null;
}

/** "tam,sam" -> ["tam", "sam"] in drawing order; "none" -> []; null when nothing known is named. */
function parseLayers(value) {
  if (value === "none") return [];
  const named = new Set(value.split(","));
  const layers = LAYERS.filter((l) => named.has(l));
  return layers.length ? layers : null;
}

/** @param {string} search e.g. location.search or location.hash ("?a=1" or "#a=1") */
export function parseState(search) {
  const state = { ...DEFAULTS };
  let params;
  try { params = new URLSearchParams(String(search || "").replace(/^[?#]/, "")); } catch { return state; }
  for (const [key, value] of params) {
    if (key === "overlay" && !params.has("layers") && Object.hasOwn(LEGACY_OVERLAY, value)) state.layers = LEGACY_OVERLAY[value];
    if (!Object.hasOwn(DEFAULTS, key) || value.length > 256) continue;
    if (key === "dataset" || key === "painting") state[key] = ID.test(value) ? value : null;
    else if (key === "job") state.job = JOB.test(value) ? value : null;
    else if (key === "span" || key === "token" || key === "compare") state[key] = int(value, 100000);
    else if (key === "method" || key === "cmethod") state[key] = METHOD.test(value) ? value : null;
    else if (key === "ospan") state.ospan = OSPAN.test(value) ? value : null;
    else if (key === "page") state.page = int(value, 100000) ?? 0;
    else if (key === "opacity") state.opacity = fraction(value) ?? DEFAULTS.opacity;
    else if (key === "cut") state.cut = fraction(value, 0.95) ?? DEFAULTS.cut; // 1 would hide everything
    else if (key === "layers") state.layers = parseLayers(value) ?? DEFAULTS.layers;
    else if (key === "reliance" || key === "adesc") state[key] = value === "1";
    else if (key === "emax") state.emax = fraction(value);
    else if (key === "q" || key === "artist" || key === "style" || key === "aq") state[key] = value.slice(0, 200);
    else if (CHOICES[key]?.includes(value)) state[key] = value;
  }
  return state;
}

/** @returns {string} "?..." holding only what differs from the defaults, in a stable order */
export function serializeState(state) {
  const params = new URLSearchParams();
  for (const key of ORDER) {
    const value = state[key];
    if (value === undefined || value === null || value === DEFAULTS[key]) continue;
    if (key === "reliance" || key === "adesc") { if (value) params.set(key, "1"); continue; }
    if (key === "layers") {
      const layers = LAYERS.filter((l) => value.includes(l)).join(",");
      if (layers !== DEFAULTS.layers.join(",")) params.set(key, layers || "none");
      continue;
    }
    params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : "?";
}

/** The URL of `state` changed by `change`: for real links (middle-click, copy link address). */
export function linkTo(state, change = {}) {
  return address({ ...state, ...change });
}

// The static site (tamscope export-site) also has a page of its own for each painting, beside
// the explorer's page: pre-rendered for readers without JavaScript and for link previews. There
// the path names the painting, and the query the rest of the state.
const PAGE = /(?:^|\/)([A-Za-z0-9][A-Za-z0-9._-]{0,127})~([A-Za-z0-9][A-Za-z0-9._-]{0,127})\.html$/;

/** A painting's page, relative to the explorer's page (backend/site_pages.py writes the same name). */
export const pagePath = (dataset, painting) => `${dataset}~${painting}.html`;

/** The state an address names; `pages`: the site has a page per painting. */
export function stateAt(pathname, search, pages = false) {
  const state = parseState(search);
  const page = pages ? PAGE.exec(String(pathname || "")) : null;
  return page ? { ...state, view: "painting", dataset: page[1], painting: page[2] } : state;
}

/** The address of `state` relative to the explorer's page ("./?..." works from a painting's page
 *  too); where the site has painting pages, a painting is shown at its own. */
export function address(state, pages = false) {
  if (pages && state.view === "painting" && state.dataset && state.painting) {
    const rest = serializeState({ ...state, view: DEFAULTS.view, dataset: null, painting: null });
    return pagePath(state.dataset, state.painting) + (rest === "?" ? "" : rest);
  }
  const query = serializeState(state);
  return `./${query === "?" ? "" : query}`;
}
