"""An upload, read and checked before anything else happens to it.

In this order, each refusal a clear 4xx and nothing written anywhere:
1. the declared type: one of the image types precompute reads (415 otherwise: a form, JSON
   text or no Content-Type is refused before the body is read);
2. the size: Content-Length over the limit is refused before the body is read, and the body is
   counted as it arrives, so a chunked or lying request stops at the limit too (413);
3. the image: precompute's own loader (precompute.paintings.load_painting_bytes: the header's
   pixel count checked before a pixel is decoded, so decompression bombs and 40-megapixel photos
   never decode; only the raster formats precompute reads; 16-bit, float and CMYK converted as
   precompute converts them; truncated files refused), with the upload's own pixel limit (413
   over it, 422 for a file that is no usable image), and the format it holds must be the one
   the Content-Type names (415).
The upload's bytes are then handed to the worker as they came; the server never names a file
after anything the client sent.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass

from fastapi import HTTPException, Request

# the Content-Types accepted, and the format Pillow must find in the bytes; suffix for the worker's file
TYPES = {"image/jpeg": ("JPEG", ".jpg"), "image/png": ("PNG", ".png"), "image/webp": ("WEBP", ".webp"),
         "image/tiff": ("TIFF", ".tif"), "image/bmp": ("BMP", ".bmp"), "image/gif": ("GIF", ".gif")}


@dataclass(frozen=True)
class Upload:
    data: bytes
    media_type: str
    suffix: str
    width: int
    height: int
    notes: tuple[str, ...]  # what precompute's loader converted (16-bit, frames)


def media_type_of(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the upload is {int(declared) / 2**20:.1f} MB; the limit is {limit / 2**20:.0f} MB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the upload exceeds the {limit / 2**20:.0f} MB limit")
        chunks.append(chunk)
    return b"".join(chunks)


def check_image(data: bytes, media_type: str, max_pixels: int) -> Upload:
    """Upload, or HTTPException 413/415/422 naming the problem (blocking: run it in a thread)."""
    from PIL import Image

    from contract.images import ImageTooLarge, open_image
    from precompute.paintings import load_painting_bytes
    from precompute.runner import PaintingError

    expected, suffix = TYPES[media_type]
    if not data:
        raise HTTPException(422, "the upload is empty")
    try:
        with open_image(io.BytesIO(data), max_pixels=max_pixels) as im:  # the header only
            found = im.format
    except ImageTooLarge as exc:
        raise HTTPException(413, f"{exc}; downscale it first") from None
    except (OSError, Image.DecompressionBombError):
        raise HTTPException(422, "the upload is not an image in a format tamscope reads "
                                 f"({', '.join(TYPES)})") from None
    if found != expected and not (expected == "JPEG" and found == "MPO"):
        raise HTTPException(415, f"the upload is a {found} image but was sent as {media_type}")
    try:
        loaded = load_painting_bytes(data, "the upload", max_pixels)  # precompute's full check and decode
    except PaintingError as exc:
        raise HTTPException(413 if "megapixels" in str(exc) else 422, str(exc)) from None
    return Upload(data, media_type, suffix, loaded.image.width, loaded.image.height, tuple(loaded.notes))


async def read_upload(request: Request, max_bytes: int, max_pixels: int, decodes: asyncio.Semaphore) -> Upload:
    """`decodes` bounds the full decodes at a time: each may take a few hundred MB at the pixel limit."""
    media_type = media_type_of(request)
    if media_type not in TYPES:
        raise HTTPException(415, f"send the image as the request body with its Content-Type ({', '.join(TYPES)}), "
                                 f"or JSON naming a served painting; got {media_type or 'no Content-Type'}")
    data = await read_body(request, max_bytes)
    async with decodes:
        return await asyncio.to_thread(check_image, data, media_type, max_pixels)
