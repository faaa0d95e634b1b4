// Boot and routing: the URL query is the state (lib/urlstate.js); every change pushes (or
// replaces) history and re-renders the view it names, so Back works and links can be shared.
// Moves between pages and paintings push a history entry; selections and settings inside a
// painting replace it (the views pass `replace`), so Back leaves the painting.
// On the static site each painting also has a page of its own (<dataset>~<painting>.html,
// pre-rendered for readers without JavaScript and for link previews): the explorer takes over
// there, and shows a painting at that address, the one worth sharing.

import { openSource } from "./data.js";
import { h } from "./dom.js";
import { address, stateAt } from "./lib/urlstate.js";
import { renderAtlas } from "./views/atlas.js";
import { renderAsk } from "./views/ask.js";
import { renderCompare } from "./views/compare.js";
import { renderDashboard } from "./views/dashboard.js";
import { renderGallery } from "./views/gallery.js";
import { renderPainting } from "./views/painting.js";

const main = document.getElementById("main");
const banner = document.getElementById("dataset-label");
const picker = document.getElementById("dataset-picker");
let source, datasets;
let pages = false; // the static site has a page per painting (config.json)
let rendering = Promise.resolve();
let lastView = null;

const here = () => stateAt(location.pathname, location.search, pages);
// a painting's page names its dataset: the first one when the address left it out
const addressOf = (state) => address(pages && state.view === "painting" && !state.dataset
  ? { ...state, dataset: datasets[0]?.id ?? null } : state, pages);

/** Apply `change` to the URL state; `replace` for settings that should not add a Back step. */
function navigate(change, { replace = false, focus = null } = {}) {
  history[replace ? "replaceState" : "pushState"](null, "", addressOf({ ...here(), ...change }));
  return render({ focus });
}

/** Record a default a view resolved (the first phrase of a painting) in the URL, without a render. */
function settle(change) {
  history.replaceState(null, "", addressOf({ ...here(), ...change }));
}

function render({ focus = null } = {}) {
  const state = here();
  if (!state.dataset || !datasets.some((d) => d.id === state.dataset)) state.dataset = datasets[0]?.id ?? null;
  const current = datasets.find((d) => d.id === state.dataset);
  banner.hidden = !current?.label;
  banner.textContent = current?.label || "";
  picker.value = state.dataset || "";
  const section = ["dashboard", "atlas"].includes(state.view) || (state.view === "ask" && source.live) ? state.view : "gallery";
  document.querySelectorAll("[data-nav]").forEach((a) => {
    a.setAttribute("aria-current", String(a.dataset.nav === section));
    a.href = address({ dataset: state.dataset, view: a.dataset.nav });
  });
  const ctx = { source, state, navigate, settle };
  rendering = rendering.then(async () => {
    const viewName = ["painting", "compare"].includes(state.view) && state.painting ? state.view : section;
    try {
      if (!state.dataset) main.replaceChildren(h("p", {}, "No dataset is being served."));
      else if (viewName === "painting") await renderPainting(main, ctx);
      else if (viewName === "compare") await renderCompare(main, ctx);
      else if (viewName === "dashboard") await renderDashboard(main, ctx);
      else if (viewName === "atlas") await renderAtlas(main, ctx);
      else if (viewName === "ask") await renderAsk(main, ctx);
      else await renderGallery(main, ctx);
      document.title = [["painting", "compare"].includes(viewName) ? main.querySelector("h2")?.textContent : null,
        current?.name, "tamscope"].filter(Boolean).join(" — ");
      if (focus) document.getElementById(focus)?.focus();
      else if (lastView !== null && viewName !== lastView) main.focus({ preventScroll: true }); // new page: start of content
      if (viewName !== lastView) window.scrollTo(0, 0);
      lastView = viewName;
    } catch (err) {
      main.replaceChildren(h("p", { class: "error", role: "alert" }, err.status === 404 ? `Not found: ${err.message}` : `Error: ${err.message}`));
      lastView = null;
    }
    main.dataset.ready = "1";
  });
  return rendering;
}

async function boot() {
  source = await openSource();
  pages = source.pages === true;
  datasets = await source.listDatasets();
  const start = here();
  if (pages && start.view === "painting" && start.painting) { // a painting opened by its query: to its own page
    const ds = start.dataset || datasets[0]?.id;
    const around = ds ? await source.neighbours(ds, start.painting).catch(() => null) : null;
    if (around?.position > 0) history.replaceState(null, "", addressOf(start));
  }
  // the id is what URLs and error messages name: the picker shows it, and the dataset's own name when it differs
  picker.replaceChildren(...datasets.map((d) => h("option", { value: d.id, title: d.description || null },
    `${d.id}${d.name && d.name !== d.id ? ` · ${d.name}` : ""} (${d.n_paintings})`)));
  picker.addEventListener("change", () => navigate({ dataset: picker.value, view: "gallery", painting: null, span: null,
    token: null, compare: null, ospan: null, page: 0, q: "", cat: "", artist: "", style: "" }));
  document.querySelectorAll("[data-nav=ask]").forEach((a) => { a.hidden = !source.live; });
  document.querySelectorAll("[data-nav]").forEach((a) => a.addEventListener("click", (e) => {
    if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    navigate({ view: a.dataset.nav, painting: null, span: null, token: null, compare: null, ospan: null, job: null });
  }));
  window.addEventListener("popstate", () => render());
  await render();
}

boot().catch((err) => main.replaceChildren(h("p", { class: "error", role: "alert" }, `Cannot start: ${err.message}`)));
