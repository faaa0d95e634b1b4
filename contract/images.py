"""Opening images that come from outside (input folders, downloads, imported sites) safely.

A PNG of a few kilobytes can declare 20000 x 20000 pixels and take gigabytes to decode (a
decompression bomb). Pillow only warns above its own limit (89 MP) and refuses above twice
that, raising an exception that is not an OSError. `open_image` reads the header, refuses
anything over MAX_PIXELS with ImageTooLarge (a ValueError naming the size) before a single
pixel is decoded, and opens only the formats asked for: Pillow would otherwise hand some
formats to external programs (EPS to Ghostscript) on a file that merely claims to be a JPEG.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import IO

from PIL import Image, UnidentifiedImageError

# The one pixel limit: about 10000 x 10000, larger than the scans paintings come as; an RGB
# decode at the limit takes 300 MB.
MAX_PIXELS = 100_000_000
# the raster formats tamscope reads (Pillow's opener names; JPEG also opens MPO, the JPEG with
# extra frames that cameras write)
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF")  # GIF: precompute reads its first frame


class ImageTooLarge(ValueError):
    """The image declares more pixels than MAX_PIXELS (a decompression bomb, or a giant scan)."""


def open_image(source: str | Path | IO[bytes], formats: tuple[str, ...] = IMAGE_FORMATS,
               max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Image.open (header only, lazy like Pillow's) that refuses images over max_pixels.

    Raises ImageTooLarge, UnidentifiedImageError (an OSError) for a file that is not an image
    in one of `formats`, or another OSError for an unreadable file.
    """
    try:
        with warnings.catch_warnings():  # the size is checked below, with our own message
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(source, formats=list(formats))
    except Image.DecompressionBombError as exc:  # over twice Pillow's own limit, as the header says
        raise ImageTooLarge(f"the image is too large to decode safely, more than the {max_pixels / 1e6:.0f} MP "
                            f"limit ({exc})") from None
    except UnidentifiedImageError:
        raise UnidentifiedImageError(f"not an image in a format tamscope reads ({', '.join(formats)})") from None
    w, h = im.size
    if w * h > max_pixels:
        im.close()
        raise ImageTooLarge(f"the image is {w}x{h} = {w * h / 1e6:.0f} megapixels, more than the "
                            f"{max_pixels / 1e6:.0f} MP limit")
    return im
