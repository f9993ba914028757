"""Controlled manipulations that imitate the artifacts of AI headshots on a real photo.

Each manipulation imitates one artifact (plastic skin, a single earring, bent background
lines, eyes off camera, dead eyes, ...) with a strength from 0 (none) to 1, applied to a
real photo in its own pixel space at the place where the artifact shows, placed from the
face's landmarks and never from a metric's own numbers. They validate the metrics
(docs/metrics.md) and let the demo show the audit's flags firing on a real face.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from headshot.analysis.metrics.normalise import CANON_SIZE, NormalisedFace, apply_transform, normalise_face
from headshot.analysis.metrics.regions import CX, EY, D, hair_band, subject_mask
from headshot.errors import HeadshotError

# ---- placing things on the source photo ------------------------------------------------


def _to_source(face: NormalisedFace, canonical_mask: np.ndarray) -> np.ndarray:
    """A canonical-frame mask (bool) drawn back onto the source photo (float 0..1)."""
    height, width = face.source.shape[:2]
    return cv2.warpAffine(
        canonical_mask.astype(np.float32),
        face.transform,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderValue=0,
    )


def _source_points(face: NormalisedFace, canonical_points) -> np.ndarray:
    inverse = cv2.invertAffineTransform(face.transform)
    return apply_transform(inverse, np.asarray(canonical_points, dtype=np.float64))


def _source_scale(face: NormalisedFace) -> float:
    """Source px per canonical px."""
    return 1.0 / float(np.sqrt(abs(np.linalg.det(face.transform[:, :2]))))


def _blend(base: np.ndarray, changed: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    alpha = alpha[..., None] if alpha.ndim == 2 else alpha
    out = base.astype(np.float32) * (1 - alpha) + changed.astype(np.float32) * alpha
    return np.clip(out, 0, 255).astype(np.uint8)


def _face_hull(face: NormalisedFace) -> np.ndarray:
    """The face inside the jaw line and up to the forehead, without eyes and mouth."""
    mask = np.zeros((CANON_SIZE[1], CANON_SIZE[0]), np.uint8)
    points = face.landmarks68
    forehead = points[17:27] - np.array([0, 0.35 * D])
    cv2.fillPoly(mask, [np.round(np.vstack([points[0:17], forehead[::-1]])).astype(np.int32)], 255)
    for part in (points[36:42], points[42:48], points[48:60]):
        cv2.fillPoly(mask, [np.round(part).astype(np.int32)], 0)
    return cv2.GaussianBlur(mask.astype(np.float32) / 255, (0, 0), 2) > 0.5


def _soft(mask: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma)


# ---- the manipulations ------------------------------------------------------------------


def smooth_skin(photo: np.ndarray, face: NormalisedFace, strength: float) -> np.ndarray:
    """Plastic skin: edge-preserving smoothing of the face skin, blended in by strength."""
    if strength <= 0:
        return photo
    scale = _source_scale(face)
    smooth = photo
    for _ in range(3):
        smooth = cv2.bilateralFilter(smooth, d=-1, sigmaColor=30, sigmaSpace=3 * scale)
    alpha = _soft(_to_source(face, _face_hull(face)), 2 * scale) * strength
    return _blend(photo, smooth, alpha)


def tone_cast(photo: np.ndarray, face: NormalisedFace, strength: float) -> np.ndarray:
    """Skin-tone shift: a warm/orange cast on the face skin (up to +25% red, -25% blue)."""
    if strength <= 0:
        return photo
    gains = np.array([1 + 0.25 * strength, 1.0, 1 - 0.25 * strength], dtype=np.float32)
    cast = np.clip(photo.astype(np.float32) * gains, 0, 255)
    alpha = _soft(_to_source(face, _face_hull(face)), 3 * _source_scale(face))
    return _blend(photo, cast, alpha)


def earring(photo: np.ndarray, face: NormalisedFace, strength: float, side: str = "left") -> np.ndarray:
    """One gold stud (dark rim, bright face, white highlight) on one earlobe only
    (image-left by default), opacity = strength."""
    if strength <= 0:
        return photo
    from headshot.analysis.metrics.symmetry import earlobe_centres

    lobes = earlobe_centres(face)
    centre = _source_points(face, [lobes[0] if side == "left" else lobes[1]])[0]
    radius = 0.12 * D * _source_scale(face)
    layer = photo.copy()
    cv2.circle(layer, (round(centre[0]), round(centre[1])), round(radius), (150, 105, 30), -1, cv2.LINE_AA)
    cv2.circle(
        layer, (round(centre[0]), round(centre[1])), round(radius * 0.75), (235, 190, 80), -1, cv2.LINE_AA
    )
    cv2.circle(
        layer,
        (round(centre[0] - radius / 3), round(centre[1] - radius / 3)),
        max(1, round(radius / 3)),
        (255, 255, 235),
        -1,
        cv2.LINE_AA,
    )
    alpha = np.zeros(photo.shape[:2], np.float32)
    cv2.circle(alpha, (round(centre[0]), round(centre[1])), round(radius + 1), 1.0, -1, cv2.LINE_AA)
    return _blend(photo, layer, alpha * strength)


def blur_hair(photo: np.ndarray, face: NormalisedFace, strength: float) -> np.ndarray:
    """Hair melting into the background: blur of the hair/background band, up to 0.12 D."""
    if strength <= 0:
        return photo
    scale = _source_scale(face)
    blurred = cv2.GaussianBlur(photo, (0, 0), max(0.3, 0.12 * D * scale * strength))
    alpha = _soft(_to_source(face, hair_band()), 3 * scale)
    return _blend(photo, blurred, alpha)


def line_layer(face: NormalisedFace, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Straight dark lines (a window frame / shelving) behind the subject: (rgb, alpha)."""
    height, width = shape
    scale = _source_scale(face)
    alpha = np.zeros(shape, np.float32)
    step = round(0.45 * D * scale)
    thickness = max(2, round(0.06 * D * scale))
    for x in range(step // 2, width, step):
        cv2.line(alpha, (x, 0), (x, height), 1.0, thickness, cv2.LINE_AA)
    for y in range(step // 2, height, 2 * step):
        cv2.line(alpha, (0, y), (width, y), 1.0, thickness, cv2.LINE_AA)
    behind = 1 - np.clip(_to_source(face, _grown_subject()), 0, 1)
    rgb = np.zeros((height, width, 3), np.uint8) + np.array([40, 30, 20], np.uint8)
    return rgb, alpha * behind


def _grown_subject() -> np.ndarray:
    mask = subject_mask().astype(np.uint8)
    return cv2.dilate(mask, np.ones((9, 9), np.uint8)) > 0


def warp_background(
    photo: np.ndarray, face: NormalisedFace, strength: float, lines: bool = True
) -> np.ndarray:
    """Background lines bent next to the head: lines composited behind the subject, then
    displaced by a smooth bump beside each temple (amplitude up to 0.2 D each way)."""
    rgb, alpha = line_layer(face, photo.shape[:2])
    if strength > 0:
        height, width = photo.shape[:2]
        scale = _source_scale(face)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        dx, dy = np.zeros_like(xs), np.zeros_like(ys)
        for side in (-1, 1):
            cx, cy = _source_points(face, [(CX + side * 1.6 * D, EY - 0.5 * D)])[0]
            bump = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * (0.4 * D * scale) ** 2))
            dx += side * 0.2 * D * scale * strength * bump
            dy += 0.2 * D * scale * strength * bump
        alpha = cv2.remap(alpha, xs - dx, ys - dy, cv2.INTER_LINEAR)
        alpha *= 1 - np.clip(_to_source(face, _grown_subject()), 0, 1)
    if not lines:
        return photo
    return _blend(photo, rgb, alpha)


def shift_iris(photo: np.ndarray, face: NormalisedFace, strength: float, direction: int = 1) -> np.ndarray:
    """Gaze off camera: the content of both eye openings (grown up and down so the whole
    iris moves, not the corners) shifted sideways by up to 0.35 eye widths (a glance aside),
    toward image-right (`direction` 1) or image-left (-1)."""
    if strength <= 0:
        return photo
    height, width = photo.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    out = photo
    for contour in (face.landmarks68[36:42], face.landmarks68[42:48]):
        points = _source_points(face, contour)
        eye_width = float(np.linalg.norm(points[3] - points[0]))
        mask = np.zeros((height, width), np.float32)
        cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1.0)
        # grown mostly upward-and-down: the lids of the sample photo hide part of the iris
        grow_x, grow_y = max(1, round(0.05 * eye_width)) * 2 + 1, max(3, round(0.25 * eye_width)) * 2 + 1
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow_x, grow_y)))
        # whole pixels: interpolating would blur the catchlights, a different artifact
        shift = direction * round(0.35 * eye_width * strength)
        shifted = cv2.remap(out, xs - shift, ys, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT)
        out = _blend(out, shifted, mask)
    return out


def remove_catchlights(
    photo: np.ndarray, face: NormalisedFace, strength: float, eyes: tuple[int, ...] = (0, 1)
) -> np.ndarray:
    """Dead eyes: small bright spots in the eye openings replaced by their surroundings
    (both eyes, or only those listed: 0 = image-left, 1 = image-right)."""
    if strength <= 0:
        return photo
    height, width = photo.shape[:2]
    out = photo
    size = max(3, round(0.08 * D * _source_scale(face)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    contours = (face.landmarks68[36:42], face.landmarks68[42:48])
    for contour in (contours[eye] for eye in eyes):
        points = _source_points(face, contour)
        mask = np.zeros((height, width), np.uint8)
        cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 255)
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size * 2 + 1, size * 2 + 1)))
        opened = cv2.morphologyEx(out, cv2.MORPH_OPEN, kernel)
        out = _blend(out, opened, (mask > 0).astype(np.float32) * strength)
    return out


def shift_iris_left(photo: np.ndarray, face: NormalisedFace, strength: float) -> np.ndarray:
    """The same glance aside, toward image-left."""
    return shift_iris(photo, face, strength, direction=-1)


def remove_one_catchlight(photo: np.ndarray, face: NormalisedFace, strength: float) -> np.ndarray:
    """Catchlights that differ between the eyes: the image-left eye's removed, the other kept."""
    return remove_catchlights(photo, face, strength, eyes=(0,))


def add_wrinkles(photo: np.ndarray, face: NormalisedFace, strength: float) -> np.ndarray:
    """Ageing: thin dark lines on the forehead, at the outer eye corners (crow's feet) and
    along the nose-to-mouth folds, 2 canonical px wide, darkening up to 50%."""
    if strength <= 0:
        return photo
    lines = np.zeros((CANON_SIZE[1], CANON_SIZE[0]), np.float32)
    for k in range(3):  # forehead
        y = EY - (0.5 + 0.09 * k) * D
        pts = [(CX + t * D, y + 0.03 * D * np.sin(3 * t)) for t in np.linspace(-0.55, 0.55, 12)]
        cv2.polylines(lines, [np.round(pts).astype(np.int32)], False, 1.0, 2, cv2.LINE_AA)
    for side in (-1, 1):
        for k in range(3):  # crow's feet fanning out from the outer corner
            angle = np.radians(-25 + 25 * k)
            start = np.array([CX + side * 0.8 * D, EY])
            end = start + 0.2 * D * np.array([side * np.cos(angle), np.sin(angle)])
            cv2.line(
                lines,
                tuple(np.round(start).astype(int)),
                tuple(np.round(end).astype(int)),
                1.0,
                2,
                cv2.LINE_AA,
            )
        fold = [(CX + side * (0.32 + 0.2 * t) * D, EY + (0.95 + 0.5 * t) * D) for t in np.linspace(0, 1, 10)]
        cv2.polylines(lines, [np.round(fold).astype(np.int32)], False, 1.0, 2, cv2.LINE_AA)
    darkness = _to_source(face, lines) * 0.5 * strength
    darkened = photo.astype(np.float32) * (1 - np.clip(darkness, 0, 1))[..., None]
    return np.clip(darkened, 0, 255).astype(np.uint8)


def break_glasses_frame(photo: np.ndarray, face: NormalisedFace, strength: float) -> np.ndarray:
    """A glasses frame that differs between the eyes: the dark rim around the image-left
    lens painted out (inpainted from its surroundings), blended in by strength."""
    if strength <= 0:
        return photo
    from headshot.analysis.metrics.normalise import EYE_LEFT

    box = np.zeros((CANON_SIZE[1], CANON_SIZE[0]), np.uint8)
    half_w, half_h = round(0.55 * D), round(0.38 * D)
    cv2.rectangle(
        box,
        (round(EYE_LEFT[0]) - half_w, round(EYE_LEFT[1]) - half_h),
        (round(EYE_LEFT[0]) + half_w, round(EYE_LEFT[1]) + half_h),
        255,
        -1,
    )
    eye = np.zeros_like(box)
    cv2.fillPoly(eye, [np.round(face.landmarks68[36:42]).astype(np.int32)], 255)
    region = (box > 0) & ~(cv2.dilate(eye, np.ones((9, 9), np.uint8)) > 0)
    in_source = _to_source(face, region) > 0.5
    dark = photo.mean(axis=2) < 70
    frame = (in_source & dark).astype(np.uint8) * 255
    frame = cv2.dilate(frame, np.ones((3, 3), np.uint8))
    painted = cv2.inpaint(photo, frame, 5, cv2.INPAINT_TELEA)
    return _blend(photo, painted, (frame > 0).astype(np.float32) * strength)


def earring_right(photo: np.ndarray, face: NormalisedFace, strength: float) -> np.ndarray:
    return earring(photo, face, strength, side="right")


MANIPULATIONS = {
    "smooth_skin": smooth_skin,
    "add_wrinkles": add_wrinkles,
    "earring": earring,
    "earring_right": earring_right,
    "break_glasses_frame": break_glasses_frame,
    "warp_background": warp_background,
    "blur_hair": blur_hair,
    "shift_iris": shift_iris,
    "shift_iris_left": shift_iris_left,
    "remove_catchlights": remove_catchlights,
    "remove_one_catchlight": remove_one_catchlight,
    "tone_cast": tone_cast,
}


def manipulated(
    photo: Image.Image, name: str, strength: float, face: NormalisedFace | None = None
) -> Image.Image:
    """`photo` with the manipulation `name` applied at `strength` (0: none, 1: full)."""
    if name not in MANIPULATIONS:
        raise HeadshotError(f"unknown manipulation '{name}' (expected one of {', '.join(MANIPULATIONS)})")
    pixels = np.asarray(photo.convert("RGB"))
    face = face or normalise_face(pixels)
    if face is None:
        raise HeadshotError("the photo to manipulate shows no face that the 68-point model can place")
    return Image.fromarray(MANIPULATIONS[name](pixels, face, strength))
