"""The quality gate: one verdict per source photo, with a stable reason code.

Per photo (in this order): unreadable, no_face, many_faces, too_small, turned_away,
bad_exposure. Then, among the photos still in, decisions relative to the set:
blurred (focus far below the set's median), different_person (identity far from
the set's robust centre), duplicate (the same picture as an earlier photo by name:
a copy, re-encoded or resized). Thresholds live in `QualityThresholds`, documented
in configs/prepare.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from pydantic import Field

from headshot.analysis.faces import Face, estimate_yaw
from headshot.config import StrictModel

# Stable codes, in the order the checks run; dataset.json and the summary use them.
REASON_CODES = (
    "unreadable",
    "no_face",
    "many_faces",
    "too_small",
    "turned_away",
    "bad_exposure",
    "blurred",
    "different_person",
    "duplicate",
)

_FACE_SAMPLE = 128  # faces are measured at this size, so big and small photos compare


class QualityThresholds(StrictModel):
    """When a photo is rejected. Every value is documented in configs/prepare.yaml."""

    max_upscale: float = Field(2.0, gt=0)
    max_yaw_degrees: float = Field(20.0, gt=0, le=90)
    min_face_brightness: float = Field(0.15, ge=0, le=1)
    max_face_brightness: float = Field(0.88, ge=0, le=1)
    max_clipped_fraction: float = Field(0.25, ge=0, le=1)
    min_relative_focus: float = Field(0.3, ge=0)
    min_focus: float = Field(0.02, ge=0)
    max_identity_distance: float = Field(0.55, gt=0)
    duplicate_identity_distance: float = Field(0.3, ge=0)
    duplicate_pixel_difference: float = Field(0.012, ge=0, le=1)


@dataclass
class Verdict:
    reason_code: str | None = None
    reason: str | None = None

    @property
    def accepted(self) -> bool:
        return self.reason_code is None


@dataclass
class Candidate:
    """What the gate needs to know about one readable photo with exactly one face."""

    name: str
    metrics: dict[str, float]
    embedding: np.ndarray
    thumbnail: np.ndarray  # the whole upright photo, 32x32, floats in 0..1
    aspect: float  # width / height of the upright photo
    verdict: Verdict = field(default_factory=Verdict)


def face_metrics(image: Image.Image, face: Face) -> dict[str, float]:
    """Focus, brightness, clipping and yaw of the face region (each in documented units)."""
    import cv2

    box = _clamped(face.box, image.size)
    grey = image.crop(box).convert("L").resize((_FACE_SAMPLE, _FACE_SAMPLE), Image.Resampling.BILINEAR)
    pixels = np.asarray(grey, dtype=np.float32) / 255.0
    laplacian = cv2.Laplacian(pixels, cv2.CV_32F)
    # Variance of the Laplacian over the face's own contrast: an exposure change
    # scales both, a blur lowers only the first.
    focus = float(laplacian.var() / max(pixels.var(), 1e-4))
    clipped = float(np.mean((pixels <= 0.02) | (pixels >= 0.98)))
    return {
        "focus": round(focus, 4),
        "brightness": round(float(pixels.mean()), 4),
        "clipped": round(clipped, 4),
        "yaw": round(estimate_yaw(face.landmarks5), 2),
    }


def _clamped(box, size) -> tuple[int, int, int, int]:
    left, top, right, bottom = box
    left, top = max(0, left), max(0, top)
    right, bottom = min(size[0], max(right, left + 1)), min(size[1], max(bottom, top + 1))
    return (left, top, right, bottom)


def judge_single_face(metrics: dict[str, float], thresholds: QualityThresholds) -> Verdict:
    """The checks that need only this photo (the face is known to be the only one)."""
    if metrics["upscale"] > thresholds.max_upscale:
        return Verdict(
            "too_small",
            f"face too small for the training resolution: the crop would be enlarged "
            f"{metrics['upscale']:.1f}x (limit {thresholds.max_upscale:g}x)",
        )
    if abs(metrics["yaw"]) > thresholds.max_yaw_degrees:
        return Verdict(
            "turned_away",
            f"head turned away: about {abs(metrics['yaw']):.0f} degrees "
            f"(limit {thresholds.max_yaw_degrees:g})",
        )
    brightness = metrics["brightness"]
    if brightness < thresholds.min_face_brightness or brightness > thresholds.max_face_brightness:
        side = "dark" if brightness < thresholds.min_face_brightness else "bright"
        return Verdict("bad_exposure", f"face too {side}: mean brightness {brightness:.2f}")
    if metrics["clipped"] > thresholds.max_clipped_fraction:
        return Verdict(
            "bad_exposure", f"{metrics['clipped']:.0%} of the face is pure black or white (clipped)"
        )
    return Verdict()


def judge_against_set(candidates: list[Candidate], thresholds: QualityThresholds) -> None:
    """Blur, identity and duplicate checks, each relative to the other photos in the set."""
    _judge_focus(candidates, thresholds)
    _judge_identity([c for c in candidates if c.verdict.accepted], thresholds)
    _judge_duplicates([c for c in candidates if c.verdict.accepted], thresholds)


def _judge_focus(candidates: list[Candidate], thresholds: QualityThresholds) -> None:
    if not candidates:
        return
    median = float(np.median([c.metrics["focus"] for c in candidates]))
    for candidate in candidates:
        focus = candidate.metrics["focus"]
        relative = focus / median if median > 0 else 1.0
        candidate.metrics["relative_focus"] = round(relative, 4)
        if focus < thresholds.min_focus or relative < thresholds.min_relative_focus:
            candidate.verdict = Verdict(
                "blurred", f"face out of focus: sharpness {relative:.0%} of the set's median"
            )


def robust_identity_centre(embeddings: np.ndarray) -> np.ndarray:
    """The coordinate-wise median: a few photos of someone else cannot drag it away."""
    return np.median(embeddings, axis=0)


def _judge_identity(candidates: list[Candidate], thresholds: QualityThresholds) -> None:
    if len(candidates) < 3:
        return  # with two photos there is no majority to say which one is the subject
    stack = np.stack([c.embedding for c in candidates])
    distances = np.linalg.norm(stack - robust_identity_centre(stack), axis=1)
    for candidate, distance in zip(candidates, distances):
        candidate.metrics["identity_distance"] = round(float(distance), 4)
        if distance > thresholds.max_identity_distance:
            candidate.verdict = Verdict(
                "different_person",
                f"looks like a different person: identity distance {distance:.2f} from the set "
                f"(limit {thresholds.max_identity_distance:g})",
            )


def _judge_duplicates(candidates: list[Candidate], thresholds: QualityThresholds) -> None:
    """A photo that is the same picture as an earlier one (by name): a copy, re-encoded or resized."""
    kept: list[Candidate] = []
    for candidate in sorted(candidates, key=lambda c: c.name):
        original = next((k for k in kept if _near_duplicate(k, candidate, thresholds)), None)
        if original is None:
            kept.append(candidate)
            continue
        difference = pixel_difference(original.thumbnail, candidate.thumbnail)
        candidate.metrics["duplicate_difference"] = round(difference, 4)
        candidate.verdict = Verdict(
            "duplicate", f"near-duplicate of {original.name} (pixels differ by {difference:.1%})"
        )


def pixel_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two thumbnails, in the colour channel that differs most.

    0 = identical, 1 = opposite. Per channel, so a colour cast counts in full.
    """
    return float(np.abs(a - b).mean(axis=(0, 1)).max())


def _near_duplicate(a: Candidate, b: Candidate, thresholds: QualityThresholds) -> bool:
    # All must agree: the same framing, the same face and the same pixels. Exposure and
    # colour changes, mirror images, rotations and crops change the whole picture, so
    # they count as different photos; a copy at another size or quality does not.
    if abs(a.aspect - b.aspect) > 0.02 * max(a.aspect, b.aspect):
        return False
    same_face = float(np.linalg.norm(a.embedding - b.embedding)) <= thresholds.duplicate_identity_distance
    return same_face and pixel_difference(a.thumbnail, b.thumbnail) <= thresholds.duplicate_pixel_difference


def photo_thumbnail(image: Image.Image, size: int = 32) -> np.ndarray:
    """The whole photo squeezed to `size` x `size`, floats in 0..1, for duplicate detection."""
    small = image.resize((size, size), Image.Resampling.BOX)  # exact area average: no reducing_gap
    return np.asarray(small, dtype=np.float32) / 255.0
