"""The invisible watermark that signing embeds and verify reads: one entry point for every version.

`embed` writes the current mark (tiled v3). `detect` reads the tiled mark, v3 or the v2 of
headshots signed 2026-12-01 to 12-06 (one search serves both), and when it finds none, the v1
mark that headshots signed before 2026-12 carry, so old images stay detected.
docs/watermark.md describes them and records their measured robustness.
"""

from __future__ import annotations

from PIL import Image

from headshot.signing import watermark_dct as _v1
from headshot.signing import watermark_tiled as _tiled
from headshot.signing import watermark_tiled_embed as _tiled_embed
from headshot.signing.watermark_layout import layouts
from headshot.signing.watermark_payload import WatermarkResult, key_id

LEGACY = (_v1,)
# Public on purpose: anyone may detect the disclosure. (Each version derives its own
# carriers from it, so the name "-v1" stays: it names the key, not the algorithm.)
DEFAULT_KEY = "headshot-watermark-v1"
ALGORITHM = layouts(DEFAULT_KEY)[0].algorithm
VERSION = layouts(DEFAULT_KEY)[0].version
DEFAULT_STRENGTH = _tiled_embed.DEFAULT_STRENGTH

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
    return _tiled_embed.embed(image, identifier, key=key, strength=strength)


def detect(image: Image.Image, key: str = DEFAULT_KEY) -> WatermarkResult:
    """The tiled mark (v3 or v2), else v1; `found` only when a CRC-32 confirms the identifier."""
    result = _tiled.detect(image, key=key)
    for older in LEGACY:
        if result.found:
            break
        result = older.detect(image, key=key)
    return result
