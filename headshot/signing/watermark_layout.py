"""Which carrier of the tiled watermark carries which payload bit: the v2 and v3 layouts.

Both versions use the same carriers (the key's frequencies, phases and signs in one tile);
they differ only in how the 472 chips are dealt to the 64 bits. v2 dealt them at random, so a
bit could have all its chips at high frequencies, which a copy of 200 px at JPEG q70 no longer
holds (docs/watermark.md: 5 of 64 bits had no chip below 8 cycles per tile). v3 deals them
ring by ring in order of frequency, so every bit has exactly `LOW_CHIPS` chips among the
lowest frequencies: the *low band*, which survives small copies, and which the v3 embedder
gives a margin of its own. Sharing the carriers lets one search (period, shift) serve both
versions: only the last step, reading the bits, depends on the layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from headshot.signing.watermark_payload import N_BITS, key_seed

GRID = 64  # the detector's tile, in grid pixels
BAND = (3.2, 12.8)  # carrier frequencies, in cycles per tile (radius): periods of 1/13 to 1/3 tile
LOW_CHIPS = 2  # v3: chips per bit in the low band (the 128 lowest frequencies: below ~7.4 cycles per tile)


@dataclass(frozen=True, eq=False)
class Layout:
    """The chips of one mark version: for each chip a frequency (ky, kx) in cycles per tile,
    a unit phase, the bit it carries and a sign; `low` marks the chips of the low band (none
    in v2, which gives no margin there)."""

    algorithm: str
    version: int
    freqs: np.ndarray
    units: np.ndarray
    bits: np.ndarray
    signs: np.ndarray
    low: np.ndarray

    @property
    def has_low_band(self) -> bool:
        return bool(self.low.any())


def _carriers(key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.random.Generator]:
    """The half plane of integer frequencies in BAND, two chips each (cosine and sine part),
    with keyed phases; v2's random dealing and signs; the generator, for v3's draws after them."""
    ky, kx = np.meshgrid(np.arange(-GRID // 2, GRID // 2), np.arange(-GRID // 2, GRID // 2), indexing="ij")
    radius = np.hypot(ky, kx)
    half = (ky > 0) | ((ky == 0) & (kx > 0))
    keep = half & (radius >= BAND[0]) & (radius < BAND[1])
    freqs = np.stack([ky[keep], kx[keep]], axis=1)
    rng = np.random.default_rng(key_seed(key, "tiled-v2"))
    phase = rng.uniform(0, 2 * np.pi, len(freqs))
    freqs = np.repeat(freqs, 2, axis=0)
    phase = np.repeat(phase, 2) + np.tile([0.0, np.pi / 2], len(phase))
    order = rng.permutation(len(freqs))
    bits = np.empty(len(freqs), dtype=np.int64)
    bits[order] = np.arange(len(freqs)) % N_BITS
    signs = rng.choice(np.array([-1.0, 1.0]), size=len(freqs))
    return freqs, np.exp(1j * phase), bits, signs, np.random.default_rng(key_seed(key, "tiled-v3"))


def _v3_dealing(freqs: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Chips in order of frequency radius (ties in keyed order), dealt in rounds of N_BITS:
    each round gives every bit one chip, in a keyed order. The first LOW_CHIPS rounds are
    the low band."""
    radius = np.hypot(freqs[:, 0], freqs[:, 1])
    order = np.lexsort((rng.permutation(len(freqs)), radius))
    bits = np.empty(len(freqs), dtype=np.int64)
    for start in range(0, len(order), N_BITS):
        chunk = order[start : start + N_BITS]
        bits[chunk] = rng.permutation(N_BITS)[: len(chunk)]
    low = np.zeros(len(freqs), dtype=bool)
    low[order[: LOW_CHIPS * N_BITS]] = True
    return bits, low


@lru_cache(maxsize=8)
def layouts(key: str) -> tuple[Layout, Layout]:
    """(v3, v2) for a key: the current layout first."""
    freqs, units, bits_v2, signs, rng = _carriers(key)
    bits_v3, low = _v3_dealing(freqs, rng)
    for array in (freqs, units, bits_v2, signs, bits_v3, low):
        array.flags.writeable = False
    v3 = Layout("org.headshot.watermark.tiled.v3", 3, freqs, units, bits_v3, signs, low)
    v2 = Layout("org.headshot.watermark.tiled.v2", 2, freqs, units, bits_v2, signs, np.zeros_like(low))
    return v3, v2
