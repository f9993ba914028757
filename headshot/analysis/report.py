"""audit/report.html: one self-contained page (images and plots inline as data URIs).

Sections: a summary, plots comparing the audited images with the subject's real
photos on every metric, then one card per image with its scores and flags. The plots
are also saved as PNG files in audit/plots/.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from headshot.analysis.html import escape, figure_data_uri, html_page, png_data_uri
from headshot.analysis.metrics import METRICS
from headshot.records import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    from headshot.analysis.audit_record import AuditConfig, AuditResult, ImageAudit


def comparison_figure(result: AuditResult, config: AuditConfig):
    """One panel per metric: real photos (grey) against audited images (blue, red if
    flagged for that metric), with the flag limit as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 4
    rows = math.ceil(len(METRICS) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.4 * rows))
    for axis, spec in zip(axes.flat, METRICS):
        real = [v for v in result.reference.values.get(spec.name, []) if math.isfinite(v)]
        axis.scatter(real, np.zeros(len(real)), color="0.55", label="real photos", s=22)
        for number, row in enumerate(result.rows, start=1):
            value = row.values.get(spec.name, math.nan) if row.status == "ok" else math.nan
            if math.isfinite(value):
                color = "tab:red" if spec.artifact in row.flags else "tab:blue"
                axis.scatter([value], [1], color=color, s=22)
                # the image's number on its card below
                axis.annotate(
                    str(number),
                    (value, 1),
                    xytext=(0, 5),
                    textcoords="offset points",
                    fontsize=6,
                    ha="center",
                )
        mean, spread = result.reference.stats(spec.name)
        if spec.name in result.reference.unmeasured:
            axis.set_title(f"{spec.name}\nnot measured (reference too small)", fontsize=8)
            axis.set_yticks([0, 1], ["real", "audited"])
            continue
        if spec.name == "identity_relative":
            axis.axvline(config.identity_relative_max, color="tab:red", linestyle="--", linewidth=1)
        elif math.isfinite(mean) and spec.name not in config.unflagged:
            sign = 1 if spec.direction == "high" else -1
            axis.axvline(
                mean + sign * config.limit(spec.name) * spread, color="tab:red", linestyle="--", linewidth=1
            )
        axis.set_yticks([0, 1], ["real", "audited"])
        axis.set_ylim(-0.6, 1.6)
        axis.set_title(f"{spec.name}\n({spec.unit})", fontsize=8)
        axis.tick_params(labelsize=7)
    for axis in list(axes.flat)[len(METRICS) :]:
        axis.axis("off")
    figure.tight_layout()
    return figure


def _image_card(
    row: ImageAudit, config: AuditConfig, unmeasured: dict[str, str], number: int, link: str | None
) -> str:
    """One image's card: its thumbnail (linked to the full-size file), verdict and metrics."""
    thumb = ""
    if row.image is not None:
        image = row.image.copy()
        image.thumbnail((config.thumbnail, config.thumbnail))
        thumb = f"<img src='{png_data_uri(image)}' alt='{escape(row.name)}'>"
        if link:
            thumb = f"<a href='{escape(link)}' title='full size'>{thumb}</a>"
    verdict = {
        "ok": "flags: " + (", ".join(row.flags) if row.flags else "none"),
        "no_face": "no face found: not scored",
        "unreadable": "unreadable: not scored",
    }[row.status]
    lines = [f"<figure>{thumb}<figcaption><b>{number}. {escape(row.name)}</b><br>{escape(verdict)}"]
    if row.reason:
        lines.append(f"<br>{escape(row.reason)}")
    lines.append("</figcaption>")
    if row.status == "ok":
        lines.append("<table><tr><th>metric</th><th>value</th><th>z vs real photos</th></tr>")
        for spec in METRICS:
            value, z = row.values.get(spec.name, math.nan), row.z.get(spec.name, math.nan)
            css = " class='flag'" if spec.artifact in row.flags else ""
            z_text = "not measured" if spec.name in unmeasured else _fmt(z)
            lines.append(
                f"<tr><td{css}>{escape(spec.name)}</td><td{css}>{_fmt(value)}</td><td{css}>{z_text}</td></tr>"
            )
        lines.append("</table>")
    lines.append("</figure>")
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.3f}"


def _summary(result: AuditResult, config: AuditConfig) -> str:
    counts = {
        status: sum(row.status == status for row in result.rows) for status in ("ok", "no_face", "unreadable")
    }
    flagged = sum(bool(row.flags) for row in result.rows)
    limits = "".join(
        f"<tr><td>{escape(s.name)}</td><td>{escape(s.artifact)}</td><td>{escape(s.unit)}</td>"
        f"<td>{escape(_limit_cell(s, config, result.reference.unmeasured))}</td></tr>"
        for s in METRICS
    )
    note = result.reference.reference_note()
    warning = f"<p><b>Reference too small:</b> {escape(note)}.</p>" if note else ""
    return (
        f"<p>{len(result.rows)} images: {counts['ok']} scored, {counts['no_face']} without a face, "
        f"{counts['unreadable']} unreadable; {flagged} with at least one flag. Judged against "
        f"{len(result.reference.names)} real photos of the subject "
        f"({escape(', '.join(result.reference.names))}).</p>{warning}"
        "<p>Each metric is measured on the face aligned to a canonical crop and compared with the same "
        "metric on the subject's own photos: z = (value - mean of the real photos) / their spread "
        "(with a floor for natural photo-to-photo variation). A flag means the value is beyond the limit "
        "on the artifact's side. See docs/metrics.md for what each metric measures and its failure cases.</p>"
        f"<table><tr><th>metric</th><th>flag</th><th>unit</th><th>limit</th></tr>{limits}</table>"
    )


def _limit_cell(spec, config: AuditConfig, unmeasured: dict[str, str]) -> str:
    if spec.name in unmeasured:
        return f"not measured: {unmeasured[spec.name]}"
    return "not flagged" if spec.name in config.unflagged else _limit_text(spec, config)


def _limit_text(spec, config: AuditConfig) -> str:
    if spec.name == "identity_relative":
        return f"> {config.identity_relative_max} or distance >= 0.6"
    limit = config.limit(spec.name)
    return f"z > {limit}" if spec.direction == "high" else f"z < -{limit}"


def _link(result: AuditResult, row: ImageAudit) -> str | None:
    """The audited file, relative to the report (the page stays valid when the subject folder moves)."""
    import os
    from pathlib import Path
    from urllib.parse import quote

    if result.images is None:
        return None
    return quote(Path(os.path.relpath(result.images / row.name, result.out)).as_posix())


def write_report(result: AuditResult, config: AuditConfig) -> None:
    import io

    figure = comparison_figure(result, config)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    atomic_write_bytes(result.out / "plots" / "metrics.png", buffer.getvalue())
    plot = figure_data_uri(figure)
    cards = "\n".join(
        _image_card(row, config, result.reference.unmeasured, number, _link(result, row))
        for number, row in enumerate(result.rows, start=1)
    )
    body = (
        _summary(result, config)
        + "<h2>Audited images against the real photos</h2>"
        + f"<img src='{plot}' alt='metrics of the audited images against the real photos'>"
        + f"<h2>Images</h2>\n{cards}"
        + "\n<!-- study section: `headshot study` adds its report here -->"
    )
    atomic_write_text(result.report_path, html_page("headshot audit", body))
