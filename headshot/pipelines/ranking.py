"""Rank candidates: does a face appear, and how much does it look like the subject?

Likeness is the identity-embedding distance to the centroid of the subject's own
accepted photos, judged against their spread (`SubjectIdentity.score`): a relative
distance of 1.0 is as far as the subject's most unusual real photo. A candidate
nearer than `copy_distance` to one single training photo is flagged as a possible
copy of it. Within each template, candidates that pass are ranked by relative
distance and the best `top_k` are chosen for delivery.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageOps

from headshot.analysis.faces import detect_faces
from headshot.analysis.likeness import SubjectIdentity
from headshot.pipelines.generate_config import RankingOptions

# Why a candidate was not delivered; index.json gives the code and a sentence.
DROP_REASONS = {
    "no_face": "no face was found in the image",
    "likeness_too_far": "the face is too far from the subject's own photos",
    "copy_of_training_photo": "nearly identical to one training photo (a copy, not a new picture)",
    "rank_beyond_top_k": "ranked below the top_k candidates of its template",
    "signing_failed": "signing failed, so it was not delivered",
}


@dataclass
class Candidate:
    key: str  # <template>/<stem>
    template: str
    variant: dict
    seed: int
    render: str  # path of the PNG relative to the subject folder
    sidecar: dict
    faces: int = 0
    likeness: dict | None = None  # distance, relative, nearest_photo, same_person
    copy_suspect: bool = False
    rank: int | None = None  # 1 = best of its template, among candidates that passed
    selected: bool = False
    dropped: str | None = None  # a DROP_REASONS code
    detail: str | None = None  # extra words, e.g. the signing error
    delivered: str | None = None  # headshots/<file>, only when signed
    signature: dict | None = None  # verification state, manifest label, watermark id, signer

    def as_record(self) -> dict:
        record = {
            "key": self.key,
            "template": self.template,
            "variant": self.variant,
            "seed": self.seed,
            "render": self.render,
            "png_sha256": self.sidecar.get("png_sha256"),
            "face_found": self.faces > 0,
            "faces": self.faces,
            "likeness": self.likeness,
            "copy_suspect": self.copy_suspect,
            "rank": self.rank,
            "delivered": self.delivered,
            "signature": self.signature,
            "dropped": self.dropped,
            "reason": None,
        }
        if self.dropped:
            record["reason"] = DROP_REASONS[self.dropped] + (f": {self.detail}" if self.detail else "")
        return record


def score_candidate(
    candidate: Candidate, image: Image.Image, identity: SubjectIdentity, options: RankingOptions
):
    """Detect faces and score the largest one against the subject."""
    image = image.convert("RGB")
    if max(image.size) > options.detect_size:
        # A headshot's face is large: a 1024 px render detects as well at 640 px, ~3x faster.
        image = ImageOps.contain(image, (options.detect_size, options.detect_size), Image.LANCZOS)
    faces = detect_faces(image, detector=options.detector, upsample=options.upsample)
    candidate.faces = len(faces)
    if not faces:
        return
    likeness = identity.score(faces[0].embedding)
    candidate.likeness = {
        "distance": round(likeness.distance, 4),
        "relative": round(likeness.relative, 4),
        "nearest_photo": round(likeness.nearest_photo, 4),
        "same_person": likeness.same_person,
    }
    candidate.copy_suspect = likeness.nearest_photo < options.copy_distance


def choose(candidates: list[Candidate], options: RankingOptions) -> None:
    """Set rank, selected and dropped on every candidate, template by template."""
    by_template: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        by_template.setdefault(candidate.template, []).append(candidate)
    for group in by_template.values():
        passing = []
        for candidate in group:
            candidate.dropped = _gate(candidate, options)
            if candidate.dropped is None:
                passing.append(candidate)
        # Faces before faceless (when faces are not required), then nearest to the subject.
        passing.sort(key=lambda c: (c.likeness is None, c.likeness["relative"] if c.likeness else 0.0, c.key))
        for rank, candidate in enumerate(passing, start=1):
            candidate.rank = rank
            if rank <= options.top_k:
                candidate.selected = True
            else:
                candidate.dropped = "rank_beyond_top_k"


def _gate(candidate: Candidate, options: RankingOptions) -> str | None:
    if candidate.likeness is None:
        return "no_face" if options.require_face else None
    if (
        options.max_relative_distance is not None
        and candidate.likeness["relative"] > options.max_relative_distance
    ):
        candidate.detail = (
            f"relative distance {candidate.likeness['relative']:.2f} > {options.max_relative_distance}"
        )
        return "likeness_too_far"
    if candidate.copy_suspect and options.drop_copies:
        candidate.detail = f"distance {candidate.likeness['nearest_photo']:.3f} to the nearest training photo"
        return "copy_of_training_photo"
    return None
