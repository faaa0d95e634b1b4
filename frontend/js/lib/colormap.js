// Perceptual colormaps as 256-entry RGB lookup tables, built from anchor colours sampled from
// matplotlib's published tables (every 1/16 of the range) with linear interpolation: within
// a fraction of a level of the full tables, and small enough to read.

const ANCHORS = {
  inferno: [[0, 0, 4], [12, 8, 38], [36, 12, 79], [66, 10, 104], [93, 18, 110], [120, 28, 109],
    [147, 38, 103], [174, 48, 92], [199, 62, 76], [221, 81, 58], [237, 105, 37], [248, 133, 15],
    [252, 165, 10], [250, 198, 45], [242, 230, 97], [252, 255, 164]],
  viridis: [[68, 1, 84], [72, 26, 108], [71, 47, 125], [65, 68, 135], [57, 86, 140], [49, 104, 142],
    [42, 120, 142], [35, 136, 142], [31, 152, 139], [34, 168, 132], [53, 183, 121], [84, 197, 104],
    [122, 209, 81], [165, 219, 54], [210, 226, 27], [253, 231, 37]],
  magma: [[0, 0, 4], [12, 9, 38], [34, 17, 77], [59, 15, 112], [86, 22, 126], [112, 31, 129],
    [139, 41, 129], [167, 49, 125], [194, 58, 116], [221, 73, 104], [241, 96, 93], [250, 128, 95],
    [254, 161, 110], [254, 194, 135], [253, 226, 163], [252, 253, 191]],
  grayscale: [[0, 0, 0], [255, 255, 255]],
};

export const COLORMAPS = Object.freeze(Object.keys(ANCHORS));
// outline colours of the layers stacked on the heatmap: white for the Otsu region, cyan for
// SAM 3, each drawn on a dark halo so the line reads over the heatmap's yellows and the
// painting's darks alike
export const OTSU_RGB = Object.freeze([255, 255, 255]);
export const SAM_RGB = Object.freeze([0, 200, 255]);
const cache = new Map();

/** @returns {Uint8Array} 256*3 RGB values of the named colormap */
export function lut(name) {
  if (!Object.hasOwn(ANCHORS, name)) throw new Error(`unknown colormap ${name}`);
  if (cache.has(name)) return cache.get(name);
  const anchors = ANCHORS[name];
  const table = new Uint8Array(256 * 3);
  for (let v = 0; v < 256; v++) {
    const pos = (v / 255) * (anchors.length - 1);
    const i = Math.min(Math.floor(pos), anchors.length - 2);
    const f = pos - i;
    for (let c = 0; c < 3; c++) table[v * 3 + c] = Math.round(anchors[i][c] * (1 - f) + anchors[i + 1][c] * f);
  }
  cache.set(name, table);
  return table;
}

/**
 * Colour 0..255 values into an RGBA buffer.
 * @param {ArrayLike<number>} values map values in 0..255 (fractional allowed)
 * @param {string} name colormap
 * @param {number} alpha 0..1 opacity of the overlay
 * @param {Uint8ClampedArray} out RGBA, 4 * values.length
 */
export function applyColormap(values, name, alpha, out) {
  const table = lut(name);
  const a = Math.round(Math.max(0, Math.min(1, alpha)) * 255);
  for (let i = 0; i < values.length; i++) {
    const v = Math.max(0, Math.min(255, Math.round(values[i]))) * 3;
    out[i * 4] = table[v];
    out[i * 4 + 1] = table[v + 1];
    out[i * 4 + 2] = table[v + 2];
    out[i * 4 + 3] = a;
  }
  return out;
}

const packed = new Map();
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * The colormap as 256 packed RGBA pixels for a Uint32Array view of ImageData: one store per
 * pixel instead of four (the overlay is redrawn on every click, at full canvas size).
 * @param {string} name colormap
 * @param {number|ArrayLike<number>} alpha 0..1 for one opacity everywhere, or 256 alphas
 *   (0..255) by value (lib/ramp.js alphaRamp)
 * @returns {Uint32Array} entry v = colour of value v with its alpha
 */
export function lut32(name, alpha) {
  const alphas = typeof alpha === "number"
    ? new Uint8Array(256).fill(Math.round(Math.max(0, Math.min(1, alpha)) * 255)) : alpha;
  const key = `${name}|${Array.prototype.join.call(alphas, ",")}`;
  if (!packed.has(key)) {
    if (packed.size >= 64) packed.delete(packed.keys().next().value); // a slider makes many tables
    const table = lut(name), out = new Uint32Array(256);
    for (let v = 0; v < 256; v++) {
      const [r, g, b, a] = [table[v * 3], table[v * 3 + 1], table[v * 3 + 2], alphas[v]];
      out[v] = LITTLE_ENDIAN ? ((a << 24) | (b << 16) | (g << 8) | r) >>> 0 : ((r << 24) | (g << 16) | (b << 8) | a) >>> 0;
    }
    packed.set(key, out);
  }
  return packed.get(key);
}
