// Map rendering: an 8-bit grid map (PNG) becomes a smooth colour overlay at canvas size, with
// the Otsu region and the SAM 3 mask stacked on it as outlines (or a hatch). Decoded grids,
// upsampled values and traced outlines are cached per URL and size, so switching colormap,
// opacity, look or layers only re-colours (a few ms) instead of re-fetching and resampling.
// Rendering is split from painting: the view computes the layers, then paints them in one
// synchronous step only if they are still the latest request (fast clicks never paint a
// stale map, and there is never a blank frame between two maps).

import { lut32, OTSU_RGB, SAM_RGB } from "./lib/colormap.js";
import { compressChain, traceContours } from "./lib/contour.js";
import { hatchToRgba } from "./lib/mask.js";
import { maskAbove } from "./lib/otsu.js";
import { alphaRamp } from "./lib/ramp.js";
import { bilinear } from "./lib/upsample.js";

const grids = new Map(); // url -> Promise<{values: Uint8Array, w, h}>
const upsampled = new Map(); // url|W|H -> Promise<Uint8ClampedArray>
const MAX_CACHED = 48; // upsampled maps are W*H bytes (0.8 MB at 1000x800): keep the recent ones

/** The promise cached under `key` (a failure is forgotten, so the next call tries again). */
function remember(cache, key, make) {
  if (!cache.has(key)) {
    if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value);
    cache.set(key, make().catch((e) => { cache.delete(key); throw e; }));
  }
  return cache.get(key);
}

/** Decode a grayscale PNG (map or 0/255 mask) into one byte per pixel. */
export function loadGrid(url) {
  if (!grids.has(url)) {
    grids.set(url, (async () => {
      const response = await fetch(url);
      if (!response.ok) throw new Error(`${response.status} for ${url}`);
      // no colour management and no premultiplication: the bytes are data, not a picture
      const bitmap = await createImageBitmap(await response.blob(), { colorSpaceConversion: "none",
        premultiplyAlpha: "none" });
      const c = new OffscreenCanvas(bitmap.width, bitmap.height);
      const ctx = c.getContext("2d", { willReadFrequently: true });
      ctx.drawImage(bitmap, 0, 0);
      const rgba = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
      const values = new Uint8Array(bitmap.width * bitmap.height);
      for (let i = 0; i < values.length; i++) values[i] = rgba[i * 4]; // grayscale: R = G = B
      const grid = { values, w: bitmap.width, h: bitmap.height };
      bitmap.close(); // a closed bitmap reports 0 x 0: read the size first
      return grid;
    })().catch((e) => { grids.delete(url); throw e; }));
  }
  return grids.get(url);
}

/** The map at W x H in 8 bits, bilinear as cv2.resize of the 8-bit map (what the Otsu metric measured). */
export function mapAtCanvas(url, W, H) {
  return remember(upsampled, `${url}|${W}|${H}`,
    async () => { const g = await loadGrid(url); return bilinear(g.values, g.w, g.h, W, H, new Uint8ClampedArray(W * H)); });
}

/** Fetch and decode maps ahead of a click (they are ~1 KB each): a first click then costs no network. */
export function prefetch(urls) {
  const idle = window.requestIdleCallback || ((f) => setTimeout(f, 50));
  idle(() => urls.forEach((url) => loadGrid(url).catch(() => {})));
}

const masks = new Map(); // url|W|H -> Promise<Uint8Array> (SAM 3 masks at canvas size)
const samAtCanvas = (url, W, H) => remember(masks, `${url}|${W}|${H}`, async () => {
  const g = await loadGrid(url);
  return maskAbove(g.w === W && g.h === H ? g.values : await mapAtCanvas(url, W, H), 127);
});

/** Outline width in canvas pixels: about 2 screen pixels on a painting shown ~700 px wide. */
export const lineWidth = (W, H) => Math.max(1.5, Math.max(W, H) / 350);

/**
 * A mask's borders (lib/contour.js, straight runs cut to their ends) stroked once into a bitmap:
 * a white or cyan line on a dark halo, solid or dashed, plus the hatch inside for SAM's hatch
 * style. Stroking thousands of border points costs tens of ms on a CPU raster; the bitmap is
 * then drawn in about one.
 */
function outlineBitmap(mask, W, H, { rgb, dash = false, hatch = false, opacity = 1 }) {
  const c = new OffscreenCanvas(W, H);
  const ctx = c.getContext("2d");
  if (hatch) {
    const stripes = new ImageData(W, H);
    hatchToRgba(mask, W, H, rgb, Math.max(0.5, opacity), stripes.data);
    ctx.putImageData(stripes, 0, 0);
  }
  const path = new Path2D();
  for (const { points } of traceContours(mask, W, H)) {
    const corners = compressChain(points);
    path.moveTo(corners[0] + 0.5, corners[1] + 0.5);
    for (let k = 2; k < corners.length; k += 2) path.lineTo(corners[k] + 0.5, corners[k + 1] + 0.5);
    if (corners.length === 2) path.lineTo(corners[0] + 0.5, corners[1] + 0.5); // one pixel: a dot
    path.closePath();
  }
  const lw = lineWidth(W, H);
  ctx.lineJoin = "round";
  ctx.setLineDash(dash ? [lw * 4, lw * 2.5] : []);
  ctx.strokeStyle = "rgba(0, 0, 0, 0.7)"; // the halo
  ctx.lineWidth = lw * 2.4;
  ctx.stroke(path);
  ctx.strokeStyle = `rgb(${rgb.join(",")})`;
  ctx.lineWidth = lw;
  ctx.stroke(path);
  return c.transferToImageBitmap();
}

const outlines = new Map(); // kind|url|W|H|style -> Promise<ImageBitmap>
const otsuOutline = (mapUrl, threshold, W, H) => remember(outlines, `otsu|${mapUrl}|${W}|${H}|${threshold}`,
  async () => outlineBitmap(maskAbove(await mapAtCanvas(mapUrl, W, H), threshold), W, H, { rgb: OTSU_RGB })); // the metric's mask
const samOutline = (samUrl, W, H, samstyle, opacity) => {
  const hatch = samstyle === "hatch";
  return remember(outlines, `sam|${samUrl}|${W}|${H}|${samstyle}|${hatch ? opacity : ""}`,
    async () => outlineBitmap(await samAtCanvas(samUrl, W, H), W, H, { rgb: SAM_RGB, dash: !hatch, hatch, opacity }));
};
const heats = new Map(); // url|W|H|look -> Promise<ImageData>: the last few, so a click back costs one putImageData
const MAX_HEATS = 8;

function heatImage(spec, W, H) {
  const key = `${spec.mapUrl}|${W}|${H}|${spec.cmap}|${spec.look}|${spec.opacity}|${spec.cut}`;
  if (!heats.has(key) && heats.size >= MAX_HEATS) heats.delete(heats.keys().next().value);
  return remember(heats, key, async () => {
    const values = await mapAtCanvas(spec.mapUrl, W, H);
    const heat = new ImageData(W, H);
    const pixels = new Uint32Array(heat.data.buffer);
    const table = lut32(spec.cmap, alphaRamp({ look: spec.look, opacity: spec.opacity, cut: spec.cut }));
    for (let i = 0; i < values.length; i++) pixels[i] = table[values[i]];
    return heat;
  });
}

/**
 * The layers to draw, ready for paint(): which of `spec.layers` apply to this selection, drawn
 * bottom up (heatmap, SAM 3 outline or hatch, Otsu outline).
 * @param {{layers: string[], mapUrl?, samUrl?, threshold?, cmap, opacity, look, cut, samstyle}} spec
 *   layers ⊆ ["tam", "otsu", "sam"]; threshold: the Otsu threshold (0..255) of the map
 * @param {{heat?: boolean}} [opts] heat: false prepares only the cached parts (see prepare)
 * @returns {Promise<{drawn: string[], heat: ImageData|null, bitmaps: ImageBitmap[]}>}
 */
export async function renderLayers(spec, W, H, { heat = true } = {}) {
  const on = new Set(spec.layers);
  const tam = on.has("tam") && spec.mapUrl;
  const otsu = on.has("otsu") && spec.mapUrl && Number.isFinite(spec.threshold);
  const sam = on.has("sam") && spec.samUrl;
  const [image, samBitmap, otsuBitmap] = await Promise.all([
    tam && heat ? heatImage(spec, W, H) : tam ? mapAtCanvas(spec.mapUrl, W, H).then(() => null) : null,
    sam ? samOutline(spec.samUrl, W, H, spec.samstyle, spec.opacity) : null,
    otsu ? otsuOutline(spec.mapUrl, spec.threshold, W, H) : null]);
  return { drawn: [tam && "tam", otsu && "otsu", sam && "sam"].filter(Boolean), heat: image,
    bitmaps: [samBitmap, otsuBitmap].filter(Boolean) };
}

/**
 * Prepare the layers of the given specs while the browser is idle, one per idle period:
 * upsampled maps and traced outlines are cached, so the first click on a phrase paints at once.
 */
export function prepare(specs, W, H) {
  const idle = window.requestIdleCallback || ((f) => setTimeout(f, 50));
  const queue = [...specs];
  const next = () => {
    const spec = queue.shift();
    if (spec) renderLayers(spec, W, H, { heat: false }).catch(() => {}).then(() => idle(next));
  };
  idle(next);
}

/** Replace the canvas content with `layers` in one step (null: clear). */
export function paint(canvas, layers) {
  const ctx = canvas.getContext("2d");
  if (layers?.heat) ctx.putImageData(layers.heat, 0, 0); // replaces every pixel: no clear needed
  else ctx.clearRect(0, 0, canvas.width, canvas.height);
  for (const bitmap of layers?.bitmaps || []) ctx.drawImage(bitmap, 0, 0);
}

/** What lies under canvas pixel (x, y): map value 0..255 and mask membership, from the caches. */
export async function probe({ mapUrl, samUrl, threshold }, W, H, x, y) {
  const i = Math.max(0, Math.min(H - 1, y)) * W + Math.max(0, Math.min(W - 1, x));
  const out = {};
  if (mapUrl) {
    out.value = (await mapAtCanvas(mapUrl, W, H))[i];
    if (Number.isFinite(threshold)) out.otsu = out.value > threshold;
  }
  if (samUrl) out.sam = (await samAtCanvas(samUrl, W, H))[i] === 1;
  return out;
}
