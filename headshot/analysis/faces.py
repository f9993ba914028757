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
) -> list[Face]:
    """All faces in an RGB image (PIL or array), largest first."""
    import dlib

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
        points5 = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
        face = Face(
            box=(rect.left(), rect.top(), rect.right(), rect.bottom()), score=score, landmarks5=points5
        )
        if embeddings:
            chip = dlib.get_face_chip(pixels, shape, size=150, padding=0.25)
            face.embedding = np.array(recognizer.compute_face_descriptor(chip), dtype=np.float32)
        if landmarks68:
            shape68 = _landmarks68_model()(pixels, rect)
            face.landmarks68 = np.array([[p.x, p.y] for p in shape68.parts()], dtype=np.float32)
        faces.append(face)
    faces.sort(key=lambda f: f.width * f.height, reverse=True)
    return faces


def identity_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two identity embeddings (dlib's metric)."""
    return float(np.linalg.norm(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)))
