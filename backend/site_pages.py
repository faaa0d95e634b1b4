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
from contract.store import PAINTINGS, RECORD

DESCRIPTION_CHARS = 200  # what previews show of a caption
FRONT_PAGE_CARDS = 1000  # paintings listed on the front page per dataset (its HTML stays small at 100,000)


def page_name(dataset: str, painting: str) -> str:
    """A painting's page, beside index.html (frontend/js/lib/urlstate.js `pagePath` builds the same)."""
    return f"{dataset}~{painting}.html"


@dataclass
class SiteDataset:
    """A dataset as the export reads it (backend/site.py `read_source`). Its records are read
    one at a time when needed (`record`), never held together: 100,000 parsed records filled
    20 GB."""

    id: str  # in URLs: data/<id>/, <id>~<painting>.html
    root: Path
    manifest: DatasetManifest
    version: str = ""  # the dataset's content version (contract/index.py)

    @property
    def paintings(self) -> list[str]:
        """Painting ids, in the manifest's order."""
        return [p.id for p in self.manifest.paintings]

    def record(self, pid: str) -> PaintingRecord:
        return PaintingRecord.model_validate_json((self.root / PAINTINGS / pid / RECORD).read_bytes())


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


class Pages:
    """The site's HTML: the front page and each painting's page. `credits`: every exported
    dataset's attributions, which every page shows."""

    def __init__(self, env: Environment, static: Callable[[str], str], csp: str, datasets: list[SiteDataset],
                 site_url: str | None):
        self.env, self.datasets, self.site_url = env, datasets, site_url
        self.common = dict(static=static, csp=csp, attributions=shell.credits(ds.manifest for ds in datasets))

    def painting(self, ds: SiteDataset, record: PaintingRecord) -> bytes:
        """The page of one painting, `page_name(ds.id, record.id)`."""
        return shell.render(self.env, "site-painting.html", label=ds.manifest.label,
                            page=painting_page(ds, record, self.site_url), **self.common).encode("utf-8")

    def front(self) -> bytes:
        """index.html: the first FRONT_PAGE_CARDS paintings of each dataset (the explorer pages
        through the rest)."""
        listing = []
        for ds in self.datasets:
            cards = []
            for pid in ds.paintings[:FRONT_PAGE_CARDS]:
                record = ds.record(pid)
                thumb = record.thumb or record.canvas
                cards.append({"page": page_name(ds.id, pid), "title": record.annotations.title or pid,
                              "byline": ", ".join(str(x) for x in (record.annotations.artist, record.annotations.year)
                                                  if x),
                              "thumb": {"src": _file(ds, pid, thumb.path), "width": thumb.width, "height": thumb.height}
                              if thumb else None})
            listing.append({"id": ds.id, "name": ds.manifest.name, "description": ds.manifest.description,
                            "label": ds.manifest.label, "paintings": cards,
                            "more": max(0, len(ds.manifest.paintings) - len(cards))})
        description = ("Where a multimodal LLM looks when it describes a painting: "
                       + ", ".join(f"{d['name']} ({len(d['paintings']) + d['more']} paintings)" for d in listing))
        return shell.render(self.env, "site-index.html", datasets=listing, description=description,
                            url=self.site_url, **self.common).encode("utf-8")
