"""Symmetry errors: do paired features (earlobes/earrings, the glasses frame) match?

Landmark symmetry says nothing about an earring present on one ear only or a glasses
frame that changes shape between the eyes. The glasses surrounds are compared as
mirror images: gradient magnitude of log luma (so one-sided lighting matters little),
blurred by 2 px (so a pixel of misalignment matters little), then
asymmetry = sum |G_left - mirror(G_right)| / sum (G_left + mirror(G_right)).
The earlobes are compared by their strongest colour spot, beyond the subject's natural
one (`ear_asymmetry`, scored in headshot.analysis.reference).
Unit: dimensionless, 0 (alike) to 1 (nothing in common).

The earlobe regions are placed from the jaw points of the 68-point model
(non-commercial licence); the glasses regions from the eye centres.
"""

from __future__ import annotations

import cv2
import numpy as np

from headshot.analysis.metrics.filters import blur, gradient_magnitude, hessian
from headshot.analysis.metrics.normalise import EYE_LEFT, EYE_RIGHT, NormalisedFace
from headshot.analysis.metrics.regions import D, subject_mask

EAR_BOX = (round(0.4 * D), round(0.6 * D))  # width, height
GLASSES_BOX = (round(1.1 * D), round(0.75 * D))
BLOB_SIGMAS = (2.0, 3.5, 5.5)
EAR_BASELINE = 0.1
PEAK_SIZE = 5  # px: a spot's response must be the largest within +-2 px (the smallest blob scale)
MIRROR_SLACK = 2  # px: the mirrored frames are compared at their best relative shift within this


def _patch(image: np.ndarray, centre: tuple[float, float], size: tuple[int, int]) -> np.ndarray:
    """A patch around a (sub-pixel) centre; outside the image reads as zero."""
    width, height = size
    shift = np.array([[1, 0, width / 2 - centre[0]], [0, 1, height / 2 - centre[1]]], np.float32)
    return cv2.warpAffine(image, shift, size, flags=cv2.INTER_LINEAR, borderValue=0)


def _mirror_asymmetry(left: np.ndarray, right: np.ndarray) -> float:
    """sum |L - mirror(R)| / sum (L + mirror(R)) at the best relative shift of up to
    MIRROR_SLACK px each way: the patches carry that margin, and the left one's centre is
    compared with every shifted window of the mirrored right one. A face's mirror line is
    placed from landmarks and can be off by a pixel; a frame is not asymmetric for that."""
    slack = MIRROR_SLACK
    centre = left[slack:-slack, slack:-slack]
    mirrored = right[:, ::-1]
    height, width = centre.shape
    values = []
    for dy in range(2 * slack + 1):
        for dx in range(2 * slack + 1):
            window = mirrored[dy : dy + height, dx : dx + width]
            total = float((centre + window).sum())
            if total > 1e-6:
                values.append(float(np.abs(centre - window).sum() / total))
    return min(values) if values else float("nan")


def earlobe_centres(face: NormalisedFace) -> tuple[tuple[float, float], tuple[float, float]]:
    """Just outside the jaw line at earlobe height (68-point jaw points 3 and 15)."""
    points = face.landmarks68
    left = points[2] + np.array([-0.1 * D, 0.0])
    right = points[14] + np.array([0.1 * D, 0.0])
    return (float(left[0]), float(left[1])), (float(right[0]), float(right[1]))


def _eye_hole(face: NormalisedFace) -> np.ndarray:
    """The eyes themselves (dilated), left out of the glasses comparison: a glance to
    one side is a gaze matter, not a frame asymmetry."""
    mask = np.zeros(face.valid.shape, np.uint8)
    for eye in (face.landmarks68[36:42], face.landmarks68[42:48]):
        cv2.fillPoly(mask, [np.round(eye).astype(np.int32)], 255)
    return cv2.dilate(mask, np.ones((7, 7), np.uint8)) > 0


def _spots(log_luma: np.ndarray) -> np.ndarray:
    """Scale-normalised blob response at earring sizes (radius ~2-6 canonical px):
    sigma^2 * sqrt(det Hessian), positive where both eigenvalues share a sign (a spot
    brighter or darker than all around it: studs, pearls, gems, their highlights) and
    zero on edges and lines, which an ear's outline and hair are full of."""
    responses = []
    for sigma in BLOB_SIGMAS:
        hxx, hxy, hyy = hessian(log_luma, sigma)
        det = hxx * hyy - hxy * hxy
        responses.append(sigma**2 * np.sqrt(np.clip(det, 0, None)))
    return np.max(responses, axis=0)


def typical_ear_spot(spots: list[float]) -> float:
    """The subject's natural earlobe colour spot: the mean over both ears of their own
    photos (mirrored selfies swap the sides, so one value serves both ears)."""
    finite = [s for s in spots if np.isfinite(s)]
    return float(np.mean(finite)) if finite else float("nan")


def ear_asymmetry(left: float, right: float, typical: float) -> float:
    """|excess(L) - excess(R)| / (L + R + EAR_BASELINE), excess = max(0, spot - typical).

    Only what an ear shows beyond the subject's natural spot counts: comparing the raw
    spots, an earring on the ear with the weaker natural spot first cancels the natural
    difference (the metric dipped before it rose). The denominator is the raw total, as
    before: relative to the excess alone, small natural changes of a spot just above the
    typical level (hair blurred over an ear, a tone cast) read as large asymmetries; the
    baseline keeps two faint responses from reading as a large relative difference."""
    if not (np.isfinite(left) and np.isfinite(right) and np.isfinite(typical)):
        return float("nan")
    excess_left, excess_right = max(0.0, left - typical), max(0.0, right - typical)
    return abs(excess_left - excess_right) / (left + right + EAR_BASELINE)


def earring_strength(face: NormalisedFace, centre: tuple[float, float]) -> float:
    """The strongest colour spot (CIELAB a* or b*, /50) in the box at an earlobe, where the
    box is on the person (the head-and-shoulders silhouette of the background metric).

    Chroma, not luma: a gold stud has about the luma of skin, and the natural luma
    structure of an ear (canal shadow, rim highlight) varies far more between photos
    than its colour does. On the person only: an earring is worn on the ear, and the box
    reaches past the face's outline, where a colour spot is the background's (the end of
    a dark line against blue sky read as an earring at z 3.7)."""
    from skimage.color import rgb2lab

    margin = 2 * round(3 * BLOB_SIGMAS[-1])
    size = (EAR_BOX[0] + margin, EAR_BOX[1] + margin)
    lab = rgb2lab(np.clip(_patch(face.rgb, centre, size), 0, 1)).astype(np.float32)
    inside = _patch(face.valid.astype(np.float32), centre, size) > 0.5
    on_person = _patch(subject_mask().astype(np.float32), centre, size) > 0.5
    half = margin // 2
    strongest = 0.0
    for channel in (lab[..., 1], lab[..., 2]):
        spots = (_spots(channel / 50.0) * inside).astype(np.float32)
        # a spot counts where it peaks: the flank of something beside the box (hair, a
        # background line ending at the ear) is not a spot of the earlobe
        peaks = spots >= cv2.dilate(spots, np.ones((PEAK_SIZE, PEAK_SIZE), np.uint8))
        strongest = max(strongest, float((spots * peaks * on_person)[half:-half, half:-half].max()))
    return strongest


def paired_asymmetry(face: NormalisedFace) -> dict[str, float]:
    """Raw features: each earlobe's colour spot (`ear_asymmetry` compares them relative to
    the subject's own photos, in headshot.analysis.reference) and the glasses asymmetry."""
    ear_left, ear_right = earlobe_centres(face)
    edges = blur(gradient_magnitude(face.log_luma, 1.0), 2.0) * face.valid
    frame = edges * ~_eye_hole(face)
    box = (GLASSES_BOX[0] + 2 * MIRROR_SLACK, GLASSES_BOX[1] + 2 * MIRROR_SLACK)
    glasses = _mirror_asymmetry(_patch(frame, EYE_LEFT, box), _patch(frame, EYE_RIGHT, box))
    return {
        "ear_spot_left": earring_strength(face, ear_left),
        "ear_spot_right": earring_strength(face, ear_right),
        "glasses_asymmetry": glasses,
    }
