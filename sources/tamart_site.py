"""Mirror the paper authors' project page (the files `import-tamart` reads) into a cache folder.

Their page (repository nicolafan/tamart, branch gh-pages) is a static site, so the file list is
discovered from the data itself:
    assets/data/index.json                 -> the painting stems
    assets/data/paintings/<stem>.json      -> `image` (assets/img/<stem>.jpg) and, per span,
                                              `sam` (a mask file name under assets/masks/)
Every file is checked before it gets its final name (JSON parses and has the fields the importer
needs; images decode completely and have the size the painting JSON states), so the cache only
ever holds complete, plausible files and a re-run skips them without asking the server.
A marker file listing every file with its size and SHA-256 is written when the mirror is
complete; the next run then makes no request at all, and the digest tells the demo whether
the import is still current.

Names inside the JSON come from the network: they must be plain relative paths under assets/
(no `..`, no absolute paths) before they are used to build a path.
"""

from __future__ import annotations

import hashlib
import io
import re
import sys
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import orjson
from PIL import Image
from tqdm import tqdm

from contract.store import atomic_write_json, utcnow
from sources.download import ContentError, Fetcher

DEFAULT_BASE_URL = "https://nicolafan.github.io/tamart/"
INDEX = "assets/data/index.json"
MARKER = ".tamscope-download.json"
STEM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,250}$")
PROBE_TIMEOUT = 10.0  # the first request decides "offline": do not hang on it


@dataclass
class MirrorResult:
    site: Path
    files: dict[str, dict]  # relative path -> {size, sha256}
    paintings: int
    fetched: int  # files downloaded by this run
    bytes: int  # bytes transferred by this run
    digest: str  # of the file table: changes exactly when the mirrored content changes


# content checks (raise ContentError; the downloader discards the file and retries) ------------
def _load_json(data: bytes) -> object:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ContentError(f"not valid JSON ({exc})") from None


def check_index(path: Path) -> list[str]:
    data = _load_json(path.read_bytes())
    paintings = data.get("paintings") if isinstance(data, dict) else None
    if not isinstance(paintings, list) or not paintings:
        raise ContentError("not a painting index (no 'paintings' list)")
    stems = [p.get("stem") if isinstance(p, dict) else None for p in paintings]
    bad = [s for s in stems if not (isinstance(s, str) and STEM_RE.match(s))]
    if bad:
        raise ContentError(f"painting stems that are not plain names: {bad[:3]}")
    return stems


def safe_asset_path(rel: object) -> str:
    """A relative POSIX path under assets/ made of plain names (no '..', not absolute)."""
    if not isinstance(rel, str):
        raise ContentError(f"file name {rel!r} is not a string")
    parts = PurePosixPath(rel).parts
    if len(parts) < 2 or parts[0] != "assets" or not all(NAME_RE.match(p) for p in parts[1:]):
        raise ContentError(f"file name {rel!r} is not a plain path under assets/")
    return rel


def painting_files(stem: str, data: object) -> tuple[str, tuple[int, int], list[str]]:
    """(image path, (w, h), mask paths) named by a painting JSON; ContentError when malformed."""
    if not isinstance(data, dict) or data.get("stem") != stem:
        raise ContentError(f"not the painting JSON of {stem}")
    for key in ("caption", "image"):
        if not isinstance(data.get(key), str):
            raise ContentError(f"no '{key}' string")
    size = (data.get("w"), data.get("h"))
    if not all(isinstance(v, int) and v > 0 for v in size):
        raise ContentError("no positive integer 'w' and 'h'")
    spans = data.get("spans")
    if not isinstance(spans, list):
        raise ContentError("no 'spans' list")
    masks = []
    for span in spans:
        name = span.get("sam") if isinstance(span, dict) else None
        if name:
            masks.append(safe_asset_path(f"assets/masks/{name}"))
    return safe_asset_path(data["image"]), size, masks


def image_check(size: tuple[int, int] | None) -> Callable[[Path], None]:
    def check(path: Path) -> None:
        try:
            with Image.open(io.BytesIO(path.read_bytes())) as im:
                im.load()  # decodes everything: a truncated file fails here, not later
                fmt, got = im.format, im.size
        except Exception as exc:
            raise ContentError(f"not a readable image ({exc})") from None
        if fmt not in ("JPEG", "PNG"):
            raise ContentError(f"unexpected image format {fmt}")
        if size is not None and got != size:
            raise ContentError(f"image is {got[0]}x{got[1]}, the painting JSON says {size[0]}x{size[1]}")
    return check


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def table_digest(files: dict[str, dict]) -> str:
    return hashlib.sha256(orjson.dumps(files, option=orjson.OPT_SORT_KEYS)).hexdigest()


def complete_mirror(cache: Path, base_url: str) -> dict | None:
    """The marker of a complete mirror of base_url whose files are all still there, else None."""
    try:
        marker = orjson.loads((Path(cache) / MARKER).read_bytes())
        files = marker["files"]
        if marker["base_url"] != base_url:
            return None
        for rel, meta in files.items():
            path = Path(cache) / safe_asset_path(rel)
            if not path.is_file() or path.stat().st_size != meta["size"]:
                return None
        return marker
    except (OSError, KeyError, TypeError, ValueError, ContentError):
        return None


class SiteMirror:
    """Download the project page's data files into `cache` (see the module docstring)."""

    def __init__(self, base_url: str, cache: Path, fetcher: Fetcher, jobs: int = 6, progress: bool | None = None):
        self.base = base_url if base_url.endswith("/") else base_url + "/"
        self.cache, self.fetcher, self.jobs = Path(cache), fetcher, max(1, jobs)
        self.progress = progress  # None: a bar only on a terminal (tqdm's disable=None)
        self.contacted = False  # has a request succeeded yet (until then, unreachable = offline)
        self.fetched = self.moved = 0
        self._total = self._done = 0
        self._bar: tqdm | None = None
        self._lock = threading.Lock()

    # one file ---------------------------------------------------------------------------
    def _fetch(self, rel: str, check: Callable[[Path], None], label: str) -> None:
        probe = not self.contacted
        moved = self.fetcher.download(
            self.base + rel, self.cache / rel, label=label, check=check, on_bytes=self._on_bytes,
            retry_unreachable=not probe, timeout=min(PROBE_TIMEOUT, self.fetcher.timeout) if probe else None)
        with self._lock:
            self.contacted = True
            self.fetched += 1
            self.moved += moved

    def _on_bytes(self, n: int) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(f"{(self.moved + n) / 1e6:.1f} MB", refresh=False)

    def _ensure(self, wanted: list[tuple[str, Callable[[Path], None], str]]) -> None:
        """Fetch the files of `wanted` that are not in the cache yet: (path, check, label)."""
        once: dict[str, tuple] = {}
        for w in wanted:  # once each: two spans may name the same mask
            once.setdefault(w[0], w)
        wanted = list(once.values())
        missing = [w for w in wanted if not (self.cache / w[0]).is_file()]
        self._total += len(wanted)
        self._done += len(wanted) - len(missing)
        if missing and not self.contacted:
            self._fetch(*missing.pop(0))  # alone and first: it tells "offline" from a broken server
            self._done += 1
        if self.contacted and self._bar is None:  # no bar before that: offline stays one line
            self._bar = tqdm(desc="download", unit="file", dynamic_ncols=True,
                             disable=None if self.progress is None else not self.progress)
            self.fetcher.log = lambda line: tqdm.write(line, file=sys.stderr)
        if self._bar is not None:
            self._bar.total, self._bar.n = self._total, self._done
            self._bar.refresh()
        if not missing:
            return
        with ThreadPoolExecutor(self.jobs) as pool:
            futures = [pool.submit(self._fetch_counted, *w) for w in missing]
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for f in pending:
                f.cancel()
            for f in done:
                f.result()  # raises the first failure, naming its file

    def _fetch_counted(self, rel: str, check: Callable[[Path], None], label: str) -> None:
        self._fetch(rel, check, label)
        with self._lock:
            self._done += 1
            if self._bar is not None:
                self._bar.update(1)

    # the whole site ---------------------------------------------------------------------
    def run(self) -> MirrorResult:
        marker = complete_mirror(self.cache, self.base)
        if marker is not None:
            return MirrorResult(self.cache, marker["files"], marker.get("paintings", 0), 0, 0,
                                table_digest(marker["files"]))
        try:
            return self._run()
        finally:
            if self._bar is not None:
                self._bar.close()

    def _run(self) -> MirrorResult:
        self._ensure([(INDEX, check_index, INDEX)])
        stems = check_index(self.cache / INDEX)
        jsons = {stem: f"assets/data/paintings/{stem}.json" for stem in stems}
        self._ensure([(rel, lambda p, s=stem: painting_files(s, _load_json(p.read_bytes())), rel)
                      for stem, rel in jsons.items()])
        files: list[tuple[str, Callable[[Path], None], str]] = []
        for stem, rel in jsons.items():
            image, size, masks = painting_files(stem, _load_json((self.cache / rel).read_bytes()))
            files.append((image, image_check(size), f"{image} (named by {rel})"))
            files += [(m, image_check(size), f"{m} (named by {rel})") for m in masks]
        self._ensure(files)
        table = {}
        for rel in [INDEX, *jsons.values(), *(f[0] for f in files)]:
            path = self.cache / rel
            table[rel] = {"size": path.stat().st_size, "sha256": _sha256(path)}
        atomic_write_json(self.cache / MARKER, {"base_url": self.base, "finished": utcnow(),
                                                "paintings": len(stems), "files": table})
        return MirrorResult(self.cache, table, len(stems), self.fetched, self.moved, table_digest(table))
