"""A large dataset from the embedded smoke dataset by replication: for the scale benchmark and tests.

Painting k is a copy of smoke painting k mod 4 whose files are hard links to the smoke dataset's
(no bytes copied; `tam_raw.safetensors` left out) and whose record is rewritten with its own id
(`<smoke id>-r<k>`), title ("... #k"), artist (one of 500) and year (1800 + k mod 200), so that
search, filters and facets have something to do. The manifest lists them all; stats.json is not
written (run `tamscope stats`).
"""

from __future__ import annotations

from pathlib import Path

import orjson

from contract.commit import link_or_copy
from testkit import REPO

SMOKE = REPO / "data" / "smoke"


def replicate(out: Path, n: int) -> Path:
    """N paintings from the smoke dataset's four: files hard-linked, records rewritten."""
    manifest = orjson.loads((SMOKE / "manifest.json").read_bytes())
    sources = []
    for summary in manifest["paintings"]:
        folder = SMOKE / "paintings" / summary["id"]
        record = orjson.loads((folder / "record.json").read_bytes())
        files = [p.relative_to(folder) for p in folder.rglob("*")
                 if p.is_file() and p.name not in ("record.json", "tam_raw.safetensors")]
        sources.append((summary, record, folder, files))
    base = out / "paintings"
    base.mkdir(parents=True)
    summaries = []
    for k in range(n):
        summary, record, folder, files = sources[k % len(sources)]
        pid = f"{record['id']}-r{k:06d}"
        target = base / pid
        for sub in {f.parent for f in files}:
            (target / sub).mkdir(parents=True, exist_ok=True)
        for rel in files:
            link_or_copy(folder / rel, target / rel)  # a copy where /tmp is another file system
        ann = dict(record["annotations"], title=f"{record['annotations']['title']} #{k}",
                   artist=f"{record['annotations']['artist']} {k % 500}", year=1800 + k % 200)
        provenance = {key: value for key, value in record.get("provenance", {}).items() if key != "tam_raw"}
        (target / "record.json").write_bytes(orjson.dumps(dict(record, id=pid, annotations=ann, provenance=provenance)))
        summaries.append(dict(summary, id=pid, title=ann["title"], artist=ann["artist"], year=ann["year"],
                              thumb=f"paintings/{pid}/{record['thumb']['path']}"))
    (out / "manifest.json").write_bytes(orjson.dumps(dict(manifest, name=f"smoke x{n}", paintings=summaries)))
    return out
