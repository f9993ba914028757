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
from pathlib import Path

from headshot.analysis.audit_record import AuditConfig, AuditResult, ImageAudit
from headshot.analysis.image_io import is_photo_name, read_photo
from headshot.analysis.metrics import METRICS
from headshot.analysis.reference import MIN_EYE_DISTANCE, ReferenceProfile, measure_image
from headshot.analysis.reference import load_reference as _load_reference
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
