"""Print the validation responses recorded in docs/metrics.md (markdown tables).

Each manipulation of tests/audit_support.py is applied at strengths 0..1 to the real
sample portrait; every metric is measured and scored against the 7 OTHER sample photos
(leave-one-out: the audited photo never sets its own mean and spread), as
tests/test_metrics_validation.py does.

Run: PYTHONPATH=$PWD python bench/metric_responses.py
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from audit_support import (  # noqa: E402
    HELD_OUT,
    STRENGTHS,
    VALIDATION,
    held_out_reference,
    manipulated,
    reference_photos,
)

from headshot.analysis.metrics import METRICS, normalise_face  # noqa: E402
from headshot.analysis.reference import measure_image  # noqa: E402

TARGETS = {name: metric for name, (metric, _) in VALIDATION.items()}


def main() -> None:
    reference = held_out_reference()
    base = reference_photos()[HELD_OUT]
    face = normalise_face(np.asarray(base))
    print(f"Reference (the 7 sample photos other than {HELD_OUT}): mean and spread used for z")
    print("\n| metric | mean | spread (floor) |\n|---|---|---|")
    for spec in METRICS:
        mean, spread = reference.stats(spec.name)
        print(f"| {spec.name} | {mean:.3f} | {spread:.3f} ({spec.min_spread}) |")
    results = {}
    for name in TARGETS:
        rows = []
        for strength in STRENGTHS:
            values = reference.metric_values(measure_image(manipulated(base, name, strength, face)))
            rows.append((values, {s.name: reference.z_score(s.name, values[s.name]) for s in METRICS}))
        results[name] = rows
    header = " | ".join(f"s={s:g}" for s in STRENGTHS)
    print(
        f"\nOwn response: value (z)\n\n| manipulation | metric | {header} |\n|---|---|"
        + "---|" * len(STRENGTHS)
    )
    for name, metric in TARGETS.items():
        cells = " | ".join(f"{values[metric]:.3f} ({z[metric]:+.1f})" for values, z in results[name])
        print(f"| {name} | {metric} | {cells} |")
    print("\nCross-talk: largest |z| of every other metric over s (absolute, not the change)\n")
    print("| manipulation | " + " | ".join(s.name for s in METRICS) + " |\n|---|" + "---|" * len(METRICS))
    for name, rows in results.items():
        cells = []
        for spec in METRICS:
            if spec.name == "identity_relative":
                largest = [v[spec.name] for v, _ in rows]
            else:
                largest = [abs(z[spec.name]) for _, z in rows]
            finite = [m for m in largest if math.isfinite(m)]
            text = f"{max(finite):.1f}" if finite else "n/a"
            cells.append(f"**{text}**" if spec.name == TARGETS[name] else text)
        print(f"| {name} | " + " | ".join(cells) + " |")
    names = [s.name for s in METRICS]
    print("\nCross-talk: largest |z(s) - z(0)| over s of every metric (identity: relative distance change)\n")
    print("| manipulation | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for name, rows in results.items():
        cells = []
        for metric in names:
            if metric == "identity_relative":
                moved = [abs(v[metric] - rows[0][0][metric]) for v, _ in rows[1:]]
            else:
                moved = [abs(z[metric] - rows[0][1][metric]) for _, z in rows[1:]]
            finite = [m for m in moved if math.isfinite(m)]
            text = f"{max(finite):.1f}" if finite else "n/a"
            cells.append(f"**{text}**" if metric == TARGETS[name] else text)
        print(f"| {name} | " + " | ".join(cells) + " |")
    lined = manipulated(base, "warp_background", 0.0, face)
    lined_face = normalise_face(np.asarray(lined))
    plain = reference.metric_values(measure_image(lined))["background_bend"]
    print("\nbackground_bend on the portrait with straight background lines, other manipulations at s=1\n")
    print(f"| manipulation | background_bend (px) | z change |\n|---|---|---|\n| none | {plain:.3f} | 0 |")
    spread = reference.stats("background_bend")[1]
    for name in TARGETS:
        if name == "warp_background":
            continue
        value = reference.metric_values(measure_image(manipulated(lined, name, 1.0, lined_face)))[
            "background_bend"
        ]
        print(f"| {name} | {value:.3f} | {(value - plain) / spread:+.1f} |")


if __name__ == "__main__":
    main()
