// Map rendering: an 8-bit grid map (PNG) becomes a smooth colour overlay at canvas size.
// Decoded grids and their upsampled values are cached per URL and size, so switching
// colormap, opacity or overlay kind only re-colours (a few ms) instead of re-fetching and
// resampling. Rendering is split from painting: the view computes an image, then paints it
// only if it is still the latest request (fast clicks never paint a stale map).

import { lut32 } from "./lib/colormap.js";
import { maskToRgba } from "./lib/mask.js";
import { maskAbove } from "./lib/otsu.js";
import { bilinear } from "./lib/upsample.js";

const grids = new Map(); // url -> Promise<{values: Uint8Array, w, h}>
const upsampled = new Map(); // url|W|H -> Promise<Uint8ClampedArray>
const MAX_CACHED = 48; // upsampled maps are W*H bytes (0.8 MB at 1000x800): keep the recent ones
export const OTSU_RGB = [255, 214, 10];
export const SAM_RGB = [0, 200, 255];

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
  const key = `${url}|${W}|${H}`;
  if (!upsampled.has(key)) {
    if (upsampled.size >= MAX_CACHED) upsampled.delete(upsampled.keys().next().value);
    upsampled.set(key, loadGrid(url).then((g) => bilinear(g.values, g.w, g.h, W, H, new Uint8ClampedArray(W * H)))
      .catch((e) => { upsampled.delete(key); throw e; }));
  }
  return upsampled.get(key);
}

/** Fetch and decode maps ahead of a click (they are ~1 KB each): a first click then costs no network. */
export function prefetch(urls) {
  const idle = window.requestIdleCallback || ((f) => setTimeout(f, 50));
  idle(() => urls.forEach((url) => loadGrid(url).catch(() => {})));
}

const masks = new Map(); // url|W|H -> Promise<Uint8Array> (SAM 3 masks at canvas size)
function samAtCanvas(url, W, H) {
  const key = `${url}|${W}|${H}`;
  if (!masks.has(key)) {
    if (masks.size >= MAX_CACHED) masks.delete(masks.keys().next().value);
    masks.set(key, loadGrid(url).then(async (g) => (g.w === W && g.h === H ? maskAbove(g.values, 127)
      : maskAbove(await mapAtCanvas(url, W, H), 127))).catch((e) => { masks.delete(key); throw e; }));
  }
  return masks.get(key);
}

/**
 * The overlay as ImageData (W x H), or null for "nothing to draw".
 * kind: "tam" (colormapped map), "otsu" (map > threshold, as the metric), "sam" (SAM 3 mask).
 */
export async function renderOverlay({ kind, mapUrl, samUrl, threshold, cmap, opacity }, W, H) {
  if (kind === "tam" && mapUrl) {
    const values = await mapAtCanvas(mapUrl, W, H);
    const image = new ImageData(W, H);
    const pixels = new Uint32Array(image.data.buffer), table = lut32(cmap, opacity);
    for (let i = 0; i < values.length; i++) pixels[i] = table[values[i]];
    return image;
  }
  if (kind === "otsu" && mapUrl && Number.isFinite(threshold)) {
    const values = await mapAtCanvas(mapUrl, W, H); // 8 bits, as cv2 thresholds them
    const mask = new Uint8Array(values.length);
    for (let i = 0; i < values.length; i++) mask[i] = values[i] > threshold ? 1 : 0;
    const image = new ImageData(W, H);
    maskToRgba(mask, W, H, OTSU_RGB, opacity, image.data);
    return image;
  }
  if (kind === "sam" && samUrl) {
    const image = new ImageData(W, H);
    maskToRgba(await samAtCanvas(samUrl, W, H), W, H, SAM_RGB, opacity, image.data);
    return image;
  }
  return null;
}

/** Replace the canvas content in one step (no blank frame between two maps). */
export function paint(canvas, image) {
  const ctx = canvas.getContext("2d");
  if (image) ctx.putImageData(image, 0, 0);
  else ctx.clearRect(0, 0, canvas.width, canvas.height);
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

/** The painting with the current overlay, as a PNG blob (the export button). */
export async function exportPng(img, overlay) {
  const c = document.createElement("canvas");
  c.width = overlay.width; c.height = overlay.height;
  const ctx = c.getContext("2d");
  ctx.drawImage(img, 0, 0, c.width, c.height);
  ctx.drawImage(overlay, 0, 0);
  return new Promise((resolve) => c.toBlob(resolve, "image/png"));
}
