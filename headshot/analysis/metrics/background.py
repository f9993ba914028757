"""Background warping: are long straight lines still straight next to the subject?

Diffusion models bend door frames, shelves and window bars next to the head while
keeping them straight further away. In the background (outside the head-and-shoulders
region), candidate lines come from a Hough transform on Canny edges (0.75 D of support:
a bent line's straight parts still find it). Each candidate is then read on the signed
gradient across it (version 3):

- its edge has one polarity (dark-to-light or light-to-dark across the line); the other
  side of a bar and a crossing bar (whose gradient runs along the line) do not respond;
- its straight part is the steps whose strongest ridge of that polarity, within 4 px of
  the line, lies within 1 px of the straight line fitted to them; it needs 0.75 D of them;
- from there the ridge is tracked outward, each step taking the ridge nearest to where the
  last steps' slope predicts it (within 1 px, plus 0.5 px per step without a ridge, at most
  4 such steps), at a fraction of a pixel; a line needs 1.5 D of tracked steps, and a line
  whose track mostly repeats an earlier one's is the same edge, counted once;
- the track is median-filtered over 9 steps, and its bend at each step is the sagitta: the
  offset against the mean of the offsets 0.5 D before and after. A straight line has none
  wherever it is, whatever its angle; a line bent next to the head has it where it bends.

A zone's bend is the 90th percentile of the sagittas of the steps within 1 D of the subject
(near) or beyond it (far), pooled over the lines: a warp is local, so it shows in the worst
tenth of the steps. Reported: background_bend_near, background_bend_far (canonical px, 1/64
of the eye distance) and background_bend = near - far: the extra bending next to the subject.
NaN when the background has no long straight line (a plain backdrop), when none passes near
the subject, or when none passes far from it (then near alone would confuse a gently curved
object with a warp).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import cv2
import numpy as np

from headshot.analysis.metrics.filters import blur, gradients
from headshot.analysis.metrics.normalise import NormalisedFace
from headshot.analysis.metrics.regions import D, background_zones, subject_mask
from headshot.peaks import parabola_vertex

MIN_SUPPORT = round(0.75 * D)  # Hough votes of a candidate, and straight steps of a line
MIN_LENGTH = round(1.5 * D)  # tracked steps a line needs
SEARCH = round(0.25 * D)  # how far across the line its edge is read
SEED_REACH = 4  # px: the straight part's ridge is looked for this close to the Hough line
MAX_LINES = 40
MIN_STEPS = 12  # steps with an edge, per zone, before a zone counts
PERCENTILE = 90  # a bend is local: the worst tenth of a zone's steps
STRAIGHT = 1.0  # px: steps this close to the fitted line are its straight part
MAX_JUMP = 1.0  # px: how far a tracked ridge may be from where the slope predicts it
GAP_GROWTH = 0.5  # px more for each step without a ridge
MAX_GAP = 4  # steps without a ridge before the track is lost (a crossing bar is ~4 px wide)
SLOPE_STEPS = 8  # tracked steps the predicted slope is taken over
EDGE_FLOOR = 0.3  # a ridge weaker than this fraction of the line's own edge is not its edge
SMOOTH_STEPS = 9  # median filter of a track: a few wrong steps are not a bend
SAGITTA_REACH = round(0.5 * D)  # steps either side a bend is measured against
SAME_EDGE = 0.5  # a track this much on an earlier track's pixels is the same edge


def background_edges(face: NormalisedFace) -> np.ndarray:
    gray = np.clip(face.luma * 255, 0, 255).astype(np.uint8)
    edges = cv2.Canny(cv2.GaussianBlur(gray, (0, 0), 1.0), 40, 100) > 0
    grown = cv2.dilate(subject_mask().astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    # Padding (a crop past the photo's edge, the fill of a rotation) is perfectly flat;
    # its border is a straight edge of the framing, not of the scene.
    spread = cv2.dilate(gray, np.ones((5, 5), np.uint8)) - cv2.erode(gray, np.ones((5, 5), np.uint8))
    padding = cv2.dilate((spread <= 1).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    inside = cv2.erode(face.valid.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    return edges & ~grown & ~padding & inside


def _candidates(edges: np.ndarray) -> list[tuple[float, float]]:
    found = cv2.HoughLines(edges.astype(np.uint8) * 255, 1, np.pi / 360, MIN_SUPPORT)
    lines: list[tuple[float, float]] = []
    for rho, theta in [] if found is None else found[:, 0, :]:
        if all(abs(rho - r) > 3 or abs(np.sin(theta - t)) > np.sin(np.radians(2)) for r, t in lines):
            lines.append((float(rho), float(theta)))
        if len(lines) == MAX_LINES:
            break
    return lines


@dataclass(frozen=True)
class _Profile:
    """A candidate line: its sample points (one per px along it), the unit normal, and the
    gradient across it at every step and offset (zero away from the background's edges)."""

    points: np.ndarray  # (steps, 2) x, y
    normal: np.ndarray  # (2,)
    response: np.ndarray  # (steps, 2 * SEARCH + 1)


def _profile(
    gradient: tuple[np.ndarray, np.ndarray], allowed: np.ndarray, rho: float, theta: float
) -> _Profile:
    height, width = allowed.shape
    normal = np.array([np.cos(theta), np.sin(theta)])
    direction = np.array([-normal[1], normal[0]])
    reach = float(np.hypot(width, height))
    points = rho * normal + np.arange(-reach, reach, 1.0)[:, None] * direction
    x, y = points[:, 0], points[:, 1]
    points = points[(x >= 1) & (x <= width - 2) & (y >= 1) & (y <= height - 2)]
    across = np.arange(-SEARCH, SEARCH + 1, dtype=np.float64)
    samples = points[:, None, :] + across[None, :, None] * normal
    map_x, map_y = samples[..., 0].astype(np.float32), samples[..., 1].astype(np.float32)
    gx, gy = (cv2.remap(g, map_x, map_y, cv2.INTER_LINEAR).astype(np.float64) for g in gradient)
    near_edge = cv2.remap(allowed, map_x, map_y, cv2.INTER_NEAREST) > 0
    return _Profile(points, normal, np.where(near_edge, gx * normal[0] + gy * normal[1], 0.0))


def _ridges(response: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every positive local maximum across the line: (step, sub-pixel offset, strength)."""
    centre = response[:, 1:-1]
    rows, cols = np.nonzero((centre > response[:, :-2]) & (centre >= response[:, 2:]) & (centre > 0))
    cols = cols + 1
    at = response[rows, cols]
    return rows, cols + parabola_vertex(response[rows, cols - 1], at, response[rows, cols + 1]) - SEARCH, at


def _straight_part(steps: int, ridges) -> tuple[np.ndarray, np.ndarray, float] | None:
    """(offset of the strongest ridge near the line, mask of the straight steps, the line's
    edge strength), or None when fewer than MIN_SUPPORT steps are straight."""
    rows, offsets, strengths = ridges
    close = np.flatnonzero(np.abs(offsets) <= SEED_REACH)
    by_step = close[np.lexsort((strengths[close], rows[close]))]  # each step's strongest last
    strongest = by_step[np.r_[rows[by_step][1:] != rows[by_step][:-1], True]] if by_step.size else by_step
    seed, strength = np.full(steps, np.nan), np.zeros(steps)
    seed[rows[strongest]] = offsets[strongest]
    strength[rows[strongest]] = strengths[strongest]
    found = np.isfinite(seed)
    if found.sum() < MIN_SUPPORT:
        return None
    level = float(np.median(strength[found]))
    found &= strength >= EDGE_FLOOR * level
    position = np.arange(steps, dtype=np.float64)
    straight = found & (np.abs(seed) <= 3)
    for _ in range(3):  # the Hough line is only accurate to half a degree and a pixel
        if straight.sum() < MIN_SUPPORT:
            return None
        slope, intercept = np.polyfit(position[straight], seed[straight], 1)
        straight = found & (np.abs(seed - (slope * position + intercept)) <= STRAIGHT)
    return (seed, straight, level) if straight.sum() >= MIN_SUPPORT else None


def _track(seed: np.ndarray, straight: np.ndarray, ridges, floor: float) -> np.ndarray:
    """The straight steps as found; the rest tracked outward from them (forward, then
    backward), each step taking the ridge nearest to where the last steps' slope predicts."""
    rows, offsets, strengths = ridges
    strong = strengths >= floor
    rows, offsets = rows[strong], offsets[strong]
    bounds = np.searchsorted(rows, np.arange(seed.size + 1))
    per_step = [offsets[bounds[i] : bounds[i + 1]].tolist() for i in range(seed.size)]
    track = np.where(straight, seed, np.nan).tolist()
    for order in (range(seed.size), range(seed.size - 1, -1, -1)):
        history: list[tuple[int, float]] = []
        for count, step in enumerate(order):
            if not math.isnan(track[step]):
                history = [*history[-SLOPE_STEPS + 1 :], (count, track[step])]
                continue
            if not history or count - history[-1][0] > MAX_GAP:
                history = []
                continue
            (first, start), (last, end) = history[0], history[-1]
            slope = max(-1.0, min(1.0, (end - start) / (last - first))) if last > first else 0.0
            predicted = end + slope * (count - last)
            reach = MAX_JUMP + GAP_GROWTH * (count - last - 1)
            nearby = [o for o in per_step[step] if abs(o - predicted) <= reach]
            if nearby:
                track[step] = min(nearby, key=lambda o: abs(o - predicted))
                history = [*history[-SLOPE_STEPS + 1 :], (count, track[step])]
    return np.array(track)


def _sagitta(track: np.ndarray) -> np.ndarray:
    """|offset - mean of the offsets SAGITTA_REACH steps before and after|, on the track
    median-filtered over SMOOTH_STEPS (NaN where it is not known)."""
    half = SMOOTH_STEPS // 2
    padded = np.concatenate([np.full(half, np.nan), track, np.full(half, np.nan)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, SMOOTH_STEPS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows give NaN
        smooth = np.nanmedian(windows, axis=1)
    smooth[(np.isfinite(windows).sum(axis=1) <= half) | ~np.isfinite(track)] = np.nan
    reach, size = SAGITTA_REACH, track.size
    sagitta = np.full(size, np.nan)
    if size > 2 * reach:
        ends = 0.5 * (smooth[: size - 2 * reach] + smooth[2 * reach :])
        sagitta[reach : size - reach] = np.abs(smooth[reach : size - reach] - ends)
    return sagitta


def _line_bends(face: NormalisedFace):
    """(pixel x, pixel y where the edge is at each step, its sagitta there) of every
    distinct line the background has; where the edge was not tracked, the straight line's
    pixel."""
    edges = background_edges(face)
    gradient = gradients(blur(face.luma.astype(np.float32), 1.0))
    allowed = cv2.dilate(edges.astype(np.uint8), np.ones((3, 3), np.uint8))
    covered = np.zeros(edges.shape, bool)
    height, width = edges.shape
    for rho, theta in _candidates(edges):
        profile = _profile(gradient, allowed, rho, theta)
        response = profile.response
        # the edge's polarity: whichever sign is stronger close to the line
        close = response[:, SEARCH - 3 : SEARCH + 4]
        polarity = 1.0 if close.max(axis=1).sum() >= -close.min(axis=1).sum() else -1.0
        ridges = _ridges(polarity * response)
        found = _straight_part(response.shape[0], ridges)
        if found is None:
            continue
        seed, straight, level = found
        track = _track(seed, straight, ridges, EDGE_FLOOR * level)
        tracked = np.isfinite(track)
        if tracked.sum() < MIN_LENGTH:
            continue
        on_edge = profile.points + np.nan_to_num(track)[:, None] * profile.normal
        xs = np.clip(np.round(on_edge[:, 0]).astype(int), 0, width - 1)
        ys = np.clip(np.round(on_edge[:, 1]).astype(int), 0, height - 1)
        if covered[ys[tracked], xs[tracked]].mean() > SAME_EDGE:
            continue
        drawn = np.zeros(edges.shape, np.uint8)
        drawn[ys[tracked], xs[tracked]] = 1
        covered |= cv2.dilate(drawn, np.ones((3, 3), np.uint8)) > 0
        yield xs, ys, _sagitta(track)


def background_bend(face: NormalisedFace) -> dict[str, float]:
    near_zone, far_zone = background_zones()
    bends: dict[str, list[np.ndarray]] = {"near": [], "far": []}
    for xs, ys, sagitta in _line_bends(face):
        for name, zone in (("near", near_zone), ("far", far_zone)):
            found = zone[ys, xs] & np.isfinite(sagitta)
            if found.sum() >= MIN_STEPS:
                bends[name].append(sagitta[found])
    near, far = (
        float(np.percentile(np.concatenate(bends[name]), PERCENTILE)) if bends[name] else float("nan")
        for name in ("near", "far")
    )
    return {"background_bend_near": near, "background_bend_far": far, "background_bend": near - far}
