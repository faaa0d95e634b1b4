"""Mirror the paper authors' project page (the files `import-tamart` reads) into a cache folder.

Their page (repository nicolafan/tamart, branch gh-pages) is a static site, so the file list is
discovered from the data itself (read through sources.tamart_format, as the importer reads it):
    assets/data/index.json                 -> the painting stems
    assets/data/paintings/<stem>.json      -> `image` (assets/img/<stem>.jpg) and, per span,
                                              `sam` (a mask file name under assets/masks/)
Every file is checked before it gets its final name (JSON parses and is in the format the
importer reads; images decode completely as JPEG/PNG under the pixel limit and have the size the
painting JSON states; no file over MAX_FILE_BYTES), so the cache only ever holds complete,
plausible files and a re-run skips them without asking the server.

One bad file does not stop the download: a file that fails (an HTTP error, a body that stays
truncated or fails its check after the retries, a file over the size limit) is recorded, the
other files are fetched, and the painting that needs it is left out of the result, with the
reason (MirrorResult.left_out). Only the index, without which nothing can be named, and a lost
connection (every other file would fail the same way) end the download early.

A marker file lists every file with its size and SHA-256 at the end of each run. When it says
the mirror is complete and every file still has its recorded size and digest, the next run makes
no request at all, and the digest tells the demo whether the import is still current; a cached
file whose bytes changed since is deleted and fetched again.

Names inside the JSON come from the network: they must be plain relative paths under assets/
(no `..`, no absolute paths) before they are used to build a path.
"""

from __future__ import annotations

import hashlib
import io
import sys
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from tqdm import tqdm

from contract.images import open_image
from contract.store import atomic_write_json, utcnow
from sources.download import ContentError, DownloadError, Fetcher, HTTPStatusError, Unreachable
from sources.tamart_format import (
    INDEX,
    MAX_FILE_BYTES,
    PublishedPainting,
    painting_json,
    read_index,
    read_painting,
    safe_asset_path,
)

DEFAULT_BASE_URL = "https://nicolafan.github.io/tamart/"
MARKER = ".tamscope-download.json"
PROBE_TIMEOUT = 10.0  # the first request decides "offline": do not hang on it


@dataclass
class MirrorResult:
    site: Path
    files: dict[str, dict]  # relative path -> {size, sha256}, of the index and the complete paintings
    paintings: int  # stems in the index
    fetched: int  # files downloaded by this run
    bytes: int  # bytes transferred by this run
    digest: str  # of the file table: changes exactly when the mirrored content changes
    left_out: dict[str, str] = field(default_factory=dict)  # stem -> why it is incomplete


# content checks (raise ContentError; the downloader discards the file and retries) ------------
def check_index(path: Path) -> list[str]:
    try:
        return read_index(path.read_bytes())[0]
    except ValueError as exc:
        raise ContentError(str(exc)) from None


def check_painting(stem: str) -> Callable[[Path], PublishedPainting]:
    def check(path: Path) -> PublishedPainting:
        try:
            return read_painting(stem, path.read_bytes())
        except ValueError as exc:
            raise ContentError(str(exc)) from None
    return check


def image_check(size: tuple[int, int] | None) -> Callable[[Path], None]:
    def check(path: Path) -> None:
        try:
            with open_image(io.BytesIO(path.read_bytes()), formats=("JPEG", "PNG")) as im:
                im.load()  # decodes everything: a truncated file fails here, not later
                got = im.size
        except Exception as exc:
            raise ContentError(f"not a readable image ({exc})") from None
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


def check_cache(cache: Path, base_url: str) -> tuple[dict | None, list[str]]:
    """(the marker, when it records a complete mirror of base_url and every file it lists is
    still there with its recorded size and SHA-256, else None; the listed files whose bytes
    changed since: damaged on disk, they must be fetched again)."""
    try:
        marker = orjson.loads((Path(cache) / MARKER).read_bytes())
        files = marker["files"]
        if marker["base_url"] != base_url:
            return None, []
        changed, missing = [], False
        for rel, meta in files.items():
            path = Path(cache) / safe_asset_path(rel)
            if not path.is_file():
                missing = True
            elif path.stat().st_size != meta["size"] or _sha256(path) != meta["sha256"]:
                changed.append(rel)
        return (marker if marker.get("complete", True) and not missing and not changed else None), changed
    except (OSError, KeyError, TypeError, ValueError, AttributeError):
        return None, []


class SiteMirror:
    """Download the project page's data files into `cache` (see the module docstring)."""

    def __init__(self, base_url: str, cache: Path, fetcher: Fetcher, jobs: int = 6, progress: bool | None = None):
        self.base = base_url if base_url.endswith("/") else base_url + "/"
        self.cache, self.fetcher, self.jobs = Path(cache), fetcher, max(1, jobs)
        self.progress = progress  # None: a bar only on a terminal (tqdm's disable=None)
        self.contacted = False  # has the server answered yet (until then, unreachable = offline)
        self.fetched = self.moved = 0  # files and bytes downloaded
        self._total = self._done = 0  # for the progress bar
        self._bar: tqdm | None = None
        self._lock = threading.Lock()

    # one file ---------------------------------------------------------------------------
    def _fetch(self, rel: str, check: Callable[[Path], None], label: str) -> None:
        probe = not self.contacted
        moved = self.fetcher.download(
            self.base + rel, self.cache / rel, label=label, check=check, on_bytes=self._on_bytes,
            retry_unreachable=not probe, timeout=min(PROBE_TIMEOUT, self.fetcher.timeout) if probe else None,
            max_bytes=MAX_FILE_BYTES)
        with self._lock:
            self.contacted = True
            self.fetched += 1
            self.moved += moved

    def _fetch_recorded(self, rel: str, check: Callable[[Path], None], label: str) -> str | None:
        """Fetch one file; why it failed (naming it), or None. A lost connection is raised."""
        try:
            self._fetch(rel, check, label)
        except Unreachable:
            raise
        except DownloadError as exc:  # this file is bad: the others may be fine
            if isinstance(exc, HTTPStatusError | ContentError):  # the server did answer
                self.contacted = True
            if self.fetcher.log:
                self.fetcher.log(f"failed: {exc}")
            return str(exc)
        finally:
            with self._lock:
                self._done += 1
                if self._bar is not None:
                    self._bar.update(1)
        return None

    def _on_bytes(self, n: int) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(f"{(self.moved + n) / 1e6:.1f} MB", refresh=False)

    def _ensure(self, wanted: list[tuple[str, Callable[[Path], None], str]]) -> dict[str, str]:
        """Fetch the files of `wanted` that are not in the cache yet: (path, check, label).
        Returns {path: why} for those that failed; raises Unreachable when the connection is lost."""
        once: dict[str, tuple] = {}
        for w in wanted:  # once each: two spans may name the same mask
            once.setdefault(w[0], w)
        wanted = list(once.values())
        missing = [w for w in wanted if not (self.cache / w[0]).is_file()]
        self._total += len(wanted)
        self._done += len(wanted) - len(missing)
        failed: dict[str, str] = {}
        if missing and not self.contacted:
            first = missing.pop(0)  # alone and first: it tells "offline" from a broken server
            if (why := self._fetch_recorded(*first)) is not None:
                failed[first[0]] = why
        if self.contacted and self._bar is None:  # no bar before that: offline stays one line
            self._bar = tqdm(desc="download", unit="file", dynamic_ncols=True,
                             disable=None if self.progress is None else not self.progress)
            self.fetcher.log = lambda line: tqdm.write(line, file=sys.stderr)
        if self._bar is not None:
            self._bar.total, self._bar.n = self._total, self._done
            self._bar.refresh()
        if not missing:
            return failed
        with ThreadPoolExecutor(self.jobs) as pool:
            futures = {pool.submit(self._fetch_recorded, *w): w[0] for w in missing}
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for f in pending:
                f.cancel()
            for f in done:
                if (why := f.result()) is not None:  # raises a lost connection
                    failed[futures[f]] = why
        return failed

    # the whole site ---------------------------------------------------------------------
    def run(self) -> MirrorResult:
        marker, changed = check_cache(self.cache, self.base)
        if marker is not None:
            return MirrorResult(self.cache, marker["files"], marker.get("paintings", 0), 0, 0,
                                table_digest(marker["files"]))
        for rel in changed:  # damaged since it was checked: fetch it again
            (self.cache / rel).unlink(missing_ok=True)
        try:
            return self._run()
        finally:
            if self._bar is not None:
                self._bar.close()

    def _run(self) -> MirrorResult:
        failed = self._ensure([(INDEX, check_index, INDEX)])
        if failed:  # without the index nothing else can be named
            raise DownloadError(failed[INDEX])
        try:
            stems = check_index(self.cache / INDEX)
        except ContentError as exc:  # a cached copy that no longer passes: fetch it next time
            (self.cache / INDEX).unlink()
            raise ContentError(f"{INDEX}: {exc}") from None
        jsons = {stem: painting_json(stem) for stem in stems}
        failed = self._ensure([(rel, check_painting(stem), rel) for stem, rel in jsons.items()])
        left_out = {stem: failed[rel] for stem, rel in jsons.items() if rel in failed}
        needs: dict[str, list[str]] = {}  # stem -> the files it needs besides its JSON
        files: list[tuple[str, Callable[[Path], None], str]] = []
        for stem, rel in jsons.items():
            if stem in left_out:
                continue
            try:
                painting = check_painting(stem)(self.cache / rel)
            except ContentError as exc:  # a cached copy that no longer passes: fetch it next time
                (self.cache / rel).unlink()
                left_out[stem] = f"{rel}: {exc}"
                continue
            size, named_by = (painting.w, painting.h), f"(named by {rel})"
            needs[stem] = [painting.image, *painting.mask_paths()]
            files += [(f, image_check(size), f"{f} {named_by}") for f in needs[stem]]
        failed = self._ensure(files)
        for stem, paths in needs.items():
            bad = [f for f in paths if f in failed]
            if bad:
                left_out[stem] = failed[bad[0]] + (f" (and {len(bad) - 1} more files)" if len(bad) > 1 else "")
        table = {}
        complete = [rel for stem, rel in jsons.items() if stem not in left_out]
        for rel in [INDEX, *complete, *(f for stem, paths in needs.items() if stem not in left_out for f in paths)]:
            path = self.cache / rel
            table[rel] = {"size": path.stat().st_size, "sha256": _sha256(path)}
        atomic_write_json(self.cache / MARKER, {"base_url": self.base, "finished": utcnow(),
                                                "paintings": len(stems), "complete": not left_out,
                                                "left_out": left_out, "files": table})
        return MirrorResult(self.cache, table, len(stems), self.fetched, self.moved, table_digest(table), left_out)
