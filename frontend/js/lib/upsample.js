// Bilinear upsampling of a grid map to canvas pixels, with OpenCV's INTER_LINEAR convention
// (pixel centres aligned: src = (dst + 0.5) * scale - 0.5, clamped at the borders), so the
// browser shows exactly what the Otsu metric measured (cv2.resize of the 8-bit map).

function axis(n, src) {
  const scale = src / n;
  const i0 = new Int32Array(n), i1 = new Int32Array(n), w = new Float32Array(n);
  for (let d = 0; d < n; d++) {
    let s = (d + 0.5) * scale - 0.5;
    if (s < 0) s = 0;
    let lo = Math.floor(s);
    if (lo >= src - 1) { lo = src - 1; s = lo; }
    i0[d] = lo;
    i1[d] = Math.min(lo + 1, src - 1);
    w[d] = s - lo;
  }
  return { i0, i1, w };
}

/**
 * @param {ArrayLike<number>} src gh x gw grid, row-major
 * @param {Float32Array|Uint8ClampedArray} [out] W*H result; a Uint8ClampedArray rounds to 8 bits
 *   as the metrics' cv2.resize of the 8-bit map does (within one level: cv2 works in fixed point)
 * @returns W*H values upsampled from the grid
 */
export function bilinear(src, gw, gh, W, H, out = new Float32Array(W * H)) {
  const xs = axis(W, gw), ys = axis(H, gh);
  for (let y = 0; y < H; y++) {
    const r0 = ys.i0[y] * gw, r1 = ys.i1[y] * gw, fy = ys.w[y];
    for (let x = 0; x < W; x++) {
      const a = xs.i0[x], b = xs.i1[x], fx = xs.w[x];
      const top = src[r0 + a] * (1 - fx) + src[r0 + b] * fx;
      const bottom = src[r1 + a] * (1 - fx) + src[r1 + b] * fx;
      out[y * W + x] = top * (1 - fy) + bottom * fy;
    }
  }
  return out;
}

/** Value under canvas pixel (x, y) of the upsampled map, without upsampling everything. */
export function sampleAt(src, gw, gh, W, H, x, y) {
  const px = Math.max(0, Math.min(W - 1, Math.floor(x)));
  const py = Math.max(0, Math.min(H - 1, Math.floor(y)));
  return bilinear(src, gw, gh, W, H)[py * W + px];
}
