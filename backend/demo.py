"""`tamscope demo` (`make demo`): the paper authors' published dataset, explored.

1. Mirror their project page (150 paintings, ~40 MB) into --cache, once: see
   sources.tamart_site. A complete cache is used without contacting the server. A file that
   cannot be fetched does not stop the download: the paintings that need it are left out
   (one line says which and why; the next run tries them again) and the others are served.
2. Import it with import-tamart into --out when the mirrored content differs from what was
   imported last (a stamp in the cache records the digest), or when --out is missing or
   invalid. The import goes to a temporary sibling folder that replaces --out only when
   it is complete and valid, so an interrupted import never leaves a half dataset.
3. Serve it next to the embedded smoke dataset (tamscope serve), or, with --site, export both
   as the static site that is the hosted demo (`make site-demo`, .github/workflows/pages.yml).
Offline (the first request meets a DNS failure, a refused connection or a timeout): one line
says so and the embedded smoke dataset is served alone; --site stops instead (the hosted demo
is never published without the authors' data).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import orjson

from backend import SMOKE
from contract.store import atomic_write_json
from sources.download import DownloadError, Fetcher, Unreachable
from sources.tamart_site import DEFAULT_BASE_URL, MirrorResult, SiteMirror

IMPORT_STAMP = ".tamscope-imported.json"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL, help="the project page (default: %(default)s)")
    parser.add_argument("--cache", type=Path, default=Path("data/downloads/tamart-site"),
                        help="where the downloaded files are kept (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("data/downloads/tamart"),
                        help="the imported dataset (default: %(default)s)")
    parser.add_argument("--port", type=int, default=None, help="server port (default: TAMSCOPE_PORT or 8000)")
    parser.add_argument("--no-serve", action="store_true", help="download and import, then stop (for tests)")
    parser.add_argument("--site", type=Path, default=None,
                        help="instead of serving, export the static site of both datasets into SITE (the hosted demo)")
    parser.add_argument("--site-url", default=None, help="with --site: the address the site will have, for link "
                                                         "previews (e.g. https://you.github.io/tamscope/)")
    parser.add_argument("--retries", type=int, default=4, help="retries per file (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=6, help="parallel downloads (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default: %(default)s)")


def _say(text: str) -> None:
    print(f"demo: {text}", flush=True)


def import_if_changed(mirror: MirrorResult, out: Path) -> bool:
    """Import the mirror into out unless out already holds exactly this content; True if imported."""
    from contract import stats
    from contract.validate import validate_dataset
    from sources.tamart_import import IMPORTER_VERSION, import_tamart

    stamp_path = mirror.site / IMPORT_STAMP
    stamp = {"dataset": str(out.resolve()), "digest": mirror.digest, "importer": IMPORTER_VERSION}
    try:
        same = orjson.loads(stamp_path.read_bytes()) == stamp
    except (OSError, orjson.JSONDecodeError):
        same = False
    if same and (out / "manifest.json").is_file() and not validate_dataset(out):
        return False
    tmp, old = out.with_name(f".{out.name}.importing"), out.with_name(f".{out.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    ds = import_tamart(mirror.site, tmp, left_out=mirror.left_out)
    ds.save_stats(stats.compute(ds))
    problems = validate_dataset(tmp)
    if problems:
        raise ValueError("the imported dataset is invalid:\n  " + "\n  ".join(map(str, problems[:10])))
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    atomic_write_json(stamp_path, stamp)
    return True


def left_out_summary(mirror: MirrorResult, show: int = 3) -> str:
    """One line: how many paintings are left out, and why for the first few."""
    reasons = [f"{stem} ({why})" for stem, why in list(mirror.left_out.items())[:show]]
    more = len(mirror.left_out) - len(reasons)
    return (f"{len(mirror.left_out)} of {mirror.paintings} paintings left out, their download failed: "
            + "; ".join(reasons) + (f"; and {more} more" if more > 0 else "")
            + " (run the same command again to retry them)")


def prepare(args: argparse.Namespace) -> tuple[int, list[Path]]:
    """(exit code, dataset folders to serve)."""
    smoke = [SMOKE] if SMOKE.is_dir() else []
    fetcher = Fetcher(retries=max(0, args.retries), timeout=args.timeout)
    site = SiteMirror(args.base_url, args.cache, fetcher, jobs=args.jobs)
    try:
        mirror = site.run()
    except Unreachable as exc:
        if site.contacted:  # we had a connection and lost it: not "offline"
            _say(f"download failed: {exc}\n  run the same command again to resume")
            return 1, []
        offline = f"offline (cannot reach {args.base_url}: {exc.reason})"
        if args.site:
            _say(f"{offline}: the demo site is not built without the published dataset")
            return 2, []
        if not smoke:
            _say(f"{offline}, and there is no embedded dataset at {SMOKE}")
            return 2, []
        _say(f"{offline}; serving the embedded smoke dataset instead")
        return 0, smoke
    except DownloadError as exc:
        _say(f"download failed: {exc}\n  run the same command again to resume")
        return 1, []
    if mirror.fetched:
        _say(f"downloaded {mirror.fetched} files ({mirror.bytes / 1e6:.1f} MB) into {args.cache}")
    elif not mirror.left_out:
        _say(f"the published dataset is already downloaded in {args.cache} ({mirror.paintings} paintings)")
    if mirror.left_out:
        _say(left_out_summary(mirror))
    if len(mirror.left_out) >= mirror.paintings:
        _say("no painting could be downloaded completely; run the same command again to retry")
        return 1, []
    try:
        imported = import_if_changed(mirror, args.out)
    except (ValueError, OSError) as exc:  # LayoutError is a ValueError
        _say(f"import failed: {exc}")
        return 1, []
    _say(f"{'imported' if imported else 'up to date'}: {args.out}")
    if not smoke:
        _say(f"the embedded smoke dataset is not at {SMOKE}; serving the published dataset alone")
    return 0, [args.out, *smoke]


def serve(dirs: list[Path], port: int | None) -> int:
    from backend import cli as serve_cli

    parser = argparse.ArgumentParser(prog="tamscope serve")
    serve_cli.configure(parser)
    argv = [arg for d in dirs for arg in ("--data", str(d))] + (["--port", str(port)] if port else [])
    return serve_cli.run(parser.parse_args(argv))


def export(dirs: list[Path], site: Path, site_url: str | None) -> int:
    from backend.site import ExportError, export_site

    try:
        report = export_site(dirs, site, site_url=site_url)
    except ExportError as exc:
        _say(f"export failed: {exc}")
        return 1
    print(report.text())
    _say(f"the demo site is in {site}: serve it with any static file server, e.g. `python -m http.server -d {site}`")
    return 0


def run(args: argparse.Namespace) -> int:
    code, dirs = prepare(args)
    if code or not dirs:
        return code
    if args.site:
        return export(dirs, args.site, args.site_url)
    if args.no_serve:
        _say("--no-serve: would serve " + " and ".join(map(str, dirs)))
        return 0
    sys.stdout.flush()
    return serve(dirs, args.port)
