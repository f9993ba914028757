"""An uploaded image, read within the limits and kept in memory only.

The body's size is refused from Content-Length and again while reading (a client may
lie or stream); the pixel count is read from the image header, before any decoding, so a
tiny file claiming 60000x60000 pixels costs nothing. Nothing here writes to disk or logs.
"""

from __future__ import annotations

import io
import warnings

from fastapi import HTTPException, Request
from PIL import Image, UnidentifiedImageError

from headshot.service.settings import ServiceSettings


async def read_body(request: Request, settings: ServiceSettings) -> bytes:
    """The request body, or 413 past max_upload_bytes; 415 when it is not declared an image."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not content_type.startswith("image/"):
        raise HTTPException(415, f"expected an image/* body, got {content_type or 'no content type'}")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > settings.max_upload_bytes):
        raise HTTPException(413, f"the image is larger than {settings.max_upload_bytes} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > settings.max_upload_bytes:
            raise HTTPException(413, f"the image is larger than {settings.max_upload_bytes} bytes")
        chunks.append(chunk)
    if size == 0:
        raise HTTPException(415, "the body is empty: expected an image")
    return b"".join(chunks)


def check_header(data: bytes, settings: ServiceSettings) -> tuple[int, int]:
    """Width and height from the header (no pixels decoded): 415 not an image, 413 too many pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except Image.DecompressionBombError:
        raise HTTPException(413, f"the image has more than {settings.max_pixels} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise HTTPException(415, "not an image (or a format headshot cannot read)") from None
    if width * height > settings.max_pixels:
        raise HTTPException(413, f"the image has {width}x{height} pixels, more than {settings.max_pixels}")
    return width, height


def decode(data: bytes) -> Image.Image:
    """The pixels (after check_header): what watermark detection reads."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(io.BytesIO(data))
        image.load()
    return image
