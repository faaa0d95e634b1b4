"""The static site's HTML, rendered with jinja2 (backend/templates/ on the explorer's page,
frontend/index.html): a front page listing every painting, and a page of its own for each
painting, `<dataset>~<painting>.html` beside it.

A painting's page holds its title, artist, canvas, caption and typed phrases, so it reads
without JavaScript and search engines index it, and Open Graph / Twitter tags with its
thumbnail, so a shared link previews in chats. The explorer loads on every page and takes
over: it reads the painting from the page's name (frontend/js/lib/urlstate.js, `stateAt`) and
keeps that address while it shows the painting. Preview images need absolute URLs: pass the
address the site will have (`site_url`); without it they are relative, which browsers follow
and many link-preview crawlers do not.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment

from backend import shell
from contract.schema import DatasetManifest, PaintingRecord

DESCRIPTION_CHARS = 200  # what previews show of a caption
FRONT_PAGE_CARDS = 1000  # paintings listed on the front page per dataset (its HTML stays small at 100,000)


def page_name(dataset: str, painting: str) -> str:
    """A painting's page, beside index.html (frontend/js/lib/urlstate.js `pagePath` builds the same)."""
    return f"{dataset}~{painting}.html"


@dataclass
class SiteDataset:
    """A dataset as the export reads it (backend/site.py `read_source`)."""

    id: str  # in URLs: data/<id>/, <id>~<painting>.html
    root: Path
    manifest: DatasetManifest
    records: dict[str, PaintingRecord]  # painting id -> record, in the manifest's order
    files: list[tuple[str, Path]]  # (path inside the dataset, source) of every file the explorer reads
    version: str = ""  # the dataset's content version (contract/index.py)


def _byline(record: PaintingRecord) -> str:
    a = record.annotations
    return " · ".join(str(x) for x in (a.artist, a.year, a.style, a.genre) if x)


def _file(ds: SiteDataset, pid: str, rel: str) -> str:
    return f"data/{ds.id}/paintings/{pid}/{rel}"


def painting_page(ds: SiteDataset, record: PaintingRecord, site_url: str | None) -> dict:
    """What site-painting.html shows of one painting."""
    title = record.annotations.title or record.id
    byline = _byline(record)
    summary = " — ".join(x for x in (title, record.annotations.artist) if x)
    description = (textwrap.shorten(record.caption, DESCRIPTION_CHARS, placeholder=" …") if record.caption
                   else f"{summary}: no caption")
    thumb = record.thumb or record.canvas
    captioner = ds.manifest.models.get("captioner")
    return {
        "dataset": ds.id, "dataset_name": ds.manifest.name, "painting": record.id, "title": title,
        "byline": byline, "description": description, "caption": record.caption,
        "captioner": captioner.id.rsplit("/", 1)[-1] if captioner else "the model",
        "url": f"{site_url}{page_name(ds.id, record.id)}" if site_url else None,
        "image": {"url": (site_url or "") + _file(ds, record.id, thumb.path), "width": thumb.width,
                  "height": thumb.height, "alt": summary} if thumb else None,
        "canvas": {"src": _file(ds, record.id, record.canvas.path), "width": record.canvas.width,
                   "height": record.canvas.height} if record.canvas else None,
        "phrases": [{"category": s.category.value, "text": s.text} for s in record.spans],
    }


def render_pages(env: Environment, static: Callable[[str], str], csp: str, datasets: list[SiteDataset],
                 site_url: str | None, skip: set[str] = frozenset(),
                 only: dict[str, set[str]] | None = None) -> dict[str, bytes]:
    """Relative path -> HTML of the front page and of every painting's page (but those of the
    datasets in `skip`, which the previous export has: backend/site.py). The front page lists
    the first FRONT_PAGE_CARDS paintings of each dataset; the explorer pages through the rest.
    With `only` (dataset id -> painting ids), the paintings' pages are those paintings' alone."""
    credits = shell.credits(ds.manifest for ds in datasets)
    common = dict(static=static, csp=csp, attributions=credits)
    pages: dict[str, bytes] = {}
    listing = []
    for ds in datasets:
        cards = []
        for k, (pid, record) in enumerate(ds.records.items()):
            if k >= FRONT_PAGE_CARDS and ds.id in skip:
                break
            thumb = record.thumb or record.canvas
            if k < FRONT_PAGE_CARDS:
                cards.append({"page": page_name(ds.id, pid), "title": record.annotations.title or pid,
                          "byline": ", ".join(str(x) for x in (record.annotations.artist, record.annotations.year) if x),
                          "thumb": {"src": _file(ds, pid, thumb.path), "width": thumb.width, "height": thumb.height}
                          if thumb else None})
            if ds.id in skip or (only is not None and pid not in only.get(ds.id, ())):
                continue
            html = shell.render(env, "site-painting.html", label=ds.manifest.label,
                                page=painting_page(ds, record, site_url), **common)
            pages[page_name(ds.id, pid)] = html.encode("utf-8")
        listing.append({"id": ds.id, "name": ds.manifest.name, "description": ds.manifest.description,
                        "label": ds.manifest.label, "paintings": cards, "more": max(0, len(ds.records) - len(cards))})
    description = ("Where a multimodal LLM looks when it describes a painting: "
                   + ", ".join(f"{d['name']} ({len(d['paintings']) + d['more']} paintings)" for d in listing))
    pages["index.html"] = shell.render(env, "site-index.html", datasets=listing, description=description,
                                       url=site_url, **common).encode("utf-8")
    return pages
