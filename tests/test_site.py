"""`tamscope export-site` without a browser: layout, hashed names, rewritten imports, the pages of
the paintings (what they say without JavaScript, their preview tags, the credits), refusals.
The browser tests over a plain static file server are tests/e2e/test_site.py and test_site_demo.py."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from backend.site import FRONTEND, ExportError, build_assets, export_site
from contract.store import Dataset
from sources.tamart_import import ATTRIBUTION
from tamscope.cli import main
from testkit.fixture_dataset import make_dataset

IMPORTS = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(?\s*)["'](\.{1,2}/[^"']+)["']""")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("site") / "fixture", n_paintings=2)


def test_export_layout_and_report(dataset, tmp_path, capsys):
    out = tmp_path / "site"
    assert main(["export-site", str(dataset), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "explorer" in printed and "total" in printed and "largest file" in printed
    assert (out / "index.html").is_file() and (out / ".nojekyll").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config == {"mode": "static", "pages": True,
                      "datasets": [{"id": "fixture", "path": "data/fixture", "stats": True}]}
    manifest = json.loads((out / "data/fixture/manifest.json").read_text())
    assert [p["id"] for p in manifest["paintings"]] == ["painting-0", "painting-1"]
    for pid in ("painting-0", "painting-1"):
        record = json.loads((out / f"data/fixture/paintings/{pid}/record.json").read_text())
        named = [record["canvas"]["path"], record["thumb"]["path"]] + [t["map"]["png"] for t in record["tokens"]]
        named += [s["map"]["png"] for s in record["spans"]] + [s["sam"]["mask"] for s in record["spans"]
                                                               if s.get("sam", {}).get("mask")]
        for rel in named:
            assert (out / f"data/fixture/paintings/{pid}" / rel).is_file(), rel
    # every asset carries a content hash; nothing from the tests folder ships
    assets = [p.relative_to(out).as_posix() for p in (out / "static").rglob("*") if p.is_file()]
    assert assets and all(re.search(r"\.[0-9a-f]{10}\.(js|css)$", a) for a in assets), assets
    assert not any("test" in a or "golden" in a for a in assets)
    # index.html names existing hashed files only, relatively, and carries the CSP
    html = (out / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="(static/[^"]+)"', html)
    assert len(refs) == 2 and all((out / r).is_file() for r in refs)
    assert [p.name for p in sorted(out.glob("*.html"))] == ["fixture~painting-0.html", "fixture~painting-1.html",
                                                            "index.html"]
    assert 'http-equiv="Content-Security-Policy"' in html and "script-src 'self'" in html
    assert not re.search(r'(?:src|href)="/', html)  # relative URLs only
    # every relative import of every module resolves to a shipped, hashed module
    for asset in (out / "static").rglob("*.js"):
        for spec in IMPORTS.findall(asset.read_text()):
            target = (asset.parent / spec).resolve()
            assert target.is_file(), f"{asset.name} imports missing {spec}"
            assert re.search(r"\.[0-9a-f]{10}\.js$", spec)


def test_hashes_follow_content_through_imports(tmp_path):
    front = tmp_path / "front"
    shutil.copytree(FRONTEND, front, ignore=shutil.ignore_patterns("tests"))
    before, _ = build_assets(front)
    again, _ = build_assets(front)
    assert before == again  # deterministic
    leaf = front / "js/lib/format.js"
    leaf.write_text(leaf.read_text() + "\n// changed\n")
    after, _ = build_assets(front)
    changed = {k for k in before if before[k] != after[k]}
    # the leaf, everything that imports it (directly or not), and nothing else
    assert {"js/lib/format.js", "js/components/panels.js", "js/views/painting.js", "js/views/dashboard.js",
            "js/app.js"} <= changed
    assert "js/lib/colormap.js" not in changed and "css/app.css" not in changed and "js/data.js" not in changed


def test_broken_import_and_cycle_stop_the_export(tmp_path):
    front = tmp_path / "front"
    (front / "js").mkdir(parents=True)
    (front / "js/a.js").write_text('import { b } from "./b.js";\n')
    with pytest.raises(ExportError, match="does not name a file"):
        build_assets(front)
    (front / "js/b.js").write_text('import { a } from "./a.js";\nexport const b = 1;\n')
    with pytest.raises(ExportError, match="import cycle"):
        build_assets(front)
    (front / "js/b.js").write_text('export const b = "../../etc/passwd";\n')
    (front / "js/c.js").write_text('import "../../outside.js";\n')
    with pytest.raises(ExportError, match="outside the explorer"):
        build_assets(front)


def test_refuses_to_clobber_and_replaces_own_export(dataset, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    assert main(["export-site", str(dataset), str(out)]) == 1
    assert "not empty" in capsys.readouterr().err and (out / "precious.txt").is_file()
    site = tmp_path / "site"
    export_site(dataset, site)
    (site / "stale.txt").write_text("from an older export")
    export_site(dataset, site)  # a previous export is replaced whole
    assert not (site / "stale.txt").exists() and (site / "index.html").is_file()
    assert not list(tmp_path.glob(".site.tmp-*"))  # no temporary folder left behind


def test_refuses_invalid_dataset_and_non_dataset(dataset, tmp_path):
    with pytest.raises(ExportError, match="not a dataset folder"):
        export_site(tmp_path / "nothing", tmp_path / "out")
    broken = tmp_path / "broken"
    shutil.copytree(dataset, broken)
    (broken / "paintings/painting-0/spans/2.png").unlink()
    with pytest.raises(ExportError, match="invalid"):
        export_site(broken, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_dataset_without_stats_says_so_in_config(tmp_path):
    bare = make_dataset(tmp_path / "bare", n_paintings=1, with_stats=False)
    export_site(bare, tmp_path / "site", ds_id="my.data")
    config = json.loads((tmp_path / "site/config.json").read_text())
    assert config["datasets"] == [{"id": "my.data", "path": "data/my.data", "stats": False}]
    assert (tmp_path / "site/my.data~painting-0.html").is_file()
    assert not (tmp_path / "site/data/my.data/stats.json").exists()


# --- the pages of the paintings -------------------------------------------------------------------
class Page(HTMLParser):
    """What a crawler sees of a page: meta tags, links, scripts, styles and the text by element id/class."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.links: list[str] = []
        self.scripts: list[dict] = []
        self.style_attrs = self.style_elements = 0
        self.text: dict[str, str] = {}
        self._open: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        key = a.get("property") or a.get("name")
        if tag == "meta" and key:
            self.meta[key] = a.get("content", "")
        if tag == "link" and a.get("rel") == "canonical":
            self.meta["canonical"] = a["href"]
        elif tag in ("a", "link", "img", "script") and (a.get("href") or a.get("src")):
            self.links.append(a.get("href") or a.get("src"))
        self.scripts += [a] if tag == "script" else []
        self.style_attrs += "style" in a
        self.style_elements += tag == "style"
        self._open.append(tag if tag in ("title", "h2", "footer") else a.get("class", "") if tag in ("p", "aside") else "")

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        for name in filter(None, self._open):
            self.text[name] = self.text.get(name, "") + data


def attributed(root: Path, title: str | None = None, caption: str | None = None) -> Path:
    """The fixture dataset with the published dataset's attribution (and, for hostile tests, text)."""
    ds = Dataset(root)
    if title is not None or caption is not None:
        record = ds.record("painting-0")
        record.annotations.title = title or record.annotations.title
        if caption is not None:
            record = record.model_copy(update={"caption": caption, "tokens": [], "spans": []})
        ds.save_record(record)
    ds.refresh_manifest(attribution=ATTRIBUTION)
    return root


def test_every_painting_has_a_page_that_reads_and_previews_without_javascript(dataset, tmp_path):
    out = tmp_path / "site"
    export_site(dataset, out, site_url="https://example.org/tam")
    for pid in ("painting-0", "painting-1"):
        record = json.loads((dataset / f"paintings/{pid}/record.json").read_text())  # the expected values
        html = (out / f"fixture~{pid}.html").read_text()
        page = Page(html)
        title, artist = record["annotations"]["title"], record["annotations"]["artist"]
        assert page.text["h2"] == title and title in page.text["title"] and artist in html
        assert page.text["caption"] == record["caption"]  # the whole caption, as text
        assert page.text["label-banner"] == "Fixture dataset built by testkit/fixture_dataset.py"
        assert page.meta["og:title"] == page.meta["twitter:title"] == title
        assert page.meta["og:description"] == page.meta["description"] == record["caption"]  # short enough
        thumb = record["thumb"]
        assert page.meta["og:image"] == page.meta["twitter:image"] == \
            f"https://example.org/tam/data/fixture/paintings/{pid}/{thumb['path']}"
        assert (page.meta["og:image:width"], page.meta["og:image:height"]) == (str(thumb["width"]), str(thumb["height"]))
        assert page.meta["og:url"] == page.meta["canonical"] == f"https://example.org/tam/fixture~{pid}.html"
        assert page.meta["twitter:card"] == "summary"
        assert 'http-equiv="Content-Security-Policy"' in html
        # the CSP holds: no inline script or style; every relative link is a file of the site or the explorer
        assert [s.get("src", "") for s in page.scripts] == [next(p for p in page.links if p.endswith(".js"))]
        assert page.style_attrs == page.style_elements == 0
        for link in page.links:
            if link.startswith(("./", "#")) or link == "data:,":
                continue  # the explorer's own page with a query; the skip link; the empty icon
            assert not re.match(r"^[a-z]+:", link) and (out / link).is_file(), link
        for span in record["spans"]:
            assert f"{span['category']}</span> {span['text']}</li>" in html


def test_front_page_lists_every_painting_and_every_page_credits_the_authors(dataset, tmp_path):
    other = attributed(make_dataset(tmp_path / "published", n_paintings=3, label=None))
    out = tmp_path / "site"
    assert main(["export-site", str(other), str(dataset), str(out)]) == 0  # several datasets, one site
    config = json.loads((out / "config.json").read_text())
    assert [d["id"] for d in config["datasets"]] == ["published", "fixture"]
    front = Page((out / "index.html").read_text())
    pages = sorted(p.name for p in out.glob("*~*.html"))
    assert pages == [f"fixture~painting-{i}.html" for i in range(2)] + [f"published~painting-{i}.html" for i in range(3)]
    assert sorted(link for link in front.links if link.endswith(".html")) == pages
    for name in ["index.html", *pages]:  # on every page, the published dataset's pages and the others alike
        footer = Page((out / name).read_text()).text["footer"]
        assert ATTRIBUTION.text in footer and "(MIT licence)" in footer and ATTRIBUTION.url in footer, name
    assert "Fixture dataset built" not in Page((out / "published~painting-0.html").read_text()).text.get("label-banner", "")
    with pytest.raises(ExportError, match="same id"):
        export_site([dataset, dataset], tmp_path / "twice")
    with pytest.raises(ExportError, match="--id"):
        export_site([other, dataset], tmp_path / "ids", ds_id="x")
    with pytest.raises(ExportError, match="not an http"):
        export_site(dataset, tmp_path / "bad-url", site_url="javascript:alert(1)")


def test_hostile_titles_and_captions_stay_text(tmp_path):
    title = '</title><script>alert("t")</script>'
    caption = 'A <img src=x onerror=alert(1)> "quoted" & <b>bold</b> caption,' + " and on" * 60
    root = attributed(make_dataset(tmp_path / "hostile", n_paintings=1), title=title, caption=caption)
    out = tmp_path / "site"
    export_site(root, out)
    for name in ("hostile~painting-0.html", "index.html"):
        html = (out / name).read_text()
        page = Page(html)
        assert len(page.scripts) == 1 and "<img src=x" not in html and "<b>" not in html
    page = Page((out / "hostile~painting-0.html").read_text())
    assert page.text["h2"] == title and page.text["caption"] == caption
    description = page.meta["og:description"]  # a long caption is cut at a word for previews
    assert page.meta["og:title"] == title and description.endswith(" …") and len(description) <= 200
    assert caption.startswith(description.removesuffix(" …"))
    assert "og:url" not in page.meta and page.meta["og:image"] == "data/hostile/paintings/painting-0/thumb.jpg"
