// Ask view (`tamscope serve --live`, docs/explorer.md#ask): drop or choose an image (or come
// from a painting's "Ask about this painting"), edit the prompt, start. The caption streams in
// token by token with a progress bar and an estimate measured on the stream itself; when the
// maps are committed, every token becomes a button that draws its map on the picture; the
// finished question is a painting of the live dataset, opened with a link like any other.
//
// URL: ?view=ask (the form), ?view=ask&dataset=D&painting=P (the form, about a served
// painting), ?view=ask&job=ID (a question: its events are replayed from the start, so the link
// can be reloaded or shared while the server remembers the job).

import { announce, h } from "../dom.js";
import { fmtDuration, remaining } from "../lib/eta.js";
import { linkTo } from "../lib/urlstate.js";
import { cancelJob, createJob, followJob, getToken, jobStatus, liveInfo, setToken, takeTokenFromAddress } from "../live.js";
import { paint, renderLayers } from "../overlay.js";

const SIZES = [[256, "small (256 vision tokens)"], [512, "medium (512)"], [1280, "full (1280, as the paper)"]];
const PIXELS_PER_TOKEN = 28 * 28;
let following = null; // AbortController of the stream on screen

export async function renderAsk(root, ctx) {
  following?.abort();
  following = null;
  takeTokenFromAddress();
  const info = await liveInfo();
  if (!info) {
    root.replaceChildren(h("p", { class: "error" }, "This server takes no questions (start it with tamscope serve --live)."));
    return;
  }
  if (ctx.state.job) return showJob(root, ctx, info, ctx.state.job, null);
  return showForm(root, ctx, info);
}

function showForm(root, ctx, info) {
  const { source, state, navigate } = ctx;
  const lim = info.limits;
  const about = state.painting && state.dataset ? { dataset: state.dataset, painting: state.painting } : null;
  let file = null, preview = null;

  const img = h("img", { class: "ask-preview", alt: "", "data-testid": "ask-preview", hidden: !about,
    src: about ? source.canvasUrl(about.dataset, about.painting) : null });
  const input = h("input", { type: "file", accept: lim.types.join(","), "data-testid": "ask-file",
    onchange: () => choose(input.files[0]) });
  const drop = h("label", { class: "drop", "data-testid": "ask-drop" },
    h("span", {}, about ? "Or choose another image" : "Drop an image here, or choose one"), input,
    h("span", { class: "muted small" }, `JPEG, PNG, WebP, TIFF, BMP or GIF, at most ${Math.round(lim.max_upload_bytes / 2 ** 20)} MB and ${lim.max_upload_pixels / 1e6} megapixels`));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); choose(e.dataTransfer.files[0]); });
  const aboutNote = about ? h("p", { "data-testid": "ask-about-note" }, "About ",
    h("a", { href: linkTo({}, { view: "painting", dataset: about.dataset, painting: about.painting }) }, about.painting),
    ` of ${about.dataset}: its canvas is the image.`) : null;

  function choose(chosen) {
    if (!chosen) return;
    if (!lim.types.includes(chosen.type)) { problem.textContent = `${chosen.name}: not an image type this server reads`; return; }
    if (chosen.size > lim.max_upload_bytes) { problem.textContent = `${chosen.name} is larger than ${Math.round(lim.max_upload_bytes / 2 ** 20)} MB`; return; }
    file = chosen;
    problem.textContent = "";
    if (preview) URL.revokeObjectURL(preview);
    preview = URL.createObjectURL(chosen);
    img.src = preview;
    img.hidden = false;
    if (aboutNote) aboutNote.hidden = true;
  }

  const prompt = h("textarea", { rows: 2, maxlength: 1000, "data-testid": "ask-prompt", "aria-label": "Prompt" });
  prompt.value = info.default_prompt;
  const tokens = h("input", { type: "number", min: 1, max: lim.max_new_tokens, value: lim.max_new_tokens,
    "data-testid": "ask-tokens" });
  const size = h("select", { "data-testid": "ask-size" },
    SIZES.filter(([n]) => n * PIXELS_PER_TOKEN <= lim.max_pixels && n * PIXELS_PER_TOKEN >= lim.min_pixels)
      .map(([n, label]) => h("option", { value: n * PIXELS_PER_TOKEN }, label)));
  if (!size.options.length) size.append(h("option", { value: lim.max_pixels }, "the server's size"));
  size.value = size.options[size.options.length - 1].value;
  const token = h("input", { type: "password", autocomplete: "off", "data-testid": "ask-token-input", value: getToken() });
  const problem = h("p", { class: "error", role: "alert", "data-testid": "ask-problem" });
  const start = h("button", { type: "submit", "data-testid": "ask-start" }, "Ask");
  const hint = h("p", { class: "muted small" }, estimateBefore(info));

  const form = h("form", { class: "ask-form", onsubmit: async (e) => {
    e.preventDefault();
    if (!file && !about) { problem.textContent = "Choose an image first."; return; }
    if (info.token_required) setToken(token.value.trim());
    start.disabled = true;
    problem.textContent = "";
    try {
      const job = await createJob(file || about, { prompt: prompt.value, maxNewTokens: Number(tokens.value),
        maxPixels: Number(size.value), filename: file?.name });
      ctx.settle({ view: "ask", job: job.id, painting: null, span: null, token: null });
      await showJob(root, ctx, info, job.id, file ? preview : about ? img.src : null);
    } catch (err) {
      problem.textContent = err.status === 429 && err.retryAfter ? `${err.message}` : err.message;
      start.disabled = false;
    }
  } },
  h("div", { class: "ask-image" }, img, aboutNote, drop),
  h("div", { class: "ask-fields" },
    h("label", { class: "control" }, h("span", {}, "Prompt"), prompt),
    h("label", { class: "control" }, h("span", {}, "Longest caption (tokens)"), tokens),
    h("label", { class: "control" }, h("span", {}, "Image size the model sees"), size),
    info.token_required ? h("label", { class: "control" }, h("span", {}, "Access token"), token) : null,
    start, hint, problem));
  root.replaceChildren(h("section", { class: "ask", "data-testid": "ask-view" }, h("h2", {}, "Ask"),
    h("p", { class: "muted" }, `The model (${info.models.captioner}) describes your image as it did the paintings; `
      + "watch the caption arrive token by token, then click a word to see where it looked."), form));
}

function estimateBefore(info) {
  const t = info.timings || {};
  const per = remaining({ tokens: 0, maxTokens: info.limits.max_new_tokens, tokenTimes: [], stage: info.worker === "up" ? "describe" : "loading", timings: t });
  if (per.seconds === null) {
    return "This server has not answered a question yet, so there is no measured estimate. On a 2-core CPU the "
      + "paper's model takes about 4 minutes for a 256-token caption; on a GPU, seconds.";
  }
  return `Measured on this server: at most about ${fmtDuration(per.seconds)} for a ${info.limits.max_new_tokens}-token caption.`;
}

async function showJob(root, ctx, info, id, picture) {
  const { source } = ctx;
  following?.abort();
  const controller = new AbortController();
  following = controller;
  const stageLine = h("p", { "data-testid": "ask-stage", role: "status" }, "Connecting…");
  const bar = h("progress", { max: 1, value: 0, "data-testid": "ask-progress" });
  const eta = h("p", { class: "muted small", "data-testid": "ask-eta" });
  const caption = h("p", { class: "ask-caption", "data-testid": "ask-caption", "aria-live": "off" });
  const img = h("img", { class: "canvas-img", alt: "the image asked about", src: picture || null, hidden: !picture });
  const overlay = h("canvas", { class: "overlay", width: 1, height: 1, "data-testid": "ask-overlay", "data-drawn": "" });
  const stage = h("div", { class: "stage ask-stage" }, img, overlay);
  const cancel = h("button", { type: "button", "data-testid": "ask-cancel", onclick: () => cancelJob(id).catch(() => {}) }, "Cancel");
  const result = h("p", { "data-testid": "ask-result" });
  const again = h("a", { href: linkTo({}, { view: "ask" }), onclick: (e) => { e.preventDefault(); ctx.navigate({ view: "ask", job: null, painting: null }); } }, "Ask another question");
  root.replaceChildren(h("section", { class: "ask", "data-testid": "ask-job", "data-job": id }, h("h2", {}, "Ask"),
    h("div", { class: "ask-body" }, h("figure", { class: "ask-figure" }, stage),
      h("div", { class: "ask-progress" }, stageLine, bar, eta, caption, result, h("p", {}, cancel, " ", again)))));

  let maxTokens = 1, tokens = 0, stageName = null, record = null, live = info.dataset;
  const times = [];
  const buttons = [];
  const say = (text) => { stageLine.textContent = text; };
  const refresh = () => {
    const r = remaining({ tokens, maxTokens, tokenTimes: times, stage: stageName, timings: info.timings || {} });
    eta.textContent = r.seconds === null ? "No estimate yet: nothing measured on this server."
      : `${r.upperBound ? "At most about" : "About"} ${fmtDuration(r.seconds)} left (${r.basis}).`;
  };

  async function showMaps(painting) {
    record = await source.recordNow(live, painting);
    const W = record.canvas.width, H = record.canvas.height;
    img.src = source.canvasUrl(live, painting); // the model's own image: the maps align to it
    img.hidden = false;
    stage.style.aspectRatio = `${W} / ${H}`;
    stage.style.setProperty("--ratio", (W / H).toFixed(4));
    overlay.width = W; overlay.height = H;
    for (const t of record.tokens) {
      const b = buttons[t.index];
      if (b && t.map) { b.disabled = false; b.title = `token ${t.index}: show its map`; }
    }
    announce("The maps are ready: click a word to see where the model looked.");
  }

  async function showToken(index) {
    buttons.forEach((b, i) => b.setAttribute("aria-pressed", String(i === index)));
    const url = source.tokenMapUrl(live, record.id, index);
    const layers = await renderLayers({ layers: ["tam"], mapUrl: url, cmap: "inferno", opacity: 0.8, look: "hot", cut: 0 },
      overlay.width, overlay.height);
    paint(overlay, layers);
    overlay.dataset.drawn = "tam";
    overlay.dataset.token = String(index);
  }

  function addToken(index, text) {
    const b = h("button", { type: "button", class: "tok", disabled: true, "data-testid": "ask-token", "data-index": index,
      "aria-pressed": "false", onclick: () => showToken(index) }, text);
    buttons[index] = b;
    caption.append(b);
  }

  const onEvent = async (kind, data) => {
    if (kind === "queued") say(data.position > 0 ? `Waiting: ${data.position} question${data.position > 1 ? "s" : ""} ahead.` : "Starting…");
    else if (kind === "running") say("Starting the model…");
    else if (kind === "stage") {
      stageName = data.stage;
      say({ loading: "Loading the model (the first question after the server starts)…", describe: "Looking at the image and writing…",
        maps: "The caption is complete: computing a map for every token…", spans: "Typing the phrases…",
        spanmaps: "Maps of the phrases…", sam: "SAM 3 masks of the objects…" }[data.stage] || data.stage);
      if (data.stage === "maps") bar.value = bar.max;
    } else if (kind === "token") {
      tokens += 1;
      times.push(data.t);
      addToken(data.index, data.text);
      bar.value = Math.min(tokens, bar.max);
    } else if (kind === "maps") {
      await showMaps(data.painting);
    } else if (kind === "spans") {
      say(`${data.spans.length} phrase${data.spans.length === 1 ? "" : "s"} typed.`);
    } else if (["done", "failed", "cancelled", "expired"].includes(kind)) {
      cancel.disabled = true;
      stageName = null;
      eta.textContent = "";
      source.forget(live); // the next painting view reads the live dataset afresh
      await source.listDatasets().catch(() => {});
      if (data.painting) {
        const change = { view: "painting", dataset: live, painting: data.painting, job: null, mode: "token", token: null, span: null };
        result.replaceChildren(kind === "done" ? "Done. " : "", h("a", { href: linkTo({}, change), "data-testid": "ask-open",
          onclick: (e) => { if (e.button === 0 && !e.ctrlKey && !e.metaKey) { e.preventDefault(); ctx.navigate(change); } } },
        "Open it as a painting"), kind === "done" ? " (a link to keep)." : " (as far as it got).");
      }
      say(kind === "done" ? "Done." : `${kind[0].toUpperCase()}${kind.slice(1)}: ${data.error || ""}`);
      announce(stageLine.textContent);
      return;
    }
    if (kind !== "token" || tokens % 5 === 1) refresh();
  };

  const fail = (err) => {
    if (err.name === "AbortError") return;
    say(err.status === 404 ? "This question is not known to the server (it forgets them when it restarts; "
      + "finished ones are paintings of the live dataset)." : `Error: ${err.message}`);
    cancel.disabled = true;
  };
  try {
    const status = await jobStatus(id);
    maxTokens = status.max_new_tokens;
    bar.max = maxTokens;
    live = status.dataset;
  } catch (err) {
    fail(err);
    return;
  }
  // followed in the background: the view is on screen now, and navigating away aborts the stream
  let chain = Promise.resolve(); // events are handled in order, each after the one before
  followJob(id, (kind, data) => { chain = chain.then(() => onEvent(kind, data)).catch(fail); }, controller.signal)
    .catch(fail);
}
