"""`headshot audit`: score images against the subject's own photos, flag artifacts.

Entry points:
- `load_reference(dataset, config)` once per subject (reference.py), then
- `audit_image(image, reference, config) -> ImageAudit` per image: what `generate`
  calls to drop candidates (`ImageAudit.passes_likeness`), and
- `audit_folder(images, dataset, out, config)`: every image of a folder, written to
  out/metrics.csv, out/report.html and out/plots/.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from headshot.analysis.image_io import is_photo_name, read_photo
from headshot.analysis.metrics import METRICS, METRICS_BY_NAME
from headshot.analysis.reference import MIN_EYE_DISTANCE, ReferenceProfile, measure_image
from headshot.analysis.reference import load_reference as _load_reference
from headshot.config import StrictModel
from headshot.errors import HeadshotError
from headshot.records import atomic_write_text

# reported next to the scored metrics, for people reading the CSV; never flagged
EXTRA_COLUMNS = (
    "identity_distance",
    "ita_shift",
    "gaze_v_offset",
    "background_bend_near",
    "background_bend_far",
)


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


def load_reference(dataset: Path, config: AuditConfig | None = None) -> ReferenceProfile:
    """The subject's yardstick from a `headshot prepare` dataset folder (and, for crops
    too small to hold a detectable face, the source photos in `config.photos`)."""
    config = config or AuditConfig()
    return _load_reference(
        dataset, config.identity_min_spread, config.detect_max_side, config.min_spread, config.photos
    )


def audit_image(
    image, reference: ReferenceProfile, config: AuditConfig | None = None, name: str = ""
) -> ImageAudit:
    """Score one RGB image (PIL or uint8 array) against the subject's reference."""
    config = config or AuditConfig()
    measured = measure_image(image, config.detect_max_side)
    if measured is None:
        return ImageAudit(name, "no_face", "no face found (the detector needs a face of about 80 px or more)")
    values = reference.metric_values(measured)
    result = ImageAudit(name, "ok", faces=measured.faces_found, values=values)
    notes = []
    if measured.faces_found > 1:
        notes.append(f"{measured.faces_found} faces found; scored the largest")
    if measured.eye_distance < MIN_EYE_DISTANCE:
        notes.append(
            f"small face ({measured.eye_distance:.0f} px between the eyes, under {MIN_EYE_DISTANCE:.0f}): "
            "texture metrics read it as smoother than it is"
        )
    result.reason = "; ".join(notes)
    for spec in METRICS:
        z = reference.z_score(spec.name, values[spec.name]) if spec.name != "identity_relative" else math.nan
        result.z[spec.name] = z
        if spec.name in config.unflagged:
            continue
        if spec.name in reference.unmeasured:
            continue
        if spec.name == "identity_relative":
            drift = values["identity_relative"] > config.identity_relative_max
            if drift or values["identity_distance"] >= 0.6:
                result.flags.append(spec.artifact)
        elif math.isfinite(z) and (
            z > config.limit(spec.name) if spec.direction == "high" else z < -config.limit(spec.name)
        ):
            result.flags.append(spec.artifact)
    return result


def image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise HeadshotError(f"{folder}: folder of images to audit not found")
    return sorted(p for p in folder.iterdir() if p.is_file() and is_photo_name(p))


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


def audit_folder(
    images: Path, dataset: Path, out: Path | None = None, config: AuditConfig | None = None
) -> AuditResult:
    """Audit every image in `images` against `dataset`; writes metrics.csv and report.html
    into `out` (default: the dataset's sibling audit/ folder)."""
    from headshot.analysis.report import write_report
    from headshot.layout import SubjectLayout

    config = config or AuditConfig()
    files = image_files(Path(images))
    reference = load_reference(Path(dataset), config)
    if reference.reference_note():
        print(f"audit: {reference.reference_note()}", file=sys.stderr)
    out = Path(out) if out is not None else SubjectLayout.of_stage_folder(Path(dataset)).audit
    rows = []
    for path in files:
        try:
            image = read_photo(path)
        except HeadshotError as exc:
            rows.append(ImageAudit(path.name, "unreadable", str(exc)))
            continue
        row = audit_image(image, reference, config, name=path.name)
        row.image = image
        rows.append(row)
    result = AuditResult(rows, reference, out, Path(images))
    atomic_write_text(result.csv_path, metrics_csv(rows))
    write_report(result, config)
    return result


def metrics_csv(rows: list[ImageAudit]) -> str:
    columns = ["file", "status", "reason", "faces", "flags"]
    for spec in METRICS:
        columns += [spec.name, f"{spec.name}_z"]
    columns += list(EXTRA_COLUMNS)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        line = [row.name, row.status, row.reason, row.faces, ";".join(row.flags)]
        for spec in METRICS:
            line += [_number(row.values.get(spec.name)), _number(row.z.get(spec.name))]
        line += [_number(row.values.get(name)) for name in EXTRA_COLUMNS]
        writer.writerow(line)
    return buffer.getvalue()


def _number(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.4f}"
