import { test } from "node:test";
import assert from "node:assert/strict";
import { captionerOf, normalPhrase, pairPhrases, phraseWords, relation } from "../js/lib/phrasematch.js";

const spans = (...texts) => texts.map((text, index) => ({ index, text }));

test("phrase normalisation: case, accents, punctuation, spacing, leading article", () => {
  assert.deepEqual(phraseWords("  Maestà,  the  VIRGIN's  robe! "), ["maesta", "the", "virgin", "s", "robe"]);
  assert.equal(normalPhrase("A small village"), "small village");
  assert.equal(normalPhrase("the   Starry-sky"), "starry sky");
  assert.equal(normalPhrase("The"), "the"); // an article alone stays a word
  assert.equal(normalPhrase("…"), "");
});

test("relation: same, close, none (hand-made examples)", () => {
  assert.equal(relation("A small village", "a small village"), "same");
  assert.equal(relation("the starry sky", "a starry sky"), "same");
  assert.equal(relation("Madonna in Maestà", "madonna in maesta"), "same");
  assert.equal(relation("Vibrant brushstrokes", "Loose vibrant brushstrokes"), "close");
  assert.equal(relation("village", "a small village"), "close");
  assert.equal(relation("the Virgin and the Child", "Virgin, Child"), "close"); // function words do not count
  assert.equal(relation("Night Harbour", "a quiet harbour"), null); // shares a word, neither inside the other
  assert.equal(relation("calm water", "a sense of calm"), null);
  assert.equal(relation("of the", "of the"), "same");
  assert.equal(relation("of the", "in the"), null); // no content word: never close
  assert.equal(relation("", ""), null);
});

test("pairing is one-to-one: same pairs first, then close ones by most shared words", () => {
  const a = spans("Night Harbour", "Anna Vermeer", "a small village", "calm water", "a starry sky",
    "Vibrant brushstrokes", "a sense of calm");
  const b = spans("A small village", "a quiet harbour", "the starry sky", "Loose vibrant brushstrokes", "a dreamy mood");
  assert.deepEqual(pairPhrases(a, b), {
    pairs: [{ a: 2, b: 0, how: "same" }, { a: 4, b: 2, how: "same" }, { a: 5, b: 3, how: "close" }],
    onlyA: [0, 1, 3, 6], onlyB: [1, 4] });
  // a same pair wins over an earlier close candidate; the close phrase then takes what is left
  assert.deepEqual(pairPhrases(spans("village", "a small village"), spans("the small village", "old village")).pairs,
    [{ a: 0, b: 1, how: "close" }, { a: 1, b: 0, how: "same" }]);
  // most shared content words wins, then the earliest
  assert.deepEqual(pairPhrases(spans("red boats"), spans("boats", "red boats on water", "red boats")).pairs,
    [{ a: 0, b: 2, how: "same" }]);
  assert.deepEqual(pairPhrases(spans("small red boats"), spans("boats", "red boats", "small boats")).pairs,
    [{ a: 0, b: 1, how: "close" }]);
  // a phrase twice in one caption pairs once per occurrence in the other
  assert.deepEqual(pairPhrases(spans("sky", "sky"), spans("the sky")), { pairs: [{ a: 0, b: 0, how: "same" }],
    onlyA: [1], onlyB: [] });
  assert.deepEqual(pairPhrases([], spans("x")), { pairs: [], onlyA: [], onlyB: [0] });
});

test("captioner of a manifest", () => {
  assert.equal(captionerOf({ models: { captioner: { id: "Qwen/Qwen2-VL-2B-Instruct" } } }), "Qwen/Qwen2-VL-2B-Instruct");
  assert.equal(captionerOf({ models: {}, settings: { describe: { model: "local/folder" } } }), "local/folder");
  assert.equal(captionerOf({ models: {} }), null);
  assert.equal(captionerOf(null), null);
});

test("compare view state: view=compare and another model's phrase (ospan) round-trip; malformed ones fall back", async () => {
  const { parseState, serializeState } = await import("../js/lib/urlstate.js");
  const state = parseState("?view=compare&dataset=model-a&painting=painting-1&span=2&ospan=model-b~4");
  assert.equal(state.view, "compare");
  assert.equal(state.ospan, "model-b~4");
  assert.equal(serializeState(state), "?view=compare&dataset=model-a&painting=painting-1&span=2&ospan=model-b%7E4");
  for (const bad of ["model-b", "~4", "model-b~04", "model-b~x", "../a~1", "a~1~2", "a~1234567"]) {
    assert.equal(parseState(`?ospan=${encodeURIComponent(bad)}`).ospan, null, bad);
  }
});
