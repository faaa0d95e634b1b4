// An honest estimate of the time a live question still needs, from what has been measured:
// the tokens streamed so far (their rate), and the server's timings of earlier questions (the
// time to the first token, the work after the caption: the maps, phrases, masks). The caption
// may end before max_new_tokens, so the figure is an upper bound while tokens stream.

/**
 * @param {{tokens: number, maxTokens: number, tokenTimes: number[], stage: string|null,
 *          timings: {first_token?: number|null, per_token?: number|null, after_caption?: number|null, load?: number|null}}} s
 *   tokenTimes: seconds (job clock) at which each token arrived
 * @returns {{seconds: number|null, upperBound: boolean, basis: string}}
 */
export function remaining({ tokens, maxTokens, tokenTimes, stage, timings = {} }) {
  const after = timings.after_caption ?? null;
  if (stage === "maps" || stage === "spans" || stage === "spanmaps" || stage === "sam") {
    return { seconds: after, upperBound: false, basis: after === null ? "no earlier question measured" : "earlier questions" };
  }
  const n = tokenTimes.length;
  let perToken = timings.per_token ?? null, basis = "earlier questions";
  if (n >= 2) { // measured on this very question: the best basis
    perToken = (tokenTimes[n - 1] - tokenTimes[0]) / (n - 1);
    basis = `${n} tokens so far`;
  }
  if (perToken === null) return { seconds: null, upperBound: true, basis: "no earlier question measured" };
  const left = Math.max(0, maxTokens - tokens);
  let seconds = left * perToken + (after ?? 0);
  if (tokens === 0) seconds += (timings.first_token ?? 0) + (stage === "loading" ? timings.load ?? 0 : 0);
  return { seconds, upperBound: left > 0, basis };
}

/** "about 3 min 20 s" / "about 40 s" / "under a second". */
export function fmtDuration(seconds) {
  if (!(seconds >= 1)) return "under a second";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60), r = s % 60;
  return r ? `${m} min ${r} s` : `${m} min`;
}
