"""Sub-pixel peak position, shared by the watermark's tile alignment and the background
metric's line following."""

from __future__ import annotations

import numpy as np


def parabola_vertex(before, at, after) -> np.ndarray:
    """Offset (-0.5 to 0.5) of the vertex of the parabola through three equally spaced
    samples around a peak at `at`; 0 where they do not curve down (no peak to refine).
    Works elementwise on arrays and on scalars."""
    before, at, after = (np.asarray(v, dtype=np.float64) for v in (before, at, after))
    curvature = before - 2 * at + after
    peaked = curvature < 0
    vertex = 0.5 * (before - after) / np.where(peaked, curvature, -1.0)
    return np.where(peaked, np.clip(vertex, -0.5, 0.5), 0.0)
