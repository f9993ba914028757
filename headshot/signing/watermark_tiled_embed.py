"""The tiled watermark's embedder: informed, a margin per bit over all chips and (v3) in the low band alone.

Why two margins (measured in docs/watermark.md): a copy resized to 200 px and saved at JPEG
q70 keeps the carriers below about 7 cycles per tile and loses the finer ones, so the
detector reads such copies from the low band alone (watermark_tiled.SMALL_PERIOD). The photo
correlates with every bit's few low-band chips by chance, much more than with all its chips
(a photo's power is at low frequencies), so a margin over all chips says nothing about the
low band: v3 gives each bit a margin there too, with its own amplitude for its low chips.
The embedder folds the photo exactly as the detector will, measures how much each bit's
carriers already correlate with the photo, gives each bit what it still lacks, and checks
the result on the rounded, clipped 8-bit pixels.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from headshot.signing.watermark_layout import Layout, layouts
from headshot.signing.watermark_payload import payload_bits
from headshot.signing.watermark_tiled import fold, soft_bits_at, tile_size

DEFAULT_STRENGTH = 0.13  # per-bit margin over all chips: carrier amplitude in grey levels
LOW_STRENGTH = 0.18  # v3: per-bit margin in the low band alone, in the same units
FLOOR = 1.0  # every bit gets at least its margin x this whatever the photo contributes (a crop changes that)
LOW_FLOOR = 0.5  # the same in the low band, which small copies need and crops of them rarely get
BUILDS = 2  # 8-bit results built; before each but the first, the bits that fell short are topped up


def tile_pattern(layout: Layout, size: int, chip_amplitudes: np.ndarray) -> np.ndarray:
    """One size x size tile of the mark: each chip's cosine (at its frequency and phase, times
    its sign) with its signed amplitude, summed. One inverse FFT of a half-plane spectrum:
    the real part, x2, is the sum of the cosines."""
    cells = (layout.freqs[:, 0] % size) * size + layout.freqs[:, 1] % size
    values = layout.signs * layout.units * chip_amplitudes
    area = size * size
    spectrum = np.bincount(cells, values.real, area) + 1j * np.bincount(cells, values.imag, area)
    return (np.fft.ifft2(spectrum.reshape(size, size)).real * area).astype(np.float32)


def embed(
    image: Image.Image, identifier: str, key: str, strength: float = DEFAULT_STRENGTH, version: int = 3
) -> Image.Image:
    """An RGB copy of `image` carrying `identifier` in a tile repeated over the whole frame.

    `version` 2 writes the layout and margins of the marks delivered 2026-12-01 to 12-06
    (for measurements that compare them); signing always writes the current one.
    """
    by_version = {candidate.version: candidate for candidate in layouts(key)}
    if version not in by_version:
        raise ValueError(f"no tiled watermark version {version} (known: {sorted(by_version)})")
    layout = by_version[version]
    low_strength = strength * LOW_STRENGTH / DEFAULT_STRENGTH
    original = np.asarray(image.convert("RGB"))
    h, w = original.shape[:2]
    size = tile_size(w, h)
    signs = payload_bits(int(identifier, 16)) * 2.0 - 1.0
    reps = (-(-h // size), -(-w // size))
    period = (float(size), float(size))

    def reached(luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tile = fold(luma, period)
        full = signs * soft_bits_at(tile, layout, (0.0, 0.0))
        low = signs * soft_bits_at(tile, layout, (0.0, 0.0), low=True) if layout.has_low_band else full
        return full, low

    def pattern(amplitude: np.ndarray, low_amplitude: np.ndarray) -> np.ndarray:
        per_chip = np.where(layout.low, low_amplitude[layout.bits], amplitude[layout.bits])
        return tile_pattern(layout, size, signs[layout.bits] * per_chip)

    host_full, host_low = reached(_rgb_luma(original))
    # Gain of the fold for a unit carrier (resampling and the high-pass lose a little),
    # measured on a patch of 3 x 3 tiles: the fold is a per-tile average.
    ones = np.ones_like(signs)
    gain_full, gain_low = (np.maximum(g, 1e-3) for g in reached(np.tile(pattern(ones, ones), (3, 3))))
    amplitude = np.maximum(FLOOR * strength, strength - host_full) / gain_full
    low_amplitude = amplitude
    if layout.has_low_band:
        low_amplitude = np.maximum(LOW_FLOOR * low_strength, low_strength - host_low) / gain_low
    for build in range(BUILDS):
        offset = np.tile(pattern(amplitude, low_amplitude), reps)[:h, :w]
        marked = _add_to_all_channels(original, np.rint(offset))
        full, low = reached(_rgb_luma(marked))
        # Rounding and clipping took more than 10% of a margin:
        short_full = full < strength * 0.9
        short_low = (low < low_strength * 0.9) & layout.has_low_band
        if build == BUILDS - 1 or not (short_full | short_low).any():
            break
        amplitude = amplitude + np.where(short_full, (strength - full) / gain_full * 1.1, 0.0)
        low_amplitude = (
            low_amplitude + np.where(short_low, (low_strength - low) / gain_low * 1.1, 0.0)
            if layout.has_low_band
            else amplitude
        )
    return Image.fromarray(marked, mode="RGB")


def _rgb_luma(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)


def _add_to_all_channels(rgb: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """The same signed offset on R, G and B (so on the luminance), with 8-bit clipping.

    Saturating 8-bit adds and subtracts (OpenCV): each pixel's offset is either positive or
    negative, so add-then-subtract clips exactly like one signed add.
    """
    up = np.maximum(offset, 0).astype(np.uint8)  # |offset| is a few grey levels, far below 255
    down = np.maximum(-offset, 0).astype(np.uint8)
    return cv2.subtract(cv2.add(rgb, cv2.merge((up, up, up))), cv2.merge((down, down, down)))
