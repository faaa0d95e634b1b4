"""Scale benchmark (`make bench-scale`): tamscope at 10,000 and 100,000 paintings. A benchmark, not a test.

The embedded smoke dataset (data/smoke, four paintings) is replicated under a temporary folder:
painting k is a copy of smoke painting k mod 4 whose files are hard links (no bytes copied) and
whose record is rewritten with its own id (`<smoke id>-r<k>`), title ("... #k"), artist (one of
500) and year (1800 + k mod 200), so that search, filters and facets have something to do.
Then, per size, one run of:

- `tamscope stats`, `tamscope index --force` (time, peak RSS of the process, CPU seconds with its
  worker processes and the load average at its start: others share the machine),
  `tamscope validate` (time; skipped above --validate-max paintings: it opens every image);
- `tamscope serve --workers 2`: start until /api/health answers (index current), and from no
  index at all; RSS per worker after the queries below;
- API latency (one keep-alive connection, sequential, each query distinct so the answer cache
  does not serve it): gallery pages (random offsets and sorts), searches (caption words,
  filters), atlas queries (phrase words, category, sorted by a metric): p50 and p95;
- in headless Chromium, fresh context each time: first gallery paint (navigation -> the first
  page of cards with decoded thumbnails), search-to-results (Enter in the search box -> the new
  count), atlas (navigation -> crops drawn), dashboard (navigation -> the entropy chart);
- the static site (`tamscope export-site`, timed: the first export and a second, unchanged one)
  over a plain file server: the same Chromium timings.

Goals of issue 14 at 100,000 paintings on 2 cores: start < 5 s, RSS < 300 MB per worker, API
p95 < 100 ms, first gallery paint < 1 s, dashboard < 2 s, index build < 5 min, static gallery
and search < 1.5 s. Printed as a table, and as JSON with --json.

    python -m bench.scale --sizes 10000 100000 --json build/bench-scale.json
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from testkit import REPO
from testkit.harness import chromium, chromium_path, static_server
from testkit.net import free_port
from testkit.replicate import replicate

SMOKE = REPO / "data" / "smoke"
PY = sys.executable
GOALS = {"server start": "< 5 s", "RSS per worker": "< 300 MB", "API p95": "< 100 ms", "first gallery paint": "< 1 s",
         "dashboard": "< 2 s", "index build": "< 5 min", "static gallery/search": "< 1.5 s"}
WORDS = ["boats", "red", "calm", "city", "sun", "village", "water", "stars", "painted", "brush", "content", "life",
         "wooden", "golden", "emotion", "harbour", "landscape", "saints", "virgin", "angels", "night", "style"]


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


# ---- commands -------------------------------------------------------------------------------

def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process's finished children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load() -> float:
    return os.getloadavg()[0]


def timed(args: list[str], result: dict | None = None, name: str = "") -> tuple[float, float, str]:
    """Seconds and peak RSS (MB) of a tamscope command run as a child process, and its output; with
    RESULT, also its CPU seconds (children included: on a shared machine the wall time depends on
    the others' load, the CPU time much less) and the load average when it started. The peak is
    this child's own (wait4's rusage), not the largest of every child so far."""
    cpu0, load0 = cpu_seconds(), load()
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as output:
        child = subprocess.Popen([PY, "-m", "tamscope.cli", *args], env=env(), stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        seconds = time.perf_counter() - t0
        output.seek(0)
        text = output.read().decode(errors="replace")
    if result is not None:
        result[f"{name} CPU s"], result[f"{name} load"] = cpu_seconds() - cpu0, load0
    if child.returncode not in (0, 1):
        raise RuntimeError(f"tamscope {' '.join(args)} failed: {text[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, text


class Server:
    """`tamscope serve --workers 2` in a process group of its own."""

    def __init__(self, data: Path, workers: int = 2):
        self.port = free_port()
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen([PY, "-m", "tamscope.cli", "serve", "--data", str(data), "--port", str(self.port),
                                      "--workers", str(workers), "--log-level", "warning"], env=env(),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        self.started = self.wait()

    def wait(self, timeout: float = 1800) -> float:
        while time.perf_counter() - self.t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/api/health")
                if conn.getresponse().status == 200:
                    return time.perf_counter() - self.t0
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("serve did not start")

    def rss_per_worker(self) -> list[float]:
        children = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        out = []
        for pid in children:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            if b"spawn_main" not in Path(f"/proc/{pid}/cmdline").read_bytes():  # uvicorn's workers, not helpers
                continue
            out.append(int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]) / 1024)
        return out

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def latencies(port: int, ds: str, n: int, seed: int = 0) -> dict[str, list[float]]:
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    base = f"/api/datasets/{ds}"
    sorts = ["order", "title", "year", "entropy", "iou", "n_spans"]
    queries = {
        "gallery page": [f"{base}/paintings?" + urlencode({"offset": rng.randrange(0, 5000) * 24, "limit": 24,
                                                           "sort": rng.choice(sorts), "order": rng.choice(["asc", "desc"])})
                         for _ in range(n)],
        "search": [f"{base}/paintings?" + urlencode({"q": " ".join(rng.sample(WORDS, rng.choice([1, 2]))), "limit": 24,
                                                     "offset": rng.randrange(0, 20) * 24,
                                                     **rng.choice([{}, {"category": "CVO"}, {"year_min": 1850},
                                                                   {"artist": f"test painter {rng.randrange(500)}"}])})
                   for _ in range(n)],
        "atlas": [f"{base}/spans?" + urlencode({"q": rng.choice(WORDS), "limit": 48, "offset": rng.randrange(0, 20) * 48,
                                                "sort": rng.choice(["entropy", "iou", "painting", "gini"]),
                                                **rng.choice([{}, {"category": "CVO"}, {"entropy_max": 0.9}])})
                  for _ in range(n)],
    }
    out = {}
    for name, urls in queries.items():
        times = []
        for url in urls:
            t0 = time.perf_counter()
            conn.request("GET", url, headers={"accept-encoding": "gzip"})
            response = conn.getresponse()
            response.read()
            times.append((time.perf_counter() - t0) * 1000)
            if response.status != 200:
                raise RuntimeError(f"{url}: {response.status}")
        out[name] = times
    conn.close()
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


# ---- the browser ----------------------------------------------------------------------------

GALLERY_READY = ("() => { const c = [...document.querySelectorAll('[data-testid=gallery-item] img')];"
                 " return c.length > 0 && c.every((i) => i.complete && i.naturalWidth > 0); }")
ATLAS_READY = ("() => { const c = [...document.querySelectorAll('.atlas-crop')];"
               " return c.length > 0 && c.every((x) => x.dataset.drawn === '1'); }")
DASHBOARD_READY = "() => !!document.querySelector('[data-testid=chart-entropy]')"


def browser_times(browser, base: str, ds: str, runs: int = 3) -> dict[str, float]:
    """Median milliseconds of each interaction over `runs` fresh contexts."""
    found: dict[str, list[float]] = {"first gallery paint": [], "search to results": [], "atlas": [], "dashboard": []}
    for run in range(runs):
        for name, url, ready in [("first gallery paint", f"{base}?dataset={ds}", GALLERY_READY),
                                 ("atlas", f"{base}?dataset={ds}&view=atlas&aq={WORDS[run]}", ATLAS_READY),
                                 ("dashboard", f"{base}?dataset={ds}&view=dashboard", DASHBOARD_READY)]:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(60_000)
            t0 = time.perf_counter()
            try:
                page.goto(url)
                page.wait_for_function(ready, polling=16)
            except Exception:  # noqa: BLE001 - a view that never draws is a result: reported as timeout
                found[name].append(float("inf"))
                context.close()
                continue
            found[name].append((time.perf_counter() - t0) * 1000)
            if name == "first gallery paint":
                count = page.get_by_test_id("gallery-count").inner_text()
                box = page.get_by_test_id("gallery-search")
                box.fill(f"{WORDS[run + 3]} {WORDS[run + 5]}")
                t0 = time.perf_counter()
                box.press("Enter")
                page.wait_for_function(f"() => document.querySelector('[data-testid=gallery-count]').textContent !== {count!r}"
                                       " && document.querySelector('[data-testid=gallery]').dataset.q !== ''", polling=16)
                found["search to results"].append((time.perf_counter() - t0) * 1000)
            context.close()
    return {k: statistics.median(v) for k, v in found.items() if v}


# ---- one size -------------------------------------------------------------------------------

def run_size(n: int, work: Path, args, browser) -> dict:
    """Every measurement at N paintings; a phase that fails is reported, and the others still run."""
    result: dict = {"paintings": n}
    try:
        return measure(n, work, args, browser, result)
    except Exception as exc:  # noqa: BLE001 - a benchmark reports what broke and keeps the numbers it has
        import traceback

        traceback.print_exc()
        result["error"] = f"{type(exc).__name__}: {exc}"[:200]
        return result
    finally:
        if args.keep is None:
            shutil.rmtree(work / f"scale-{n}", ignore_errors=True)
            shutil.rmtree(work / f"site-{n}", ignore_errors=True)


KEPT = ".bench-scale-complete"  # --keep: written once a dataset is replicated and its statistics computed


def prepare(root: Path, n: int, args, result: dict) -> None:
    """Replicate the smoke dataset to N paintings and compute its statistics (timed)."""
    t0 = time.perf_counter()
    replicate(root, n)
    result["replicate s"] = time.perf_counter() - t0
    print(f"[{n}] replicated in {result['replicate s']:.0f} s", flush=True)
    if n <= args.stats_max:
        result["stats s"], result["stats peak MB"], _ = timed(["stats", str(root)])  # writes the index too
        result["stats.json KB"] = (root / "stats.json").stat().st_size / 1024  # what the dashboard fetches
        print(f"[{n}] stats (and its index) {result['stats s']:.1f} s, stats.json {result['stats.json KB']:.0f} KB",
              flush=True)
    else:  # the smoke dataset's statistics stand in (the dashboard draws them; their size is not 100,000's)
        shutil.copyfile(SMOKE / "stats.json", root / "stats.json")


def measure(n: int, work: Path, args, browser, result: dict) -> dict:
    root = work / f"scale-{n}"
    if (root / KEPT).is_file():  # --keep: an earlier run's dataset, replicated and its statistics computed
        print(f"[{n}] reusing {root} (replicate and stats not run again)", flush=True)
    else:
        shutil.rmtree(root, ignore_errors=True)  # an earlier run that stopped part-way
        prepare(root, n, args, result)
        if args.keep is not None:
            (root / KEPT).write_text(f"{n}\n")
    shutil.rmtree(work / f"site-{n}", ignore_errors=True)  # the export is timed from scratch
    result["index s"], result["index peak MB"], out = timed(["index", str(root), "--force"], result, "index")
    result["index MB on disk"] = (root / "index.sqlite").stat().st_size / 2**20
    print(f"[{n}] index {result['index s']:.1f} s: {out.strip()}", flush=True)
    if n <= args.validate_max:
        result["validate s"], result["validate peak MB"], out = timed(["validate", str(root)])
        print(f"[{n}] validate {result['validate s']:.1f} s: {out.strip().splitlines()[-1]}", flush=True)
    one = Server(root, workers=1)
    result["server start, 1 worker s"] = one.started
    one.stop()
    server = Server(root)
    try:
        result["server start s"] = server.started
        result["API load"] = load()
        lat = latencies(server.port, root.name, args.queries)
        for name, xs in lat.items():
            result[f"{name} p50 ms"], result[f"{name} p95 ms"] = pct(xs, 0.5), pct(xs, 0.95)
        print(f"[{n}] API p95: " + ", ".join(f"{k} {pct(v, 0.95):.0f} ms" for k, v in lat.items()), flush=True)
        if browser is not None:
            result["browser load"] = load()
            for name, ms in browser_times(browser, f"http://127.0.0.1:{server.port}/", root.name).items():
                result[f"server: {name} ms"] = ms
            print(f"[{n}] browser: " + ", ".join(f"{k} {v:.0f}" for k, v in result.items() if k.startswith("server:")),
                  flush=True)
        result["RSS per worker MB"] = server.rss_per_worker()
    finally:
        server.stop()
    print(f"[{n}] server: start {result['server start s']:.2f} s, RSS {result['RSS per worker MB']}", flush=True)
    (root / "index.sqlite").unlink()
    server = Server(root)
    result["server start without index s"] = server.started
    server.stop()
    if args.site:
        site = work / f"site-{n}"
        try:
            result["export-site s"], result["export-site peak MB"], _ = timed(["export-site", str(root), str(site)],
                                                                             result, "export-site")
        except RuntimeError as exc:
            result["export-site error"] = str(exc)[-500:]
        else:
            result["export-site unchanged s"], _, _ = timed(["export-site", str(root), str(site)])
            if browser is not None:
                with static_server(site) as base:
                    ds = json.loads((site / "config.json").read_text())["datasets"][0]["id"]
                    for name, ms in browser_times(browser, base, ds).items():
                        result[f"static: {name} ms"] = ms
        print(f"[{n}] static site: export {result['export-site s']:.0f} s", flush=True)
    return result


def table(results: list[dict]) -> str:
    keys = [k for k in results[0] if k != "paintings"]
    for r in results[1:]:
        keys += [k for k in r if k not in keys and k != "paintings"]
    width = max(map(len, keys))
    lines = [f"{'':<{width}}  " + "  ".join(f"{r['paintings']:>12,}" for r in results)]
    for k in keys:
        cells = []
        for r in results:
            v = r.get(k)
            cells.append(f"{'-':>12}" if v is None else f"{'/'.join(f'{x:.0f}' for x in v):>12}" if isinstance(v, list)
                         else f"{v:>12.1f}" if isinstance(v, float) else f"{str(v)[:12]:>12}")
        lines.append(f"{k:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200, help="API queries of each kind")
    parser.add_argument("--validate-max", type=int, default=20_000,
                        help="run `tamscope validate` up to this many paintings (it opens every image)")
    parser.add_argument("--stats-max", type=int, default=1_000_000,
                        help="run `tamscope stats` up to this many paintings (above: the smoke statistics are copied)")
    parser.add_argument("--no-site", dest="site", action="store_false", help="skip the static site")
    parser.add_argument("--no-browser", dest="browser", action="store_false")
    parser.add_argument("--work", type=Path, default=None, help="folder for the datasets (default: a temporary one)")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="build the datasets in DIR and keep them; a later run with the same DIR reuses them "
                             "(replicate and stats are not run again: 100,000 paintings take about 25 min)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
    results = []
    with contextlib.ExitStack() as stack:
        work = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(dir=args.work)))
        work.mkdir(parents=True, exist_ok=True)
        browser = stack.enter_context(chromium()) if args.browser and chromium_path() is not None else None
        for n in args.sizes:
            results.append(run_size(n, work, args, browser))
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(table(results))
    print("goals at 100,000 paintings: " + ", ".join(f"{k} {v}" for k, v in GOALS.items()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
