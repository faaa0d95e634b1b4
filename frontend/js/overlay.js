// Map rendering: an 8-bit grid map (PNG) becomes a smooth colour overlay at canvas size.
// Decoded grids and their upsampled values are cached per URL, so switching colormap,
// opacity or overlay kind only re-colours (a few ms) instead of re-fetching and resampling.

import { applyColormap } from "./lib/colormap.js";
import { bilinear } from "./lib/upsample.js";
import { maskAbove } from "./lib/otsu.js";

const grids = new Map(); // url -> Promise<{values: Uint8Array, w, h}>
const upsampled = new Map(); // url|W|H -> Float32Array

/** Decode a grayscale PNG (map or 0/255 mask) into one byte per pixel. */
export function loadGrid(url) {
  if (!grids.has(url)) {
    grids.set(url, (async () => {
      const response = await fetch(url);
      if (!response.ok) throw new Error(`${response.status} for ${url}`);
      const bitmap = await createImageBitmap(await response.blob(), { colorSpaceConversion: "none",
        premultiplyAlpha: "none" });
      const c = new OffscreenCanvas(bitmap.width, bitmap.height);
      const ctx = c.getContext("2d", { willReadFrequently: true });
      ctx.drawImage(bitmap, 0, 0);
      const rgba = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
      const values = new Uint8Array(bitmap.width * bitmap.height);
      for (let i = 0; i < values.length; i++) values[i] = rgba[i * 4]; // grayscale: R = G = B
      return { values, w: bitmap.width, h: bitmap.height };
    })().catch((e) => { grids.delete(url); throw e; }));
  }
  return grids.get(url);
}

export async function mapAtCanvas(url, W, H) {
  const key = `${url}|${W}|${H}`;
  if (!upsampled.has(key)) {
    const g = await loadGrid(url);
    upsampled.set(key, bilinear(g.values, g.w, g.h, W, H));
  }
  return upsampled.get(key);
}

/**
 * Draw one overlay into `canvas` (intrinsic size W x H = the painting's canvas).
 * kind: "tam" (colormapped map), "otsu" (map > threshold, as the metric), "sam" (SAM mask).
 */
export async function drawOverlay(canvas, { kind, mapUrl, samUrl, threshold, cmap, opacity }) {
  const W = canvas.width, H = canvas.height;
  const ctx = canvas.getContext("2d");
  if (kind === "none" || (!mapUrl && kind !== "sam") || (kind === "sam" && !samUrl)) {
    ctx.clearRect(0, 0, W, H);
    return { drawn: false };
  }
  const image = ctx.createImageData(W, H);
  if (kind === "tam") {
    applyColormap(await mapAtCanvas(mapUrl, W, H), cmap, opacity, image.data);
  } else {
    let mask;
    if (kind === "otsu") {
      const values = await mapAtCanvas(mapUrl, W, H);
      const rounded = Uint8Array.from(values, (v) => Math.round(v)); // cv2 resizes the 8-bit map to 8 bits
      mask = maskAbove(rounded, threshold ?? 127);
    } else {
      const g = await loadGrid(samUrl);
      mask = g.w === W && g.h === H ? maskAbove(g.values, 127) : maskAbove(bilinear(g.values, g.w, g.h, W, H), 127);
    }
    const color = kind === "otsu" ? [255, 214, 10] : [0, 200, 255];
    const a = Math.round(opacity * 255);
    for (let i = 0; i < mask.length; i++) {
      if (!mask[i]) continue;
      image.data.set(color, i * 4);
      image.data[i * 4 + 3] = a;
    }
  }
  ctx.putImageData(image, 0, 0);
  return { drawn: true };
}

/** The painting with its current overlay, as a PNG blob (the export button). */
export async function exportPng(img, overlay) {
  const c = document.createElement("canvas");
  c.width = overlay.width; c.height = overlay.height;
  const ctx = c.getContext("2d");
  ctx.drawImage(img, 0, 0, c.width, c.height);
  ctx.drawImage(overlay, 0, 0);
  return new Promise((resolve) => c.toBlob(resolve, "image/png"));
}
