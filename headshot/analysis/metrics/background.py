"""Background warping: are long straight lines still straight next to the subject?

Diffusion models bend door frames, shelves and window bars next to the head while
keeping them straight further away. In the background (outside the head-and-shoulders
region), long straight lines are found with a Hough transform on Canny edges: a line
needs 1.5 D of edge support, so the straight parts of a bent line still find it. Each
line is then followed pixel by pixel: at every step the nearest edge pixel within
+-0.25 D across the line gives the local offset, measured from the straight line
that best fits the line's well-aligned steps. A zone's bend is the 90th percentile of
the offsets of the steps within 1 D of the subject (near) or beyond it (far), pooled
over the lines: a warp is local, so it shows in the worst tenth of the steps.

Reported: background_bend_near, background_bend_far (canonical px, 1/64 of the eye
distance) and background_bend = near - far: the extra bending next to the subject.
NaN when the background has no long straight line (a plain backdrop), when none
passes near the subject, or when none passes far from it (then near alone would
confuse a gently curved object with a warp).
"""

from __future__ import annotations

import cv2
import numpy as np

from headshot.analysis.metrics.normalise import NormalisedFace
from headshot.analysis.metrics.regions import D, background_zones, subject_mask

MIN_SUPPORT = round(1.5 * D)  # edge pixels a line needs
SEARCH = round(0.25 * D)  # how far across the line its edge is looked for
MAX_LINES = 16
MIN_STEPS = 12  # steps with an edge, per zone, before a zone counts
PERCENTILE = 90  # a bend is local: the worst tenth of a zone's steps


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


def _offsets_along(edges: np.ndarray, rho: float, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """(sample points on the line, offset of the nearest edge pixel or NaN)."""
    height, width = edges.shape
    normal = np.array([np.cos(theta), np.sin(theta)])
    direction = np.array([-normal[1], normal[0]])
    origin = rho * normal
    reach = float(np.hypot(width, height))
    steps = np.arange(-reach, reach, 1.0)
    points = origin + steps[:, None] * direction
    inside = (
        (points[:, 0] >= 0) & (points[:, 0] <= width - 1) & (points[:, 1] >= 0) & (points[:, 1] <= height - 1)
    )
    points = points[inside]
    across = np.arange(-SEARCH, SEARCH + 1)
    probe = np.round(points[:, None, :] + across[None, :, None] * normal).astype(int)
    valid = (probe[..., 0] >= 0) & (probe[..., 0] < width) & (probe[..., 1] >= 0) & (probe[..., 1] < height)
    hits = np.zeros(valid.shape, bool)
    hits[valid] = edges[probe[..., 1][valid], probe[..., 0][valid]]
    distance = np.where(hits, np.abs(across)[None, :], SEARCH + 1)
    nearest = distance.argmin(axis=1)
    offset = across[nearest].astype(np.float64)
    offset[distance.min(axis=1) > SEARCH] = np.nan
    return points, _straighten(offset)


def _straighten(offset: np.ndarray) -> np.ndarray:
    """Residuals from the straight line that best fits the edge's well-aligned steps:
    the Hough line is only accurate to half a degree, which over a long line would
    read as a bend."""
    steps = np.arange(offset.size, dtype=np.float64)
    inliers = np.isfinite(offset) & (np.abs(offset) <= 3)
    if inliers.sum() < 2 * MIN_STEPS:
        return np.full_like(offset, np.nan)
    slope, intercept = np.polyfit(steps[inliers], offset[inliers], 1)
    return np.abs(offset - (slope * steps + intercept))


def background_bend(face: NormalisedFace) -> dict[str, float]:
    edges = background_edges(face)
    near_zone, far_zone = background_zones()
    residuals: dict[str, list[np.ndarray]] = {"near": [], "far": []}
    for rho, theta in _distinct_lines(edges):
        points, offset = _offsets_along(edges, rho, theta)
        xs, ys = np.round(points[:, 0]).astype(int), np.round(points[:, 1]).astype(int)
        for name, zone in (("near", near_zone), ("far", far_zone)):
            found = zone[ys, xs] & np.isfinite(offset)
            if found.sum() >= MIN_STEPS:
                residuals[name].append(offset[found])
    near, far = (
        float(np.percentile(np.concatenate(residuals[name]), PERCENTILE)) if residuals[name] else float("nan")
        for name in ("near", "far")
    )
    return {"background_bend_near": near, "background_bend_far": far, "background_bend": near - far}
