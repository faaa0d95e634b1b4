"""`tamscope fetch-wikiart OUT_FOLDER --top N`: the N most viewed WikiArt paintings as precompute input.

WikiArt's public JSON API, version 2 (https://www.wikiart.org/en/App/GetApi):
    {api}MostViewedPaintings[?paginationToken=T]
        -> {"data": [{id, title, url, artistUrl, artistName, completitionYear (sic), image, ...}],
            "paginationToken": T, "hasMore": bool}, 60 paintings a page, most viewed first
    {api}Painting?id=ID   -> the painting's full record, which adds styles[] and genres[]
    {api}login?accessCode=A&secretCode=S -> {"SessionKey": K}, sent as authSessionKey=K (optional;
        keys from https://www.wikiart.org/en/App/GetApi lift the keyless quota)
Facts reported by people who harvested it, which shape this code:
- keyless use is metered; once spent, every call answers HTTP 500 "Free API limit exceeded".
  Retrying cannot help, so we stop at once and say so (what is done so far is kept);
- paginationToken comes back percent-encoded already and must be appended verbatim;
- `image` is the "!Large.jpg" derivative (600 px), missing for part of the corpus: on 404 we
  fall back to the original upload (the URL without the "!..." token);
- image URLs may contain non-ASCII characters: percent-encoded before the request.

Output (the input-folder format of precompute/paintings.py):
    OUT/<artist>_<painting>.<ext>   the image as served (not re-encoded), checked to decode
    OUT/annotations.json            [{file, title, artist, year, style, genre}], absent fields omitted
    OUT/wikiart.json                the listing (rank, WikiArt id, URLs, details, per-painting
                                    errors): a re-run resumes from it without listing again
Polite: one request at a time, --delay seconds apart, a descriptive User-Agent, retries with
backoff on 429/5xx honouring Retry-After. Writes are atomic; done images are skipped.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import orjson
from PIL import Image
from tqdm import tqdm

from contract.names import IMAGE_SUFFIXES, slugify
from contract.store import atomic_write_json, utcnow
from sources.download import (
    USER_AGENT,
    ContentError,
    DownloadError,
    Fetcher,
    HTTPStatusError,
    Unreachable,
)

DEFAULT_API = "https://www.wikiart.org/en/api/2/"
STATE = "wikiart.json"
ANNOTATIONS = "annotations.json"
IMAGE_FORMATS = {"JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF", "MPO"}  # MPO: a JPEG with extra frames
SIZE_TOKEN = re.compile(r"^(?P<original>.+?\.(?:jpe?g|png|webp|tiff?|bmp|gif))![^/]*$", re.IGNORECASE)


class QuotaExceeded(DownloadError):
    pass


def to_uri(url: str) -> str:
    """Percent-encode what is not ASCII (WikiArt keeps diacritics in image URLs); keep existing escapes."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=quote(parts.path, safe="/%!:@&=+$,;~*'()"),
                                     query=quote(parts.query, safe="=&%/:+,;!~*'()")))


def image_urls(url: str) -> list[str]:
    """The listed derivative, then the original upload it was made from."""
    url = to_uri(url)
    match = SIZE_TOKEN.match(url)
    return [url, match["original"]] if match else [url]


def image_suffix(url: str) -> str:
    path = urlsplit(SIZE_TOKEN.sub(r"\g<original>", to_uri(url))).path.lower()
    suffix = Path(path).suffix
    return ".jpg" if suffix == ".jpeg" else suffix if suffix in IMAGE_SUFFIXES else ".jpg"


def check_image(path: Path) -> None:
    try:
        with Image.open(io.BytesIO(path.read_bytes())) as im:
            im.load()
            fmt = im.format
    except Exception as exc:
        raise ContentError(f"not a readable image ({exc})") from None
    if fmt not in IMAGE_FORMATS:
        raise ContentError(f"image format {fmt} is not one precompute reads")


def check_json(body: bytes) -> None:
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ContentError(f"not valid JSON ({exc})") from None


def quota_reason(exc: HTTPStatusError) -> str | None:
    if exc.status == 500 and b"limit exceeded" in exc.body.lower():
        return ("WikiArt's API limit is used up (HTTP 500 'Free API limit exceeded'). It resets with time: "
                "run the same command later to resume, or use an API key (--access-code/--secret-code)")
    return None


class WikiArt:
    def __init__(self, fetcher: Fetcher, api: str = DEFAULT_API, session_key: str | None = None):
        self.fetcher, self.api, self.session_key = fetcher, api if api.endswith("/") else api + "/", session_key

    def _url(self, endpoint: str, query: str = "") -> str:
        if self.session_key:
            query = "&".join(q for q in (query, urlencode({"authSessionKey": self.session_key})) if q)
        return self.api + endpoint + (f"?{query}" if query else "")

    def _json(self, url: str, label: str) -> object:
        try:
            return orjson.loads(self.fetcher.get(url, label=label, check=check_json))
        except HTTPStatusError as exc:
            if quota_reason(exc):
                raise QuotaExceeded(str(exc)) from None
            raise

    def login(self, access_code: str, secret_code: str) -> None:
        data = self._json(self._url("login", urlencode({"accessCode": access_code, "secretCode": secret_code})),
                          "login")
        key = (data.get("SessionKey") or data.get("sessionKey")) if isinstance(data, dict) else None
        if not key:
            raise DownloadError("login: WikiArt answered without a session key (wrong access or secret code?)")
        self.session_key = key

    def most_viewed(self, top: int) -> tuple[list[dict], bool]:
        """The first `top` most viewed paintings (fewer if the listing ends) and whether more exist."""
        out: list[dict] = []
        token, more, page = None, True, 1
        while more and len(out) < top:
            # the token arrives percent-encoded: appended verbatim, never re-encoded
            data = self._json(self._url("MostViewedPaintings", f"paginationToken={token}" if token else ""),
                              f"MostViewedPaintings page {page}")
            if not isinstance(data, dict) or not isinstance(data.get("data"), list):
                raise ContentError(f"MostViewedPaintings page {page}: no 'data' list")
            out += [p for p in data["data"] if isinstance(p, dict) and p.get("id")]
            token, more, page = data.get("paginationToken"), bool(data.get("hasMore")), page + 1
            more = more and bool(token)
        return out[:top], more or len(out) > top

    def details(self, painting_id: str) -> dict:
        """styles and genres of one painting ({} when WikiArt has no record for it)."""
        try:
            data = self._json(self._url("Painting", urlencode({"id": painting_id})), f"Painting {painting_id}")
        except HTTPStatusError as exc:
            if exc.status == 404:
                return {}
            raise
        if not isinstance(data, dict):
            return {}
        keep = {}
        for plural, single in (("styles", "style"), ("genres", "genre")):
            values = data.get(plural) or ([data[single]] if data.get(single) else [])
            names = [v.strip() for v in values if isinstance(v, str) and v.strip()]
            if names:
                keep[plural] = names
        if isinstance(data.get("completitionYear"), int):
            keep["completitionYear"] = data["completitionYear"]
        return keep


# one painting -------------------------------------------------------------------------------
def stem_of(entry: dict) -> str:
    artist, name = entry.get("artistUrl") or "", entry.get("url") or str(entry["id"])
    return slugify(f"{artist}_{name}" if artist else name)


def file_name(entry: dict) -> str:
    return stem_of(entry) + image_suffix(entry.get("image") or "")


def _year(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,4}", value.strip()):
        return int(value)
    return None


def annotation(entry: dict) -> dict:
    """{file, title, artist, year, style, genre} with the fields WikiArt does not give left out."""
    details = entry.get("details") or {}
    row = {"file": entry["file"],
           "title": (entry.get("title") or "").strip() or None,
           "artist": (entry.get("artistName") or "").strip() or None,
           "year": _year(entry.get("completitionYear")) or _year(details.get("completitionYear")),
           "style": ", ".join(details.get("styles", [])) or None,
           "genre": ", ".join(details.get("genres", [])) or None}
    return {k: v for k, v in row.items() if v is not None}


def fetch_image(fetcher: Fetcher, entry: dict, out: Path) -> str:
    """Download the painting's image into out; its file name. HTTPStatusError 404 when no variant exists."""
    if not entry.get("image"):
        raise ContentError("WikiArt lists no image for it")
    name = file_name(entry)
    *derivatives, original = image_urls(entry["image"])
    for url in derivatives:
        try:
            fetcher.download(url, out / name, label=url, check=check_image)
            return name
        except HTTPStatusError as exc:
            if exc.status not in (403, 404, 410):  # only a missing derivative sends us to the original
                raise
    fetcher.download(original, out / name, label=original, check=check_image)
    return name


# the run ----------------------------------------------------------------------------------
def _load_state(out: Path, api: str) -> dict | None:
    try:
        state = orjson.loads((out / STATE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return state if isinstance(state, dict) and state.get("api") == api else None


def _write_outputs(out: Path, state: dict) -> None:
    """wikiart.json, and annotations.json for the fetched paintings (keeping other files' entries)."""
    atomic_write_json(out / STATE, state)
    ours = {e["file"] for e in state["paintings"] if e.get("file")}
    kept = []
    try:
        existing = orjson.loads((out / ANNOTATIONS).read_bytes())
        if isinstance(existing, dict):  # the {stem: fields} form
            existing = [{"file": k, **v} for k, v in existing.items() if isinstance(v, dict)]
        mine = {Path(f).stem for f in ours}
        kept = [r for r in existing if isinstance(r, dict) and Path(str(r.get("file"))).stem not in mine]
    except (OSError, orjson.JSONDecodeError):
        pass
    rows = [annotation(e) for e in sorted(state["paintings"], key=lambda e: e["rank"]) if e.get("file")]
    atomic_write_json(out / ANNOTATIONS, kept + rows)


def fetch_wikiart(out: Path, top: int, fetcher: Fetcher, api: str = DEFAULT_API, details: bool = True,
                  login: tuple[str, str] | None = None, progress: bool | None = None) -> dict:
    """Fetch the top paintings into out; returns {"paintings": [...], "new": n, "skipped": [entry, ...]}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fetcher.give_up = quota_reason
    client = WikiArt(fetcher, api)
    if login:
        client.login(*login)
    state = _load_state(out, client.api)
    if state is None or (len(state["paintings"]) < top and state.get("has_more")):
        listed, more = client.most_viewed(top)
        old = {e["id"]: e for e in (state or {}).get("paintings", [])}
        keep = ("details", "file", "error")
        entries = [{"rank": i + 1, **{k: p.get(k) for k in ("id", "title", "artistName", "artistUrl", "url",
                                                         "completitionYear", "image")},
                    **{k: old[p["id"]][k] for k in keep if p["id"] in old and k in old[p["id"]]}}
                   for i, p in enumerate(listed)]
        state = {"api": client.api, "listed": utcnow(), "has_more": more, "paintings": entries}
        _write_outputs(out, state)
    wanted = state["paintings"][:top]
    new, skipped = 0, []
    bar = tqdm(wanted, desc="fetch-wikiart", unit="painting", dynamic_ncols=True,
               disable=None if progress is None else not progress)
    fetcher.log = lambda line: tqdm.write(line, file=sys.stderr)
    try:
        for entry in bar:
            if details and entry.get("details") is None:
                try:
                    entry["details"] = client.details(entry["id"])
                except (HTTPStatusError, ContentError) as exc:  # no style/genre this time; a re-run retries
                    tqdm.write(f"no details for #{entry['rank']}: {exc}", file=sys.stderr)
            if entry.get("image") and (out / file_name(entry)).is_file():
                entry["file"], entry["error"] = file_name(entry), None
            else:
                try:
                    entry["file"], entry["error"] = fetch_image(fetcher, entry, out), None
                    new += 1
                except (HTTPStatusError, ContentError) as exc:  # this painting only; the run goes on
                    entry["file"], entry["error"] = None, str(exc)
                    skipped.append(entry)
                    tqdm.write(f"skipped #{entry['rank']} {entry.get('title')!r}: {exc}", file=sys.stderr)
            _write_outputs(out, state)
    finally:
        bar.close()
        _write_outputs(out, state)
    return {"paintings": [e for e in wanted if e.get("file")], "new": new, "skipped": skipped,
            "listed": len(wanted)}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="input folder to fill (images + annotations.json)")
    parser.add_argument("--top", type=int, default=150, help="how many of the most viewed paintings (default: %(default)s)")
    parser.add_argument("--delay", type=float, default=1.0,
                        help="seconds between two requests, to be polite (default: %(default)s)")
    parser.add_argument("--retries", type=int, default=4, help="retries per request (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default: %(default)s)")
    parser.add_argument("--no-details", action="store_true",
                        help="skip the per-painting request for style and genre (half the API calls)")
    parser.add_argument("--api", default=DEFAULT_API, help="API base URL (default: %(default)s)")
    parser.add_argument("--user-agent", default=f"{USER_AGENT} fetch-wikiart",
                        help="User-Agent header (add a contact address if you fetch a lot)")
    parser.add_argument("--access-code", default=None, help="WikiArt API access code (or WIKIART_ACCESS_CODE)")
    parser.add_argument("--secret-code", default=None, help="WikiArt API secret code (or WIKIART_SECRET_CODE)")


def run(args: argparse.Namespace) -> int:
    import os

    if args.top < 1:
        print("fetch-wikiart: --top must be at least 1", file=sys.stderr)
        return 2
    access = args.access_code or os.environ.get("WIKIART_ACCESS_CODE")
    secret = args.secret_code or os.environ.get("WIKIART_SECRET_CODE")
    fetcher = Fetcher(user_agent=args.user_agent, retries=max(0, args.retries), timeout=args.timeout,
                      delay=max(0.0, args.delay))
    try:
        result = fetch_wikiart(args.out, args.top, fetcher, api=args.api, details=not args.no_details,
                               login=(access, secret) if access and secret else None)
    except (QuotaExceeded, Unreachable, DownloadError) as exc:
        print(f"fetch-wikiart: {exc}\n  what was fetched is kept; run the same command again to resume")
        return 1
    got, listed = len(result["paintings"]), result["listed"]
    short = f" (the listing has only {listed})" if listed < args.top else ""
    print(f"fetch-wikiart: {got} paintings in {args.out} ({result['new']} new){short}; "
          f"{fetcher.requests} requests")
    if result["skipped"]:
        print(f"skipped {len(result['skipped'])} (a re-run tries them again):")
        for e in result["skipped"]:
            print(f"  #{e['rank']} {e.get('title')!r} ({e['id']}): {e['error']}")
    return 0 if got else 1
