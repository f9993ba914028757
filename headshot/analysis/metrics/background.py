"""Background warping: are long straight lines still straight next to the subject?

Diffusion models bend door frames, shelves and window bars next to the head while
keeping them straight further away. In the background (outside the head-and-shoulders
region), long straight lines are found with a Hough transform on Canny edges: a line
needs 1.5 D of edge support, so the straight parts of a bent line still find it.

Each line is then followed step by step (version 3). Its straight part is the steps
whose nearest edge pixel lies within 1 px of the straight line fitted to them; from
there the edge is tracked outward, each step taking the edge pixel nearest to the
previous step's (at most MAX_JUMP px across it, at most MAX_GAP steps without an
edge), so a bend is followed as far as it goes and an unrelated edge that merely
lies within reach of the line (a crossing structure, the end of another line) is not
taken for it. Every tracked offset is refined to a fraction of a pixel on the
gradient across the line, and the residuals from the straight part's fit are the
line's bend. A zone's bend is the 90th percentile of the residuals of the steps
within 1 D of the subject (near) or beyond it (far), pooled over the lines: a warp is
local, so it shows in the worst tenth of the steps.

Reported: background_bend_near, background_bend_far (canonical px, 1/64 of the eye
distance) and background_bend = near - far: the extra bending next to the subject.
NaN when the background has no long straight line (a plain backdrop), when none
passes near the subject, or when none passes far from it (then near alone would
confuse a gently curved object with a warp).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from headshot.analysis.metrics.normalise import NormalisedFace
from headshot.analysis.metrics.regions import D, background_zones, subject_mask

MIN_SUPPORT = round(1.5 * D)  # edge pixels a line needs, in the Hough step and in its straight part
SEARCH = round(0.25 * D)  # how far across the line its edge is looked for
MAX_LINES = 16
MIN_STEPS = 12  # steps with an edge, per zone, before a zone counts
PERCENTILE = 90  # a bend is local: the worst tenth of a zone's steps
STRAIGHT = 1.0  # px: steps this close to the fitted line are its straight part
MAX_JUMP = 1.5  # px: how far a followed edge may move across the line from one step to the next
MAX_GAP = 3  # steps without an edge before a followed edge is lost


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


def _distinct_lines(edges: np.ndarray) -> list[tuple[float, float]]:
    found = cv2.HoughLines(edges.astype(np.uint8) * 255, 1, np.pi / 360, MIN_SUPPORT)
    lines: list[tuple[float, float]] = []
    for rho, theta in [] if found is None else found[:, 0, :]:
        if all(abs(rho - r) > 6 or abs(np.sin(theta - t)) > np.sin(np.radians(4)) for r, t in lines):
            lines.append((float(rho), float(theta)))
        if len(lines) == MAX_LINES:
            break
    return lines


@dataclass(frozen=True)
class _Probe:
    """A line's sample points (one per px along it) and the edge pixels across each."""

    points: np.ndarray  # (steps, 2) x, y
    normal: np.ndarray  # (2,) unit vector across the line
    hits: np.ndarray  # (steps, 2 * SEARCH + 1) bool: an edge pixel at that offset


def _probe(edges: np.ndarray, rho: float, theta: float) -> _Probe:
    height, width = edges.shape
    normal = np.array([np.cos(theta), np.sin(theta)])
    direction = np.array([-normal[1], normal[0]])
    reach = float(np.hypot(width, height))
    points = rho * normal + np.arange(-reach, reach, 1.0)[:, None] * direction
    x, y = points[:, 0], points[:, 1]
    points = points[(x >= 1) & (x <= width - 2) & (y >= 1) & (y <= height - 2)]
    across = np.arange(-SEARCH, SEARCH + 1)
    probe = np.round(points[:, None, :] + across[None, :, None] * normal).astype(int)
    valid = (probe[..., 0] >= 0) & (probe[..., 0] < width) & (probe[..., 1] >= 0) & (probe[..., 1] < height)
    hits = np.zeros(valid.shape, bool)
    hits[valid] = edges[probe[..., 1][valid], probe[..., 0][valid]]
    return _Probe(points, normal, hits)


def _straight_part(hits: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(offset of the nearest edge pixel, mask of the straight steps), or None when the
    line has fewer than MIN_SUPPORT straight steps."""
    across = np.arange(hits.shape[1]) - SEARCH
    distance = np.where(hits, np.abs(across)[None, :], SEARCH + 1)
    nearest = across[distance.argmin(axis=1)].astype(np.float64)
    nearest[distance.min(axis=1) > SEARCH] = np.nan
    steps = np.arange(nearest.size, dtype=np.float64)
    straight = np.isfinite(nearest) & (np.abs(nearest) <= 3)
    for _ in range(3):  # the Hough line is only accurate to half a degree and a pixel
        if straight.sum() < MIN_SUPPORT:
            return None
        slope, intercept = np.polyfit(steps[straight], nearest[straight], 1)
        straight = np.isfinite(nearest) & (np.abs(nearest - (slope * steps + intercept)) <= STRAIGHT)
    return (nearest, straight) if straight.sum() >= MIN_SUPPORT else None


def _follow(hits: np.ndarray, nearest: np.ndarray, straight: np.ndarray) -> np.ndarray:
    """Offsets of the line's edge: the straight steps as found, the rest tracked outward
    from them (forward, then backward) through the edge pixel nearest the last one."""
    offset = np.where(straight, nearest, np.nan)
    columns = [np.flatnonzero(row) - SEARCH for row in hits]
    for order in (range(offset.size), range(offset.size - 1, -1, -1)):
        last, gap = None, 0
        for step in order:
            if np.isfinite(offset[step]):
                last, gap = offset[step], 0
                continue
            gap += 1
            if gap > MAX_GAP:
                last = None
            if last is None or columns[step].size == 0:
                continue
            candidate = columns[step][np.abs(columns[step] - last).argmin()]
            if abs(candidate - last) <= MAX_JUMP:
                offset[step], last, gap = candidate, float(candidate), 0
    return offset


def _sub_pixel(offset: np.ndarray, probe: _Probe, gradient: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Each edge offset moved to the peak of the gradient across the line (a parabola
    through the pixel and its two neighbours): whole-pixel offsets make the percentile
    jump by a pixel with a re-save or a sub-pixel shift of the photo."""
    found = np.isfinite(offset)
    centre = probe.points[found] + offset[found][:, None] * probe.normal
    samples = centre[:, None, :] + np.array([-1.0, 0.0, 1.0])[None, :, None] * probe.normal
    map_x, map_y = samples[..., 0].astype(np.float32), samples[..., 1].astype(np.float32)
    gx, gy = (cv2.remap(g, map_x, map_y, cv2.INTER_LINEAR).astype(np.float64) for g in gradient)
    strength = np.abs(gx * probe.normal[0] + gy * probe.normal[1])
    before, at, after = strength[:, 0], strength[:, 1], strength[:, 2]
    curvature = before - 2 * at + after
    peaked = curvature < -1e-9
    shift = np.where(peaked, 0.5 * (before - after) / np.where(peaked, curvature, -1.0), 0.0)
    refined = offset.copy()
    refined[found] += np.clip(shift, -0.5, 0.5)
    return refined


def _line_bend(probe: _Probe, gradient: tuple[np.ndarray, np.ndarray]) -> np.ndarray | None:
    """|residual| from the straight part's fit at every step (NaN where the edge was not
    followed), or None when the line has too short a straight part."""
    found = _straight_part(probe.hits)
    if found is None:
        return None
    nearest, straight = found
    offset = _sub_pixel(_follow(probe.hits, nearest, straight), probe, gradient)
    steps = np.arange(offset.size, dtype=np.float64)
    slope, intercept = np.polyfit(steps[straight], offset[straight], 1)
    return np.abs(offset - (slope * steps + intercept))


def _gradient(face: NormalisedFace) -> tuple[np.ndarray, np.ndarray]:
    smooth = cv2.GaussianBlur(face.luma.astype(np.float32), (0, 0), 1.0)
    return cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)


def background_bend(face: NormalisedFace) -> dict[str, float]:
    edges = background_edges(face)
    gradient = _gradient(face)
    near_zone, far_zone = background_zones()
    residuals: dict[str, list[np.ndarray]] = {"near": [], "far": []}
    for rho, theta in _distinct_lines(edges):
        probe = _probe(edges, rho, theta)
        bend = _line_bend(probe, gradient)
        if bend is None:
            continue
        xs, ys = np.round(probe.points[:, 0]).astype(int), np.round(probe.points[:, 1]).astype(int)
        for name, zone in (("near", near_zone), ("far", far_zone)):
            found = zone[ys, xs] & np.isfinite(bend)
            if found.sum() >= MIN_STEPS:
                residuals[name].append(bend[found])
    near, far = (
        float(np.percentile(np.concatenate(residuals[name]), PERCENTILE)) if residuals[name] else float("nan")
        for name in ("near", "far")
    )
    return {"background_bend_near": near, "background_bend_far": far, "background_bend": near - far}
