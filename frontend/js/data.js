// Data access: one interface over the JSON API (served by `tamscope serve`) and a static
// export (`tamscope export-site`), chosen by config.json at boot. Views never build URLs.

const json = async (url) => {
  const response = await fetch(url);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error.message; } catch { /* not our JSON */ }
    const err = new Error(message);
    err.status = response.status;
    throw err;
  }
  return response.json();
};

class ApiSource {
  constructor(base) { this.base = base.replace(/\/$/, ""); this.cache = new Map(); this.info = new Map(); }
  // `?v=<dataset version>`: the server answers such URLs as immutable (the version hashes the content)
  v(ds) { const version = this.info.get(ds)?.version; return version ? `?v=${encodeURIComponent(version)}` : ""; }
  ds(ds) { return `${this.base}/datasets/${encodeURIComponent(ds)}`; }
  p(ds, pid) { return `${this.ds(ds)}/paintings/${encodeURIComponent(pid)}`; }
  async listDatasets() {
    const { datasets } = await json(`${this.base}/datasets`);
    for (const d of datasets) this.info.set(d.id, d);
    return datasets;
  }
  async manifest(ds) { return this.memo(`m:${ds}`, () => json(`${this.ds(ds)}${this.v(ds)}`)); }
  async paintings(ds, filters) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v !== "" && v !== null && v !== undefined) params.set(k, v);
    const version = this.info.get(ds)?.version;
    if (version) params.set("v", version);
    return json(`${this.ds(ds)}/paintings?${params}`);
  }
  async record(ds, pid) { return this.memo(`r:${ds}/${pid}`, () => json(`${this.p(ds, pid)}${this.v(ds)}`)); }
  /** What the gallery's filters offer: {categories, styles: [[name, n]], artists, years, ...} */
  async facets(ds) { return this.memo(`f:${ds}`, () => json(`${this.ds(ds)}/facets${this.v(ds)}`)); }
  /** The previous and next painting in the gallery's order: {previous, next, position, total} */
  async neighbours(ds, pid) {
    return this.memo(`n:${ds}/${pid}`, () => json(`${this.ds(ds)}/neighbours/${encodeURIComponent(pid)}${this.v(ds)}`));
  }
  /** The phrase atlas: {total, summary, categories, items: [{painting, index, text, category, entropy, iou, ...}]} */
  async atlas(ds, filters) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v !== "" && v !== null && v !== undefined) params.set(k, v);
    const version = this.info.get(ds)?.version;
    if (version) params.set("v", version);
    return json(`${this.ds(ds)}/spans?${params}`);
  }
  // the live dataset (`serve --live`) grows while the explorer runs: its record as it is now, and
  // forgetting what was kept of a dataset (with its version) so the next reads are fresh
  async recordNow(ds, pid) { return json(this.p(ds, pid)); }
  forget(ds) {
    this.info.delete(ds);
    for (const key of [...this.cache.keys()]) {
      const [kind, rest] = [key.slice(0, key.indexOf(":")), key.slice(key.indexOf(":") + 1)];
      if (["m", "r", "s", "f", "n"].includes(kind) && (rest === ds || rest.startsWith(`${ds}/`))) this.cache.delete(key);
    }
  }
  async stats(ds) {
    if (this.info.get(ds)?.has_stats === false) return null; // not computed: don't ask (a 404 in the console)
    return this.memo(`s:${ds}`, () => json(`${this.ds(ds)}/stats${this.v(ds)}`).catch(() => null));
  }
  /** The same painting in the other served datasets: [{dataset, painting, match: "input"|"id", captioner, summary}] */
  async counterparts(ds, pid) {
    return this.memo(`c:${ds}/${pid}`, async () => (await json(`${this.p(ds, pid)}/counterparts`)).counterparts);
  }
  canvasUrl(ds, pid) { return `${this.p(ds, pid)}/canvas${this.v(ds)}`; }
  thumbUrl(ds, pid) { return `${this.p(ds, pid)}/thumb${this.v(ds)}`; }
  tokenMapUrl(ds, pid, i) { return `${this.p(ds, pid)}/tokens/${i}.png${this.v(ds)}`; }
  spanMapUrl(ds, pid, i) { return `${this.p(ds, pid)}/spans/${i}.png${this.v(ds)}`; }
  samMaskUrl(ds, pid, i) { return `${this.p(ds, pid)}/spans/${i}/sam.png${this.v(ds)}`; }
  methodMapUrl(ds, pid, i, method) {
    return `${this.p(ds, pid)}/spans/${i}/methods/${encodeURIComponent(method)}.png${this.v(ds)}`;
  }
  memo(key, make) {
    if (!this.cache.has(key)) this.cache.set(key, make().catch((e) => { this.cache.delete(key); throw e; }));
    return this.cache.get(key);
  }
}

// Words as the server's index sees them (contract/index.py, backend/site_search.py): runs of
// letters, digits and "_", lower case, accents removed; 16 at most.
const WORD_RE = /[\p{L}\p{N}_]+/gu;
const normWord = (w) => w.toLowerCase().normalize("NFKD").replace(/\p{M}/gu, "");
export const queryWords = (q) => (String(q || "").match(WORD_RE) || []).slice(0, 16).map(normWord);
const shardOf = (word) => [...new TextEncoder().encode([...word].slice(0, 2).join(""))]
  .map((b) => b.toString(16).padStart(2, "0")).join("");
const undelta = (xs) => { let at = 0; return xs.map((d) => (at += d)); };
const median = (xs) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const decode = (code) => (code === -1 ? null : code / 10000);

class StaticSource {
  constructor(datasets, pages) { this.datasets = datasets; this.pages = pages; this.cache = new Map(); this.records = new Map(); }
  root(ds) {
    const found = this.datasets.find((d) => d.id === ds);
    if (!found) { const e = new Error(`no dataset ${ds}`); e.status = 404; throw e; }
    return found.path.replace(/\/$/, "");
  }
  file(ds, pid, rel) { return `${this.root(ds)}/paintings/${encodeURIComponent(pid)}/${rel}`; }
  async listDatasets() {
    return Promise.all(this.datasets.map(async (d) => {
      const meta = await this.search(d.id, "meta.json");
      const m = meta.manifest;
      return { id: d.id, name: m.name, description: m.description, label: m.label, n_paintings: meta.n_paintings };
    }));
  }
  // the manifest without its painting list (search/meta.json): manifest.json holds every caption
  async manifest(ds) { return (await this.search(ds, "meta.json")).manifest; }
  // the precomputed search files of export-site (backend/site_search.py), fetched as needed
  search(ds, rel) { return this.memoStatic(`${ds}/${rel}`, () => json(`${this.root(ds)}/search/${rel}`)); }
  memoStatic(key, make) {
    if (!this.cache.has(key)) this.cache.set(key, make().catch((e) => { this.cache.delete(key); throw e; }));
    return this.cache.get(key);
  }
  async chunkItems(ds, positions) {
    const { chunk } = await this.search(ds, "meta.json");
    const needed = [...new Set(positions.map((p) => Math.floor(p / chunk)))];
    const chunks = new Map(await Promise.all(needed.map(async (k) => [k, await this.search(ds, `gallery/${k}.json`)])));
    return positions.map((p) => chunks.get(Math.floor(p / chunk))[p % chunk]);
  }
  /** Positions of the paintings holding every word (the last as a prefix), or null for "all". */
  async wordPositions(ds, words, shardsKey, file) {
    const meta = await this.search(ds, "meta.json");
    const lists = await Promise.all(words.map(async (word, k) => {
      const name = shardOf(word);
      if (!meta[shardsKey].includes(name)) return [];
      const shard = await this.search(ds, `${file}/${name}.json`);
      const last = k === words.length - 1 && [...word].length >= 2;
      return Object.keys(shard).filter((w) => (last ? w.startsWith(word) : w === word)).map((w) => shard[w]);
    }));
    return lists;
  }
  async positions(ds, { q, category, artist, style, year_min, year_max, sam }) {
    const meta = await this.search(ds, "meta.json");
    let keep = null;
    const words = queryWords(q);
    if (words.length) {
      for (const postings of await this.wordPositions(ds, words, "word_shards", "words")) {
        const set = new Set(postings.flatMap(undelta));
        keep = keep === null ? set : new Set([...keep].filter((p) => set.has(p)));
      }
    }
    if (category || artist || style || year_min != null || year_max != null || (sam !== undefined && sam !== "")) {
      const attrs = await this.search(ds, "attrs.json");
      const index = (list, name) => list.findIndex(([n]) => n.trim().toLowerCase() === name.trim().toLowerCase());
      const a = artist ? index(meta.facets.artists, artist) : null, st = style ? index(meta.facets.styles, style) : null;
      const bit = category ? 1 << meta.categories_order.indexOf(category) : 0;
      const ok = (p) => { const [pa, ps, year, mask, found] = attrs[p];
        return (a === null || pa === a) && (st === null || ps === st) && (!bit || mask & bit)
          && (year_min == null || (year !== null && year >= year_min)) && (year_max == null || (year !== null && year <= year_max))
          && (sam === undefined || sam === "" || String(Boolean(found)) === String(sam)); };
      const base = keep === null ? attrs.map((_, p) => p) : [...keep];
      keep = new Set(base.filter(ok));
    }
    return keep === null ? null : [...keep].sort((x, y) => x - y);
  }
  async paintings(ds, { offset = 0, limit = 50, ...filters }) {
    const meta = await this.search(ds, "meta.json");
    const found = await this.positions(ds, filters);
    const total = found === null ? meta.n_paintings : found.length;
    const page = found === null ? Array.from({ length: Math.max(0, Math.min(limit, total - offset)) }, (_, k) => offset + k)
      : found.slice(offset, offset + limit);
    return { total, offset, limit, items: await this.chunkItems(ds, page) };
  }
  async facets(ds) { return (await this.search(ds, "meta.json")).facets; }
  async neighbours(ds, pid) {
    const ids = await this.search(ds, "ids.json");
    const at = ids.indexOf(pid);
    if (at < 0) return { previous: null, next: null, position: 0, total: ids.length };
    const around = [at - 1, at + 1].filter((p) => p >= 0 && p < ids.length);
    const items = await this.chunkItems(ds, around);
    const get = (p) => items[around.indexOf(p)] ?? null;
    return { previous: get(at - 1), next: get(at + 1), position: at + 1, total: ids.length };
  }
  async atlas(ds, { q, category, entropy_max, sort = "painting", order = "asc", offset = 0, limit = 48 }) {
    const meta = await this.search(ds, "meta.json");
    const words = queryWords(q);
    let entries;
    if (words.length) {
      for (const lists of await this.wordPositions(ds, words, "phrase_shards", "phrases")) {
        const here = new Map(lists.flat().map((e) => [`${e[0]}:${e[1]}`, e]));
        entries = entries === undefined ? here : new Map([...entries].filter(([k]) => here.has(k)));
      }
      entries = [...entries.values()];
    } else if (meta.atlas_all) entries = await this.search(ds, "atlas.json");
    else return { total: 0, offset, limit, needs_words: true, summary: { n: 0 }, categories: meta.categories, items: [] };
    const code = category ? meta.categories_order.indexOf(category) : -1;
    const ceiling = entropy_max === null || entropy_max === undefined || entropy_max === "" ? null : Number(entropy_max) * 10000;
    entries = entries.filter((e) => (code < 0 || e[2] === code) && (ceiling === null || (e[3] !== -1 && e[3] <= ceiling)));
    const column = { entropy: 3, iou: 4, gini: 9, top10: 10 }[sort];
    const sign = order === "desc" ? -1 : 1;
    entries.sort((x, y) => {
      if (column !== undefined) {
        const a = x[column], b = y[column];
        if ((a === -1) !== (b === -1)) return a === -1 ? 1 : -1; // none last
        if (a !== b) return sign * (a - b);
      } else if (sort === "text" && x[7] !== y[7]) return sign * x[7].localeCompare(y[7]);
      else if (sort === "category" && x[2] !== y[2]) return sign * (x[2] - y[2]);
      else if (sort === "painting" && (x[0] !== y[0] || x[1] !== y[1])) return sign * (x[0] - y[0] || x[1] - y[1]);
      return x[0] - y[0] || x[1] - y[1];
    });
    const page = entries.slice(offset, offset + limit);
    const paintings = await this.chunkItems(ds, page.map((e) => e[0]));
    const items = page.map((e, k) => {
      const p = paintings[k];
      return { painting: p.id, title: p.title ?? null, artist: p.artist ?? null, year: p.year == null ? null : String(p.year),
        thumb: p.thumb ?? null, index: e[1], text: e[7], category: meta.categories_order[e[2]], entropy: decode(e[3]),
        gini: decode(e[9]), top10: decode(e[10]), iou: decode(e[4]), sam: e[5] === -1 ? null : e[5] === 1, otsu: e[6] === -1 ? null : e[6],
        has_map: e[8] !== null, map: e[8] === 0 ? `spans/${e[1]}.png` : e[8] };
    });
    const ent = entries.filter((e) => e[3] !== -1).map((e) => e[3] / 10000);
    const ious = entries.filter((e) => e[5] === 1 && e[4] !== -1).map((e) => e[4] / 10000);
    return { total: entries.length, offset, limit, categories: meta.categories, items,
      summary: { n: entries.length, median_entropy: median(ent), n_entropy: ent.length, median_iou: median(ious), n_iou: ious.length } };
  }
  async record(ds, pid) {
    const key = `${ds}/${pid}`;
    if (!this.records.has(key)) this.records.set(key, json(this.file(ds, pid, "record.json")));
    const rec = await this.records.get(key);
    this.paths = this.paths || new Map();
    this.paths.set(key, rec);
    return rec;
  }
  async stats(ds) {
    // config.json says whether the export has statistics: no 404 to fetch and log otherwise
    if (this.datasets.find((d) => d.id === ds)?.stats === false) return null;
    if (!this.cache.has(`s:${ds}`)) this.cache.set(`s:${ds}`, json(`${this.root(ds)}/stats.json`).catch(() => null));
    return this.cache.get(`s:${ds}`);
  }
  /** The same painting in the other exported datasets, by the rule of backend/compare.py: the
   *  same input fingerprint (search/inputs/<hh>.json), else the same id where one side has none. */
  async counterparts(ds, pid) {
    const fingerprint = (rec) => { const sha = rec?.provenance?.input?.sha256;
      return typeof sha === "string" && /^[0-9a-f]{64}$/.test(sha) ? sha : null; };
    const sha = fingerprint(await this.record(ds, pid));
    const found = [];
    for (const d of this.datasets) {
      if (d.id === ds) continue;
      const meta = await this.search(d.id, "meta.json");
      const shard = sha && (meta.input_shards || []).includes(sha.slice(0, 2))
        ? await this.search(d.id, `inputs/${sha.slice(0, 2)}.json`) : {};
      const same = await this.chunkItems(d.id, (shard[sha] || []).slice(0, 20));
      found.push(...same.map((summary) => ({ dataset: d.id, painting: summary.id, match: "input", captioner: null, summary })));
      if (same.some((x) => x.id === pid)) continue;
      const at = (await this.search(d.id, "ids.json")).indexOf(pid);
      if (at < 0) continue;
      const other = fingerprint(await this.record(d.id, pid).catch(() => null));
      // the same id: the same painting unless both fingerprints are known (an export made before
      // input shards existed has none: compare the records' own)
      if (sha && other && other !== sha) continue;
      const [summary] = await this.chunkItems(d.id, [at]);
      found.push({ dataset: d.id, painting: pid, match: sha && other ? "input" : "id", captioner: null, summary });
    }
    return found;
  }
  rec(ds, pid) { return this.paths?.get(`${ds}/${pid}`); }
  canvasUrl(ds, pid) { return this.file(ds, pid, this.rec(ds, pid)?.canvas?.path || "canvas.jpg"); }
  thumbUrl(ds, pid, thumb) { return thumb ? `${this.root(ds)}/${thumb}` : this.file(ds, pid, "thumb.jpg"); }
  tokenMapUrl(ds, pid, i) { return this.file(ds, pid, this.rec(ds, pid).tokens[i].map.png); }
  // `png`: the map's path when known without the record (the atlas' items carry it)
  spanMapUrl(ds, pid, i, png) { return this.file(ds, pid, png || this.rec(ds, pid).spans[i].map.png); }
  samMaskUrl(ds, pid, i) { return this.file(ds, pid, this.rec(ds, pid).spans[i].sam.mask); }
  methodMapUrl(ds, pid, i, method) { return this.file(ds, pid, this.rec(ds, pid).spans[i].faithfulness.methods[method].map.png); }
}

/** Reads config.json next to index.html and returns the matching source. */
export async function openSource() {
  const config = await json("config.json");
  if (config.mode === "static") return new StaticSource(config.datasets || [], config.pages === true);
  const source = new ApiSource(config.api || "api");
  source.live = config.live === true; // the server takes questions: the Ask view
  return source;
}

