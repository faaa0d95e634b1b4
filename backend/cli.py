"""`tamscope serve`: the explorer and the JSON API with uvicorn.

Configuration by flags or environment variables (flags win):
    --data DIR (repeatable)   TAMSCOPE_DATA   (several folders separated by ':')
    --host                    TAMSCOPE_HOST   (default 127.0.0.1)
    --port                    TAMSCOPE_PORT   (default 8000)
    --workers                 TAMSCOPE_WORKERS (default 1)
    --skip-bad                TAMSCOPE_SKIP_BAD=1 (serve a dataset without its invalid paintings)
    --log-level               TAMSCOPE_LOG_LEVEL (default info: one line per request)
With no data folder the embedded smoke dataset (data/smoke in the checkout) is served.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "data" / "smoke"


def configure(parser: argparse.ArgumentParser) -> None:
    env = os.environ
    parser.add_argument("--data", action="append", type=Path, default=None,
                        help="dataset folder (repeatable); default: TAMSCOPE_DATA or the embedded smoke dataset")
    parser.add_argument("--host", default=env.get("TAMSCOPE_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env.get("TAMSCOPE_PORT", "8000")))
    parser.add_argument("--workers", type=int, default=int(env.get("TAMSCOPE_WORKERS", "1")))
    parser.add_argument("--skip-bad", action="store_true", default=env.get("TAMSCOPE_SKIP_BAD") == "1",
                        help="leave out (and list) invalid paintings instead of refusing the dataset")
    parser.add_argument("--log-level", default=env.get("TAMSCOPE_LOG_LEVEL", "info"))


def data_dirs(args_data: list[Path] | None) -> list[Path]:
    if args_data:
        return args_data
    if os.environ.get("TAMSCOPE_DATA"):
        return [Path(p) for p in os.environ["TAMSCOPE_DATA"].split(":") if p]
    return [DEFAULT_DATA]


def app_from_env():
    """uvicorn factory (also for --workers > 1): the configuration travels in the environment."""
    from backend.app import create_app

    dirs = [Path(p) for p in os.environ["TAMSCOPE_DATA"].split(":") if p]
    return create_app(dirs, skip_bad=os.environ.get("TAMSCOPE_SKIP_BAD") == "1")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from backend.catalog import StartupError, load_catalog

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    dirs = data_dirs(args.data)
    missing = [d for d in dirs if not d.is_dir()]
    if missing:
        print(f"serve: no dataset folder at {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    try:
        catalog = load_catalog(dirs, skip_bad=args.skip_bad)  # fail here, with the problem named
    except StartupError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    for ds in catalog.values():
        print(f"serving {ds.id}: {len(ds.paintings)} paintings from {ds.root}"
              + (f" (left out: {', '.join(sorted(ds.skipped))})" if ds.skipped else ""))
    os.environ["TAMSCOPE_DATA"] = ":".join(str(d.resolve()) for d in dirs)
    os.environ["TAMSCOPE_SKIP_BAD"] = "1" if args.skip_bad else "0"
    print(f"explorer: http://{args.host}:{args.port}/   API docs: http://{args.host}:{args.port}/docs", flush=True)
    uvicorn.run("backend.cli:app_from_env", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level="warning", access_log=False, server_header=False)
    return 0
