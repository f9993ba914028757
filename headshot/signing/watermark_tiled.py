"""The tiled watermark (v3, and v2): a payload tile repeated over the image, found after crops and rescaling.

Why this design (measured in docs/watermark.md): profile-photo uploaders crop, shift, pad and
rescale. v1 tied its carriers to the whole frame, so any change of the frame lost the mark.
Here the 64 payload bits (32-bit identifier + CRC-32) live in one square tile of band-limited
noise that repeats over the whole image, 8 tiles over the short side. A crop keeps whole
copies of the tile, only shifted; a border adds none.

The detector knows neither the scale nor the shift. Candidate periods come from the spectrum
(the key's carrier frequencies light up at k / period) and are pre-scouted by folding the
image onto one 64x64 tile at each; the shift is where every bit's carrier correlation, over
all circular offsets at once (a batch of FFTs), peaks. An identifier is reported only when
the CRC-32 matches. The embedder is informed: it measures, with the detector's own fold, how
much each bit's carrier already correlates with the photo and adds what is missing.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image
from scipy import fft as scipy_fft

from headshot.peaks import parabola_vertex
from headshot.signing.watermark_layout import GRID, Layout, layouts
from headshot.signing.watermark_payload import N_BITS, WatermarkResult, chase_decode, decode_bits

TILES = 8  # tiles over the short side of a marked image (1024 px: 128 px tiles)
MIN_TILE = 64
SPECTRAL_PEAKS = 10  # peaks of the spectrum score taken as candidate periods (with their multiples)
MAX_CANDIDATES = 20  # candidate periods from the spectrum, each pre-scouted by a few folds
READ_PERIODS = 2  # the candidates whose pre-scouting stands out most are fully read
CLEAR_RATIO = 3.2  # a pre-scout this high is read at once (unmarked photos: at most 2.8 in 533)
SCOUT_BITS = 24  # bits whose carrier energy ranks the folds near a candidate period
DECODED_FOLDS = 3  # the best-ranked folds of a period that are decoded (and CRC-checked)
SCALE_STEPS = tuple(sign * 0.005 * i for i in range(5) for sign in ((1,) if i == 0 else (-1, 1)))
FOLD_TILES = 16  # tiles per side that a search fold adds up, at most (the central ones)
PRE_STEPS = (0.0, -0.009, 0.009, -0.018, 0.018)  # the folds that pre-scout a candidate period
MIN_PERIOD = 28  # shortest tile period looked for, in analysis pixels (carriers below 0.46 cycles/px)
WHITEN_WINDOW = 21  # frequency bins of the local spectrum average that whitening divides by
ANALYSIS_SIDE = 768  # images are analysed for their period at most this large
HIGH_PASS_SIGMA = GRID / 8  # grid pixels; removes what lies below the band before folding
SMALL_PERIOD = 36.0  # an uncropped copy whose tile is shorter (px; short side 288) is read from v3's low band


def tile_size(width: int, height: int) -> int:
    """Tile side in pixels for an image to be marked: TILES over the short side, and at least
    MIN_TILE pixels, so that the finest carrier (a 1/12.8 tile period) of a small image still
    survives halving and JPEG."""
    return int(max(MIN_TILE, round(min(width, height) / TILES / 8) * 8))


def _luma(image: Image.Image) -> np.ndarray:
    """ITU-R 601 luminance, as Pillow's "L" (8-bit), in float32."""
    return cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2GRAY).astype(np.float32)


def _grid(luma: np.ndarray, period: tuple[float, float]) -> np.ndarray:
    """Resampled so that one tile is GRID pixels, without what lies below the carriers' band."""
    h, w = luma.shape
    size = (max(8, round(w * GRID / period[1])), max(8, round(h * GRID / period[0])))
    shrinking = size[0] < w
    # Upsampling is bicubic: bilinear lost 23-31% of the carriers at 6-7 cycles per tile on a
    # 200 px copy (a tile of 25 px), which the small copies' low band cannot spare.
    grid = cv2.resize(luma, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    # The Gaussian low-pass (sigma HIGH_PASS_SIGMA) is computed at a quarter of the size:
    # what it keeps is smooth, and this is 10x cheaper than blurring the full grid.
    gh, gw = grid.shape
    quarter = cv2.resize(grid, (max(2, gw // 4), max(2, gh // 4)), interpolation=cv2.INTER_AREA)
    low = cv2.GaussianBlur(quarter, (0, 0), HIGH_PASS_SIGMA / 4)
    return grid - cv2.resize(low, (gw, gh), interpolation=cv2.INTER_LINEAR)


def _sum_onto_tile(grid: np.ndarray) -> np.ndarray:
    """Every GRID x GRID tile of the grid added up (the mean tile, in grey levels)."""
    gh, gw = grid.shape
    padded = np.zeros((-(-gh // GRID) * GRID, -(-gw // GRID) * GRID), dtype=np.float64)
    padded[:gh, :gw] = grid
    tiles = padded.reshape(padded.shape[0] // GRID, GRID, padded.shape[1] // GRID, GRID)
    return tiles.sum(axis=(0, 2)) * (GRID * GRID / (gh * gw))


def fold(luma: np.ndarray, period: tuple[float, float]) -> np.ndarray:
    """The image folded onto one tile of the given period (in pixels, y and x)."""
    return _sum_onto_tile(_grid(luma, period))


def chip_values(tile: np.ndarray, layout: Layout, low: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Each chip's demodulated tile coefficient, and its weight (1 / the photo's power there).

    A photo's spectrum falls steeply with frequency, so low-frequency chips carry much more
    of the photo than high-frequency ones; weighting each chip by the inverse of the tile's
    radially averaged power is the matched filter for that noise. With `low`, only the
    layout's low band is weighted (the chips a small copy still holds).
    """
    spectrum = np.fft.fft2(tile) / (GRID * GRID)
    freqs = layout.freqs
    coefficients = spectrum[freqs[:, 0] % GRID, freqs[:, 1] % GRID]
    rings = np.hypot(freqs[:, 0], freqs[:, 1]).astype(np.int64)
    power = np.abs(coefficients) ** 2
    ring_power = np.bincount(rings, weights=power) / np.maximum(np.bincount(rings), 1)
    weights = 1.0 / (ring_power[rings] + 1e-12)
    if low:
        weights = weights * layout.low
    per_bit = np.bincount(layout.bits, weights=weights, minlength=N_BITS)
    return coefficients * np.conj(layout.units) * layout.signs * 2, weights / per_bit[layout.bits]


def _correlations(tile: np.ndarray, layout: Layout, low: bool, first_bits: int = N_BITS) -> np.ndarray:
    """(first_bits, GRID, GRID): each bit's weighted carrier correlation at every circular offset.

    In grey levels of carrier amplitude: a tile carrying bit b with amplitude a gives
    about +/-a at its offset.
    """
    freqs, bits = layout.freqs, layout.bits
    values, weights = chip_values(tile, layout, low)
    chosen = (bits < first_bits) & (weights > 0)
    # Re sum_k W_k exp(-2 pi i k.d / GRID) over the chips k, at every offset d, is an inverse
    # real FFT of the Hermitian spectrum that puts conj(W_k) / 2 at k and W_k / 2 at -k (half
    # the cost of a complex FFT). Only the half kx >= 0 is stored.
    weighted = values[chosen] * weights[chosen] / 2
    ky, kx, bit = freqs[chosen, 0], freqs[chosen, 1], bits[chosen]
    half = GRID // 2 + 1
    size = first_bits * GRID * half
    cells = np.concatenate(
        [
            ((bit * GRID + ky % GRID) * half + kx)[kx >= 0],
            ((bit * GRID + (-ky) % GRID) * half - kx)[kx <= 0],
        ]
    )
    entries = np.concatenate([np.conj(weighted[kx >= 0]), weighted[kx <= 0]])
    table = np.bincount(cells, entries.real, size) + 1j * np.bincount(cells, entries.imag, size)
    table = table.reshape(first_bits, GRID, half).astype(np.complex64)
    return scipy_fft.irfft2(table, s=(GRID, GRID), workers=-1) * (GRID * GRID)


def _energy(correlations: np.ndarray) -> np.ndarray:
    """The carriers' energy at every offset, each bit's surface divided by its own mean square.

    Without that normalisation a few bits whose carriers fall on the photo's own strong
    frequencies (a text's line spacing) dominate the sum and peak where the photo, not the
    mark, is; normalised, every bit has one vote and only the mark's origin gets all of them.
    """
    squared = correlations**2
    return (squared / (squared.mean(axis=(1, 2), keepdims=True) + 1e-20)).sum(axis=0)


def _peak_ratio(tile: np.ndarray, layout: Layout) -> float:
    """How far the carriers' energy peak (over SCOUT_BITS bits) stands above its median."""
    energy = _energy(_correlations(tile, layout, False, SCOUT_BITS))
    return float(energy.max() / (np.median(energy) + 1e-12))


def soft_bits_at(
    tile: np.ndarray, layout: Layout, offset: tuple[float, float], low: bool = False
) -> np.ndarray:
    """Soft bits read at a (fractional) offset of the tile's origin."""
    freqs = layout.freqs
    values, weights = chip_values(tile, layout, low)
    shift = np.exp(-2j * np.pi * (freqs[:, 0] * offset[0] + freqs[:, 1] * offset[1]) / GRID)
    return np.bincount(layout.bits, weights=(values * shift).real * weights, minlength=N_BITS)


def _decode_tile(tile: np.ndarray, layout: Layout) -> tuple[int | None, float, np.ndarray]:
    """Find the tile's origin by the carriers' energy peak, read the bits there, check the CRC.

    Returns the identifier (None unless the CRC matched), a score (mean |z| of the bits) and
    the soft bits.
    """
    correlations = _correlations(tile, layout, False)
    energy = _energy(correlations)
    dy, dx = np.unravel_index(int(np.argmax(energy)), energy.shape)
    offset = (
        dy + float(parabola_vertex(energy[(dy - 1) % GRID, dx], energy[dy, dx], energy[(dy + 1) % GRID, dx])),
        dx + float(parabola_vertex(energy[dy, (dx - 1) % GRID], energy[dy, dx], energy[dy, (dx + 1) % GRID])),
    )
    soft = soft_bits_at(tile, layout, offset)
    noise = correlations.std(axis=(1, 2)) + 1e-9
    return chase_decode(soft), float(np.abs(soft / noise).mean()), soft


def candidate_periods(luma: np.ndarray, key: str, count: int = 3) -> list[tuple[float, float]]:
    """Tile periods (py, px) in pixels where the key's carrier frequencies light up the spectrum.

    A repeated tile puts its carriers' energy at frequencies k / period for the keyed set of k.
    The spectrum is whitened (divided by its radial average: a photo's spectrum is smooth and
    roughly isotropic), and for each period on a fine logarithmic grid the whitened power at
    those frequencies is summed, straight and mirrored; the best few periods are returned.
    """
    h, w = luma.shape
    ratio = min(1.0, ANALYSIS_SIDE / max(h, w))
    small = (
        cv2.resize(luma, (round(w * ratio), round(h * ratio)), interpolation=cv2.INTER_AREA)
        if ratio < 1
        else luma
    )
    sh, sw = small.shape
    residual = small - cv2.GaussianBlur(small, (0, 0), 4)
    power = np.fft.fftshift(np.abs(np.fft.fft2(residual - residual.mean())) ** 2)
    background = cv2.blur(power, (WHITEN_WINDOW, WHITEN_WINDOW), borderType=cv2.BORDER_REFLECT)
    whitened = np.minimum(power / (background + 1e-9), 30.0)
    whitened[sh // 2 - 1 : sh // 2 + 2, sw // 2 - 1 : sw // 2 + 2] = 0
    # Energy that leaks into the neighbouring bins (a crop rarely keeps whole tiles) counts too.
    whitened = cv2.boxFilter(whitened, -1, (3, 3), normalize=False)
    freqs = np.unique(layouts(key)[0].freqs, axis=0).astype(np.float64)
    # At least three tiles across, so that the carriers are spikes apart from each other.
    periods = np.exp(np.arange(np.log(MIN_PERIOD), np.log(max(MIN_PERIOD * 1.01, min(sh, sw) / 3)), 0.004))
    scores = np.zeros(len(periods))
    for flip in (1.0, -1.0):
        rows = (freqs[None, :, 0] * sh / periods[:, None]).round().astype(np.int64) + sh // 2
        cols = (flip * freqs[None, :, 1] * sw / periods[:, None]).round().astype(np.int64) + sw // 2
        inside = (rows >= 0) & (rows < sh) & (cols >= 0) & (cols < sw)
        values = np.where(inside, whitened[rows.clip(0, sh - 1), cols.clip(0, sw - 1)], 0.0)
        scores = np.maximum(scores, values.mean(axis=1))
    local = [i for i in range(1, len(scores) - 1) if scores[i] >= scores[i - 1] and scores[i] > scores[i + 1]]
    best = sorted(local, key=lambda i: -scores[i])[:count]
    # A fraction of the period also lights up: the tile's 8-bit rounding and clipping put
    # energy on every multiple of 1 / period, and where the photo has no content of its own
    # (above the cut-off of an upscaled photo) whitening makes that stand out. So the double
    # and the quadruple of each peak are candidates too.
    found: list[float] = []
    for i in best:
        for multiple in (1, 2, 4):
            period = periods[i] * multiple
            if period <= periods[-1] * 1.01 and all(abs(period / other - 1) > 0.01 for other in found):
                found.append(period)
    return [(period / ratio, period / ratio) for period in found[:MAX_CANDIDATES]]


def _folds(luma: np.ndarray, period: tuple[float, float], steps: tuple[float, ...] = SCALE_STEPS):
    """The image folded at the period and at steps of 0.5% up to 2% beside it, each straight
    and flipped (the mirror image folds to the flipped tile): the fold needs the period to
    within about 0.3%, the spectrum gives it to 1-2%. The grid is made once; each step
    only stretches it a little. At most FOLD_TILES tiles per side (the central ones) are
    folded: more add little, and a short period on a large image would make a huge grid."""
    h, w = luma.shape
    keep_h, keep_w = min(h, round(FOLD_TILES * period[0])), min(w, round(FOLD_TILES * period[1]))
    top, left = (h - keep_h) // 2, (w - keep_w) // 2
    grid = _grid(luma[top : top + keep_h, left : left + keep_w], period)
    gh, gw = grid.shape
    for step in steps:
        stretched = grid
        if step:
            size = (max(8, round(gw / (1 + step))), max(8, round(gh / (1 + step))))
            stretched = cv2.resize(grid, size, interpolation=cv2.INTER_LINEAR)
        tile = _sum_onto_tile(stretched)
        yield tile
        yield tile[:, ::-1]


def _pre_scout(luma: np.ndarray, key: str, period: tuple[float, float]) -> list[tuple[float, Layout]]:
    """How much a candidate period looks like the mark's, for each layout: the best carrier-
    energy peak of the folds at it and 0.9% and 1.8% either side (straight and flipped). A
    fold within 0.5% of the true period stands out (peak ratio 2.7-5; unmarked photos at most
    2.8); the spectrum score alone, on a photo with structure of its own, ranked the true
    period as low as 13th."""
    tiles = list(_folds(luma, period, PRE_STEPS))
    return [(max(_peak_ratio(tile, layout) for tile in tiles), layout) for layout in layouts(key)]


def _read(luma: np.ndarray, layout: Layout, period: tuple[float, float]) -> tuple[int | None, float]:
    """Decode the folds near `period` whose carrier energy stands out most (scouted on
    SCOUT_BITS bits, a quarter of the cost); the identifier if a CRC matched, and the score."""
    ranked = sorted(_folds(luma, period), key=lambda tile: -_peak_ratio(tile, layout))
    best = 0.0
    for tile in ranked[:DECODED_FOLDS]:
        identifier, score, _soft = _decode_tile(tile, layout)
        if identifier is not None:
            return identifier, score
        best = max(best, score)
    return None, best


def trim_borders(luma: np.ndarray, tolerance: float = 2.0) -> np.ndarray:
    """Without the uniform margins a screenshot or a padded upload adds around the image.

    Where a margin is found, 8 more pixels go too: JPEG's blocks smear the edge between
    margin and image, and a strong edge in the fold would drown the carriers.
    """

    def kept(spread: np.ndarray) -> tuple[int, int]:
        busy = np.flatnonzero(spread > tolerance)
        if len(busy) == 0:
            return 0, len(spread)
        first, last = int(busy[0]), int(busy[-1]) + 1
        return first + (8 if first > 0 else 0), last - (8 if last < len(spread) else 0)

    top, bottom = kept(luma.std(axis=1))
    left, right = kept(luma.std(axis=0))
    trimmed = luma[top:bottom, left:right]
    return trimmed if min(trimmed.shape, default=0) >= 16 else luma


def detect(image: Image.Image, key: str) -> WatermarkResult:
    """Look for the tiled mark (v3 or v2) at each candidate period (and mirrored); CRC-checked."""
    full = _luma(image)
    # The frame as it was marked (re-encoded or resized, not cropped): the tile's origin is
    # the corner, so the bits can be read there without searching for it (this is what
    # carries images of one or two tiles, like the demo's 64x64 renders, and small copies).
    short = min(full.shape)
    for nominal in dict.fromkeys((float(tile_size(full.shape[1], full.shape[0])), short / TILES)):
        identifier, score, layout = _read_at_origin(fold(full, (nominal, nominal)), key, nominal)
        if identifier is not None:
            return WatermarkResult(True, f"{identifier:08x}", score, algorithm=layout.algorithm)
    identifier, score, layout = _search(trim_borders(full), key)
    if identifier is not None:
        return WatermarkResult(True, f"{identifier:08x}", score, algorithm=layout.algorithm)
    return WatermarkResult(False, None, score)


def _read_at_origin(tile: np.ndarray, key: str, period: float) -> tuple[int | None, float, Layout]:
    """The bits at the tile's corner: v3 with the chase decoder (22 CRC checks), then v2 by
    its hard decisions alone (1 check: the budget grows by one check per read, not by 22).

    (Choosing one layout by how strongly its bits stand out was tried and failed: on a
    one-tile image, the photo itself made v2's bits stand out more than v3's true ones.)
    """
    current = layouts(key)[0]
    for layout in layouts(key):
        low = layout.has_low_band and period < SMALL_PERIOD
        soft = soft_bits_at(tile, layout, (0.0, 0.0), low)
        identifier = chase_decode(soft) if layout is current else decode_bits((soft > 0).astype(np.int8))
        if identifier is not None:
            noise = _correlations(tile, layout, low).std(axis=(1, 2)) + 1e-9
            return identifier, float(np.abs(soft / noise).mean()), layout
    return None, 0.0, current


def _search(luma: np.ndarray, key: str) -> tuple[int | None, float, Layout]:
    """Pre-scout the tile size this image's size implies and the spectrum's candidate periods
    (each for both layouts), and read the READ_PERIODS that stand out most, each in the layout
    that made it stand out. The first that stands out beyond anything an unmarked photo gave
    (CLEAR_RATIO) is read at once: most marked copies end there. At most READ_PERIODS + 1
    periods are read (the CRC budget in docs/watermark.md)."""
    h, w = luma.shape
    nominal = float(tile_size(w, h))
    scouted, early, best = [], None, 0.0
    current = layouts(key)[0]
    for period in [(nominal, nominal), *candidate_periods(luma, key, SPECTRAL_PEAKS)]:
        for ratio, layout in _pre_scout(luma, key, period):
            scouted.append((ratio, period, layout))
            if early is None and ratio >= CLEAR_RATIO:
                early = (period, layout)
                identifier, score = _read(luma, layout, period)
                if identifier is not None:
                    return identifier, score, layout
                best = score
    ranked = [(period, layout) for _r, period, layout in sorted(scouted, key=lambda item: -item[0])]
    for period, layout in [item for item in ranked if item != early][:READ_PERIODS]:
        identifier, score = _read(luma, layout, period)
        if identifier is not None:
            return identifier, score, layout
        best = max(best, score)
    return None, best, current
