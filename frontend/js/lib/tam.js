// How a painting's token maps were computed: the TAM variant describe ran with and, for the
// `reference` variant (the authors' code), its quirks worth saying next to a map. Read from
// record.provenance.tam (docs/tam.md, docs/data-format.md); imported data has none.

const LABELS = {
  reference: "reference — the authors' TAM code, bit for bit",
  corrected: "corrected — without the quirks of the authors' code",
};

/** {variant, label, guess, nan:Set, undefined:Set} or null when the record does not say.
 * guess: the class of token 0's map (the word predicted after the prompt's first word), or null
 * when the prompt had no words (then token 0's map is the prompt's closing "\n" map). */
export function tamInfo(rec) {
  const tam = rec?.provenance?.tam;
  if (!tam || !LABELS[tam.variant]) return null;
  return {
    variant: tam.variant,
    label: LABELS[tam.variant],
    guess: typeof tam.first_prompt_class?.text === "string" ? tam.first_prompt_class.text.trim() : null,
    nan: new Set(tam.nan_tokens || []),
    undefined: new Set(tam.undefined_tokens || []),
  };
}

/** Sentences explaining token `index`'s map where the authors' code does something unexpected. */
export function tokenMapNotes(info, index) {
  if (info?.variant !== "reference") return [];
  const notes = [];
  if (index === 0 && info.guess === null) {
    notes.push("As in the paper's code, token 0 shows the map of the prompt's closing line break, not of this token.");
  } else if (index === 0) {
    notes.push("As in the paper's code, token 0 shows the first prompt word's map: the image read for the word "
      + `the model predicts after the prompt's first word (“${info.guess}”), not for this token.`);
  }
  if (info.nan.has(index)) {
    notes.push("Some cells are NaN in the authors' arithmetic (a constant window or a zero range); they show as 0, "
      + "as in their 8-bit maps.");
  }
  if (info.undefined.has(index)) {
    notes.push("The authors' code stops with an error on this map; tamscope's fallback is shown (docs/tam.md).");
  }
  return notes;
}
