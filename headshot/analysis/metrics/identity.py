"""Identity and appearance drift: does the face still look like the person, now?

- identity: the dlib embedding (faces.py) scored with likeness.SubjectIdentity.
- skin tone: mean colour of the skin-like pixels of both cheek patches (averaged in
  linear RGB), as CIELAB and its Individual Typology Angle ITA = atan((L* - 50) / b*)
  in degrees (higher = lighter). reference.py compares it with the subject's photos by
  CIEDE2000 at equal exposure: the subject's mean linear colour is scaled to this
  image's luminance first, so a brighter or darker photo is not a tone shift but a
  colour cast is (the ITA shift, which exposure does move, is reported, not flagged).
- age proxy: line-like dark valleys (wrinkles) in the forehead band, crow's-feet and
  nasolabial regions: the Hessian's largest eigenvalue of log luma at sigma 1.2 px,
  minus the smallest when positive (dark blobs and pores are not lines), averaged;
  log10. More and deeper wrinkles = higher.
"""

from __future__ import annotations

import numpy as np

from headshot.analysis.metrics.filters import hessian, skin_like
from headshot.analysis.metrics.normalise import NormalisedFace
from headshot.analysis.metrics.regions import cheek_mask, wrinkle_mask

WRINKLE_SIGMA = 1.2


TONE_KEYS = ("tone_l", "tone_a", "tone_b", "tone_ita", "tone_r", "tone_g", "tone_lin_b")


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def linear_to_lab(linear: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2lab

    encoded = np.where(
        linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(np.clip(linear, 0, None), 1 / 2.4) - 0.055
    )
    return rgb2lab(np.clip(encoded, 0, 1).reshape(1, 1, 3))[0, 0]


def ita_degrees(lab: np.ndarray) -> float:
    return float(np.degrees(np.arctan2(lab[0] - 50.0, lab[2])))


def skin_tone(face: NormalisedFace) -> dict[str, float]:
    """Mean cheek colour: CIELAB and ITA, plus the mean linear RGB that audit.py uses to
    compare colours at equal exposure."""
    mask = skin_like(face.log_luma, cheek_mask() & face.valid)
    if mask.sum() < 50:
        return dict.fromkeys(TONE_KEYS, float("nan"))
    linear = srgb_to_linear(face.rgb[mask].astype(np.float64)).mean(axis=0)
    lab = linear_to_lab(linear)
    return dict(zip(TONE_KEYS, (*map(float, lab), ita_degrees(lab), *map(float, linear))))


def age_texture(face: NormalisedFace) -> dict[str, float]:
    mask = wrinkle_mask() & face.valid
    if mask.sum() < 100:
        return {"age_texture": float("nan")}
    hxx, hxy, hyy = hessian(face.log_luma, WRINKLE_SIGMA)
    half_trace = (hxx + hyy) / 2
    root = np.sqrt(((hxx - hyy) / 2) ** 2 + hxy**2)
    largest, smallest = half_trace + root, half_trace - root
    valley = np.clip(largest, 0, None) - np.clip(smallest, 0, None)
    strength = float(valley[mask].mean()) * WRINKLE_SIGMA**2
    return {"age_texture": float(np.log10(max(strength, 1e-6)))}
