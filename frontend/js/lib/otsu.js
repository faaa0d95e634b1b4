// Otsu's threshold on 8-bit values, as OpenCV computes it (cv2.threshold with THRESH_OTSU):
// the t maximising the between-class variance, class 0 = values <= t; mask = value > t.
// The arithmetic follows OpenCV's getThreshVal_Otsu_8u step by step (same running mean
// update, same FLT_EPSILON guards, first maximum wins) so ties resolve the same way; the
// node tests compare against golden outputs of cv2 itself (frontend/tests/golden-cv2.json).
// Constant input has no between-class variance: t = 0 (OpenCV returns 0 there too).

const FLT_EPSILON = 1.1920928955078125e-7;

/** @returns {number} threshold 0..255 */
export function otsuThreshold(values) {
  const n = values.length;
  if (n === 0) return 0;
  const hist = new Float64Array(256);
  for (let i = 0; i < n; i++) hist[Math.max(0, Math.min(255, Math.round(values[i])))]++;
  const scale = 1 / n;
  let mu = 0;
  for (let i = 0; i < 256; i++) mu += i * hist[i];
  mu *= scale;
  let mu1 = 0, q1 = 0, maxSigma = 0, maxVal = 0;
  for (let i = 0; i < 256; i++) {
    const p = hist[i] * scale;
    mu1 *= q1;
    q1 += p;
    const q2 = 1 - q1;
    if (Math.min(q1, q2) < FLT_EPSILON || Math.max(q1, q2) > 1 - FLT_EPSILON) continue;
    mu1 = (mu1 + i * p) / q1;
    const mu2 = (mu - q1 * mu1) / q2;
    const sigma = q1 * q2 * (mu1 - mu2) * (mu1 - mu2);
    if (sigma > maxSigma) { maxSigma = sigma; maxVal = i; }
  }
  return maxVal;
}

/** @returns {Uint8Array} 1 where value > t */
export function maskAbove(values, t) {
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = values[i] > t ? 1 : 0;
  return out;
}
