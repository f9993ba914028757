"""What an audit finds, shared by the measuring (audit.py), the report (report.py) and
generate's ranking: the audit's options, one image's scores and flags, and a folder's result.

Kept apart from audit.py so that the report, which audit_folder writes, reads these types
without importing the code that writes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from headshot.analysis.metrics import METRICS, METRICS_BY_NAME
from headshot.config import StrictModel

if TYPE_CHECKING:
    from headshot.analysis.reference import ReferenceProfile


class AuditConfig(StrictModel):
    """Options of `headshot audit` (configs/audit.yaml documents each one)."""

    dataset: Path | None = None
    out: Path | None = None
    photos: Path | None = None  # the subject's source photos: used where a dataset crop is too small
    z_limit: float = Field(3.0, gt=0)
    z_limits: dict[str, float] = Field(default_factory=dict)
    unflagged: list[str] = Field(default_factory=list)
    min_spread: dict[str, float] = Field(default_factory=dict)
    identity_relative_max: float = Field(1.6, gt=0)
    identity_min_spread: float = Field(0.2, ge=0)
    detect_max_side: int = Field(640, ge=128)
    thumbnail: int = Field(256, ge=32)

    @field_validator("z_limits", "min_spread")
    @classmethod
    def _known_metric_keys(cls, value: dict[str, float]) -> dict[str, float]:
        _check_names(value)
        return value

    @field_validator("unflagged")
    @classmethod
    def _known_metric_names(cls, value: list[str]) -> list[str]:
        _check_names(value)
        return value

    def limit(self, name: str) -> float:
        return self.z_limits.get(name, self.z_limit)


def _check_names(names) -> None:
    unknown = sorted(set(names) - set(METRICS_BY_NAME))
    if unknown:
        raise ValueError(
            f"unknown metric {', '.join(unknown)}; expected some of {', '.join(METRICS_BY_NAME)}"
        )


Status = Literal["ok", "no_face", "unreadable"]


@dataclass
class ImageAudit:
    """The audit of one image: raw metric values, z-scores against the subject, flags."""

    name: str
    status: Status
    reason: str = ""
    faces: int = 0
    values: dict[str, float] = field(default_factory=dict)
    z: dict[str, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)  # artifact names, e.g. "plastic_skin"
    image: object = field(default=None, repr=False)  # the PIL image, for the report

    @property
    def artifact_score(self) -> float:
        """How far the image is on the artifact side of the subject's photos, summed over
        the z-scored metrics (0 = nowhere beyond the mean): for ranking candidates, lower
        is better. NaN when no face was scored."""
        if self.status != "ok":
            return math.nan
        total = 0.0
        for spec in METRICS:
            z = self.z.get(spec.name, math.nan)
            if math.isfinite(z):
                total += max(0.0, z if spec.direction == "high" else -z)
        return total

    @property
    def passes_likeness(self) -> bool:
        """A face was found and it is the subject's (what `generate` keeps)."""
        return self.status == "ok" and "identity_drift" not in self.flags


@dataclass
class AuditResult:
    rows: list[ImageAudit]
    reference: ReferenceProfile
    out: Path
    images: Path | None = None  # the audited folder: the report links each card to its file

    @property
    def csv_path(self) -> Path:
        return self.out / "metrics.csv"

    @property
    def report_path(self) -> Path:
        return self.out / "report.html"
