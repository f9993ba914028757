"""Watermark v2: a payload tile repeated over the image, found again after crops, borders and rescaling.

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

from functools import lru_cache

import cv2
import numpy as np
from PIL import Image
from scipy import fft as scipy_fft

from headshot.peaks import parabola_vertex
from headshot.signing.watermark_payload import N_BITS, WatermarkResult, chase_decode, key_seed, payload_bits

ALGORITHM = "org.headshot.watermark.tiled.v2"
GRID = 64  # the detector's tile, in grid pixels
TILES = 8  # tiles over the short side of a marked image (1024 px: 128 px tiles)
MIN_TILE = 64
BAND = (3.2, 12.8)  # carrier frequencies, in cycles per tile (radius): periods of 1/13 to 1/3 tile
DEFAULT_STRENGTH = 0.13  # per-bit margin: carrier amplitude in grey levels (about 40.5 dB PSNR)
FLOOR = 1.0  # every bit gets at least `strength` x this whatever the photo contributes (a crop changes that)
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


def tile_size(width: int, height: int) -> int:
    """Tile side in pixels for an image to be marked: TILES over the short side, and at least
    MIN_TILE pixels, so that the finest carrier (a 1/12.8 tile period) of a small image still
    survives halving and JPEG."""
    return int(max(MIN_TILE, round(min(width, height) / TILES / 8) * 8))


@lru_cache(maxsize=8)
def _chips(key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Keyed carriers: for each chip a frequency (ky, kx), a unit phase, a bit and a sign.

    Frequencies are the half plane of integer pairs in BAND; each carries two chips (its
    cosine and sine parts), dealt to the bits in a keyed order.
    """
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
    return freqs, np.exp(1j * phase), bits, signs


def _tile_pattern(key: str, size: int, amplitudes: np.ndarray) -> np.ndarray:
    """One size x size tile of the mark: each bit's carrier (cosines of amplitude 1 at its
    chips' frequencies and phases) times that bit's signed amplitude, summed. One inverse
    FFT of a half-plane spectrum: the real part, x2, is the sum of the cosines."""
    freqs, units, bits, signs = _chips(key)
    cells = (freqs[:, 0] % size) * size + freqs[:, 1] % size
    values = signs * units * amplitudes[bits]
    area = size * size
    spectrum = np.bincount(cells, values.real, area) + 1j * np.bincount(cells, values.imag, area)
    return (np.fft.ifft2(spectrum.reshape(size, size)).real * (size * size)).astype(np.float32)


def _luma(image: Image.Image) -> np.ndarray:
    """ITU-R 601 luminance, as Pillow's "L" (8-bit), in float32."""
    return cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2GRAY).astype(np.float32)


def _grid(luma: np.ndarray, period: tuple[float, float]) -> np.ndarray:
    """Resampled so that one tile is GRID pixels, without what lies below the carriers' band."""
    h, w = luma.shape
    size = (max(8, round(w * GRID / period[1])), max(8, round(h * GRID / period[0])))
    shrinking = size[0] < w
    grid = cv2.resize(luma, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
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


def _fold(luma: np.ndarray, period: tuple[float, float]) -> np.ndarray:
    """The image folded onto one tile of the given period (in pixels, y and x)."""
    return _sum_onto_tile(_grid(luma, period))


def _chip_values(tile: np.ndarray, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Each chip's demodulated tile coefficient, and its weight (1 / the photo's power there).

    A photo's spectrum falls steeply with frequency, so low-frequency chips carry much more
    of the photo than high-frequency ones; weighting each chip by the inverse of the tile's
    radially averaged power is the matched filter for that noise.
    """
    spectrum = np.fft.fft2(tile) / (GRID * GRID)
    freqs, units, bits, signs = _chips(key)
    coefficients = spectrum[freqs[:, 0] % GRID, freqs[:, 1] % GRID]
    rings = np.hypot(freqs[:, 0], freqs[:, 1]).astype(np.int64)
    power = np.abs(coefficients) ** 2
    ring_power = np.bincount(rings, weights=power) / np.maximum(np.bincount(rings), 1)
    weights = 1.0 / (ring_power[rings] + 1e-12)
    per_bit = np.bincount(bits, weights=weights, minlength=N_BITS)
    return coefficients * np.conj(units) * signs * 2, weights / per_bit[bits]


def _correlations(tile: np.ndarray, key: str, first_bits: int = N_BITS) -> np.ndarray:
    """(first_bits, GRID, GRID): each bit's weighted carrier correlation at every circular offset.

    In grey levels of carrier amplitude: a tile carrying bit b with amplitude a gives
    about +/-a at its offset.
    """
    freqs, _units, bits, _signs = _chips(key)
    values, weights = _chip_values(tile, key)
    chosen = bits < first_bits
    cells = (bits[chosen] * GRID + freqs[chosen, 0] % GRID) * GRID + freqs[chosen, 1] % GRID
    weighted = values[chosen] * weights[chosen]
    size = first_bits * GRID * GRID
    table = np.bincount(cells, weighted.real, size) + 1j * np.bincount(cells, weighted.imag, size)
    # sum_k W_k exp(-2 pi i k.d / GRID) over k: a forward DFT evaluated at every offset d.
    return scipy_fft.fft2(table.reshape(first_bits, GRID, GRID).astype(np.complex64), workers=-1).real


def _energy(correlations: np.ndarray) -> np.ndarray:
    """The carriers' energy at every offset, each bit's surface divided by its own mean square.

    Without that normalisation a few bits whose carriers fall on the photo's own strong
    frequencies (a text's line spacing) dominate the sum and peak where the photo, not the
    mark, is; normalised, every bit has one vote and only the mark's origin gets all of them.
    """
    squared = correlations**2
    return (squared / (squared.mean(axis=(1, 2), keepdims=True) + 1e-20)).sum(axis=0)


def _peak_ratio(tile: np.ndarray, key: str) -> float:
    """How far the carriers' energy peak (over SCOUT_BITS bits) stands above its median."""
    energy = _energy(_correlations(tile, key, SCOUT_BITS))
    return float(energy.max() / (np.median(energy) + 1e-12))


def _soft_bits_at(tile: np.ndarray, key: str, offset: tuple[float, float]) -> np.ndarray:
    """Soft bits read at a (fractional) offset of the tile's origin."""
    freqs, _units, bits, _signs = _chips(key)
    values, weights = _chip_values(tile, key)
    shift = np.exp(-2j * np.pi * (freqs[:, 0] * offset[0] + freqs[:, 1] * offset[1]) / GRID)
    return np.bincount(bits, weights=(values * shift).real * weights, minlength=N_BITS)


def _decode_tile(tile: np.ndarray, key: str) -> tuple[int | None, float, np.ndarray]:
    """Find the tile's origin by the carriers' energy peak, read the bits there, check the CRC.

    Returns the identifier (None unless the CRC matched), a score (mean |z| of the bits) and
    the soft bits.
    """
    correlations = _correlations(tile, key)
    energy = _energy(correlations)
    dy, dx = np.unravel_index(int(np.argmax(energy)), energy.shape)
    offset = (
        dy + float(parabola_vertex(energy[(dy - 1) % GRID, dx], energy[dy, dx], energy[(dy + 1) % GRID, dx])),
        dx + float(parabola_vertex(energy[dy, (dx - 1) % GRID], energy[dy, dx], energy[dy, (dx + 1) % GRID])),
    )
    soft = _soft_bits_at(tile, key, offset)
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
    freqs = np.unique(_chips(key)[0], axis=0).astype(np.float64)
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


def _pre_scout(luma: np.ndarray, key: str, period: tuple[float, float]) -> float:
    """How much a candidate period looks like the mark's: the best carrier-energy peak of the
    folds at it and 0.9% and 1.8% either side (straight and flipped). A fold within 0.5% of the
    true period stands out (peak ratio 2.7-5; unmarked photos at most 2.8); the spectrum
    score alone, on a photo with structure of its own, ranked the true period as low as 13th."""
    return max(_peak_ratio(tile, key) for tile in _folds(luma, period, PRE_STEPS))


def _read(luma: np.ndarray, key: str, period: tuple[float, float]) -> tuple[int | None, float]:
    """Decode the folds near `period` whose carrier energy stands out most (scouted on
    SCOUT_BITS bits, a quarter of the cost); the identifier if a CRC matched, and the score."""
    ranked = sorted(_folds(luma, period), key=lambda tile: -_peak_ratio(tile, key))
    best = 0.0
    for tile in ranked[:DECODED_FOLDS]:
        identifier, score, _soft = _decode_tile(tile, key)
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
    """Look for the tiled mark at each candidate period (and mirrored); CRC-checked."""
    full = _luma(image)
    # The frame as it was marked (re-encoded or resized, not cropped): the tile's origin is
    # the corner, so the bits can be read there without searching for it (this is what
    # carries images of one or two tiles, like the demo's 64x64 renders).
    short = min(full.shape)
    for nominal in dict.fromkeys((float(tile_size(full.shape[1], full.shape[0])), short / TILES)):
        tile = _fold(full, (nominal, nominal))
        identifier = chase_decode(_soft_bits_at(tile, key, (0.0, 0.0)))
        if identifier is not None:
            return WatermarkResult(True, f"{identifier:08x}", _decode_tile(tile, key)[1], algorithm=ALGORITHM)
    identifier, score = _search(trim_borders(full), key)
    if identifier is not None:
        return WatermarkResult(True, f"{identifier:08x}", score, algorithm=ALGORITHM)
    return WatermarkResult(False, None, score)


def _search(luma: np.ndarray, key: str) -> tuple[int | None, float]:
    """Pre-scout the tile size this image's size implies and the spectrum's candidate periods,
    and read the READ_PERIODS that stand out most. The first candidate that stands out beyond
    anything an unmarked photo gave (CLEAR_RATIO) is read at once: most marked copies end there.
    At most READ_PERIODS + 1 periods are read (the CRC budget in docs/watermark.md)."""
    h, w = luma.shape
    nominal = float(tile_size(w, h))
    scouted, early, best = [], None, 0.0
    for period in [(nominal, nominal), *candidate_periods(luma, key, SPECTRAL_PEAKS)]:
        ratio = _pre_scout(luma, key, period)
        scouted.append((ratio, period))
        if early is None and ratio >= CLEAR_RATIO:
            early = period
            identifier, score = _read(luma, key, period)
            if identifier is not None:
                return identifier, score
            best = score
    ranked = [period for _ratio, period in sorted(scouted, key=lambda item: -item[0]) if period != early]
    for period in ranked[:READ_PERIODS]:
        identifier, score = _read(luma, key, period)
        if identifier is not None:
            return identifier, score
        best = max(best, score)
    return None, best


def embed(image: Image.Image, identifier: str, key: str, strength: float = DEFAULT_STRENGTH) -> Image.Image:
    """An RGB copy of `image` carrying `identifier` in a tile repeated over the whole frame."""
    original = np.asarray(image.convert("RGB"))
    h, w = original.shape[:2]
    size = tile_size(w, h)
    signs = payload_bits(int(identifier, 16)) * 2.0 - 1.0
    reps = (-(-h // size), -(-w // size))
    period = (float(size), float(size))
    host = _soft_bits_at(_fold(_rgb_luma(original), period), key, (0.0, 0.0))
    # Gain of the fold for a unit carrier (resampling and the high-pass lose a little),
    # measured on a patch of 3 x 3 tiles: the fold is a per-tile average.
    probe = np.tile(_tile_pattern(key, size, signs), (3, 3))
    gain = np.maximum(signs * _soft_bits_at(_fold(probe, period), key, (0.0, 0.0)), 1e-3)
    amplitude = np.maximum(FLOOR * strength, strength - signs * host) / gain
    for _ in range(2):
        pattern = np.tile(_tile_pattern(key, size, signs * amplitude), reps)[:h, :w]
        marked = _add_to_all_channels(original, np.rint(pattern))
        reached = signs * _soft_bits_at(_fold(_rgb_luma(marked), period), key, (0.0, 0.0))
        short = reached < strength * 0.9  # rounding and clipping took more than 10%
        if not short.any():
            break
        amplitude = amplitude + np.where(short, (strength - reached) / gain * 1.1, 0.0)
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
