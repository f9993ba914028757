"""The invisible watermark that signing embeds and verify reads: one entry point for both versions.

`embed` writes the current mark. `detect` reads the current mark first and, when it finds
none, the v1 mark that headshots signed before 2026-12 carry, so old images stay detected.
docs/watermark.md describes both and records their measured robustness.
"""

from __future__ import annotations

from PIL import Image

from headshot.signing import watermark_dct as _v1
from headshot.signing import watermark_tiled as _v2
from headshot.signing.watermark_payload import WatermarkResult, key_id

CURRENT = _v2
LEGACY = (_v1,)
ALGORITHM = CURRENT.ALGORITHM
VERSION = 2
# Public on purpose: anyone may detect the disclosure. (Each version derives its own
# carriers from it, so the name "-v1" stays: it names the key, not the algorithm.)
DEFAULT_KEY = "headshot-watermark-v1"
DEFAULT_STRENGTH = CURRENT.DEFAULT_STRENGTH

__all__ = [
    "ALGORITHM",
    "DEFAULT_KEY",
    "DEFAULT_STRENGTH",
    "VERSION",
    "WatermarkResult",
    "detect",
    "embed",
    "key_id",
]


def embed(
    image: Image.Image, identifier: str, key: str = DEFAULT_KEY, strength: float = DEFAULT_STRENGTH
) -> Image.Image:
    """An RGB copy of `image` carrying `identifier` (8 hex digits) in the current mark."""
    return CURRENT.embed(image, identifier, key=key, strength=strength)


def detect(image: Image.Image, key: str = DEFAULT_KEY) -> WatermarkResult:
    """The current mark, else an older one; `found` only when a CRC-32 confirms the identifier."""
    result = CURRENT.detect(image, key=key)
    for older in LEGACY:
        if result.found:
            break
        result = older.detect(image, key=key)
    return result
