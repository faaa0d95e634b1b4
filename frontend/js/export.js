// PNG export: the painting at canvas resolution with the overlay exactly as shown (every
// layer that is on), and under it a band that says what the picture shows: the phrase, its
// category in the category's colour, the colour bar of the heatmap (the part hidden by "hide
// below" greyed out), the keys of the Otsu and SAM 3 outlines, and the painting's title.

import { lut } from "./lib/colormap.js";
import { lineWidth, OTSU_RGB, SAM_RGB } from "./overlay.js";

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
  const band = Math.round(unit * 5.2);
  const c = document.createElement("canvas");
  c.width = W; c.height = H + band;
  const ctx = c.getContext("2d");
  ctx.drawImage(img, 0, 0, W, H);
  ctx.drawImage(overlay, 0, 0);
  ctx.fillStyle = "#15161a";
  ctx.fillRect(0, H, W, band);
  drawBand(ctx, what, { x: Math.round(unit * 0.8), y: H + Math.round(unit * 0.6), W: W - Math.round(unit * 1.6), unit,
    line: lineWidth(W, H) });
  return new Promise((resolve) => c.toBlob(resolve, "image/png"));
}

function drawBand(ctx, what, { x, y, W, unit, line }) {
  ctx.textBaseline = "top";
  let at = x;
  // line 1: category tag, then the phrase
  if (what.category) {
    ctx.font = `bold ${Math.round(unit * 0.85)}px ${FONT}`;
    const tag = what.category.code, tw = ctx.measureText(tag).width + unit * 0.6;
    ctx.fillStyle = what.category.color;
    ctx.fillRect(at, y, tw, unit * 1.3);
    ctx.fillStyle = what.category.ink;
    ctx.fillText(tag, at + unit * 0.3, y + unit * 0.22);
    at += tw + unit * 0.5;
    ctx.font = `${Math.round(unit * 0.85)}px ${FONT}`;
    ctx.fillStyle = what.category.color;
    ctx.fillText(what.category.label, at, y + unit * 0.22, W / 3);
    at += Math.min(W / 3, ctx.measureText(what.category.label).width) + unit * 0.6;
  }
  ctx.font = `${unit}px Georgia, serif`;
  ctx.fillStyle = "#e9e6df";
  ctx.fillText(what.phrase, at, y + unit * 0.1, x + W - at);
  // line 2: the keys of what is drawn, then the painting
  const y2 = y + unit * 2;
  at = x;
  ctx.font = `${Math.round(unit * 0.8)}px ${FONT}`;
  if (what.drawn.includes("tam")) at = colourBar(ctx, what, at, y2, unit);
  for (const [layer, rgb, label, dash] of [["otsu", OTSU_RGB, `Otsu region (map > ${what.threshold}/255)`, false],
    ["sam", SAM_RGB, `SAM 3 mask${what.samstyle === "hatch" ? " (hatched)" : ""}`, what.samstyle !== "hatch"]]) {
    if (!what.drawn.includes(layer)) continue;
    ctx.save();
    ctx.setLineDash(dash ? [line * 4, line * 2.5] : []);
    ctx.lineWidth = Math.max(2, line);
    ctx.strokeStyle = `rgb(${rgb.join(",")})`;
    ctx.beginPath();
    ctx.moveTo(at, y2 + unit * 0.5);
    ctx.lineTo(at + unit * 2, y2 + unit * 0.5);
    ctx.stroke();
    ctx.restore();
    ctx.fillStyle = "#a3a09a";
    ctx.fillText(label, at + unit * 2.4, y2 + unit * 0.05);
    at += unit * 2.4 + ctx.measureText(label).width + unit;
  }
  ctx.fillStyle = "#a3a09a";
  ctx.fillText(what.title, x, y2 + unit * 1.6, W);
}

/** The colormap from 0 to 1 at full strength; values under "hide below" drawn grey. Returns the next x. */
function colourBar(ctx, what, x, y, unit) {
  const width = Math.round(unit * 10), height = Math.round(unit * 0.9);
  const table = lut(what.cmap);
  ctx.fillStyle = "#a3a09a";
  ctx.fillText("0", x, y + unit * 0.05);
  const bx = Math.round(x + unit * 0.9);
  for (let px = 0; px < width; px++) {
    const v = Math.round((px / (width - 1)) * 255);
    ctx.fillStyle = v / 255 < what.cut ? "#5a5d66" : `rgb(${table[v * 3]}, ${table[v * 3 + 1]}, ${table[v * 3 + 2]})`;
    ctx.fillRect(bx + px, y, 1, height);
  }
  const label = `1  map value${what.cut > 0 ? ` (hidden below ${what.cut})` : ""}`;
  ctx.fillStyle = "#a3a09a";
  ctx.fillText(label, bx + width + unit * 0.3, y + unit * 0.05);
  return bx + width + unit * 0.3 + ctx.measureText(label).width + unit;
}
