"""The background metric's line following (headshot/analysis/metrics/background.py), on
synthetic gradient profiles where the true edge is known: the track must stay on the line's
own edge through a bend, a gap and a crossing bar, and a straight line has no bend wherever
it is. The metric on real photos is validated in tests/test_metrics_validation.py."""

from __future__ import annotations

import numpy as np

from headshot.analysis.metrics import background as B


def _response(true_offset: np.ndarray, width: float = 1.2) -> np.ndarray:
    """A gradient profile (steps x offsets) with one positive ridge at `true_offset`."""
    across = np.arange(-B.SEARCH, B.SEARCH + 1, dtype=np.float64)
    return np.exp(-((across[None, :] - true_offset[:, None]) ** 2) / (2 * width**2))


def _follow(response: np.ndarray) -> np.ndarray:
    ridges = B._ridges(response)
    found = B._straight_part(response.shape[0], ridges)
    assert found is not None
    seed, straight, level = found
    return B._track(seed, straight, ridges, B.EDGE_FLOOR * level)


def test_a_bent_edge_is_followed_through_gaps_and_past_other_edges():
    steps = np.arange(400, dtype=np.float64)
    bump = 10.0 * np.exp(-((steps - 200) ** 2) / (2 * 26.0**2))  # a 10 px bend, like a warp
    # a dark bar 4 px wide: this edge rises, its other side (4 px on) falls
    response = _response(bump) - _response(bump + 4.0)
    response[150:154] = 0.0  # a crossing bar: no edge across the line for 4 steps
    response[228:231] = 0.0  # 3 more steps without an edge, on the bend's flank
    response[157] += 1.5 * _response(np.array([bump[157] + 5.0]))[0]  # another structure's edge
    track = _follow(response)
    known = np.isfinite(track)
    assert known.sum() >= 385, known.sum()  # all but the empty steps (and the profile's ends)
    assert not known[150:154].any() and not known[228:231].any()
    error = np.abs(track[known] - bump[known])
    assert error.max() < 0.2, error.max()  # sub-pixel, and never on the other edges
    assert abs(track[200] - 10.0) < 0.2


def test_a_straight_line_has_no_bend_at_any_angle_and_a_bump_has_its_sagitta():
    steps = np.arange(300, dtype=np.float64)
    # a track is as straight as its line: tilted by at most the Hough step's half degree
    tilted = np.tan(np.radians(0.5)) * steps - 1.0
    assert np.nanmax(B._sagitta(tilted)) < 0.02
    tilted[100:104] = np.nan  # and cut by a crossing bar
    assert np.nanmax(B._sagitta(tilted)) < 0.02
    sigma, amplitude, reach = 20.0, 6.0, B.SAGITTA_REACH
    bump = amplitude * np.exp(-((steps - 150) ** 2) / (2 * sigma**2))
    expected = amplitude * (1 - np.exp(-(reach**2) / (2 * sigma**2)))
    assert abs(B._sagitta(bump)[150] - expected) < 0.05
    with_outlier = bump.copy()
    with_outlier[150] += 8.0  # one wrong step is not a bend (median filter)
    assert abs(B._sagitta(with_outlier)[150] - expected) < 0.1
