import { test } from "node:test";
import assert from "node:assert/strict";
import { sseParser } from "../js/lib/sse.js";
import { fmtDuration, remaining } from "../js/lib/eta.js";
import { DEFAULTS, parseState, serializeState } from "../js/lib/urlstate.js";

test("urlstate: the Ask view and its job round-trip; a malformed job id is dropped", () => {
  const s = { ...DEFAULTS, view: "ask", job: "ask-20261202-180512-3fa9c1" };
  assert.equal(serializeState(s), "?view=ask&job=ask-20261202-180512-3fa9c1");
  assert.deepEqual(parseState(serializeState(s)), s);
  assert.equal(parseState("?view=ask&job=../../etc").job, null);
  assert.equal(parseState("?view=ask&job=ask-1").job, null);
});

test("sse: events split across chunks, CRLF, comments, multi-line data, ids kept", () => {
  const p = sseParser();
  assert.deepEqual(p.push("id: 0\nevent: tok"), []);
  assert.deepEqual(p.push("en\ndata: {\"a\":1}\n"), []);
  assert.deepEqual(p.push("\n: keep-alive\n\n"), [{ id: "0", event: "token", data: "{\"a\":1}" }]);
  assert.deepEqual(p.push("data: one\r\ndata: two\r"), []);
  assert.deepEqual(p.push("\n\r\n"), [{ id: "0", event: "message", data: "one\ntwo" }]);
  assert.deepEqual(p.push("id: 7\nevent: done\ndata:x\n\n"), [{ id: "7", event: "done", data: "x" }]);
  assert.deepEqual(p.push("event: empty\n\n"), []); // no data: no event
});

test("eta: measured rate first, the server's timings before, an upper bound while tokens stream", () => {
  const timings = { first_token: 2, per_token: 0.5, after_caption: 3, load: 10 };
  // two tokens 1 s apart: 1 s per token measured here wins over the 0.5 s of earlier questions
  let r = remaining({ tokens: 2, maxTokens: 10, tokenTimes: [4, 5], stage: "describe", timings });
  assert.equal(r.seconds, 8 * 1 + 3); assert.ok(r.upperBound);
  r = remaining({ tokens: 0, maxTokens: 10, tokenTimes: [], stage: "loading", timings });
  assert.equal(r.seconds, 10 * 0.5 + 3 + 2 + 10);
  r = remaining({ tokens: 0, maxTokens: 10, tokenTimes: [], stage: "describe", timings: {} });
  assert.equal(r.seconds, null); // nothing measured yet: no number is invented
  r = remaining({ tokens: 10, maxTokens: 10, tokenTimes: [], stage: "spans", timings });
  assert.deepEqual(r, { seconds: 3, upperBound: false, basis: "earlier questions" });
  assert.equal(fmtDuration(0.2), "under a second");
  assert.equal(fmtDuration(45), "45 s");
  assert.equal(fmtDuration(200), "3 min 20 s");
  assert.equal(fmtDuration(240), "4 min");
});
