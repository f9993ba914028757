"""Support for the metric and audit tests: the reference set, and the controlled
manipulations of headshot.analysis.manipulations.

The reference set is the real packaged Grace Hopper photos (headshot.samples).
"""

from __future__ import annotations

from PIL import Image

from headshot.analysis.manipulations import MANIPULATIONS, manipulated
from headshot.samples import SUBJECT_VARIANTS, grace_hopper

STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)


HELD_OUT = "hopper_01_original"  # the photo the manipulations are applied to

# The validation of each metric (tests/test_metrics_validation.py, bench/metric_responses.py):
# manipulation -> (metric that must respond, direction)
VALIDATION = {
    "smooth_skin": ("skin_texture", "down"),
    "add_wrinkles": ("age_texture", "up"),
    "break_glasses_frame": ("glasses_asymmetry", "up"),
    "earring": ("ear_asymmetry", "up"),
    "earring_right": ("ear_asymmetry", "up"),
    "warp_background": ("background_bend", "up"),
    "blur_hair": ("hair_detail", "down"),
    "shift_iris": ("gaze_offset", "up"),
    # the same glance toward image-left: on the sample portrait, away from the subject's mean gaze
    "shift_iris_left": ("gaze_offset", "up"),
    "remove_catchlights": ("catchlight_strength", "down"),
    "remove_one_catchlight": ("catchlight_mismatch", "up"),
    "tone_cast": ("skin_tone_delta_e", "up"),
}


def reference_photos() -> dict[str, Image.Image]:
    source = grace_hopper()
    return {name: transform(source) for name, transform in SUBJECT_VARIANTS.items()}


def held_out_reference(held_out: str = HELD_OUT):
    """The reference an audit of `held_out` is judged against: every OTHER sample photo
    (leave-one-out), so the audited photo never sets its own mean and spread. The other
    photos are still variants of the same source portrait (mirrored, cropped, rotated,
    re-exposed): the only public-domain portrait of the subject that ships offline."""
    from headshot.analysis.reference import ReferenceProfile, measure_image

    others = {name: photo for name, photo in reference_photos().items() if name != held_out}
    return ReferenceProfile.from_measurements(list(others), [measure_image(p) for p in others.values()])


__all__ = [
    "HELD_OUT",
    "STRENGTHS",
    "VALIDATION",
    "MANIPULATIONS",
    "held_out_reference",
    "manipulated",
    "reference_photos",
]


def prepared(photos, outputs, resolution=None):
    """outputs/hopper/dataset written by the real `headshot prepare` from the sample selfies
    (it rejects the blurred photo and the astronaut's)."""
    from headshot.training.intake import PrepareConfig, prepare_dataset

    config = PrepareConfig(
        photos=photos, subject="hopper", base_model="sd15", outputs=outputs, resolution=resolution, workers=1
    )
    prepare_dataset(config, show_summary=False)
    return config.layout.dataset
