// The five phrase categories: the paper's wording and one colour each, used everywhere a
// category shows (caption highlights, legend, gallery chips, charts, numbers, PNG export).
// Colours and names are those of the authors' project page (matplotlib's tab10 hues), so a
// reader moving between the two sees the same thing. Text drawn on a category colour uses
// `ink`: black or white, whichever contrasts more (WCAG 2 relative luminance), so a solid
// highlight stays readable (>= 4.5:1 for every category, checked in frontend/tests/).

export const CATEGORY_INFO = Object.freeze({
  CVO: { label: "Concrete object", color: "#1f77b4" },
  ICON: { label: "Named figure", color: "#9467bd" },
  STYLE: { label: "Style", color: "#2ca02c" },
  AFFECT: { label: "Affect", color: "#d62728" },
  META: { label: "Metadata", color: "#ff7f0e" },
});
export const CATEGORIES = Object.freeze(Object.keys(CATEGORY_INFO));
const UNKNOWN = { label: "Other", color: "#7f7f7f" };

/** @returns {[number, number, number]} the RGB of "#rrggbb" */
export function hexRgb(hex) {
  const m = /^#([0-9a-f]{6})$/i.exec(hex || "");
  if (!m) throw new Error(`not a #rrggbb colour: ${hex}`);
  const n = parseInt(m[1], 16);
  return [n >> 16, (n >> 8) & 255, n & 255];
}

/** WCAG 2 relative luminance of "#rrggbb" (0 black .. 1 white). */
export function luminance(hex) {
  const lin = (c) => { const s = c / 255; return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4; };
  const [r, g, b] = hexRgb(hex);
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}

/** WCAG 2 contrast ratio of two colours (1 .. 21). */
export function contrast(a, b) {
  const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}

/** Black or white text on `hex`, whichever reads better. */
export function inkOn(hex) {
  return contrast(hex, "#000000") >= contrast(hex, "#ffffff") ? "#000000" : "#ffffff";
}

/** {label, color, ink} of a category; unknown categories get a neutral grey and their own name. */
export function categoryInfo(category) {
  const info = CATEGORY_INFO[category] || { ...UNKNOWN, label: category || UNKNOWN.label };
  return { ...info, ink: inkOn(info.color) };
}

/** CSS custom properties that colour an element by category: --cat (fill) and --cat-ink (text on it). */
export function categoryStyle(category) {
  const { color, ink } = categoryInfo(category);
  return { "--cat": color, "--cat-ink": ink };
}
