"""Eyes: gaze toward the camera, and catchlights present and alike in both eyes.

Each eye is resampled at twice the canonical scale around its 68-point contour
(the lids and corners: the 68-point model, non-commercial licence). Inside the
contour the iris is the dark mass: the centroid of pixels darker than the contour's
30th luma percentile, weighted by how much darker. Its position is expressed between
the corners (h) and between the lids (v), both 0 at the centre, in fractions of the
eye's width/height; positive = image-right / down.

Catchlight: inside the opening, the strongest small bright spot: the white top-hat
of log luma (how much brighter than its surroundings, for spots under ~3 canonical
px); a catchlight-less, "dead" eye scores near 0.
"""

from __future__ import annotations

import cv2
import numpy as np

from headshot.analysis.metrics.filters import blur
from headshot.analysis.metrics.normalise import NormalisedFace, apply_transform

PATCH_SIZE = (112, 64)
LID_RISE = 6  # patch px (3 canonical px)  # at EYE_PATCH_SCALE: 56 x 32 canonical px
SPOT_SIGMA = 2.0  # patch px (1 canonical px): the catchlight's top-hat is averaged this wide
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _small_bright_spots(log_luma: np.ndarray) -> np.ndarray:
    """White top-hat: how much brighter each pixel is than the morphological opening,
    which keeps broad bright areas (skin, sclera) and removes spots under ~6 px."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    return log_luma - cv2.morphologyEx(log_luma.astype(np.float32), cv2.MORPH_OPEN, kernel)


def _eye(face: NormalisedFace, contour: np.ndarray) -> dict[str, float] | None:
    centre = contour.mean(axis=0)
    patch, to_patch = face.eye_patch((float(centre[0]), float(centre[1])), PATCH_SIZE)
    points = apply_transform(to_patch, contour)
    mask = np.zeros(patch.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 255)
    # The lids of hooded eyes hide the top of the iris and the 68-point contour then
    # sits low: the opening is taken as the contour grown 3 canonical px upward.
    opening = mask.copy()
    for rise in range(1, LID_RISE + 1):
        opening[:-rise] |= mask[rise:]
    inside = cv2.erode(opening, np.ones((3, 3), np.uint8)) > 0
    if inside.sum() < 30:
        return None
    luma = patch @ LUMA
    dark_limit = np.percentile(luma[inside], 30)
    weight = np.where(inside, np.clip(dark_limit - luma, 0, None), 0)
    if weight.sum() <= 1e-6:
        return None
    ys, xs = np.mgrid[0 : luma.shape[0], 0 : luma.shape[1]]
    iris = np.array([(weight * xs).sum(), (weight * ys).sum()]) / weight.sum()
    # contour order (iBUG): 0 left corner, 1-2 upper lid, 3 right corner, 4-5 lower lid
    corner_a, corner_b = (points[0], points[3]) if points[0][0] < points[3][0] else (points[3], points[0])
    axis = corner_b - corner_a
    width = float(np.linalg.norm(axis))
    h = float(np.dot(iris - corner_a, axis) / max(width**2, 1e-6)) - 0.5
    upper, lower = points[1:3].mean(axis=0), points[4:6].mean(axis=0)
    v = float((iris[1] - upper[1]) / max(lower[1] - upper[1], 1e-6)) - 0.5
    near_eye = cv2.dilate(opening, np.ones((5, 3), np.uint8)) > 0
    # a catchlight spans a few pixels: its peak alone depends on where the sampling grid
    # falls (a 1 px shift of the photo moved it by 2 z); the peak of the top-hat averaged
    # over ~2 canonical px does not
    spots = blur(_small_bright_spots(np.log(blur(luma, 0.7) + 0.02)).astype(np.float32), SPOT_SIGMA)
    values = spots[near_eye]
    if values.size < 5:
        return None
    catchlight = float(values.max())
    return {"h": h, "v": v, "catchlight": catchlight}


def eye_measures(face: NormalisedFace) -> dict[str, float]:
    left = _eye(face, face.landmarks68[36:42])
    right = _eye(face, face.landmarks68[42:48])
    if left is None or right is None:
        keys = ("gaze_h", "gaze_v", "gaze_vergence", "catchlight_strength", "catchlight_mismatch")
        return dict.fromkeys(keys, float("nan"))
    return {
        "gaze_h": (left["h"] + right["h"]) / 2,
        "gaze_v": (left["v"] + right["v"]) / 2,
        "gaze_vergence": left["h"] - right["h"],
        "catchlight_strength": (left["catchlight"] + right["catchlight"]) / 2,
        "catchlight_mismatch": abs(left["catchlight"] - right["catchlight"]),
    }
