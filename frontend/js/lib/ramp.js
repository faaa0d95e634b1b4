// How a map value becomes the overlay's opacity, so the painting stays visible.
//   hot  (default): transparent where the map is cold, opacity growing with the value, as a
//        heat haze over the picture (the authors' page does the same): the painting keeps
//        its brightness outside the regions the model looked at;
//   tint: the whole canvas tinted at one opacity (the colormap alone tells hot from cold).
// Both hide the values below `cut` ("hide below"). Above it the hot look rises as
// t^GAMMA with t = (value - cut) / (1 - cut): a convex ramp keeps the map's broad lukewarm
// background nearly clear and gives the peak the full opacity.

export const LOOKS = Object.freeze(["hot", "tint"]);
export const GAMMA = 1.5;

/**
 * @param {{look?: string, opacity?: number, cut?: number}} opts opacity and cut in 0..1
 * @returns {Uint8Array} 256 alphas (0..255): entry v is the alpha of 8-bit map value v
 */
export function alphaRamp({ look = "hot", opacity = 0.8, cut = 0 } = {}) {
  const top = Math.max(0, Math.min(1, opacity)) * 255;
  const c = Math.max(0, Math.min(1, cut));
  const out = new Uint8Array(256);
  for (let v = 0; v < 256; v++) {
    const x = v / 255;
    if (x < c) continue; // hidden: 0
    const t = c >= 1 ? 1 : (x - c) / (1 - c);
    out[v] = Math.round(look === "tint" ? top : top * t ** GAMMA);
  }
  return out;
}
