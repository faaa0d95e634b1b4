"""Loading input paintings: a clear error for every kind of bad image, 8-bit RGB out."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from precompute.paintings import fit, load_painting
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
    assert load_painting(tmp_path / "rot.jpg").image.size == (40, 60)
    Image.new("RGBA", (40, 40), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert load_painting(tmp_path / "clear.png").image.getpixel((5, 5)) == (255, 255, 255)


def test_fit_never_upscales():
    assert fit(Image.new("RGB", (100, 50)), 1024).size == (100, 50)
    assert fit(Image.new("RGB", (2000, 1000)), 1024).size == (1024, 512)


def gradient_u16(h: int = 64, w: int = 256) -> np.ndarray:
    """Every 16-bit level band: column x holds 257 * x + (row-dependent offset < 257)."""
    return (np.arange(w)[None, :] * 257 + (np.arange(h)[:, None] * 4) % 257).astype(np.uint16)  # (H, W)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path, fmt):
    values = gradient_u16()
    path = tmp_path / f"deep.{fmt.lower()}"
    Image.fromarray(values).save(path, format=fmt)
    assert Image.open(path).mode.startswith("I;16")
    loaded = load_painting(path)
    expected = (values.astype(np.int64) * 255 + 32767) // 65535  # round(v * 255 / 65535), in integers
    pixels = np.asarray(loaded.image)  # (H, W, 3)
    assert np.array_equal(pixels, np.repeat(expected[..., None], 3, axis=2).astype(np.uint8))
    assert (pixels == 255).mean() < 0.01  # clipped, 99.6% of it was white
    assert loaded.notes == ["16-bit grayscale scaled to 8 bits (value x 255 / 65535)"]


def test_float_in_unit_range_is_scaled_by_255(tmp_path):
    levels = np.tile(np.arange(256), (40, 1))  # (40, 256): the 8-bit level of each pixel
    Image.fromarray((levels / 255).astype(np.float32)).save(tmp_path / "f.tif")
    loaded = load_painting(tmp_path / "f.tif")
    assert np.array_equal(np.asarray(loaded.image)[..., 0], levels)
    assert "float grayscale in [0, 1] scaled" in loaded.notes[0]


def test_float_outside_unit_range_is_stretched_from_its_own_range(tmp_path):
    levels = np.tile(np.arange(256), (40, 1))
    Image.fromarray((100 + 50 * levels / 255).astype(np.float32)).save(tmp_path / "f.tif")  # 100 .. 150
    loaded = load_painting(tmp_path / "f.tif")
    assert np.array_equal(np.asarray(loaded.image)[..., 0], levels)
    assert "[100, 150], outside [0, 1]: stretched" in loaded.notes[0]


@pytest.mark.parametrize("values, message", [
    (np.array([[0.5, np.nan]] * 40 * 20, dtype=np.float32).reshape(40, 40), "NaN or infinite"),
    (np.full((40, 40), 70000, dtype=np.int32), "32-bit integer pixels outside 0..65535"),
])
def test_unconvertible_depths_are_refused(tmp_path, values, message):
    Image.fromarray(values).save(tmp_path / "odd.tif")
    with pytest.raises(PaintingError, match=message):
        load_painting(tmp_path / "odd.tif")


@pytest.mark.parametrize("fmt, suffix, options", [("GIF", "gif", {}), ("PNG", "png", {}),
                                                  ("WEBP", "webp", {"lossless": True})])
def test_animated_image_gives_its_first_frame_and_says_so(tmp_path, fmt, suffix, options):
    frames = [Image.new("RGB", (40, 30), colour) for colour in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    path = tmp_path / f"moving.{suffix}"
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], **options)
    loaded = load_painting(path)
    assert loaded.image.size == (40, 30) and loaded.image.getpixel((20, 15)) == (255, 0, 0)
    assert loaded.notes == ["3 frames (animated or multi-page): the first frame is used"]


def test_ordinary_image_has_no_notes(tmp_path):
    Image.new("RGB", (40, 40), (1, 2, 3)).save(tmp_path / "plain.png")
    assert load_painting(tmp_path / "plain.png").notes == []
