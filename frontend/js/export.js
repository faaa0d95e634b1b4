// PNG export: the painting at canvas resolution with the overlay exactly as shown (every
// layer that is on), and under it a band that says what the picture shows: the phrase, its
// category in the category's colour, the colour bar of the heatmap (the part hidden by "hide
// below" greyed out), the keys of the Otsu and SAM 3 outlines, and the painting's title.

import { lut, OTSU_RGB, SAM_RGB } from "./lib/colormap.js";
import { lineWidth } from "./overlay.js";

const FONT = "system-ui, sans-serif";

/**
 * @param {HTMLImageElement} img the painting
 * @param {HTMLCanvasElement} overlay the overlay canvas as painted (canvas resolution)
 * @param {{title: string, phrase: string, category?: {code, label, color, ink}, drawn: string[],
 *   cmap: string, look: string, opacity: number, cut: number, samstyle: string, threshold?: number}} what
 * @returns {Promise<Blob>} image/png
 */
export async function exportPng(img, overlay, what) {
  const W = overlay.width, H = overlay.height;
  const unit = Math.max(12, Math.round(W / 60)); // text size: readable when the image is shown whole
  const pad = Math.round(unit * 0.8);
  const c = document.createElement("canvas");
  c.width = W;
  const keys = keyItems(c.getContext("2d"), what, unit);
  const rows = flow(keys, W - 2 * pad, unit);
  c.height = H + Math.round(pad * 1.5 + unit * (2 + 1.5 * Math.max(1, rows.length) + 1.2));
  const ctx = c.getContext("2d"); // (resizing a canvas resets its context)
  ctx.drawImage(img, 0, 0, W, H);
  ctx.drawImage(overlay, 0, 0);
  ctx.fillStyle = "#15161a";
  ctx.fillRect(0, H, W, c.height - H);
  ctx.textBaseline = "top";
  let y = H + Math.round(pad * 0.75);
  phraseLine(ctx, what, pad, y, W - 2 * pad, unit);
  y += unit * 2;
  for (const row of rows) {
    for (const { item, x } of row) item.draw(ctx, pad + x, y, lineWidth(W, H));
    y += unit * 1.5;
  }
  if (!rows.length) y += unit * 1.5;
  ctx.font = `${Math.round(unit * 0.8)}px ${FONT}`;
  ctx.fillStyle = "#a3a09a";
  ctx.fillText(what.title, pad, y, W - 2 * pad);
  return new Promise((resolve) => c.toBlob(resolve, "image/png"));
}

/** Category tag (its colour, readable ink), the category's name, then the phrase. */
function phraseLine(ctx, what, x, y, width, unit) {
  let at = x;
  if (what.category) {
    ctx.font = `bold ${Math.round(unit * 0.85)}px ${FONT}`;
    const tag = what.category.code, tw = ctx.measureText(tag).width + unit * 0.6;
    ctx.fillStyle = what.category.color;
    ctx.fillRect(at, y, tw, unit * 1.3);
    ctx.fillStyle = what.category.ink;
    ctx.fillText(tag, at + unit * 0.3, y + unit * 0.22);
    at += tw + unit * 0.5;
    ctx.font = `${Math.round(unit * 0.85)}px ${FONT}`;
    ctx.fillStyle = "#e9e6df";
    ctx.fillText(what.category.label, at, y + unit * 0.22, width / 3);
    at += Math.min(width / 3, ctx.measureText(what.category.label).width) + unit * 0.6;
  }
  ctx.font = `${unit}px Georgia, serif`;
  ctx.fillStyle = "#e9e6df";
  ctx.fillText(what.phrase, at, y + unit * 0.1, Math.max(unit, x + width - at));
}

/** Left-to-right rows of key items that fit `width` (an item wider than a row gets a row of its own). */
function flow(items, width, unit) {
  const rows = [];
  let row = [], x = 0;
  for (const item of items) {
    if (row.length && x + item.width > width) { rows.push(row); row = []; x = 0; }
    row.push({ item, x });
    x += item.width + unit;
  }
  if (row.length) rows.push(row);
  return rows;
}

/** The keys of what is drawn: the heatmap's colour bar, the Otsu and SAM 3 lines. Each {width, draw}. */
function keyItems(ctx, what, unit) {
  ctx.font = `${Math.round(unit * 0.8)}px ${FONT}`;
  const items = [];
  if (what.drawn.includes("tam")) {
    const label = `1  map value${what.cut > 0 ? ` (hidden below ${what.cut})` : ""}`;
    const bar = Math.round(unit * 10);
    items.push({ width: unit * 1.2 + bar + ctx.measureText(label).width, draw: (c, x, y) => {
      c.font = `${Math.round(unit * 0.8)}px ${FONT}`;
      c.fillStyle = "#a3a09a";
      c.fillText("0", x, y + unit * 0.05);
      const bx = Math.round(x + unit * 0.9), table = lut(what.cmap);
      for (let px = 0; px < bar; px++) { // the colormap at full strength; values under "hide below" grey
        const v = Math.round((px / (bar - 1)) * 255);
        c.fillStyle = v / 255 < what.cut ? "#5a5d66" : `rgb(${table[v * 3]}, ${table[v * 3 + 1]}, ${table[v * 3 + 2]})`;
        c.fillRect(bx + px, y, 1, Math.round(unit * 0.9));
      }
      c.fillStyle = "#a3a09a";
      c.fillText(label, bx + bar + unit * 0.3, y + unit * 0.05);
    } });
  }
  const lines = [["otsu", OTSU_RGB, `Otsu region (map > ${what.threshold}/255)`, false],
    ["sam", SAM_RGB, `SAM 3 mask${what.samstyle === "hatch" ? " (hatched)" : ""}`, what.samstyle !== "hatch"]];
  for (const [layer, rgb, label, dash] of lines) {
    if (!what.drawn.includes(layer)) continue;
    items.push({ width: unit * 2.4 + ctx.measureText(label).width, draw: (c, x, y, line) => {
      c.save();
      c.setLineDash(dash ? [line * 4, line * 2.5] : []);
      c.lineWidth = Math.max(2, line);
      c.strokeStyle = `rgb(${rgb.join(",")})`;
      c.beginPath();
      c.moveTo(x, y + unit * 0.5);
      c.lineTo(x + unit * 2, y + unit * 0.5);
      c.stroke();
      c.restore();
      c.font = `${Math.round(unit * 0.8)}px ${FONT}`;
      c.fillStyle = "#a3a09a";
      c.fillText(label, x + unit * 2.4, y + unit * 0.05);
    } });
  }
  return items;
}
