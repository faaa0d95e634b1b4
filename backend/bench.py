"""Load benchmark of the data server (`make bench-server`): a benchmark, not a test.

Starts the real server (`tamscope serve`, uvicorn, default 2 worker processes) on loopback
over the fixture dataset, then drives 32 concurrent keep-alive connections for a fixed time
against a painting record and a map PNG, with Debian's `wrk` (`make wrk`) or, where it is
missing, a small asyncio load generator: three runs of 5 s per URL, the median of each figure
reported (the machine is shared: another job's burst spoils single runs). Prints throughput as
`NNNN req/s`, p50/p99 latency and the error count per URL, then checks the target of issue 4
(>= 1500 req/s for a painting record with p99 < 50 ms and zero errors at 32 connections) and
exits 1 if it is missed.

    python -m backend.bench [--workers 2] [--connections 32] [--duration 5] [--runs 3] [--tool auto|wrk|python]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

TARGET_RPS, TARGET_P99_MS = 1500, 50.0
RECORD = "/api/datasets/fixture/paintings/painting-1"
PNG = "/api/datasets/fixture/paintings/painting-1/tokens/3.png"
HEADERS = {"Accept-Encoding": "gzip, deflate, br"}  # what a browser sends: the record goes out gzipped

# wrk prints its own summary; this script makes it print exact numbers as one JSON line instead
WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests": %d, "seconds": %f, "errors": %d, "non_2xx": %d, "p50_ms": %f, "p99_ms": %f}\\n',
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def start_server(dataset: Path, port: int, workers: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tamscope.cli", "serve", "--data", str(dataset), "--port", str(port),
           "--workers", str(workers)]
    # the server as it runs by default: info logging, one line per request (to a file here)
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=out, cwd=Path(__file__).parents[1])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"bench: the server exited with {server.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1) as r:
                if r.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("bench: the server did not answer /api/health within 60 s")


def run_wrk(url: str, connections: int, seconds: float, script: Path) -> dict:
    # one wrk thread drives far more than the server can answer; a second would take a core from it
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s",
           "-s", str(script), *[arg for k, v in HEADERS.items() for arg in ("-H", f"{k}: {v}")], url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


async def _client(host: str, port: int, target: str, stop: float, latencies: list, errors: list) -> None:
    request = (f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n"
               + "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items()) + "\r\n").encode()
    reader = writer = None
    while time.perf_counter() < stop:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            if not 200 <= status < 400:
                errors.append(status)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            errors.append(repr(exc))
            writer = None
    if writer is not None:
        writer.close()


def run_python(url: str, connections: int, seconds: float) -> dict:
    """The fallback generator: raw HTTP/1.1 keep-alive connections on one event loop."""
    host_port, target = url.removeprefix("http://").split("/", 1)
    host, port = host_port.split(":")
    latencies: list[float] = []
    errors: list = []

    async def main() -> float:
        start = time.perf_counter()
        await asyncio.gather(*[_client(host, int(port), "/" + target, start + seconds, latencies, errors)
                               for _ in range(connections)])
        return time.perf_counter() - start

    try:
        import uvloop
        elapsed = uvloop.run(main())
    except ImportError:
        elapsed = asyncio.run(main())
    latencies.sort()
    pick = lambda q: 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0.0  # noqa: E731
    return {"requests": len(latencies), "seconds": elapsed, "errors": sum(not isinstance(e, int) for e in errors),
            "non_2xx": sum(isinstance(e, int) for e in errors), "p50_ms": pick(0.50), "p99_ms": pick(0.99)}


def summary(runs: list[dict]) -> dict:
    """Median of each figure over the runs (other jobs on a shared machine hit single runs), errors summed."""
    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    return {"rps": median([r["requests"] / r["seconds"] for r in runs]), "p50_ms": median([r["p50_ms"] for r in runs]),
            "p99_ms": median([r["p99_ms"] for r in runs]), "errors": sum(r["errors"] + r["non_2xx"] for r in runs),
            "every": " / ".join(f"{r['requests'] / r['seconds']:.0f} req/s p99 {r['p99_ms']:.1f} ms" for r in runs)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="server worker processes (default 2: one per core)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run (default 5)")
    parser.add_argument("--runs", type=int, default=3, help="runs per URL; medians are reported (default 3)")
    parser.add_argument("--tool", choices=["auto", "wrk", "python"], default="auto")
    args = parser.parse_args(argv)
    tool = args.tool if args.tool != "auto" else ("wrk" if shutil.which("wrk") else "python")
    if tool == "wrk" and not shutil.which("wrk"):
        raise SystemExit("bench: wrk is not installed (`make wrk`, or --tool python)")

    from testkit.net import free_port
    from tests.fixtures import make_dataset  # the fixture dataset, built in code like the tests do

    urls = {"painting record": RECORD, "map PNG": PNG}
    with tempfile.TemporaryDirectory(prefix="tamscope-bench-") as tmp:
        with contextlib.redirect_stdout(io.StringIO()):  # its statistics table is not benchmark output
            dataset = make_dataset(Path(tmp) / "fixture", n_paintings=4)
        script = Path(tmp) / "report.lua"
        script.write_text(WRK_REPORT)
        port = free_port()
        server = start_server(dataset, port, args.workers, Path(tmp) / "server.log")
        try:
            def measure(path: str, seconds: float) -> dict:
                url = f"http://127.0.0.1:{port}{path}"
                if tool == "wrk":
                    return run_wrk(url, args.connections, seconds, script)
                return run_python(url, args.connections, seconds)

            for path in urls.values():  # warm-up: first reads, caches, connection set-up
                measure(path, 2)
            load = os.getloadavg()[0]
            results = {name: [measure(path, args.duration) for _ in range(args.runs)] for name, path in urls.items()}
            load_after = os.getloadavg()[0]
        finally:
            server.terminate()
            server.wait(timeout=30)

    print(f"server: tamscope serve --workers {args.workers} (uvicorn) on 127.0.0.1, fixture dataset of 4 paintings")
    print(f"load: {tool}, {args.connections} connections, {args.runs} run(s) of {args.duration:g} s per URL after a "
          f"2 s warm-up, '{HEADERS['Accept-Encoding']}' accepted")
    print(f"machine: {os.cpu_count()} cores, load average {load:.2f} before, {load_after:.2f} after "
          f"(other jobs make single runs noisy: medians over the runs)")
    figures = {name: summary(runs) for name, runs in results.items()}
    for name, path in urls.items():
        f = figures[name]
        print(f"{name:<16} {f['rps']:6.0f} req/s   p50 {f['p50_ms']:5.1f} ms   p99 {f['p99_ms']:5.1f} ms   "
              f"errors {f['errors']}   ({path})")
        print(f"{'':<16} runs: {f['every']}")
    r = figures["painting record"]
    errors = sum(f["errors"] for f in figures.values())
    met = r["rps"] >= TARGET_RPS and r["p99_ms"] < TARGET_P99_MS and errors == 0
    print(f"target (record >= {TARGET_RPS} req/s, p99 < {TARGET_P99_MS:g} ms, no errors at "
          f"{args.connections} connections): {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
