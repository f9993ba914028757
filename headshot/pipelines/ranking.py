"""Rank candidates: does a face appear, does it look like the subject, and how few of the
known AI artifacts does it show?

Likeness is the identity-embedding distance to the centroid of the subject's own
accepted photos, judged against their spread (`SubjectIdentity.score`): a relative
distance of 1.0 is as far as the subject's most unusual real photo. A candidate
nearer than `copy_distance` to one single training photo is flagged as a possible
copy of it. Every candidate with a face is also audited (`audit_image`, the metrics of
`headshot audit`) against the subject's own photos; a flagged artifact is handled by the
`flagged` policy (by default it is not delivered while a clean candidate of the same
template passes). Within each template, candidates that pass are ranked by one score,
lower is better:

    score = relative likeness distance + artifact_weight x artifact score

where the artifact score sums, over the audit's metrics, how far the candidate lies beyond
the subject's mean on the artifact's side, in z units. The best `top_k` are delivered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from headshot.analysis.audit import AuditConfig, ImageAudit, audit_image, load_reference
from headshot.analysis.faces import detect_faces
from headshot.analysis.likeness import SubjectIdentity
from headshot.analysis.metrics import METRICS
from headshot.analysis.reference import ReferenceProfile
from headshot.errors import HeadshotError
from headshot.pipelines.generate_config import RankingOptions

# Why a candidate was not delivered; index.json gives the code and a sentence.
DROP_REASONS = {
    "no_face": "no face was found in the image",
    "likeness_too_far": "the face is too far from the subject's own photos",
    "copy_of_training_photo": "nearly identical to one training photo (a copy, not a new picture)",
    "artifact_flagged": "the audit flagged an artifact while a clean candidate of its template passed",
    "artifact_never_delivered": "the audit flagged an artifact (policy: flagged ones are never delivered)",
    "rank_beyond_top_k": "ranked below the top_k candidates of its template",
    "signing_failed": "signing failed, so it was not delivered",
}


METRIC_OF_FLAG = {spec.artifact: spec.name for spec in METRICS}
LIKENESS_FLAG = next(spec.artifact for spec in METRICS if spec.name == "identity_relative")


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
    audit: dict | None = None  # status, flags, z, artifact_score (see audit_summary)
    score: float | None = None  # the combined ranking score, lower is better
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
            "audit": self.audit,
            "score": None if self.score is None else round(self.score, 4),
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
    candidate: Candidate,
    image: Image.Image,
    identity: SubjectIdentity,
    options: RankingOptions,
    auditor: Auditor | None = None,
):
    """Detect faces, score the largest one against the subject, and audit its artifacts."""
    full = image = image.convert("RGB")
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
    if auditor is not None:
        candidate.audit = auditor.audit(full)


class Auditor:
    """Audits candidates against the subject's reference, built once, on the first candidate
    with a face (a few seconds; a run whose renders show no face never pays for it)."""

    def __init__(self, dataset: Path, config: AuditConfig):
        self.dataset, self.config = dataset, config
        self._reference: ReferenceProfile | None = None
        self.note = "on (no candidate had a face to audit)"

    def audit(self, image: Image.Image) -> dict | None:
        if self._reference is None:
            if self.note.startswith("skipped"):
                return None
            try:
                self._reference = load_reference(self.dataset, self.config)
            except HeadshotError as exc:
                self.note = f"skipped: {exc}"
                return None
            self.note = "on"
        return audit_summary(audit_image(image, self._reference, self.config))


def audit_summary(audit: ImageAudit) -> dict:
    """What ranking and index.json keep of a candidate's audit. Likeness has its own gate
    (max_relative_distance), so identity drift is reported but is not an artifact flag here."""
    flags = [flag for flag in audit.flags if flag != LIKENESS_FLAG]
    z = {name: round(value, 3) for name, value in audit.z.items() if math.isfinite(value)}
    score = audit.artifact_score
    return {
        "status": audit.status,
        "flags": flags,
        "flagged_metrics": {flag: METRIC_OF_FLAG[flag] for flag in flags},
        "z": z,
        "artifact_score": round(score, 4) if math.isfinite(score) else None,
    }


def combined_score(candidate: Candidate, options: RankingOptions) -> float:
    """relative likeness distance + artifact_weight x artifact score (lower is better)."""
    relative = candidate.likeness["relative"] if candidate.likeness else 0.0
    artifacts = (candidate.audit or {}).get("artifact_score") or 0.0
    return relative + options.artifact_weight * artifacts


def _flagged(candidate: Candidate) -> bool:
    return bool(candidate.audit and candidate.audit["flags"])


def _flag_detail(candidate: Candidate) -> str:
    z = candidate.audit["z"]
    return ", ".join(
        f"{flag} ({metric} z {z.get(metric, float('nan')):+.1f})"
        for flag, metric in candidate.audit["flagged_metrics"].items()
    )


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
                candidate.score = combined_score(candidate, options) if candidate.likeness else None
                passing.append(candidate)
        passing = _apply_flag_policy(passing, options)
        # Faces before faceless (when faces are not required), then the lowest combined score.
        passing.sort(key=lambda c: (c.likeness is None, c.score or 0.0, c.key))
        for rank, candidate in enumerate(passing, start=1):
            candidate.rank = rank
            if rank <= options.top_k:
                candidate.selected = True
            else:
                candidate.dropped = "rank_beyond_top_k"


def _apply_flag_policy(passing: list[Candidate], options: RankingOptions) -> list[Candidate]:
    """Drop flagged candidates as the policy says; returns those still in the running."""
    if options.flagged == "demote":
        return passing
    clean_exists = any(not _flagged(c) for c in passing)
    kept = []
    for candidate in passing:
        if _flagged(candidate) and (options.flagged == "never" or clean_exists):
            candidate.dropped = (
                "artifact_never_delivered" if options.flagged == "never" else "artifact_flagged"
            )
            candidate.detail = _flag_detail(candidate)
        else:
            kept.append(candidate)
    return kept


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
