// Borders of a binary mask as closed pixel chains: Suzuki & Abe's border following (1985), the
// algorithm behind OpenCV's findContours. The explorer strokes these chains to draw the Otsu
// region and the SAM 3 mask as outlines over the heatmap. Pure; the node tests compare the
// chains with cv2.findContours(mask, RETR_LIST, CHAIN_APPROX_NONE) on the same masks.
//
// Conventions (as in the paper and OpenCV): 8-connected foreground, 4-connected background,
// pixels outside the image are background; "clockwise" is as seen on screen (y grows down).
// Every border, outer or around a hole, is a chain of foreground pixels; a one-pixel-wide
// line is walked there and back, so a pixel can appear twice in a chain.

// the 8 neighbours clockwise from East, as (dx, dy)
const DX = [1, 1, 0, -1, -1, -1, 0, 1];
const DY = [0, 1, 1, 1, 0, -1, -1, -1];

/**
 * @param {ArrayLike<number>} mask W*H, row-major, nonzero = inside
 * @param {number} W
 * @param {number} H
 * @returns {Array<{points: Int32Array, hole: boolean}>} points = x0, y0, x1, y1, ... in order
 *   along the border, in raster order of their first pixel
 */
export function traceContours(mask, W, H) {
  const Wp = W + 2, Hp = H + 2; // a background frame: borders never run off the array
  const f = new Int32Array(Wp * Hp);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) if (mask[y * W + x]) f[(y + 1) * Wp + x + 1] = 1;
  const step = DX.map((dx, d) => DY[d] * Wp + dx); // index deltas, clockwise
  const contours = [];
  let nbd = 1;
  for (let i = 1; i <= H; i++) {
    for (let j = 1; j <= W; j++) {
      const p = i * Wp + j;
      if (f[p] === 0) continue;
      let from; // direction (from p) of the background pixel the border starts against
      let hole = false;
      if (f[p] === 1 && f[p - 1] === 0) from = 4; // outer border: background to the West
      else if (f[p] >= 1 && f[p + 1] === 0) { from = 0; hole = true; } // hole border: background to the East
      else continue;
      nbd++;
      contours.push({ points: follow(f, p, from, nbd, step, Wp), hole });
    }
  }
  return contours;
}

/** Follow one border from pixel p, starting the search at direction `from` (steps 3.1-3.5). */
function follow(f, p, from, nbd, step, Wp) {
  const out = [];
  const push = (q) => out.push((q % Wp) - 1, Math.floor(q / Wp) - 1);
  // 3.1: clockwise around p from `from`: the first foreground neighbour
  let first = -1, d1 = -1;
  for (let k = 0; k < 8; k++) {
    const d = (from + k) % 8;
    if (f[p + step[d]] !== 0) { first = p + step[d]; d1 = d; break; }
  }
  if (first < 0) { // an isolated pixel
    f[p] = -nbd;
    push(p);
    return Int32Array.from(out);
  }
  // 3.2-3.5: walk counterclockwise around each border pixel, starting just after the previous one
  let prevDir = d1; // direction from the current pixel to the previous border pixel
  let cur = p;
  for (;;) {
    push(cur);
    let next = -1, dn = -1, eastWasBackground = false;
    for (let k = 1; k <= 8; k++) {
      const d = (prevDir - k + 8) % 8;
      const q = cur + step[d];
      if (f[q] !== 0) { next = q; dn = d; break; }
      if (d === 0) eastWasBackground = true;
    }
    if (eastWasBackground) f[cur] = -nbd;
    else if (f[cur] === 1) f[cur] = nbd;
    if (next === p && cur === first) break; // back at the start, about to repeat the first step
    prevDir = (dn + 4) % 8;
    cur = next;
  }
  return Int32Array.from(out);
}

/**
 * A border chain with its straight runs (horizontal, vertical, diagonal) cut down to their end
 * points, as cv2's CHAIN_APPROX_SIMPLE does: the same outline with far fewer points to stroke.
 * @param {Int32Array} points x0, y0, x1, y1, ... a closed chain from traceContours
 * @returns {Int32Array} the points where the chain turns, in chain order (the first point too
 *   unless it lies inside a straight run, which then starts the result where it ends)
 */
export function compressChain(points) {
  const n = points.length / 2;
  if (n <= 2) return points.slice();
  const dx = (a, b) => points[2 * b] - points[2 * a], dy = (a, b) => points[2 * b + 1] - points[2 * a + 1];
  const out = [];
  for (let k = 0; k < n; k++) {
    const prev = (k + n - 1) % n, next = (k + 1) % n;
    if (dx(prev, k) !== dx(k, next) || dy(prev, k) !== dy(k, next)) out.push(points[2 * k], points[2 * k + 1]);
  }
  return Int32Array.from(out);
}
