"""What `generate` tells `sign` about how an image was made and how it was checked.

The generation record, the results of the checks a delivered headshot passed (likeness
and artifact audit: numbers and flags only) and the keyed commitments to the subject's
photos. No photo, embedding, local path or user name.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from headshot.config import StrictModel
from headshot.signing.commitments import PhotoCommitments


class LikenessCheck(StrictModel):
    """How near the face is to the subject's own photos, and the bar it had to pass."""

    relative_distance: float  # embedding distance to their centroid / their own spread
    threshold: float | None  # the largest relative distance delivered (None: no bar)
    same_person: bool | None = None  # the face model's own same-person verdict
    measure: str = "dlib ResNet face embedding: distance to the subject's photos' centroid / their spread"


class AuditCheck(StrictModel):
    """The artifact audit against the subject's own photos (docs/metrics.md)."""

    status: str
    flags: list[str] = Field(default_factory=list)
    z: dict[str, float] = Field(default_factory=dict)  # per metric, vs the subject's own photos
    artifact_score: float | None = None
    policy: str  # what a flagged artifact did to delivery (ranking.flagged)


class CheckResults(StrictModel):
    metrics_version: int  # version of the metric definitions (docs/metrics.md)
    likeness: LikenessCheck | None = None
    audit: AuditCheck | None = None


class GenerationInfo(StrictModel):
    """Provenance of one generated image. Hashes only: no local paths, no user names."""

    base_model: str  # hub id or preset name; a local path is reduced to its folder name
    base_model_sha256: str
    lora_sha256: str | None = None
    template: str
    seed: int
    family: str | None = None
    # Prompts are private to the subject; they enter a manifest only if the user opts in.
    prompt: str | None = None
    negative_prompt: str | None = None
    # Keyed commitments to the subject's accepted training photos (signing/commitments.py).
    subject_photos: PhotoCommitments | None = None
    checks: CheckResults | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_plain_photo_hashes(cls, data: Any) -> Any:
        if isinstance(data, dict) and "subject_photo_sha256" in data:
            raise ValueError(
                "field 'subject_photo_sha256': plain photo hashes are no longer written into manifests "
                "(anyone with a copy of a photo could match them); generate writes keyed commitments "
                "('subject_photos') instead"
            )
        return data
