"""`tamscope export-site DATASET... OUT_DIR`: the explorer and datasets as a static site.

The folder works from any static host or plain file server, with no backend:

    OUT_DIR/
      index.html                   the explorer's page, listing every painting (site_pages.py)
      <dataset>~<painting>.html    a page per painting: readable without JavaScript, link previews
      config.json                  {"mode": "static", "pages": true, "datasets": [{"id", "path", "stats"}]}
      static/js/app.<hash>.js ...  the explorer, every file named by the hash of its content
      data/<id>/...                each dataset: manifest, stats, records and the files they name
      data/<id>/search/...         precomputed gallery pages, search, facet and atlas files (site_search.py)
      .nojekyll                    GitHub Pages: serve the folder as is
      .tamscope-site               marks the folder as ours, so a re-export may replace it

Content-hashed names and ES modules: a module's imports name other modules, so the hash of
a module must cover the hashed names of what it imports. Modules are rewritten leaves first
(imports replaced by hashed names, then the module hashed), a Merkle scheme: change one file
and exactly it and its importers get new names; everything else stays cacheable forever.
Rewriting the import strings keeps plain relative `import` statements working everywhere;
an import map would need an inline script, which the Content Security Policy forbids.
Relative specifiers that do not resolve to a file of the explorer stop the export.

Every URL is relative (the site works under a sub-path such as /user/repo/); only the preview
tags use `site_url`, the address the site will have, when it is given. The pages carry the
server's CSP as a <meta>, and every page credits the authors of the data it holds. The
dataset files keep their names (they are data, revalidated by hosts), and only what the
explorer reads is exported: `tam_raw.safetensors` stays behind. Dataset files are hard-linked
where the site is on the dataset's file system (writers never change a file in place: they
rename a new one over it), copied otherwise. Writes go to a temporary sibling folder renamed
into place at the end, so OUT_DIR is either the old export or the new one.

Incremental: the marker file records each dataset's content version (contract/index.py), the
identity of each painting's record when it was exported (inode, size, modification time: a
writer renames a new record into place, so any change gives a new identity) and a hash of what
the pages are made from (templates, asset names, site address). Re-exporting into a previous
export of the same datasets:
- nothing changed (versions, pages, explorer): nothing is read beyond the datasets' file
  identities and nothing is written, not even the marker;
- something changed: the export is updated in place, file by file (each replaced by an atomic
  rename, the marker last, so an interrupted update is finished by the next run): the files and
  page of a painting whose record changed, the search files whose bytes changed, the front
  page, the dataset files and explorer files that changed; what the new export no longer has
  is removed. Every other file keeps its inode and modification time.
A first export, or one into a folder that holds other datasets, is built in a temporary
sibling folder and renamed into place.

Checks: a dataset of up to FULL_CHECK_MAX paintings is validated whole (`tamscope validate`);
a larger one by its index (records that do not parse) and by every file it names existing,
because opening every image of 100,000 paintings takes longer than the export itself. The
paintings are exported one at a time (its record read, its files checked and linked, its page
written), so memory does not grow with the dataset (100,000 records held at once took 20 GB); a
file that fails its check then stops the export part-way: a first export leaves OUT_DIR as it
was (the temporary folder is removed), an update in place has not rewritten its marker yet, so
the next run redoes it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from backend import FRONTEND, shell
from backend.http import CSP as SERVER_CSP
from backend.site_pages import Pages, SiteDataset, page_name
from backend.site_search import search_files
from contract.commit import link_or_copy
from contract.index import IndexUnavailable, ensure_index
from contract.schema import DatasetManifest, PaintingRecord, is_valid_id
from contract.store import MANIFEST, PAINTINGS, RECORD, STATS, atomic_write_bytes

MARKER = ".tamscope-site"
FULL_CHECK_MAX = 2000  # paintings up to which the export runs the whole of `tamscope validate`
HASH_LEN = 10
SKIP = {"tests", "package.json", "node_modules"}
# the server's policy, as a <meta> (which cannot carry frame-ancestors: browsers ignore it there)
META_CSP = "; ".join(d for d in SERVER_CSP.split("; ") if not d.startswith("frame-ancestors"))
# import x from "./a.js" | export {y} from "../b.js" | import "./c.js" | import("./d.js")
IMPORT_RE = re.compile(r"""(\bfrom\s*|\bimport\s*\(?\s*)(["'])(\.{1,2}/[^"'\s]+)\2""")
CSS_URL_RE = re.compile(r"""url\(\s*(["']?)(?!data:|https?:|/)([^"')\s]+)\1\s*\)""")


class ExportError(RuntimeError):
    """The export cannot be made; the message says why."""


@dataclass
class Report:
    out: Path
    groups: dict[str, list[int]] = field(default_factory=dict)  # group -> [files, bytes]
    largest: tuple[int, str] = (0, "")
    how: str = "exported"  # "exported" | "updated in place" (the groups count what was written) | "unchanged"
    removed: int = 0  # files an update removed

    def add(self, group: str, path: Path, rel: str) -> None:
        size = path.stat().st_size
        entry = self.groups.setdefault(group, [0, 0])
        entry[0] += 1
        entry[1] += size
        if size > self.largest[0]:
            self.largest = (size, rel)

    def text(self) -> str:
        total_files = sum(n for n, _ in self.groups.values())
        total = sum(b for _, b in self.groups.values())
        if self.how == "unchanged":
            return f"static site in {self.out}: unchanged since the last export (nothing written)"
        head = f"static site in {self.out}" + (f": updated in place, {self.removed} files removed; written:"
                                               if self.how == "updated in place" else "")
        lines = [head, f"{'':2}{'part':<28}{'files':>7}{'size':>12}"]
        for group, (n, b) in self.groups.items():
            lines.append(f"{'':2}{group:<28}{n:>7}{human(b):>12}")
        lines.append(f"{'':2}{'total':<28}{total_files:>7}{human(total):>12}")
        lines.append(f"  largest file: {self.largest[1]} ({human(self.largest[0])})")
        return "\n".join(lines)


def human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _hashed(rel: str, body: bytes) -> str:
    p = PurePosixPath(rel)
    return str(p.with_name(f"{p.stem}.{hashlib.sha256(body).hexdigest()[:HASH_LEN]}{p.suffix}"))


def build_assets(frontend: Path) -> tuple[dict[str, str], dict[str, bytes]]:
    """Hash every explorer file, rewriting module imports (and CSS url()s) to hashed names.

    Returns (original relative path -> hashed relative path, hashed path -> bytes); paths are
    relative to `frontend`, index.html excluded.
    """
    files = {p.relative_to(frontend).as_posix(): p for p in sorted(frontend.rglob("*"))
             if p.is_file() and not SKIP & set(p.relative_to(frontend).parts) and p.name != "index.html"}
    names: dict[str, str] = {}
    out: dict[str, bytes] = {}
    visiting: list[str] = []

    def resolve(importer: str, spec: str) -> str:
        target = (PurePosixPath(importer).parent / spec).as_posix()
        parts: list[str] = []
        for part in target.split("/"):
            if part == "..":
                if not parts:
                    raise ExportError(f"{importer}: {spec!r} points outside the explorer")
                parts.pop()
            elif part not in ("", "."):
                parts.append(part)
        target = "/".join(parts)
        if target not in files:
            raise ExportError(f"{importer}: {spec!r} does not name a file of the explorer ({target})")
        return target

    def visit(rel: str) -> str:
        if rel in names:
            return names[rel]
        if rel in visiting:
            raise ExportError("import cycle: " + " -> ".join([*visiting[visiting.index(rel):], rel]))
        visiting.append(rel)
        body = files[rel].read_bytes()
        if rel.endswith((".js", ".mjs", ".css")):
            text = body.decode("utf-8")
            pattern = CSS_URL_RE if rel.endswith(".css") else IMPORT_RE

            def swap(m: re.Match) -> str:
                spec = m.group(3) if pattern is IMPORT_RE else m.group(2)
                target = visit(resolve(rel, spec))
                new = os.path.relpath(target, PurePosixPath(rel).parent.as_posix() or ".").replace(os.sep, "/")
                new = new if new.startswith("../") else f"./{new}"
                return m.group(0).replace(spec, new)

            body = pattern.sub(swap, text).encode("utf-8")
        visiting.pop()
        names[rel] = _hashed(rel, body)
        out[names[rel]] = body
        return names[rel]

    for rel in files:
        visit(rel)
    return names, out


def top_files(root: Path) -> list[tuple[str, Path]]:
    """The dataset's own files the explorer reads (manifest, statistics) as (path relative to the
    dataset, source)."""
    return [(MANIFEST, root / MANIFEST)] + ([(STATS, root / STATS)] if (root / STATS).is_file() else [])


def painting_files(root: Path, record: PaintingRecord) -> list[tuple[str, Path]]:
    """Every file of one painting the explorer reads, as (path relative to the dataset, source),
    each checked to be a regular file inside the painting's folder."""
    folder = root / PAINTINGS / record.id
    plain_dirs: set[str] = set()  # folders checked to be real folders, not links
    rels = [RECORD]
    rels += [ref.path for ref in (record.canvas, record.thumb) if ref]
    rels += [t.map.png for t in record.tokens if t.map]
    rels += [s.map.png for s in record.spans if s.map]
    rels += [s.sam.mask for s in record.spans if s.sam and s.sam.mask]
    rels += [m.map.png for s in record.spans if s.faithfulness for m in s.faithfulness.methods.values()]
    files = []
    for rel in dict.fromkeys(rels):
        # never export what lies outside: paths in records have no ".." (contract.schema), so
        # only a symbolic link leads out; every component is checked once (lstat, no resolve:
        # that is a system call per component per file, minutes at 100,000 paintings)
        base = str(folder)
        pieces = rel.split("/")
        for k in range(len(pieces)):  # the painting folder and each folder on the way (strings: pathlib
            part = "/".join([base, *pieces[:k]])  # objects cost more than the checks at this scale)
            if part not in plain_dirs:
                try:
                    dir_mode = os.lstat(part).st_mode
                except FileNotFoundError:
                    dir_mode = 0
                if not stat.S_ISDIR(dir_mode):
                    raise ExportError(f"{folder}/{RECORD} names {rel}, outside the painting folder or missing")
                plain_dirs.add(part)
        try:
            mode = os.lstat(f"{base}/{rel}").st_mode
        except FileNotFoundError:
            raise ExportError(f"{folder}/{RECORD} names {rel}, which does not exist") from None
        if not stat.S_ISREG(mode):
            raise ExportError(f"{folder}/{RECORD} names {rel}, which is a link or not a file")
        files.append((f"{PAINTINGS}/{record.id}/{rel}", folder / rel))
    return files


def read_painting(source: SiteDataset, pid: str) -> PaintingRecord:
    try:
        return source.record(pid)
    except (OSError, ValueError) as exc:  # changed under the export: validated moments ago
        raise ExportError(f"{source.root / PAINTINGS / pid / RECORD} cannot be read: {exc}"[:500]) from None


def _group(rel: str) -> str:
    name = PurePosixPath(rel)
    if rel.startswith("static/") or rel in ("index.html", "config.json"):
        return "explorer"
    if "/" not in rel and rel.endswith(".html"):
        return "pages of the paintings"
    if name.name in (MANIFEST, STATS, RECORD):
        return "dataset: manifest, records"
    if name.parent.name in ("tokens", "spans") or name.parent.parent.name == "methods":
        return "dataset: maps"
    if name.parent.name == "sam":
        return "dataset: SAM 3 masks"
    return "dataset: images"


def source_id(dataset: Path, ds_id: str | None) -> str:
    ds_id = ds_id or re.sub(r"[^A-Za-z0-9._-]+", "-", dataset.resolve().name).strip("-._") or "dataset"
    if not is_valid_id(ds_id):
        raise ExportError(f"dataset id {ds_id!r} is not a valid id (letters, digits, . _ -)")
    return ds_id


def source_version(dataset: Path) -> str:
    """The dataset's content version, its index brought up to date (cheap when it is current)."""
    if not (dataset / MANIFEST).is_file():
        raise ExportError(f"{dataset} is not a dataset folder (no {MANIFEST})")
    try:
        return ensure_index(dataset).version
    except IndexUnavailable as exc:
        raise ExportError(str(exc)) from None


def record_identities(dataset: Path) -> dict[str, str]:
    """Painting id -> the identity of its record when the (current) index read it."""
    from backend.search import IndexQueries

    queries = IndexQueries(ensure_index(dataset).path)
    return {r[0]: r[1] for r in queries.conn.execute("SELECT id, record FROM paintings ORDER BY rowid")}


def read_source(dataset: Path, ds_id: str | None) -> SiteDataset:
    """One dataset to export, validated, with every file the explorer reads."""
    if not (dataset / MANIFEST).is_file():
        raise ExportError(f"{dataset} is not a dataset folder (no {MANIFEST})")
    from contract.validate import leftover_violations, validate_dataset

    try:
        opened = ensure_index(dataset)
    except IndexUnavailable as exc:
        raise ExportError(str(exc)) from None
    from backend.search import IndexQueries

    queries = IndexQueries(opened.path)
    if queries.count() + len(queries.bad()) <= FULL_CHECK_MAX:
        violations = validate_dataset(dataset)
    else:
        violations = [f"paintings/{pid}/record.json: {error}" for pid, error in queries.bad().items()]
        violations += leftover_violations(dataset)
    if violations:
        lines = "\n  ".join(str(v) for v in violations[:20])
        raise ExportError(f"dataset {dataset} is invalid (`tamscope validate` lists everything):\n  {lines}")
    manifest = DatasetManifest.model_validate_json((dataset / MANIFEST).read_bytes())
    return SiteDataset(source_id(dataset, ds_id), dataset, manifest, opened.version)


def _previous(out: Path) -> dict:
    """What the marker of a previous export in OUT says (versions, pages), or {}."""
    try:
        found = json.loads((out / MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def site_address(url: str | None) -> str | None:
    """The address the site will be published at, ending in '/' (preview tags need absolute URLs)."""
    if url is None:
        return None
    if not re.match(r"^https?://[^/\s]+(/\S*)?$", url):
        raise ExportError(f"--site-url {url!r} is not an http(s) address")
    return url if url.endswith("/") else url + "/"


def export_site(datasets: Path | list[Path], out: Path, ds_id: str | None = None, force: bool = False,
                frontend: Path = FRONTEND, site_url: str | None = None) -> Report:
    """Export one dataset or several (the explorer's dataset picker switches between them)."""
    dirs = [Path(datasets)] if isinstance(datasets, str | os.PathLike) else [Path(d) for d in datasets]
    out = Path(out)
    if not dirs:
        raise ExportError("no dataset to export")
    if ds_id and len(dirs) > 1:
        raise ExportError("--id names the dataset of a one-dataset export; several keep their folder names")
    site_url = site_address(site_url)
    ids = [source_id(d, ds_id) for d in dirs]
    if len(set(ids)) != len(ids):
        raise ExportError(f"two datasets would have the same id in URLs ({', '.join(ids)}): rename a folder")
    versions = {i: source_version(d) for i, d in zip(ids, dirs, strict=True)}
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists() and not force:
        raise ExportError(f"{out} is not empty and is not a previous export: choose another folder or pass --force")

    if not (frontend / "index.html").is_file():
        raise ExportError(f"the explorer is missing: no {frontend / 'index.html'}")
    names, assets = build_assets(frontend)

    def static(rel: str) -> str:
        if rel not in names:
            raise ExportError(f"index.html names static/{rel}, which is not a file of the explorer")
        return f"static/{names[rel]}"

    previous = _previous(out) if (out / MARKER).is_file() else {}
    pages_key = hashlib.sha256(json.dumps([sorted(names.items()), site_url, META_CSP]).encode()
                               + b"".join(p.read_bytes() for p in sorted((Path(__file__).parent / "templates").glob("*"))
                                          ) + (frontend / "index.html").read_bytes()).hexdigest()[:20]
    config = {"mode": "static", "pages": True,
              "datasets": [{"id": i, "path": f"data/{i}", "stats": (d / STATS).is_file()} for i, d in zip(ids, dirs, strict=True)]}
    config_bytes = (json.dumps(config, indent=2) + "\n").encode()
    same_datasets = (isinstance(previous.get("records"), dict) and list(previous.get("datasets") or {}) == ids
                     and set(previous["records"]) == set(ids))
    if (same_datasets and previous.get("datasets") == versions and previous.get("pages") == pages_key
            and all(versions.values()) and _same_bytes(out / "config.json", config_bytes)
            and all((out / "static" / name).is_file() for name in names.values())):
        report = Report(out, how="unchanged")
        report.removed = _prune_top(out, {i: record_identities(d) for i, d in zip(ids, dirs, strict=True)})
        return report
    sources = [read_source(d, i) for d, i in zip(dirs, ids, strict=True)]
    identities = {s.id: record_identities(s.root) for s in sources}
    if same_datasets:
        return _update(out, sources, identities, previous, assets, pages_key, config_bytes,
                       shell.environment(frontend), static, site_url)
    same = {s.id for s in sources if previous.get("datasets", {}).get(s.id) == s.version and s.version}
    reuse_pages = same if previous.get("pages") == pages_key else set()
    pages = Pages(shell.environment(frontend), static, META_CSP, sources, site_url)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    report = Report(out)
    try:
        def note(rel: str) -> None:  # counted as written (the report), not kept: 7 million paths at 100,000
            if not rel.startswith("."):
                report.add(_group(rel), tmp / rel, rel)

        def write(rel: str, body: bytes) -> None:
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
            note(rel)

        def put_files(source: SiteDataset, files: list[tuple[str, Path]]) -> None:
            made: set[str] = set()  # folders created (one mkdir per folder, not per file)
            for rel, src in files:
                target = f"{tmp}/data/{source.id}/{rel}"
                folder = target.rsplit("/", 1)[0]
                if folder not in made:
                    os.makedirs(folder, exist_ok=True)
                    made.add(folder)
                link_or_copy(src, target)
                note(f"data/{source.id}/{rel}")

        for rel, body in assets.items():
            write(f"static/{rel}", body)
        write("index.html", pages.front())
        write("config.json", config_bytes)
        for source in sources:
            put_files(source, top_files(source.root))
            for pid in source.paintings:  # one record in memory at a time: its files, then its page
                record = read_painting(source, pid)
                put_files(source, painting_files(source.root, record))
                name = page_name(source.id, pid)
                if source.id not in reuse_pages:
                    write(name, pages.painting(source, record))
                elif not (out / name).is_file():
                    raise ExportError(f"the previous export in {out} lacks {name}: export with --force into a new folder")
                else:
                    link_or_copy(out / name, tmp / name)
                    note(name)
            old_search = out / "data" / source.id / "search"
            if source.id in same and (old_search / "meta.json").is_file():  # unchanged: the last export's
                for path in sorted(old_search.rglob("*.json")):
                    rel = f"data/{source.id}/search/{path.relative_to(old_search).as_posix()}"
                    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                    link_or_copy(path, tmp / rel)
                    note(rel)
            else:
                for rel, body in search_files(source.root).items():
                    write(f"data/{source.id}/search/{rel}", body)
        write(".nojekyll", b"")
        write(MARKER, _marker(sources, identities, pages_key))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def _marker(sources: list[SiteDataset], identities: dict[str, dict[str, str]], pages_key: str) -> bytes:
    return (json.dumps({"tamscope export-site of": [s.manifest.name for s in sources],
                        "datasets": {s.id: s.version for s in sources}, "pages": pages_key,
                        "records": identities}, indent=1) + "\n").encode()


def _same_bytes(path: Path, body: bytes) -> bool:
    try:
        return path.stat().st_size == len(body) and path.read_bytes() == body
    except OSError:
        return False


def _same_file(target: Path, src: Path) -> bool:
    """TARGET is SRC already: the same inode (a hard link), or a copy with the same bytes."""
    try:
        a, b = os.stat(target, follow_symlinks=False), os.stat(src)
    except FileNotFoundError:
        return False
    if (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev):
        return True
    return stat.S_ISREG(a.st_mode) and a.st_size == b.st_size and target.read_bytes() == src.read_bytes()


def _prune_top(out: Path, identities: dict[str, dict[str, str]]) -> int:
    """Remove what an export does not make from the top of OUT and of OUT/data (a file left there by
    hand, a dataset no longer exported); return how many entries went. A listing: cheap."""
    pages = {page_name(i, pid) for i, pids in identities.items() for pid in pids}
    own = {"index.html", "config.json", ".nojekyll", MARKER, "static", "data"}
    removed = 0
    for folder, keep in ((out, own | pages), (out / "data", set(identities))):
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name not in keep:
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path)
                    else:
                        os.unlink(entry.path)
                    removed += 1
    return removed


def _update(out: Path, sources: list[SiteDataset], identities: dict[str, dict[str, str]], previous: dict,
            assets: dict[str, bytes], pages_key: str, config_bytes: bytes, env, static, site_url) -> Report:
    """Bring a previous export of the same datasets up to date in place (see the module doc)."""
    report = Report(out, how="updated in place")
    report.removed = _prune_top(out, identities)
    pages = Pages(env, static, META_CSP, sources, site_url)

    def put(rel: str, body: bytes) -> None:
        target = out / rel
        if not _same_bytes(target, body):
            atomic_write_bytes(target, body)
            if not rel.startswith("."):
                report.add(_group(rel), target, rel)

    def put_file(rel: str, src: Path) -> None:
        target = out / rel
        if _same_file(target, src):
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        link_or_copy(src, tmp)
        os.replace(tmp, target)
        report.add(_group(rel), target, rel)

    def remove(path: Path) -> None:
        if path.is_dir() and not path.is_symlink():
            report.removed += sum(1 for p in path.rglob("*") if not p.is_dir())
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
            report.removed += 1

    def prune(folder: Path, keep: set[Path]) -> None:
        """Remove the files under FOLDER that are not in KEEP."""
        if folder.is_dir():
            for path in sorted(folder.rglob("*"), reverse=True):
                if not path.is_dir() and path not in keep:
                    remove(path)

    def update_painting(source: SiteDataset, pid: str, changed: bool) -> None:
        """Its page, and with a changed record its files (what it no longer names removed)."""
        record = read_painting(source, pid)
        if changed:
            base = out / "data" / source.id
            files = painting_files(source.root, record)
            for rel, src in files:
                put_file(f"data/{source.id}/{rel}", src)
            prune(base / PAINTINGS / pid, {base / rel for rel, _ in files})
        put(page_name(source.id, pid), pages.painting(source, record))

    for rel, body in assets.items():
        put(f"static/{rel}", body)
    prune(out / "static", {out / "static" / rel for rel in assets})
    # a painting's page shows its dataset's label and every dataset's credits: from the manifests
    pages_changed = previous.get("pages") != pages_key or not all(
        _same_file(out / "data" / s.id / MANIFEST, s.root / MANIFEST) for s in sources)
    only: dict[str, set[str]] = {}
    for source in sources:
        before = previous["records"].get(source.id) or {}
        now = identities[source.id]
        unchanged = previous["datasets"].get(source.id) == source.version and bool(source.version)
        changed = set() if unchanged else {pid for pid, identity in now.items() if before.get(pid) != identity}
        only[source.id] = set(now) if pages_changed else changed
        base = out / "data" / source.id
        for pid in set(before) - set(now):  # no longer in the dataset
            remove(base / PAINTINGS / pid)
            remove(out / page_name(source.id, pid))
        for pid in source.paintings:  # manifest order; one record in memory at a time
            if pid in only[source.id]:
                update_painting(source, pid, pid in changed)
        if unchanged:
            continue
        for rel, src in top_files(source.root):
            put_file(f"data/{source.id}/{rel}", src)
        if not (source.root / STATS).is_file():
            remove(base / STATS)
        search = search_files(source.root)
        for rel, body in search.items():
            put(f"data/{source.id}/search/{rel}", body)
        prune(base / "search", {base / "search" / rel for rel in search})
    put("index.html", pages.front())
    put("config.json", config_bytes)
    put(".nojekyll", b"")
    put(MARKER, _marker(sources, identities, pages_key))  # last: an interrupted update is redone
    return report


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path, nargs="+", help="dataset folder (several: the explorer switches)")
    parser.add_argument("out", type=Path, help="output folder (index.html at its root)")
    parser.add_argument("--id", dest="ds_id", default=None,
                        help="dataset id in URLs, for a single dataset (default: the folder name)")
    parser.add_argument("--site-url", default=None,
                        help="the address the site will have, e.g. https://you.github.io/repo/ (absolute preview images)")
    parser.add_argument("--force", action="store_true", help="replace OUT even if it is not a previous export")


def run(args: argparse.Namespace) -> int:
    try:
        report = export_site(args.dataset, args.out, ds_id=args.ds_id, force=args.force, site_url=args.site_url)
    except ExportError as exc:
        print(f"export-site: {exc}", file=sys.stderr)
        return 1
    print(report.text())
    print(f"serve it with any static file server, e.g. `python -m http.server -d {args.out}`")
    return 0
