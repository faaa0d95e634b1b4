// Boot and routing: the URL query is the state (lib/urlstate.js); every change pushes (or
// replaces) history and re-renders the view it names, so Back works and links can be shared.

import { openSource } from "./data.js";
import { h } from "./dom.js";
import { parseState, serializeState } from "./lib/urlstate.js";
import { renderDashboard } from "./views/dashboard.js";
import { renderGallery } from "./views/gallery.js";
import { renderPainting } from "./views/painting.js";

const main = document.getElementById("main");
const banner = document.getElementById("dataset-label");
const picker = document.getElementById("dataset-picker");
let source, datasets;
let rendering = Promise.resolve();

function navigate(change, { replace = false, focus = null } = {}) {
  const next = { ...parseState(location.search), ...change };
  const url = serializeState(next);
  history[replace ? "replaceState" : "pushState"](null, "", url === "?" ? location.pathname : url);
  render({ focus, clickedAt: performance.now() });
}

async function render({ focus = null, clickedAt = null } = {}) {
  const state = parseState(location.search);
  if (!state.dataset || !datasets.some((d) => d.id === state.dataset)) state.dataset = datasets[0]?.id ?? null;
  state.clickedAt = clickedAt;
  const current = datasets.find((d) => d.id === state.dataset);
  banner.hidden = !current?.label;
  banner.textContent = current?.label || "";
  picker.value = state.dataset || "";
  document.querySelectorAll("[data-nav]").forEach((a) => a.setAttribute("aria-current",
    String(a.dataset.nav === (state.view === "dashboard" ? "dashboard" : "gallery"))));
  const ctx = { source, state, navigate };
  rendering = rendering.then(async () => {
    try {
      if (!state.dataset) main.replaceChildren(h("p", {}, "No dataset is being served."));
      else if (state.view === "painting" && state.painting) await renderPainting(main, ctx);
      else if (state.view === "dashboard") await renderDashboard(main, ctx);
      else await renderGallery(main, ctx);
      document.title = `tamscope — ${current?.name || ""}`;
      if (focus) document.getElementById(focus)?.focus();
      if (!window.__tamscopeFirstPainting && state.view === "painting") {
        window.__tamscopeFirstPainting = performance.now();
      }
    } catch (err) {
      main.replaceChildren(h("p", { class: "error", role: "alert" }, err.status === 404 ? `Not found: ${err.message}` : `Error: ${err.message}`));
    }
    main.dataset.ready = "1";
  });
  return rendering;
}

async function boot() {
  source = await openSource();
  datasets = await source.listDatasets();
  picker.replaceChildren(...datasets.map((d) => h("option", { value: d.id }, `${d.name} (${d.n_paintings})`)));
  picker.addEventListener("change", () => navigate({ dataset: picker.value, view: "gallery", painting: null, span: null,
    token: null, compare: null, page: 0, q: "", cat: "" }));
  document.querySelectorAll("[data-nav]").forEach((a) => a.addEventListener("click", (e) => {
    e.preventDefault();
    navigate({ view: a.dataset.nav, painting: null, span: null, token: null, compare: null });
  }));
  window.addEventListener("popstate", () => render());
  await render();
}

boot().catch((err) => main.replaceChildren(h("p", { class: "error", role: "alert" }, `Cannot start: ${err.message}`)));
