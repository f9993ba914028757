"""Plastic skin: fine texture energy on the cheeks.

Real skin shows pores, fine lines and sensor noise; over-smoothed AI skin does not.
The measure is the RMS of the fine-scale detail (log luma minus its Gaussian blur at
1.5 canonical px, about 1.5 mm of face) inside the cheek patches, as log10. Working on
log luma makes it independent of exposure and colour casts.
Unit: log10 of RMS detail (natural-log luma units); lower = smoother.
"""

from __future__ import annotations

import numpy as np

from headshot.analysis.metrics.filters import blur, skin_like
from headshot.analysis.metrics.normalise import NormalisedFace
from headshot.analysis.metrics.regions import cheek_mask

DETAIL_SIGMA = 1.5


def skin_texture(face: NormalisedFace) -> dict[str, float]:
    log_luma = face.log_luma
    detail = log_luma - blur(log_luma, DETAIL_SIGMA)
    mask = skin_like(log_luma, cheek_mask() & face.valid)
    if mask.sum() < 50:
        return {"skin_texture": float("nan")}
    rms = float(np.sqrt(np.mean(detail[mask] ** 2)))
    return {"skin_texture": float(np.log10(max(rms, 1e-6)))}
