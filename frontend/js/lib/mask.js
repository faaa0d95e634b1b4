// A binary mask as a diagonal hatch (RGBA): stripes inside the mask, transparent elsewhere,
// so the painting and the heatmap under it stay visible. The mask's outline is drawn apart
// from its traced contours (lib/contour.js). Pure, unit-tested.

/** Stripe spacing and width in canvas pixels: about 100 stripes across the longer side. */
export function hatchGeometry(W, H) {
  const spacing = Math.max(6, Math.round(Math.max(W, H) / 100));
  return { spacing, width: Math.max(1, Math.round(spacing / 3)) };
}

/**
 * @param {ArrayLike<number>} mask W*H, nonzero inside
 * @param {number[]} rgb stripe colour
 * @param {number} alpha 0..1 stripe opacity
 * @param {Uint8ClampedArray} out RGBA, 4*W*H; pixels off the stripes are left transparent
 * @returns {{inside: number, striped: number}} mask pixels and stripe pixels
 */
export function hatchToRgba(mask, W, H, rgb, alpha, out, { spacing, width } = hatchGeometry(W, H)) {
  const a = Math.round(Math.max(0, Math.min(1, alpha)) * 255);
  let inside = 0, striped = 0;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = y * W + x;
      if (!mask[i]) continue;
      inside++;
      if ((x + y) % spacing >= width) continue;
      striped++;
      out[i * 4] = rgb[0]; out[i * 4 + 1] = rgb[1]; out[i * 4 + 2] = rgb[2]; out[i * 4 + 3] = a;
    }
  }
  return { inside, striped };
}
