// The live-questions API of `tamscope serve --live` (docs/api.md, "Live questions"): the one
// place that knows its URLs, its token and its event stream. The token, when the server needs
// one, is kept for the browser session (sessionStorage); a link may carry it once in its
// fragment (#live-token=...), which is read and removed from the address at once.

import { sseParser } from "./lib/sse.js";

const BASE = "api/live";
const KEY = "tamscope-live-token";

export function takeTokenFromAddress() {
  const match = /(?:^#|&)live-token=([^&]+)/.exec(location.hash);
  if (!match) return;
  setToken(decodeURIComponent(match[1]));
  history.replaceState(history.state, "", location.pathname + location.search);
}

export const getToken = () => { try { return sessionStorage.getItem(KEY) || ""; } catch { return ""; } };
export function setToken(token) { try { sessionStorage.setItem(KEY, token); } catch { /* storage off: ask again */ } }

const headers = (extra = {}) => {
  const token = getToken();
  return token ? { ...extra, authorization: `Bearer ${token}` } : extra;
};

async function answer(response) {
  if (response.ok) return response.json();
  let message = `${response.status} ${response.statusText}`;
  try { message = (await response.json()).error.message; } catch { /* not our JSON */ }
  const err = new Error(message);
  err.status = response.status;
  err.retryAfter = Number(response.headers.get("retry-after")) || null;
  throw err;
}

/** The server's live settings, limits and timings; null when the server takes no questions. */
export async function liveInfo() {
  const response = await fetch(BASE, { cache: "no-store" });
  return response.status === 404 ? null : answer(response);
}

/**
 * Ask: `image` a File/Blob (sent as the body, with its type) or {dataset, painting} (a served painting).
 * @returns {Promise<object>} the job's status
 */
export async function createJob(image, { prompt, maxNewTokens, maxPixels, filename }) {
  const params = new URLSearchParams({ prompt, max_new_tokens: String(maxNewTokens), max_pixels: String(maxPixels) });
  if (filename) params.set("filename", filename);
  const served = !(image instanceof Blob);
  const response = await fetch(`${BASE}/jobs?${params}`, { method: "POST",
    headers: headers({ "content-type": served ? "application/json" : image.type || "application/octet-stream" }),
    body: served ? JSON.stringify(image) : image });
  return answer(response);
}

export const jobStatus = async (id) => answer(await fetch(`${BASE}/jobs/${encodeURIComponent(id)}`, { headers: headers(), cache: "no-store" }));
export const cancelJob = async (id) => answer(await fetch(`${BASE}/jobs/${encodeURIComponent(id)}`, { method: "DELETE", headers: headers() }));

const FINAL = new Set(["done", "failed", "cancelled", "expired"]);

/**
 * Follow a job's events until its last one (or `signal` aborts): onEvent(kind, data). A dropped
 * connection is resumed where it stopped (Last-Event-ID), a few times.
 */
export async function followJob(id, onEvent, signal) {
  let last = null;
  for (let attempt = 0; attempt < 5; attempt++) {
    const response = await fetch(`${BASE}/jobs/${encodeURIComponent(id)}/events`, { signal, cache: "no-store",
      headers: headers(last === null ? {} : { "last-event-id": last }) });
    if (!response.ok) return answer(response);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = sseParser();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const event of parser.push(value)) {
        last = event.id;
        onEvent(event.event, JSON.parse(event.data));
        if (FINAL.has(event.event)) return;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 500 * (attempt + 1)));
  }
  throw new Error("the connection to the server keeps dropping");
}
