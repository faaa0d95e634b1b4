"""`tamscope export-site` without a browser: layout, hashed names, rewritten imports, refusals.
The browser smoke test over a plain static file server is tests/e2e/test_site.py."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from backend.site import FRONTEND, ExportError, build_assets, export_site
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
    assert config == {"mode": "static", "datasets": [{"id": "fixture", "path": "data/fixture", "stats": True}]}
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
    assert not (tmp_path / "site/data/my.data/stats.json").exists()
