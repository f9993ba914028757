"""Artifact metrics of AI headshots, measured on a face-normalised crop.

`measure_features(face)` gives raw numbers per metric family (skin, symmetry,
background, hair, eyes, identity/tone/age). They mean little alone: the audit
(headshot.analysis.audit) judges each against the same numbers measured on the
subject's own real photos. `METRICS` lists the scored metrics, their unit and which
direction is an artifact; docs/metrics.md documents each one and its validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from headshot.analysis.metrics.background import background_bend
from headshot.analysis.metrics.eyes import eye_measures
from headshot.analysis.metrics.hair import hair_detail
from headshot.analysis.metrics.identity import age_texture, skin_tone
from headshot.analysis.metrics.normalise import NormalisedFace, normalise_face
from headshot.analysis.metrics.skin import skin_texture
from headshot.analysis.metrics.symmetry import paired_asymmetry

Direction = Literal["low", "high"]

# Version of the metric definitions (docs/metrics.md): signed headshots' check results name
# it. Raise it whenever a metric's computation changes what it measures or its scale.
METRICS_VERSION = 3


@dataclass(frozen=True)
class MetricSpec:
    name: str  # column in metrics.csv
    artifact: str  # the flag raised when it is out of range
    direction: Direction  # which side of the subject's own photos is the artifact
    unit: str
    min_spread: float  # floor on the reference spread: natural photo-to-photo variation
    summary: str
    prior_mean: float | None = None  # expected value when the reference photos give none
    # Needs a face with detail (MIN_EYE_DISTANCE px between the eyes or more) in the reference
    # photos; a mean colour (skin tone) does not.
    needs_detail: bool = True


# min_spread: the smallest photo-to-photo standard deviation assumed among real photos
# of one person, so that a reference set of near-identical photos does not make every
# tiny difference look like an artifact (docs/metrics.md says how each was chosen).
METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("skin_texture", "plastic_skin", "low", "log10 RMS detail", 0.06, "fine cheek texture"),
    MetricSpec("age_texture", "looks_older", "high", "log10 valley strength", 0.06, "wrinkle-like lines"),
    MetricSpec(
        "ear_asymmetry", "earring_asymmetry", "high", "0..1", 0.05, "colour spots on the earlobes, L vs R"
    ),
    MetricSpec("glasses_asymmetry", "glasses_asymmetry", "high", "0..1", 0.03, "eye surrounds mirrored"),
    # Real backgrounds bend lines no more next to the subject than away from it: prior 0.
    MetricSpec(
        "background_bend", "warped_background", "high", "canonical px", 0.5, "line bend near - far", 0.0
    ),
    MetricSpec("hair_detail", "hair_merging", "low", "log10 fine/coarse", 0.04, "hair boundary detail"),
    MetricSpec("gaze_offset", "gaze_off_camera", "high", "eye widths", 0.04, "iris position vs own photos"),
    MetricSpec("catchlight_strength", "dead_eyes", "low", "log contrast", 0.08, "catchlights in the eyes"),
    MetricSpec(
        "catchlight_mismatch", "catchlight_mismatch", "high", "log contrast", 0.15, "catchlights L vs R"
    ),
    MetricSpec(
        "identity_relative", "identity_drift", "high", "x own spread", 0.0, "embedding distance / spread"
    ),
    MetricSpec(
        "skin_tone_delta_e",
        "skin_tone_shift",
        "high",
        "CIEDE2000",
        1.0,
        "cheek colour at equal exposure",
        needs_detail=False,
    ),
)
METRICS_BY_NAME = {spec.name: spec for spec in METRICS}


def measure_features(face: NormalisedFace) -> dict[str, float]:
    """Every raw measurement of one normalised face (NaN where a region is unusable)."""
    features: dict[str, float] = {}
    for family in (
        skin_texture,
        age_texture,
        paired_asymmetry,
        background_bend,
        hair_detail,
        eye_measures,
        skin_tone,
    ):
        features.update(family(face))
    return features


__all__ = [
    "METRICS",
    "METRICS_BY_NAME",
    "METRICS_VERSION",
    "MetricSpec",
    "NormalisedFace",
    "measure_features",
    "normalise_face",
]
