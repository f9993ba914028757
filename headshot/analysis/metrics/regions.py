"""Regions of the canonical face crop, in units of the eye distance D (see normalise.py).

Fixed regions are placed from the eye centres only, so they work without the
68-point model; they assume a roughly frontal face (|yaw| under ~25 degrees).
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np

from headshot.analysis.metrics.normalise import CANON_SIZE, EYE_DISTANCE, EYE_MID

D = float(EYE_DISTANCE)
CX, EY = EYE_MID


def _canvas() -> np.ndarray:
    return np.zeros((CANON_SIZE[1], CANON_SIZE[0]), np.uint8)


def _point(dx: float, dy: float) -> tuple[int, int]:
    return round(CX + dx * D), round(EY + dy * D)


@cache
def cheek_mask() -> np.ndarray:
    """Two discs on the cheeks, below the eyes and outside the nose/mouth folds."""
    mask = _canvas()
    for side in (-1, 1):
        cv2.circle(mask, _point(side * 0.72, 0.7), round(0.18 * D), 255, -1)
    return mask > 0


def cheek_masks() -> tuple[np.ndarray, np.ndarray]:
    """(image-left cheek, image-right cheek)."""
    both = cheek_mask()
    left, right = both.copy(), both.copy()
    left[:, round(CX) :] = False
    right[:, : round(CX)] = False
    return left, right


@cache
def wrinkle_mask() -> np.ndarray:
    """Where ageing shows as lines: forehead band, crow's feet, nasolabial folds."""
    mask = _canvas()
    cv2.rectangle(mask, _point(-0.6, -0.75), _point(0.6, -0.45), 255, -1)
    for side in (-1, 1):
        cv2.rectangle(mask, _point(side * 0.8, -0.15), _point(side * 1.0, 0.25), 255, -1)
        cv2.rectangle(mask, _point(side * 0.3, 0.95), _point(side * 0.55, 1.45), 255, -1)
    return mask > 0


@cache
def subject_mask() -> np.ndarray:
    """Head (with hair) and shoulders: everything here is the person, not background."""
    mask = _canvas()
    cv2.ellipse(mask, _point(0, -0.35), (round(1.45 * D), round(2.3 * D)), 0, 0, 360, 255, -1)
    body = np.array(
        [
            _point(-0.8, 1.5),
            _point(0.8, 1.5),
            _point(3.5, 2.5),
            _point(3.5, 5.0),
            _point(-3.5, 5.0),
            _point(-3.5, 2.5),
        ],
        np.int32,
    )
    cv2.fillPoly(mask, [body], 255)
    return mask > 0


@cache
def background_zones() -> tuple[np.ndarray, np.ndarray]:
    """(near, far): background within 1 D of the subject, and beyond it."""
    subject = subject_mask().astype(np.uint8)
    reach = round(1.0 * D)
    grown = cv2.dilate(subject, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1)))
    near = (grown > 0) & (subject == 0)
    far = grown == 0
    return near, far


@cache
def hair_band() -> np.ndarray:
    """An arc around the top and sides of the head, where hair meets the background."""
    mask = _canvas()
    centre = _point(0, -0.3)
    cv2.ellipse(mask, centre, (round(2.1 * D), round(2.5 * D)), 0, 0, 360, 255, -1)
    cv2.ellipse(mask, centre, (round(1.25 * D), round(1.6 * D)), 0, 0, 360, 0, -1)
    mask[round(EY + 0.3 * D) :, :] = 0
    return mask > 0
