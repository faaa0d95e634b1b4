"""`tamscope serve`: the explorer and the JSON API with uvicorn.

Configuration by flags or environment variables (flags win):
    --data DIR (repeatable)   TAMSCOPE_DATA       several folders separated by ':'
    --host                    TAMSCOPE_HOST       default 127.0.0.1
    --port                    TAMSCOPE_PORT       default 8000
    --workers                 TAMSCOPE_WORKERS    default 1 (processes; each holds the catalog)
    --skip-bad                TAMSCOPE_SKIP_BAD=1 serve a dataset without its invalid paintings
    --cache-mb                TAMSCOPE_CACHE_MB   default 256: dataset files kept in memory per worker
    --log-level               TAMSCOPE_LOG_LEVEL  default info: one line per request
    --idle-timeout            TAMSCOPE_IDLE_TIMEOUT     default 10 s: a connection silent that long is closed
    --request-timeout         TAMSCOPE_REQUEST_TIMEOUT  default 30 s: to send a whole request (backend.protocol)
With no data folder the embedded smoke dataset (data/smoke in the checkout) is served.

Live questions (off by default; docs/api.md, "Live questions"): --live takes jobs (an uploaded
image or a served painting, and a prompt) and runs the precompute stages on them in one worker
process (torch is imported there only), into the --live-data dataset folder, which is served
too. Its models and bounds: --captioner, --device, --dtype, --tam-variant, --text-llm,
--segmenter and the --live-* limits. Listening beyond this machine needs --live-token (or
TAMSCOPE_LIVE_TOKEN), which clients send as `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
from pathlib import Path

from backend import SMOKE
from backend.protocol import Limits

DEFAULT_DATA = SMOKE
TRUE = ("1", "true", "yes", "on")
BACKLOG = 2048  # uvicorn's default: connections the kernel queues before the server accepts them


def seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < 86400:
        raise ValueError(text)
    return value


seconds.__name__ = "number of seconds"  # argparse names the type in its error message


def configure(parser: argparse.ArgumentParser) -> None:
    env = os.environ
    parser.epilog = ("Each flag can be set by an environment variable instead: TAMSCOPE_DATA (folders separated "
                     "by ':'), TAMSCOPE_HOST, TAMSCOPE_PORT, TAMSCOPE_WORKERS, TAMSCOPE_SKIP_BAD=1, "
                     "TAMSCOPE_CACHE_MB, TAMSCOPE_LOG_LEVEL, TAMSCOPE_IDLE_TIMEOUT, TAMSCOPE_REQUEST_TIMEOUT; "
                     "TAMSCOPE_LIVE=1, TAMSCOPE_LIVE_DATA, TAMSCOPE_LIVE_TOKEN. "
                     "See docs/api.md.")
    # string defaults go through `type`, so a bad environment value is reported like a bad flag
    parser.add_argument("--data", action="append", type=Path, default=None,
                        help="dataset folder (repeatable); default: TAMSCOPE_DATA or the embedded smoke dataset")
    parser.add_argument("--host", default=env.get("TAMSCOPE_HOST", "127.0.0.1"),
                        help="interface to listen on (0.0.0.0 for every interface); default 127.0.0.1")
    parser.add_argument("--port", type=int, default=env.get("TAMSCOPE_PORT", "8000"), help="default 8000")
    parser.add_argument("--workers", type=int, default=env.get("TAMSCOPE_WORKERS", "1"),
                        help="worker processes, each with the datasets in memory; 2 uses both cores of a 2-core machine")
    parser.add_argument("--skip-bad", action="store_true", default=env.get("TAMSCOPE_SKIP_BAD", "").lower() in TRUE,
                        help="leave out (and list) invalid paintings instead of refusing the dataset")
    parser.add_argument("--cache-mb", type=int, default=env.get("TAMSCOPE_CACHE_MB", "256"),
                        help="memory for dataset files (images, maps) per worker; default 256")
    parser.add_argument("--log-level", default=env.get("TAMSCOPE_LOG_LEVEL", "info"),
                        choices=["debug", "info", "warning", "error"], type=str.lower,
                        help="info logs one line per request; default info")
    parser.add_argument("--idle-timeout", type=seconds, default=env.get("TAMSCOPE_IDLE_TIMEOUT", str(Limits.idle_timeout)),
                        help="close a connection that waits for a request and sends nothing (or takes nothing of "
                             f"its answer) for this many seconds; default {Limits.idle_timeout:g}")
    parser.add_argument("--request-timeout", type=seconds,
                        default=env.get("TAMSCOPE_REQUEST_TIMEOUT", str(Limits.request_timeout)),
                        help="answer 408 and close when a request has not fully arrived this many seconds after "
                             f"its first byte (slow headers); default {Limits.request_timeout:g}")
    configure_live(parser)


def configure_live(parser: argparse.ArgumentParser) -> None:
    from backend.live.settings import LiveSettings

    env, d = os.environ, LiveSettings(dataset=Path("live"))
    live = parser.add_argument_group("live questions (with --live; docs/api.md)")
    live.add_argument("--live", action="store_true", default=env.get("TAMSCOPE_LIVE", "").lower() in TRUE,
                      help="take questions: upload an image (or pick a served painting), ask, watch the answer's maps "
                           "arrive; needs the model stack (torch), loaded in a worker process on the first question")
    live.add_argument("--live-data", type=Path, default=env.get("TAMSCOPE_LIVE_DATA", "live"),
                      help="dataset folder the answers are written to and served from (created); default ./live")
    live.add_argument("--live-token", default=env.get("TAMSCOPE_LIVE_TOKEN") or None,
                      help="token clients must send (Authorization: Bearer); required when --host is not loopback; "
                           "TAMSCOPE_LIVE_TOKEN keeps it out of the process list")
    live.add_argument("--captioner", default=d.captioner, help=f"Qwen2-VL / Qwen2.5-VL id or folder (default {d.captioner})")
    live.add_argument("--device", default=d.device, help="auto, cpu, cuda, mps (default auto)")
    live.add_argument("--dtype", default=d.dtype, help="auto, float32, bfloat16, float16 (default auto)")
    live.add_argument("--tam-variant", choices=("reference", "corrected"), default=d.tam_variant,
                      help="reference (the authors' maps) or corrected (docs/tam.md)")
    live.add_argument("--text-llm", default=d.text_llm,
                      help="span classifier: a causal LM id or folder, or lexicon (default: lexicon, seconds instead of minutes)")
    live.add_argument("--segmenter", default="none", help="SAM 3 id or folder for masks, or none (default none)")
    live.add_argument("--live-max-new-tokens", type=int, default=d.max_new_tokens,
                      help=f"caption length a question may ask for at most (default {d.max_new_tokens})")
    live.add_argument("--live-max-pixels", type=int, default=d.max_pixels,
                      help=f"image area the model sees at most, per question (default {d.max_pixels}: 1280 vision tokens)")
    live.add_argument("--live-upload-mb", type=float, default=d.max_upload_bytes / 2**20,
                      help=f"largest upload in MB (default {d.max_upload_bytes / 2**20:g})")
    live.add_argument("--live-upload-mp", type=float, default=d.max_upload_pixels / 1e6,
                      help=f"largest upload in megapixels (default {d.max_upload_pixels / 1e6:g})")
    live.add_argument("--live-queue", type=int, default=d.queue,
                      help=f"questions waiting behind the running one; more get 429 (default {d.queue})")
    live.add_argument("--live-time-limit", type=seconds, default=d.time_limit,
                      help=f"seconds a question may run once the model is loaded (default {d.time_limit:g})")
    live.add_argument("--live-rate", type=int, default=d.rate,
                      help=f"questions one client address may ask per {d.rate_window:g} s (default {d.rate})")


def live_settings(args: argparse.Namespace):
    """LiveSettings from the flags, or None without --live; SystemExit-free: raises ValueError with the reason."""
    import importlib.util

    from backend.live.settings import FACTOR, LiveSettings, is_loopback

    if not args.live:
        return None
    if args.workers > 1:
        raise ValueError("--live runs one worker process for the model: use --workers 1")
    if not is_loopback(args.host) and not args.live_token:
        raise ValueError(f"--live on {args.host} (beyond this machine) needs a token: --live-token or TAMSCOPE_LIVE_TOKEN")
    if importlib.util.find_spec("torch") is None:  # found, not imported: this process never imports torch
        raise ValueError("--live needs the model stack: pip install 'tamscope[precompute]' (or make setup)")
    if args.live_max_new_tokens < 1 or args.live_queue < 0 or args.live_rate < 1:
        raise ValueError("--live-max-new-tokens and --live-rate must be at least 1, --live-queue at least 0")
    if args.live_max_pixels < 4 * FACTOR * FACTOR:
        raise ValueError(f"--live-max-pixels must be at least {4 * FACTOR * FACTOR}")
    return LiveSettings(dataset=args.live_data, captioner=args.captioner, device=args.device, dtype=args.dtype,
                        tam_variant=args.tam_variant, text_llm=args.text_llm,
                        segmenter=None if args.segmenter == "none" else args.segmenter, token=args.live_token,
                        max_new_tokens=args.live_max_new_tokens, max_pixels=args.live_max_pixels,
                        max_upload_bytes=int(args.live_upload_mb * 2**20),
                        max_upload_pixels=int(args.live_upload_mp * 1e6), queue=args.live_queue,
                        time_limit=args.live_time_limit, rate=args.live_rate)


def data_dirs(args_data: list[Path] | None) -> list[Path]:
    if args_data:
        return args_data
    if os.environ.get("TAMSCOPE_DATA"):
        return [Path(p) for p in os.environ["TAMSCOPE_DATA"].split(":") if p]
    return [DEFAULT_DATA]


def setup_logging(level: str) -> None:
    # a no-op where logging is set up already (under pytest); needed in every worker process
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(message)s")


def app_from_env():
    """uvicorn factory for --workers > 1: each worker process rebuilds the app from the environment."""
    from backend.app import create_app

    setup_logging(os.environ.get("TAMSCOPE_LOG_LEVEL", "info"))
    dirs = [Path(p) for p in os.environ["TAMSCOPE_DATA"].split(":") if p]
    return create_app(dirs, skip_bad=os.environ.get("TAMSCOPE_SKIP_BAD") == "1",
                      cache_mb=int(os.environ.get("TAMSCOPE_CACHE_MB", "256")),
                      checked_indexes=json.loads(os.environ.get("TAMSCOPE_CHECKED_INDEXES", "{}")))


def listen(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound before anything says where to connect."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)  # worker processes accept on it too
    return sock


def serve_forever(config, sock: socket.socket) -> None:
    """uvicorn on the bound socket: in this process, or in config.workers worker processes."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    if config.workers > 1:
        Multiprocess(config, sockets=[sock]).run()
    else:
        uvicorn.Server(config).run(sockets=[sock])


def run(args: argparse.Namespace) -> int:
    from backend.app import create_app
    from backend.catalog import StartupError
    from contract.errors import UserError

    setup_logging(args.log_level)
    dirs = data_dirs(args.data)
    missing = [d for d in dirs if not d.is_dir()]
    if missing == [DEFAULT_DATA]:
        print(f"serve: the embedded smoke dataset is not at {DEFAULT_DATA}; build it with `make smoke-dataset` "
              f"or serve a dataset folder with `tamscope serve --data DATASET`", file=sys.stderr)
        return 2
    if missing:
        print(f"serve: no dataset folder at {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    try:
        live = live_settings(args)
    except ValueError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    try:  # fail here, before binding the port, with the problem named
        app = create_app(dirs, skip_bad=args.skip_bad, cache_mb=args.cache_mb, live=live)
    except (StartupError, UserError) as exc:  # UserError: another process writes the live folder
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    try:
        return serve_app(args, app, dirs, live)
    finally:
        if live is not None:
            app.state.live.close()
            app.state.live.live.close()


def serve_app(args: argparse.Namespace, app, dirs: list[Path], live) -> int:
    from backend.protocol import ServerConfig

    try:
        sock = listen(args.host, args.port)
    except OSError as exc:  # a busy port, an address not on this machine
        print(f"serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    for ds in app.state.catalog.values():
        print(f"serving {ds.id}: {ds.n_paintings} paintings from {ds.root}"
              + (f" (left out: {', '.join(sorted(ds.skipped))})" if ds.skipped else ""))
    # 0.0.0.0 is where it listens, not an address a browser opens: name this machine's
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(args.host, args.host)
    note = f"   (listening on every interface, {args.host})" if shown != args.host else ""
    if live is not None:
        print(f"live questions: the Ask view at http://{shown}:{args.port}/?view=ask (captioner {live.captioner}, "
              f"loaded on the first question; answers in {live.dataset})"
              + (", token required" if live.token else ""))
    print(f"explorer: http://{shown}:{args.port}/   API docs: http://{shown}:{args.port}/docs{note}", flush=True)
    limits = Limits(idle_timeout=args.idle_timeout, request_timeout=args.request_timeout)
    options = dict(limits=limits, host=args.host, port=args.port, log_level="warning", access_log=False,
                   server_header=False)
    if args.workers > 1:
        # the indexes this process checked: each worker opens them without stating every record again
        checked = {str(ds.root.resolve()): ds.checked_index for ds in app.state.catalog.values()}
        os.environ.update(TAMSCOPE_DATA=":".join(str(d.resolve()) for d in dirs),
                          TAMSCOPE_CHECKED_INDEXES=json.dumps(checked),
                          TAMSCOPE_SKIP_BAD="1" if args.skip_bad else "0", TAMSCOPE_CACHE_MB=str(args.cache_mb),
                          TAMSCOPE_LOG_LEVEL=args.log_level)
        config = ServerConfig("backend.cli:app_from_env", factory=True, workers=args.workers, **options)
    else:
        config = ServerConfig(app, **options)  # the app validated above, not a second load
    with sock:
        serve_forever(config, sock)
    return 0
