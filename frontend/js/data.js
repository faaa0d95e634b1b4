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

function matches(summary, { q, category, artist, style }) {
  if (q) {
    const text = [summary.title, summary.artist, summary.caption].filter(Boolean).join(" ").toLowerCase();
    if (!text.includes(q.toLowerCase())) return false;
  }
  if (category && !(summary.categories || {})[category]) return false;
  if (artist && (summary.artist || "").trim().toLowerCase() !== artist.trim().toLowerCase()) return false;
  if (style && (summary.style || "").toLowerCase() !== style.toLowerCase()) return false;
  return true;
}

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
  // the live dataset (`serve --live`) grows while the explorer runs: its record as it is now, and
  // forgetting what was kept of a dataset (with its version) so the next reads are fresh
  async recordNow(ds, pid) { return json(this.p(ds, pid)); }
  forget(ds) {
    this.info.delete(ds);
    for (const key of [...this.cache.keys()]) if (key.startsWith(`m:${ds}`) || key.startsWith(`r:${ds}/`) || key.startsWith(`s:${ds}`)) this.cache.delete(key);
  }
  async stats(ds) {
    if (this.info.get(ds)?.has_stats === false) return null; // not computed: don't ask (a 404 in the console)
    return this.memo(`s:${ds}`, () => json(`${this.ds(ds)}/stats${this.v(ds)}`).catch(() => null));
  }
  canvasUrl(ds, pid) { return `${this.p(ds, pid)}/canvas${this.v(ds)}`; }
  thumbUrl(ds, pid) { return `${this.p(ds, pid)}/thumb${this.v(ds)}`; }
  tokenMapUrl(ds, pid, i) { return `${this.p(ds, pid)}/tokens/${i}.png${this.v(ds)}`; }
  spanMapUrl(ds, pid, i) { return `${this.p(ds, pid)}/spans/${i}.png${this.v(ds)}`; }
  samMaskUrl(ds, pid, i) { return `${this.p(ds, pid)}/spans/${i}/sam.png${this.v(ds)}`; }
  memo(key, make) {
    if (!this.cache.has(key)) this.cache.set(key, make().catch((e) => { this.cache.delete(key); throw e; }));
    return this.cache.get(key);
  }
}

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
      const m = await this.manifest(d.id);
      return { id: d.id, name: m.name, description: m.description, label: m.label, n_paintings: m.paintings.length };
    }));
  }
  async manifest(ds) {
    if (!this.cache.has(ds)) this.cache.set(ds, json(`${this.root(ds)}/manifest.json`));
    return this.cache.get(ds);
  }
  async paintings(ds, { offset = 0, limit = 50, ...filters }) {
    const items = (await this.manifest(ds)).paintings.filter((s) => matches(s, filters));
    return { total: items.length, offset, limit, items: items.slice(offset, offset + limit) };
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
  rec(ds, pid) { return this.paths?.get(`${ds}/${pid}`); }
  canvasUrl(ds, pid) { return this.file(ds, pid, this.rec(ds, pid)?.canvas?.path || "canvas.jpg"); }
  thumbUrl(ds, pid, thumb) { return thumb ? `${this.root(ds)}/${thumb}` : this.file(ds, pid, "thumb.jpg"); }
  tokenMapUrl(ds, pid, i) { return this.file(ds, pid, this.rec(ds, pid).tokens[i].map.png); }
  spanMapUrl(ds, pid, i) { return this.file(ds, pid, this.rec(ds, pid).spans[i].map.png); }
  samMaskUrl(ds, pid, i) { return this.file(ds, pid, this.rec(ds, pid).spans[i].sam.mask); }
}

/** Reads config.json next to index.html and returns the matching source. */
export async function openSource() {
  const config = await json("config.json");
  if (config.mode === "static") return new StaticSource(config.datasets || [], config.pages === true);
  const source = new ApiSource(config.api || "api");
  source.live = config.live === true; // the server takes questions: the Ask view
  return source;
}

export { matches };
