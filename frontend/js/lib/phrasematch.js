// Pairing the phrases of two captions of one painting by different models (the compare view):
// which phrase of one caption is "the same" as one of the other's, one rule, stated here and in
// docs/explorer.md (Comparing models):
//
//   same  — equal once normalised: letters and digits only, lower case, accents removed, words
//           joined by one space, a leading "a", "an" or "the" dropped ("A small village" =
//           "a small village", "the starry sky" = "a starry sky");
//   close — not the same, but every content word of one is a content word of the other (content
//           words: the normalised words without a short list of articles, prepositions and
//           possessives), with at least one: "vibrant brushstrokes" and "loose vibrant
//           brushstrokes", "village" and "a small village"; not "night harbour" and "a quiet harbour".
//
// Pairs are one-to-one: every "same" pair first (in the first caption's order, each with the
// second caption's first unpaired equal phrase), then "close" pairs among the phrases left, each
// phrase of the first caption taking the unpaired phrase sharing most content words with it
// (the earliest on a tie). Categories are not compared: two models may type one phrase differently,
// which is worth seeing.

const ARTICLES = new Set(["a", "an", "the"]);
const FUNCTION_WORDS = new Set([...ARTICLES, "of", "and", "or", "in", "on", "at", "by", "to", "with", "from", "its",
  "his", "her", "their", "this", "that"]);

/** The words of a phrase: letters and digits, lower case, accents removed. */
export function phraseWords(text) {
  const folded = String(text || "").normalize("NFKD").replace(/\p{M}/gu, "").toLowerCase();
  return folded.match(/[\p{L}\p{N}]+/gu) || [];
}

/** The phrase as "same" compares it: its words, a leading article dropped. */
export function normalPhrase(text) {
  const words = phraseWords(text);
  return (words.length > 1 && ARTICLES.has(words[0]) ? words.slice(1) : words).join(" ");
}

const contentWords = (text) => new Set(phraseWords(text).filter((w) => !FUNCTION_WORDS.has(w)));
const within = (a, b) => [...a].every((w) => b.has(w));

/** "same", "close" or null for two phrases (the rule above). */
export function relation(a, b) {
  const na = normalPhrase(a);
  if (na && na === normalPhrase(b)) return "same";
  const ca = contentWords(a), cb = contentWords(b);
  if (!ca.size || !cb.size) return null;
  return within(ca, cb) || within(cb, ca) ? "close" : null;
}

/**
 * Pair the spans of two captions.
 * @param {{index: number, text: string}[]} first  @param {{index: number, text: string}[]} second
 * @returns {{pairs: {a: number, b: number, how: "same"|"close"}[], onlyA: number[], onlyB: number[]}}
 *   span indices; pairs in the first caption's order
 */
export function pairPhrases(first, second) {
  const usedA = new Set(), usedB = new Set(), pairs = [];
  for (const a of first) {
    const b = second.find((x) => !usedB.has(x.index) && relation(a.text, x.text) === "same");
    if (b) { pairs.push({ a: a.index, b: b.index, how: "same" }); usedA.add(a.index); usedB.add(b.index); }
  }
  for (const a of first) {
    if (usedA.has(a.index)) continue;
    const ca = contentWords(a.text);
    let best = null, bestShared = 0;
    for (const x of second) {
      if (usedB.has(x.index) || relation(a.text, x.text) !== "close") continue;
      const shared = [...contentWords(x.text)].filter((w) => ca.has(w)).length;
      if (shared > bestShared) { best = x; bestShared = shared; }
    }
    if (best) { pairs.push({ a: a.index, b: best.index, how: "close" }); usedA.add(a.index); usedB.add(best.index); }
  }
  const order = new Map(first.map((x, k) => [x.index, k]));
  pairs.sort((p, q) => order.get(p.a) - order.get(q.a));
  return { pairs, onlyA: first.filter((x) => !usedA.has(x.index)).map((x) => x.index),
    onlyB: second.filter((x) => !usedB.has(x.index)).map((x) => x.index) };
}

/** The model that wrote a dataset's captions, from its manifest (as backend/compare.py's `captioner`). */
export function captionerOf(manifest) {
  const ref = manifest?.models?.captioner;
  if (ref?.id) return ref.id;
  const model = manifest?.settings?.describe?.model;
  return model ? String(model) : null;
}
