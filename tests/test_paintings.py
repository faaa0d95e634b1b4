"""The input folder: ids, annotations, and a clear error for every kind of bad image."""

import struct
import zlib

import pytest
from PIL import Image

from contract.names import slugify
from precompute.paintings import fit, load_annotations, load_painting, scan_input
from precompute.runner import PaintingError


def png_header_only(path, width, height):
    """A PNG whose header claims width x height, without allocating the pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    path.write_bytes(data + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b""), "empty file"),
    (lambda p: p.write_text("not an image at all"), "not an image"),
    (lambda p: Image.new("RGB", (1, 1)).save(p, format="PNG"), "1x1 pixels"),
    (lambda p: png_header_only(p, 20000, 20000), "too large"),
    (lambda p: png_header_only(p, 12000, 9000), "108 megapixels"),
])
def test_bad_images_have_clear_errors(tmp_path, make, message):
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(PaintingError, match=message):
        load_painting(path)


def test_truncated_image(tmp_path):
    good = tmp_path / "good.jpg"
    Image.effect_noise((300, 200), 60).convert("RGB").save(good, quality=90)
    bad = tmp_path / "truncated.jpg"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(PaintingError, match="corrupt or truncated"):
        load_painting(bad)


def test_exif_rotation_and_alpha(tmp_path):
    img = Image.new("RGB", (60, 40), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert load_painting(tmp_path / "rot.jpg").size == (40, 60)
    Image.new("RGBA", (40, 40), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert load_painting(tmp_path / "clear.png").getpixel((5, 5)) == (255, 255, 255)


def test_scan_ids_and_annotations(tmp_path):
    for name in ["Starry Night.jpg", "starry night.png", "Café.png", ".hidden.png", "notes.txt"]:
        Image.new("RGB", (32, 32)).save(tmp_path / name) if name.endswith(("png", "jpg")) else (
            tmp_path / name).write_text("x")
    (tmp_path / "annotations.json").write_text('{"Starry Night": {"title": "The Starry Night", "year": 1889}}')
    found = scan_input(tmp_path)
    assert [p.id for p in found] == ["Cafe", "Starry-Night", "starry-night"]
    assert found[1].annotations.title == "The Starry Night" and found[1].annotations.year == 1889
    assert slugify("../../etc/passwd") == "etc-passwd" and slugify("...") == "painting"


def test_annotations_csv_and_bad_json(tmp_path):
    (tmp_path / "annotations.csv").write_text("file,title,artist,year,style,genre\na.jpg,A,B,1900,,\n")
    ann = load_annotations(tmp_path)["a"]
    assert (ann.title, ann.artist, ann.year, ann.style) == ("A", "B", 1900, None)
    (tmp_path / "annotations.json").write_text("[{\"title\": \"no file\"}]")
    with pytest.raises(ValueError, match="without a 'file'"):
        load_annotations(tmp_path)


def test_fit_never_upscales():
    assert fit(Image.new("RGB", (100, 50)), 1024).size == (100, 50)
    assert fit(Image.new("RGB", (2000, 1000)), 1024).size == (1024, 512)
