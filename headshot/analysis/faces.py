"""Face detection, landmarks and identity embeddings with dlib.

The models ship in the `face_recognition_models` package. Its own `__init__`
imports `pkg_resources`, which current setuptools no longer provides, so the files
are located with importlib without importing the package.

Licences: the 5-point landmark model, the HOG/CNN detectors and the ResNet
identity model are free for any use; the 68-point landmark model was trained on
iBUG 300-W, whose images are licensed for non-commercial research only. Only the
artifact metrics that need eye lids and ear positions use it (`landmarks68=True`).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np

from headshot.errors import HeadshotError

Detector = Literal["hog", "cnn"]

# dlib's ResNet embedding: same person when the Euclidean distance is below ~0.6.
SAME_PERSON_DISTANCE = 0.6


def model_file(name: str) -> Path:
    """Path of one of the dlib model files shipped in `face_recognition_models`."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise HeadshotError(
            "the face models are missing: pip install face-recognition-models (dlib's model files)"
        )
    path = Path(spec.origin).parent / "models" / name
    if not path.is_file():
        raise HeadshotError(f"{path}: dlib model file missing; reinstall face-recognition-models")
    return path


@cache
def _dlib_models(detector: Detector):
    import dlib

    if detector == "cnn":
        detect = dlib.cnn_face_detection_model_v1(str(model_file("mmod_human_face_detector.dat")))
    else:
        detect = dlib.get_frontal_face_detector()
    return (
        detect,
        dlib.shape_predictor(str(model_file("shape_predictor_5_face_landmarks.dat"))),
        dlib.face_recognition_model_v1(str(model_file("dlib_face_recognition_resnet_model_v1.dat"))),
    )


@cache
def _landmarks68_model():
    import dlib

    return dlib.shape_predictor(str(model_file("shape_predictor_68_face_landmarks.dat")))


@dataclass
class Face:
    """One detected face, in the pixel coordinates of the image it was found in."""

    box: tuple[int, int, int, int]  # left, top, right, bottom
    score: float
    landmarks5: np.ndarray  # (5, 2): right eye corners (2), left eye corners (2), nose base
    embedding: np.ndarray | None = None  # (128,) identity embedding
    landmarks68: np.ndarray | None = field(default=None, repr=False)  # (68, 2), iBUG order

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)


def _as_rgb_array(image) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError("face analysis expects an RGB uint8 image")
    return np.ascontiguousarray(array)


def detect_faces(
    image,
    *,
    detector: Detector = "hog",
    upsample: int = 1,
    embeddings: bool = True,
    landmarks68: bool = False,
    max_side: int | None = None,
    steady_landmarks: bool = False,
) -> list[Face]:
    """All faces in an RGB image (PIL or array), largest first.

    `max_side`: detect on a copy scaled down to at most this many pixels on its longest
    side (HOG on a 12-megapixel photo takes seconds; faces worth using survive the
    scaling), and report boxes and landmarks in the original image's coordinates.
    """
    import dlib

    scale = 1.0
    if max_side is not None and max(_size(image)) > max_side:
        from PIL import Image

        picture = image if isinstance(image, Image.Image) else Image.fromarray(_as_rgb_array(image))
        scale = max(picture.size) / max_side
        target = (max(1, round(picture.width / scale)), max(1, round(picture.height / scale)))
        image = picture.resize(target, Image.Resampling.BILINEAR, reducing_gap=2.0)
    pixels = _as_rgb_array(image)
    detect, predictor5, recognizer = _dlib_models(detector)
    if detector == "cnn":
        found = [(hit.rect, float(hit.confidence)) for hit in detect(pixels, upsample)]
    else:
        rects, scores, _ = detect.run(pixels, upsample, 0.0)
        found = list(zip(rects, (float(s) for s in scores)))
    faces = []
    for rect, score in found:
        shape = predictor5(pixels, rect)
        points5 = steady_shape(predictor5, pixels, rect) if steady_landmarks else _points(shape)
        face = Face(
            box=(rect.left(), rect.top(), rect.right(), rect.bottom()), score=score, landmarks5=points5
        )
        if embeddings:
            chip = dlib.get_face_chip(pixels, shape, size=150, padding=0.25)
            face.embedding = np.array(recognizer.compute_face_descriptor(chip), dtype=np.float32)
        if landmarks68:
            model = _landmarks68_model()
            face.landmarks68 = (
                steady_shape(model, pixels, rect) if steady_landmarks else _points(model(pixels, rect))
            )
        faces.append(face)
    faces.sort(key=lambda f: f.width * f.height, reverse=True)
    return [_scaled(face, scale) for face in faces] if scale != 1.0 else faces


def _points(shape) -> np.ndarray:
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)


STEADY_OFFSETS = (-1, 0, 1)  # box moves and size changes, in units of STEADY_STEP x the box width
STEADY_STEP = 0.01


def steady_shape(predictor, pixels: np.ndarray, rect) -> np.ndarray:
    """A shape predictor's landmarks averaged over the box moved left/right, up/down and
    grown/shrunk by 1% of its width (27 boxes). dlib's predictors return whole pixels and
    jump with tiny changes of the image: re-saving a photo as JPEG moves its eye points by
    up to 2.5 px, and the canonical crop by up to 4 px (docs/metrics.md); the average moves
    under 0.5 px. Each prediction takes well under a millisecond."""
    import dlib

    step = max(1, round(STEADY_STEP * (rect.right() - rect.left())))
    shapes = []
    for dx in STEADY_OFFSETS:
        for dy in STEADY_OFFSETS:
            for grow in STEADY_OFFSETS:
                moved = dlib.rectangle(
                    rect.left() + step * (dx - grow),
                    rect.top() + step * (dy - grow),
                    rect.right() + step * (dx + grow),
                    rect.bottom() + step * (dy + grow),
                )
                shapes.append(_points(predictor(pixels, moved)))
    return np.mean(shapes, axis=0).astype(np.float32)


def _size(image) -> tuple[int, int]:
    if hasattr(image, "size") and not isinstance(image, np.ndarray):
        return image.size
    return (image.shape[1], image.shape[0])


def _scaled(face: Face, scale: float) -> Face:
    box = tuple(int(round(v * scale)) for v in face.box)
    return Face(
        box=box,  # type: ignore[arg-type]
        score=face.score,
        landmarks5=face.landmarks5 * scale,
        embedding=face.embedding,
        landmarks68=None if face.landmarks68 is None else face.landmarks68 * scale,
    )


# How far the base of the nose sits in front of the eyes, in eye-to-eye distances: an
# average-face constant that turns the nose's sideways offset into a head angle.
_NOSE_DEPTH = 0.35


def estimate_yaw(landmarks5: np.ndarray) -> float:
    """Head yaw in degrees from the 5 landmarks (0 = facing the camera; the sign is the side).

    The nose base moves sideways relative to the midpoint of the eyes as the head
    turns: offset ~ depth * tan(yaw), measured along the eye line so head tilt (roll)
    does not count. A rough estimate that reads low for strong turns (a synthetic 50-degree
    turn of a real portrait reads about 25), enough to spot faces turned well away.
    """
    points = np.asarray(landmarks5, dtype=np.float64)
    eye_a, eye_b, nose = points[0:2].mean(axis=0), points[2:4].mean(axis=0), points[4]
    eye_line = eye_b - eye_a
    eye_distance = float(np.linalg.norm(eye_line))
    if eye_distance < 1e-6:
        return 90.0
    offset = float(np.dot(nose - (eye_a + eye_b) / 2, eye_line / eye_distance)) / eye_distance
    return float(np.degrees(np.arctan2(offset, _NOSE_DEPTH)))


def identity_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two identity embeddings (dlib's metric)."""
    return float(np.linalg.norm(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)))
