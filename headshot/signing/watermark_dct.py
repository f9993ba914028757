"""Watermark v1 (2026-11): a 32-bit identifier spread over low-mid DCT frequencies of the luminance.

Superseded by the tiled mark (watermark_tiled.py), which survives crops; kept so that
headshots signed with it are still detected, and for the comparison in the benchmark.

Why this design (measured in docs/watermark.md): the whole frame is mapped to a fixed
256x256 working grid before the transform, so a resized copy lands on the same grid and the
frequencies carrying the mark (periods of 8 to 30 working pixels) are far below what JPEG
quantisation or a 0.5x downscale removes. Each of the 64 payload bits (32 identifier bits
+ a CRC-32) owns a keyed, pseudo-random set of about 100 coefficients with a +/-1 carrier;
the embedder adds only what each bit still lacks to reach a margin (informed embedding, so
the image itself is not fighting the mark) and re-checks the result on the real 8-bit
pixels. The detector correlates, takes signs, and accepts a payload only when the CRC
matches and the bits stand clearly out of the image's own noise, which keeps unmarked photos
from producing identifiers.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageOps
from scipy.fft import dctn, idctn

from headshot.signing.watermark_payload import N_BITS, WatermarkResult, chase_decode, payload_bits

WORK = 256  # working grid (pixels per side) that every image is mapped to
BAND = (16, 128)  # DCT coefficients with BAND[0] <= u + v < BAND[1] carry the mark
DEFAULT_KEY = "headshot-watermark-v1"
DEFAULT_STRENGTH = 4.0  # per-bit margin, in DCT units on the working grid
ALGORITHM = "org.headshot.watermark.dct-ss.v1"


@lru_cache(maxsize=8)
def _carriers(key: str) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Keyed assignment of band coefficients to payload bits, and their +/-1 chips."""
    u, v = np.meshgrid(np.arange(WORK), np.arange(WORK), indexing="ij")
    band = np.flatnonzero(((u + v) >= BAND[0]) & ((u + v) < BAND[1]))
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    rng = np.random.default_rng(seed)
    band = rng.permutation(band)
    groups = tuple(np.sort(chunk) for chunk in np.array_split(band, N_BITS))
    chips = tuple(rng.choice(np.array([-1.0, 1.0]), size=len(group)) for group in groups)
    return groups, chips


def _to_working_grid(image: Image.Image) -> np.ndarray:
    """Luminance (ITU-R 601 weights, as Pillow's "L") mapped onto the WORK x WORK grid.

    8-bit throughout: the rounding adds ~0.02 DCT units per payload bit, far below the margin.
    """
    luma = image.convert("L")
    shrinking = luma.width >= WORK and luma.height >= WORK
    return np.asarray(luma.resize((WORK, WORK), Image.BOX if shrinking else Image.BICUBIC), dtype=np.float32)


def _projections(grid: np.ndarray, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-bit correlation with the carrier, and the same as a z-score against the host."""
    coefficients = dctn(grid, norm="ortho").ravel()
    groups, chips = _carriers(key)
    projection = np.empty(N_BITS)
    z = np.empty(N_BITS)
    for bit, (group, chip) in enumerate(zip(groups, chips)):
        values = coefficients[group] * chip
        projection[bit] = values.mean()
        spread = values.std() / np.sqrt(len(values))
        z[bit] = projection[bit] / max(spread, 1e-6)
    return projection, z


def embed(
    image: Image.Image, identifier: str, key: str = DEFAULT_KEY, strength: float = DEFAULT_STRENGTH
) -> Image.Image:
    """Return an RGB copy of `image` carrying `identifier` (8 hex digits)."""
    signs = payload_bits(int(identifier, 16)) * 2.0 - 1.0
    original = image.convert("RGB")
    groups, chips = _carriers(key)
    marked, grid = original, _to_working_grid(original)
    pattern = np.zeros((original.height, original.width), dtype=np.float32)
    # Informed embedding: add to each bit only the margin it still lacks, measured on the
    # rounded 8-bit result; a few rounds absorb rounding, clipping and resampling losses.
    for _ in range(4):
        projection, _z = _projections(grid, key)
        deficit = np.maximum(0.0, strength - signs * projection) * signs * 1.25
        if not deficit.any():
            break
        coefficients = np.zeros(WORK * WORK)
        for bit, (group, chip) in enumerate(zip(groups, chips)):
            coefficients[group] = deficit[bit] * chip
        grid_pattern = idctn(coefficients.reshape(WORK, WORK), norm="ortho").astype(np.float32)
        pattern += cv2.resize(grid_pattern, original.size, interpolation=cv2.INTER_CUBIC)
        marked = _add_to_all_channels(original, np.rint(pattern))
        grid = _to_working_grid(marked)
    return marked


def _add_to_all_channels(image: Image.Image, offset: np.ndarray) -> Image.Image:
    """Add a signed integer plane to R, G and B with clipping; that adds it to the luminance.

    Saturating 8-bit adds and subtracts (OpenCV); each pixel's offset is either positive or
    negative, so add-then-subtract clips exactly like one signed add.
    """
    up = np.clip(offset, 0, 255).astype(np.uint8)
    down = np.clip(-offset, 0, 255).astype(np.uint8)
    rgb = cv2.add(np.asarray(image), cv2.merge((up, up, up)))
    return Image.fromarray(cv2.subtract(rgb, cv2.merge((down, down, down))), mode="RGB")


def detect(image: Image.Image, key: str = DEFAULT_KEY) -> WatermarkResult:
    """Look for a mark, also in the mirror image (phones and editors flip selfies).

    `found` only when a 32-bit CRC confirms the identifier: 2 x 22 candidates give about a
    1e-8 chance that an unmarked image yields one.
    """
    best = None
    for candidate in (image, ImageOps.mirror(image)):
        projection, z = _projections(_to_working_grid(candidate), key)
        score = float(np.abs(z).mean())
        identifier = chase_decode(projection)
        if identifier is not None:
            return WatermarkResult(
                found=True, identifier=f"{identifier:08x}", score=score, algorithm=ALGORITHM
            )
        best = score if best is None else max(best, score)
    return WatermarkResult(found=False, identifier=None, score=best or 0.0)


def bit_errors(image: Image.Image, identifier: str, key: str = DEFAULT_KEY) -> int:
    """How many payload bits a detector reads wrong (for robustness measurements)."""
    projection, _z = _projections(_to_working_grid(image), key)
    return int(((projection > 0).astype(np.int8) != payload_bits(int(identifier, 16))).sum())
