// Gallery: thumbnails with title, artist, year; search over title/artist/caption; filters by
// span category present, style and artist. Keyboard: every card is a real link (Tab, Enter),
// filters are labelled form controls, "/" jumps to the search box.

import { h } from "../dom.js";
import { CATEGORIES, categoryInfo } from "../lib/categories.js";
import { categoryChip, pagerNav } from "../components/panels.js";
import { linkTo } from "../lib/urlstate.js";

const PAGE = 24;
const SEARCH_DELAY = 250; // ms of quiet typing before the gallery filters

let searchTimer = null;
let searchBox = null; // kept across renders: keys typed while the results reload are not lost
let typedRender = false; // the next render comes from typing: leave the box as the user has it
let typingPending = false; // typed, not yet applied: a render for something else must not undo it
document.addEventListener("keydown", (e) => {
  const box = document.getElementById("gallery-search");
  if (e.key === "/" && box && !/^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement?.tagName)) {
    e.preventDefault();
    box.focus();
  }
});

function select(id, label, value, options, onchange) {
  return h("label", { class: "control", for: id }, h("span", {}, label),
    h("select", { id, "data-testid": id, onchange: (e) => onchange(e.target.value) },
      options.map(([v, t]) => h("option", { value: v, selected: v === value }, t))));
}

export async function renderGallery(root, { source, state, navigate }) {
  // the page, the dataset's name and what the filters offer: three small answers, fetched together
  const [manifest, facets, result] = await Promise.all([source.manifest(state.dataset), source.facets(state.dataset),
    source.paintings(state.dataset, { q: state.q, category: state.cat, artist: state.artist,
      style: state.style, offset: state.page * PAGE, limit: PAGE })]);
  const distinct = (key) => (facets[key] || []).map(([name]) => name).sort((a, b) => a.localeCompare(b));
  if (!searchBox) {
    searchBox = h("input", { type: "search", id: "gallery-search", placeholder: "title, artist, caption…",
      autocomplete: "off", "data-testid": "gallery-search" });
    // typing filters after a pause and replaces the history entry; Enter commits at once
    searchBox.addEventListener("input", () => {
      clearTimeout(searchTimer);
      typingPending = true;
      searchTimer = setTimeout(() => {
        typingPending = false;
        typedRender = true;
        navigate({ q: searchBox.value.trim(), page: 0 }, { replace: true, focus: "gallery-search" });
      }, SEARCH_DELAY);
    });
    searchBox.addEventListener("keydown", (e) => {
      if (e.key !== "Enter") return;
      clearTimeout(searchTimer);
      typingPending = false;
      typedRender = true;
      navigate({ q: searchBox.value.trim(), page: 0 }, { focus: "gallery-search" });
    });
  }
  const search = searchBox;
  // follow the URL (Back, links, "Clear filters"), but never overwrite what someone is typing
  if (!typedRender && !typingPending && search.value.trim() !== state.q) search.value = state.q;
  typedRender = false;
  const filters = h("div", { class: "filters", role: "search", "aria-label": "Filter paintings" },
    h("label", { class: "control", for: "gallery-search" }, h("span", {}, "Search"), search),
    select("gallery-category", "Has", state.cat, [["", "any category"],
      ...CATEGORIES.map((c) => [c, `${c}: ${categoryInfo(c).label}`])], (v) => navigate({ cat: v, page: 0 }, { focus: "gallery-category" })),
    select("gallery-style", "Style", state.style, [["", "any style"], ...distinct("styles").map((v) => [v, v])],
      (v) => navigate({ style: v, page: 0 }, { focus: "gallery-style" })),
    select("gallery-artist", "Artist", state.artist, [["", "any artist"], ...distinct("artists").map((v) => [v, v])],
      (v) => navigate({ artist: v, page: 0 }, { focus: "gallery-artist" })),
    state.q || state.cat || state.style || state.artist ? h("button", { type: "button", "data-testid": "clear-filters",
      onclick: () => navigate({ q: "", cat: "", style: "", artist: "", page: 0 }) }, "Clear filters") : null);
  const cards = result.items.map((p) => h("li", { class: "card" },
    h("a", { href: linkTo(state, { view: "painting", painting: p.id, span: null, token: null, compare: null }),
      "data-testid": "gallery-item", "data-id": p.id,
      onclick: (e) => {
        if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return; // new tab: let the browser do it
        e.preventDefault();
        navigate({ view: "painting", painting: p.id, span: null, token: null, compare: null });
      } },
    h("span", { class: "thumb" },
      h("img", { src: source.thumbUrl(state.dataset, p.id, p.thumb), alt: "", loading: "lazy", decoding: "async" })),
    h("span", { class: "card-title" }, p.title || p.id),
    h("span", { class: "card-meta" }, [p.artist, p.year].filter(Boolean).join(", ") || "unknown artist"),
    h("span", { class: "card-cats", "aria-label": "phrases by category" }, Object.entries(p.categories || {}).map(([c, n]) =>
      categoryChip(c, `${c} ${n}`))),
    p.status === "failed" ? h("span", { class: "badge-failed" }, "failed") : null)));
  const pager = pagerNav(Math.ceil(result.total / PAGE), state.page, navigate);
  root.replaceChildren(
    h("section", { class: "gallery", "aria-labelledby": "gallery-heading", "data-testid": "gallery", "data-q": state.q },
      h("div", { class: "toolbar" },
        h("h2", { id: "gallery-heading" }, manifest.name),
        h("span", { class: "count", "data-testid": "gallery-count", role: "status" },
          `${result.total} painting${result.total === 1 ? "" : "s"}`)),
      manifest.description ? h("p", { class: "muted" }, manifest.description) : null,
      filters,
      cards.length ? h("ul", { class: "cards" }, cards)
        : h("p", { class: "muted", "data-testid": "gallery-empty" }, "No painting matches these filters."),
      pager));
}

