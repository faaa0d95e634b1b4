"""Copies of the published reference sample reduced to a few paintings, for tests that change
or break one file (the importer's and the demo downloader's)."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson


def mini_site(sample: Path, dest: Path, stems: list[str]) -> Path:
    """A copy of the sample in the project-page layout holding only `stems`."""
    index = orjson.loads((sample / "assets/data/index.json").read_bytes())
    index["paintings"] = [p for p in index["paintings"] if p["stem"] in stems]
    (dest / "assets/data/paintings").mkdir(parents=True)
    (dest / "assets/img").mkdir()
    (dest / "assets/masks").mkdir()
    (dest / "assets/data/index.json").write_bytes(orjson.dumps(index))
    for stem in stems:
        shutil.copy(sample / f"assets/data/paintings/{stem}.json", dest / f"assets/data/paintings/{stem}.json")
        shutil.copy(sample / f"assets/img/{stem}.jpg", dest / f"assets/img/{stem}.jpg")
        for mask in (sample / "assets/masks").glob(f"{stem}__*.png"):
            shutil.copy(mask, dest / "assets/masks" / mask.name)
    return dest
