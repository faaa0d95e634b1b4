"""`import-tamart` on a hostile or broken site folder (issue 11, point 6).

Each test starts from a copy of two published paintings (tests/sitecopy.py) and breaks or
crafts one thing. What must hold: nothing outside SITE is read, every stem follows the full id
rule, a stem that collides with another painting and a decompression bomb are recorded
failures, and the rest of the import goes on with a summary naming each failure.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import orjson
import pytest

from contract.store import Dataset
from contract.validate import validate_dataset
from sources import tamart_import
from sources.tamart_import import LayoutError, import_tamart
from tests.sitecopy import mini_site

STARRY, SUNRISE = "0002_the-starry-night-1889", "0010_impression-sunrise"


@pytest.fixture
def site(tamart_sample, tmp_path) -> Path:
    return mini_site(tamart_sample, tmp_path / "site", [STARRY, SUNRISE])


def painting(site: Path, stem: str) -> dict:
    return orjson.loads((site / f"assets/data/paintings/{stem}.json").read_bytes())


def save_painting(site: Path, stem: str, data: dict, name: str | None = None) -> None:
    # the json module: it writes what orjson refuses (integers beyond 64 bits)
    (site / f"assets/data/paintings/{name or stem}.json").write_text(json.dumps(data))


def add_index_entries(site: Path, *entries: object) -> None:
    index = orjson.loads((site / "assets/data/index.json").read_bytes())
    index["paintings"] += list(entries)
    (site / "assets/data/index.json").write_bytes(orjson.dumps(index))


def outcome(ds: Dataset) -> tuple[dict[str, str], dict[str, str]]:
    """({painting: status} from the manifest, {what: error} of every import failure)."""
    manifest = ds.manifest()
    return {p.id: p.status for p in manifest.paintings}, manifest.provenance["import_failures"]


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of width x height zero pixels: tiny on disk, huge once decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer, row = zlib.compressobj(9), b"\0" * (1 + (width + 7) // 8)  # filter byte + packed bits
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# paths -------------------------------------------------------------------------------------
@pytest.mark.parametrize("field, value", [
    ("image", "/etc/passwd"),
    ("image", "{outside}/outside.jpg"),  # a real image of the right size, outside the site
    ("image", "assets/../../outside.jpg"),
    ("image", "assets/img/\0.jpg"),
    ("sam", "{outside}/outside.png"),
    ("sam", "../../../outside.png"),
])
def test_a_path_outside_the_site_is_a_recorded_failure(site, tmp_path, field, value):
    shutil.copy(site / f"assets/img/{SUNRISE}.jpg", tmp_path / "outside.jpg")
    shutil.copy(site / f"assets/masks/{SUNRISE}__1.png", tmp_path / "outside.png")
    data = painting(site, SUNRISE)
    value = value.format(outside=tmp_path)
    if field == "image":
        data["image"] = value
    else:
        data["spans"][1]["sam"] = value
    save_painting(site, SUNRISE, data)
    ds = import_tamart(site, tmp_path / "out")
    status, failures = outcome(ds)
    assert status == {STARRY: "ok", SUNRISE: "failed"}
    assert "is not a plain" in failures[SUNRISE]
    # nothing of the failed painting was written but its failure record
    assert files_under(ds.painting_dir(SUNRISE)) == [ds.record_path(SUNRISE)]
    passwd = Path("/etc/passwd").read_bytes() if Path("/etc/passwd").is_file() else None
    assert all(f.read_bytes() != passwd for f in files_under(ds.root))
    assert validate_dataset(ds.root) == []


def move_out(path: Path, outside: Path) -> None:
    """Replace path by a symlink to a copy of it outside the site."""
    outside.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(path, outside)
    os.symlink(outside, path)


@pytest.mark.parametrize("what", ["image file", "masks folder", "painting JSON"])
def test_a_symlink_leaving_the_site_is_a_recorded_failure(site, tmp_path, what):
    elsewhere = tmp_path / "elsewhere"
    if what == "image file":
        move_out(site / f"assets/img/{SUNRISE}.jpg", elsewhere / "x.jpg")
        failed = {SUNRISE}
    elif what == "masks folder":  # both paintings have masks
        move_out(site / "assets/masks", elsewhere / "masks")
        failed = {SUNRISE, STARRY}
    else:
        move_out(site / f"assets/data/paintings/{SUNRISE}.json", elsewhere / "x.json")
        failed = {SUNRISE}
    status, failures = outcome(import_tamart(site, tmp_path / "out"))
    assert {pid for pid, s in status.items() if s == "failed"} == failed
    assert all("leads outside the site folder" in failures[pid] for pid in failed)


def test_a_symlink_inside_the_site_is_followed(site, tmp_path):
    store = site / "assets/store"
    store.mkdir()
    shutil.move(site / f"assets/img/{SUNRISE}.jpg", store / "x.jpg")
    os.symlink("../store/x.jpg", site / f"assets/img/{SUNRISE}.jpg")
    status, failures = outcome(import_tamart(site, tmp_path / "out"))
    assert status == {STARRY: "ok", SUNRISE: "ok"} and failures == {}


def test_an_index_outside_the_site_is_refused(site, tmp_path):
    move_out(site / "assets/data/index.json", tmp_path / "elsewhere/index.json")
    with pytest.raises(LayoutError, match="leads outside the site folder"):
        import_tamart(site, tmp_path / "out")


@pytest.mark.timeout(60)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_is_not_read(site, tmp_path):
    image = site / f"assets/img/{SUNRISE}.jpg"
    image.unlink()
    os.mkfifo(image)  # reading it would block the import forever
    status, failures = outcome(import_tamart(site, tmp_path / "out"))
    assert status == {STARRY: "ok", SUNRISE: "failed"}
    assert "is not a regular file" in failures[SUNRISE]


# ids and collisions ------------------------------------------------------------------------
BAD_STEMS = [f"{STARRY}\n", "../../x", "", "a/b", ".hidden", "-x", "x" * 129, "caf\u00e9", "cafe\u0301",
             "a\0b", "\x1b[2J", 5, None, ["x"]]


def test_stems_that_are_not_ids_are_recorded_failures(site, tmp_path, capsys):
    # "../../x" would read assets/x.json: plant one there that claims to be Starry Night
    planted = painting(site, STARRY)
    planted["caption"] = "A planted caption."
    planted["segments"] = [{"t": planted["caption"], "s": -1}]
    (site / "assets/x.json").write_bytes(orjson.dumps(planted))
    add_index_entries(site, *({"stem": s} for s in BAD_STEMS), "not an entry")
    out = tmp_path / "out"
    code = tamart_import.run(argparse.Namespace(site=site, out=out, no_stats=True))
    ds = Dataset(out)
    status, failures = outcome(ds)
    assert code == 1  # the import finished, and says it was not clean
    assert status == {STARRY: "ok", SUNRISE: "ok"}
    assert sorted(p.name for p in (out / "paintings").iterdir()) == [STARRY, SUNRISE]
    assert ds.record(STARRY).caption == painting(site, STARRY)["caption"]
    assert set(failures) == {f"entry {n}" for n in range(2, 2 + len(BAD_STEMS) + 1)}
    assert all("is not a valid painting id" in error for error in failures.values())
    printed = capsys.readouterr().out
    assert f"{len(failures)} failed:" in printed and "'../../x' is not a valid painting id" in printed
    assert "\x1b" not in printed  # a stem is shown escaped, never sent to the terminal as is
    assert validate_dataset(out) == []


def test_a_stem_colliding_with_another_painting_is_a_recorded_failure(site, tmp_path, tamart_sample):
    original = painting(site, STARRY)
    upper = STARRY.upper()  # one folder with STARRY on a case-insensitive file system
    save_painting(site, upper, {**painting(site, SUNRISE), "stem": upper}, name=upper)
    add_index_entries(site, {"stem": STARRY}, {"stem": upper})
    save_painting(site, SUNRISE, {**painting(site, SUNRISE), "stem": STARRY})  # names another painting
    ds = import_tamart(site, tmp_path / "out")
    status, failures = outcome(ds)
    assert status == {STARRY: "ok", SUNRISE: "failed"}
    assert failures[SUNRISE] == f"assets/data/paintings/{SUNRISE}.json: it is the JSON of painting '{STARRY}'"
    assert failures["entry 2"].endswith(f"stem '{STARRY}' collides with '{STARRY}' (listed earlier)")
    assert failures["entry 3"].endswith(f"stem '{upper}' collides with '{STARRY}' (listed earlier)")
    record = ds.record(STARRY)  # the first one, untouched
    assert record.caption == original["caption"] and len(record.spans) == len(original["spans"])
    assert sorted(p.name for p in (ds.root / "paintings").iterdir()) == [STARRY, SUNRISE]


# decompression bombs ---------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["mask", "image"])
def test_a_decompression_bomb_is_a_recorded_failure(site, tmp_path, target):
    bomb = png_bomb(20_000, 20_000)  # 400 MP in about 50 kB
    data = painting(site, STARRY)
    if target == "mask":
        (site / f"assets/masks/{STARRY}__7.png").write_bytes(bomb)
    else:
        (site / "assets/img/bomb.png").write_bytes(bomb)
        save_painting(site, STARRY, {**data, "image": "assets/img/bomb.png"})
    status, failures = outcome(import_tamart(site, tmp_path / "out"))
    assert status == {STARRY: "failed", SUNRISE: "ok"}
    assert "too large to decode safely, more than the 100 MP limit" in failures[STARRY]


def test_the_pixel_limit_is_checked_from_the_header_before_decoding():
    from PIL import Image, UnidentifiedImageError

    from contract.images import MAX_PIXELS, ImageTooLarge, open_image

    side = 11_000  # 121 MP: over our limit, under the 179 MP at which Pillow itself refuses
    assert MAX_PIXELS < side * side < 2 * Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageTooLarge, match="11000x11000 = 121 megapixels, more than the 100 MP limit"):
        open_image(io.BytesIO(png_bomb(side, side)))
    with open_image(io.BytesIO(png_bomb(100, 50))) as im:  # small is fine
        assert im.size == (100, 50)
    ppm = io.BytesIO()  # a format Pillow reads and tamscope does not
    Image.new("L", (4, 4)).save(ppm, format="PPM")
    with pytest.raises(UnidentifiedImageError, match="not an image in a format tamscope reads"):
        open_image(ppm)


# malformed data ----------------------------------------------------------------------------------
@pytest.mark.parametrize("change, where", [
    ({"spans": {"0": {}}}, "spans"),
    ({"spans": ["a span"]}, "spans.0"),
    ({"grid_h": 10**30}, "grid_h"),
    ({"w": True}, "w"),
    ({"year": 10**30}, "year"),
    ({"meta": "right"}, "meta"),
    ({"caption": 5}, "caption"),
    ({"segments": [{"t": None, "s": -1}]}, "segments.0.t"),
    ({"image": ["assets/img/x.jpg"]}, "image"),
])
def test_malformed_painting_json_is_a_recorded_failure(site, tmp_path, change, where):
    save_painting(site, SUNRISE, {**painting(site, SUNRISE), **change})
    status, failures = outcome(import_tamart(site, tmp_path / "out"))
    assert status == {STARRY: "ok", SUNRISE: "failed"}
    assert failures[SUNRISE].startswith(f"assets/data/paintings/{SUNRISE}.json: {where}")


def test_a_span_map_that_is_not_base64_is_a_recorded_failure(site, tmp_path):
    data = painting(site, SUNRISE)
    data["spans"][0]["map"] = "not base64 at all!"
    save_painting(site, SUNRISE, data)
    status, failures = outcome(import_tamart(site, tmp_path / "out"))
    assert status == {STARRY: "ok", SUNRISE: "failed"}


@pytest.mark.parametrize("index", [b"{", b"[]", b'{"paintings": {}}', b'{"paintings": []}'])
def test_malformed_index_fails_with_one_clear_line(site, tmp_path, capsys, index):
    (site / "assets/data/index.json").write_bytes(index)
    code = tamart_import.run(argparse.Namespace(site=site, out=tmp_path / "out", no_stats=True))
    assert code == 1
    assert capsys.readouterr().out.startswith(f"import-tamart: {site.resolve()} is not a project-page folder: "
                                              "assets/data/index.json: not a painting index")
