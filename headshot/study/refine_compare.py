"""Does the face-detail pass help? The artifact metrics of the same seeds before and after it.

For each seed the study renders the prompt, runs generate's own face-detail pass on it
(headshot.pipelines.refine, the options of `refine:` in the study config) and measures the
study's metrics on both images; the report shows the pairs and, per metric, the mean change
over the seeds the pass was applied to. A render with no face large enough is not refined,
and is listed with that reason (every render of the tiny random-weight models).
"""

from __future__ import annotations

import math

from PIL import Image
from pydantic import Field

from headshot.config import StrictModel
from headshot.pipelines.refine import RefineOptions
from headshot.study.measures import MetricSet, measure


class RefineComparison(StrictModel):
    """`refine:` in the study config: compare renders before and after the face-detail pass."""

    enabled: bool = False
    seeds: list[int] = Field(default=[0, 1, 2, 3], min_length=1, max_length=64)
    options: RefineOptions = Field(default_factory=lambda: RefineOptions(enabled=True))


def compare(renders: dict[int, Image.Image], refiner, call: dict, metrics: MetricSet):
    """Refine each seed's render; returns (the record, {name: image} of every pair)."""
    rows, images = [], {}
    for seed, image in renders.items():
        refined, result = refiner.refine(image, call, seed)
        before = measure(image, metrics)
        after = measure(refined, metrics) if result["applied"] else dict(before)
        rows.append({"seed": seed, **result, "before": before, "after": after})
        images[f"refine/seed-{seed}-before"] = image
        images[f"refine/seed-{seed}-after"] = refined
    applied = [row for row in rows if row["applied"]]
    mean_change = {}
    for name in metrics:
        changes = [
            row["after"][name] - row["before"][name]
            for row in applied
            if _number(row["before"].get(name)) and _number(row["after"].get(name))
        ]
        mean_change[name] = sum(changes) / len(changes) if changes else None
    record = {
        "seeds": list(renders),
        "options": refiner.settings(),
        "applied": len(applied),
        "rows": rows,
        "mean_change": mean_change,
        "images": {name: f"{name}.png" for name in images},
    }
    return record, images


def _number(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
