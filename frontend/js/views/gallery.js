// Gallery: thumbnails with title, artist, year; search and filters; keyboard accessible
// (every card is a link; filters are labelled form controls).

import { CATEGORIES, CATEGORY_INFO, h } from "../dom.js";

const PAGE = 24;

export async function renderGallery(root, { source, state, navigate }) {
  const manifest = await source.manifest(state.dataset);
  const styles = [...new Set(manifest.paintings.map((p) => p.style).filter(Boolean))].sort();
  const result = await source.paintings(state.dataset, { q: state.q, category: state.cat, offset: state.page * PAGE,
    limit: PAGE });
  const search = h("input", { type: "search", id: "gallery-search", value: state.q, placeholder: "title, artist, caption…",
    "aria-label": "Search paintings", "data-testid": "gallery-search" });
  search.addEventListener("change", () => navigate({ q: search.value.trim(), page: 0 }));
  const category = h("select", { id: "gallery-category", "aria-label": "Span category present",
    onchange: (e) => navigate({ cat: e.target.value, page: 0 }) },
  h("option", { value: "" }, "any category"),
  CATEGORIES.map((c) => h("option", { value: c, selected: state.cat === c }, `${c} — ${CATEGORY_INFO[c].label}`)));
  const styleNote = styles.length ? h("p", { class: "muted" }, `Styles: ${styles.join(", ")}`) : null;
  const cards = result.items.map((p) => h("li", { class: "card" },
    h("a", { href: `?view=painting&dataset=${state.dataset}&painting=${encodeURIComponent(p.id)}`,
      "data-testid": "gallery-item", "data-id": p.id,
      onclick: (e) => { e.preventDefault(); navigate({ view: "painting", painting: p.id, span: null, token: null,
        compare: null }); } },
    h("img", { src: source.thumbUrl(state.dataset, p.id, p.thumb), alt: "", loading: "lazy", width: 256 }),
    h("span", { class: "card-title" }, p.title || p.id),
    h("span", { class: "card-meta" }, [p.artist, p.year].filter(Boolean).join(", ") || "unknown artist"),
    h("span", { class: "card-cats" }, Object.entries(p.categories || {}).map(([c, n]) =>
      h("span", { class: "chip", style: { "--cat": CATEGORY_INFO[c]?.color || "#888" }, title: CATEGORY_INFO[c]?.label },
        `${c} ${n}`))),
    p.status === "failed" ? h("span", { class: "badge-failed" }, "failed") : null)));
  const pages = Math.ceil(result.total / PAGE);
  const pager = pages > 1 ? h("nav", { class: "pager", "aria-label": "Pages" },
    h("button", { disabled: state.page === 0, onclick: () => navigate({ page: state.page - 1 }) }, "← previous"),
    h("span", {}, `page ${state.page + 1} of ${pages}`),
    h("button", { disabled: state.page + 1 >= pages, onclick: () => navigate({ page: state.page + 1 }) }, "next →"))
    : null;
  root.replaceChildren(
    h("section", { class: "gallery", "aria-labelledby": "gallery-heading" },
      h("div", { class: "toolbar" },
        h("h2", { id: "gallery-heading" }, manifest.name),
        h("label", { for: "gallery-search" }, "Search"), search, category,
        h("span", { class: "count", "data-testid": "gallery-count" }, `${result.total} paintings`)),
      manifest.description ? h("p", { class: "muted" }, manifest.description) : null, styleNote,
      h("ul", { class: "cards" }, cards), pager));
}
