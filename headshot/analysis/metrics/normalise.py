"""Face normalisation: every metric looks at the face in the same canonical frame.

A similarity transform (rotation, uniform scale, shift) puts the two eye centres at
fixed points of a 384x448 crop, 64 px apart. Photos of any resolution (1024 px
headshots, 4000 px camera originals) then give comparable numbers: texture is
measured at the same physical scale of the face, and regions (cheeks, earlobes, the
hair band) sit at known places. Faces are detected on a downscaled copy for speed;
landmarks are mapped back to the full image before warping, so no detail is lost.

The 68-point landmark model (non-commercial licence, see faces.py) is used here
only to place the eye lids and the jaw/earlobe points that eyes.py and symmetry.py
need; every other region is placed from the eye centres alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np

from headshot.analysis.faces import Face, detect_faces

EYE_DISTANCE = 64  # canonical px between the eye centres: the unit "d" of all regions
CANON_SIZE = (384, 448)  # width, height
EYE_MID = (192.0, 176.0)  # canonical position of the midpoint between the eyes
EYE_LEFT = (EYE_MID[0] - EYE_DISTANCE / 2, EYE_MID[1])  # image-left eye
EYE_RIGHT = (EYE_MID[0] + EYE_DISTANCE / 2, EYE_MID[1])
EYE_PATCH_SCALE = 2.0  # eye patches are sampled at twice the canonical scale


@dataclass
class NormalisedFace:
    """One face warped to the canonical frame, with what the metrics need."""

    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1], canonical crop
    valid: np.ndarray  # (H, W) bool: canonical pixels that came from inside the photo
    landmarks68: np.ndarray  # (68, 2) in canonical px
    face: Face  # the detection, in source-image pixels
    transform: np.ndarray  # (2, 3) source px -> canonical px
    source: np.ndarray = field(repr=False)  # the source image, uint8 RGB
    faces_found: int = 1
    source_eye_distance: float = 0.0  # eye distance in source px (resolution of the face)

    @cached_property
    def luma(self) -> np.ndarray:
        """Rec. 601 luma in [0, 1]."""
        return self.rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)

    @cached_property
    def log_luma(self) -> np.ndarray:
        """Log luma: multiplicative exposure and colour casts become additive constants,
        so texture measured on it does not depend on exposure."""
        return np.log(self.luma + 1.0 / 64).astype(np.float32)

    def eye_patch(self, centre: tuple[float, float], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """An RGB float patch around a canonical point, sampled from the source at
        EYE_PATCH_SCALE x the canonical scale; returns (patch, canonical->patch 2x3)."""
        scale = EYE_PATCH_SCALE
        width, height = size
        to_patch = np.array(
            [[scale, 0, width / 2 - scale * centre[0]], [0, scale, height / 2 - scale * centre[1]]],
            dtype=np.float64,
        )
        source_to_patch = _compose(to_patch, self.transform)
        patch = cv2.warpAffine(
            self.source, source_to_patch, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
        )
        return patch.astype(np.float32) / 255.0, to_patch


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    full = np.vstack([inner, [0, 0, 1]])
    return (np.vstack([outer, [0, 0, 1]]) @ full)[:2]


def eye_centres(landmarks5: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image-left eye, image-right eye) centres from dlib's 5 points."""
    a = landmarks5[0:2].mean(axis=0)
    b = landmarks5[2:4].mean(axis=0)
    return (a, b) if a[0] < b[0] else (b, a)


def canonical_transform(landmarks5: np.ndarray) -> np.ndarray:
    """The similarity transform taking the eye centres to their canonical places."""
    left, right = eye_centres(np.asarray(landmarks5, dtype=np.float64))
    src = right - left
    dst = np.array(EYE_RIGHT) - np.array(EYE_LEFT)
    scale = np.linalg.norm(dst) / max(np.linalg.norm(src), 1e-6)
    angle = np.arctan2(dst[1], dst[0]) - np.arctan2(src[1], src[0])
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    shift = np.array(EYE_MID) - rot @ ((left + right) / 2)
    return np.hstack([rot, shift[:, None]])


def apply_transform(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    return points @ transform[:, :2].T + transform[:, 2]


def find_face(pixels: np.ndarray, detect_max_side: int = 640) -> list[Face]:
    """Faces (largest first) found on a copy downscaled to `detect_max_side`, in the
    coordinates of `pixels`. Upsamples once only if nothing was found."""
    for upsample in (0, 1):
        faces = detect_faces(
            pixels,
            upsample=upsample,
            embeddings=True,
            landmarks68=True,
            max_side=detect_max_side,
            steady_landmarks=True,
        )
        if faces:
            return faces
    return []


def _warp_to_canonical(pixels: np.ndarray, transform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Warp with area-averaging first when shrinking, so a 4000 px photo and a 512 px
    one give the same texture at the canonical scale (a bilinear warp alone aliases)."""
    scale = float(np.sqrt(abs(np.linalg.det(transform[:, :2]))))
    source, step = pixels, transform
    if scale < 0.9:
        height, width = pixels.shape[:2]
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        source = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
        undo = np.array([[width / size[0], 0, 0], [0, height / size[1], 0]])
        step = _compose(transform, undo)
    warped = cv2.warpAffine(source, step, CANON_SIZE, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = cv2.warpAffine(
        np.full(source.shape[:2], 255, np.uint8), step, CANON_SIZE, flags=cv2.INTER_NEAREST, borderValue=0
    )
    return warped, inside


def normalise_face(image, detect_max_side: int = 640) -> NormalisedFace | None:
    """The largest face of an RGB image (PIL or uint8 array) in the canonical frame,
    or None when no face is found."""
    pixels = np.ascontiguousarray(np.asarray(image.convert("RGB") if hasattr(image, "convert") else image))
    faces = find_face(pixels, detect_max_side)
    if not faces:
        return None
    face = faces[0]
    transform = canonical_transform(face.landmarks5)
    left, right = eye_centres(face.landmarks5)
    warped, inside = _warp_to_canonical(pixels, transform)
    return NormalisedFace(
        rgb=warped.astype(np.float32) / 255.0,
        valid=inside > 0,
        landmarks68=apply_transform(transform, face.landmarks68).astype(np.float32),
        face=face,
        transform=transform,
        source=pixels,
        faces_found=len(faces),
        source_eye_distance=float(np.linalg.norm(right - left)),
    )
