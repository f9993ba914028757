"""The audit's artifact metrics (headshot.analysis.metrics) as study metrics.

With the subject's dataset, every audited metric is measured as `headshot audit` does
(`audit_image` against the subject's own photos: identity, skin tone and gaze are distances
to them, ear asymmetry counts only what exceeds their natural earlobe colour); without one,
the metrics that need no reference. Each image is measured once for all of them (one face
normalisation); an image without a face reads None.
"""

from __future__ import annotations

from pathlib import Path

from headshot.study.measures import ImageMetric, metrics_from_features

# Distances to the subject's own photos: only measurable with their dataset.
NEEDS_REFERENCE = ("ear_asymmetry", "gaze_offset", "identity_relative", "skin_tone_delta_e")


def artifact_metrics(dataset: Path | None) -> dict[str, ImageMetric]:
    from headshot.analysis.metrics import METRICS

    if dataset is not None:
        from headshot.analysis.audit import audit_image, load_reference

        reference = load_reference(dataset)

        def audited(image):
            result = audit_image(image.convert("RGB"), reference)
            return result.values if result.status == "ok" else None

        return metrics_from_features(audited, [spec.name for spec in METRICS])

    from headshot.analysis.reference import measure_image

    def measured(image):
        measurement = measure_image(image.convert("RGB"))
        return measurement.features if measurement is not None else None

    return metrics_from_features(
        measured, [spec.name for spec in METRICS if spec.name not in NEEDS_REFERENCE]
    )
