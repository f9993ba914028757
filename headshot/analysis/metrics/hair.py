"""Hair: sharpness and structure of the hair/background boundary.

In an arc around the top and sides of the head (regions.hair_band), the ratio of
fine-scale gradient energy (sigma 0.8 px: strands, flyaways) to coarse-scale gradient
energy (sigma 3 px: the outline of the hair mass). A crisp boundary with strands keeps
the ratio high; hair that melts into the background (smeared, airbrushed) lowers it.
Unit: log10 of the ratio (dimensionless); lower = softer boundary.
"""

from __future__ import annotations

import numpy as np

from headshot.analysis.metrics.filters import gradient_magnitude
from headshot.analysis.metrics.normalise import NormalisedFace
from headshot.analysis.metrics.regions import hair_band


def hair_detail(face: NormalisedFace) -> dict[str, float]:
    mask = hair_band() & face.valid
    if mask.sum() < 200:
        return {"hair_detail": float("nan")}
    log_luma = face.log_luma
    fine = gradient_magnitude(log_luma, 0.8)[mask].mean()
    coarse = gradient_magnitude(log_luma, 3.0)[mask].mean()
    return {"hair_detail": float(np.log10(max(fine, 1e-6) / max(coarse, 1e-6)))}
