// Binary masks (Otsu, SAM 3) as RGBA: a translucent fill with a solid outline, so the painting
// stays visible inside the region and its edge reads at any opacity. Pure, unit-tested.

/**
 * @param {Uint8Array} mask W*H, 1 inside
 * @param {number} W
 * @param {number} H
 * @param {number[]} rgb fill and outline colour
 * @param {number} alpha 0..1, the overlay opacity
 * @param {Uint8ClampedArray} out RGBA, 4*W*H (left transparent outside the mask)
 * @returns {{inside: number}} number of mask pixels
 */
export function maskToRgba(mask, W, H, rgb, alpha, out) {
  const fill = Math.round(Math.max(0, Math.min(1, alpha)) * 0.7 * 255);
  const edge = Math.round(Math.max(0.35, Math.min(1, alpha)) * 255);
  const line = Math.max(1, Math.round(Math.max(W, H) / 400)); // ~2 px on a 800 px canvas
  let inside = 0;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = y * W + x;
      if (!mask[i]) { out[i * 4 + 3] = 0; continue; }
      inside++;
      let border = false;
      for (let d = 1; d <= line && !border; d++) {
        border = x < d || y < d || x >= W - d || y >= H - d
          || !mask[i - d] || !mask[i + d] || !mask[i - d * W] || !mask[i + d * W];
      }
      out[i * 4] = rgb[0]; out[i * 4 + 1] = rgb[1]; out[i * 4 + 2] = rgb[2];
      out[i * 4 + 3] = border ? edge : fill;
    }
  }
  return { inside };
}
