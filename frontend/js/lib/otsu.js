// Otsu's threshold on 8-bit values, as OpenCV computes it (cv2.threshold with THRESH_OTSU):
// the t maximising the between-class variance, class 0 = values <= t; mask = value > t.
// Constant input has no between-class variance: t = 0 (OpenCV returns 0 there too).

/** @returns {number} threshold 0..255 */
export function otsuThreshold(values) {
  const hist = new Float64Array(256);
  for (let i = 0; i < values.length; i++) hist[Math.max(0, Math.min(255, Math.round(values[i])))]++;
  const n = values.length;
  if (n === 0) return 0;
  let sum = 0;
  for (let t = 0; t < 256; t++) sum += t * hist[t];
  let w0 = 0, sum0 = 0, best = 0, bestT = 0;
  for (let t = 0; t < 256; t++) {
    w0 += hist[t] / n;
    sum0 += (t * hist[t]) / n;
    const w1 = 1 - w0;
    if (w0 < 1e-12 || w1 < 1e-12) continue;
    const mu0 = sum0 / w0, mu1 = (sum / n - sum0) / w1;
    const between = w0 * w1 * (mu0 - mu1) ** 2;
    if (between > best) { best = between; bestT = t; }
  }
  return bestT;
}

/** @returns {Uint8Array} 1 where value > t */
export function maskAbove(values, t) {
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = values[i] > t ? 1 : 0;
  return out;
}
