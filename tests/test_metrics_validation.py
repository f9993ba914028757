"""Each artifact metric against a controlled manipulation of a real photo.

For every metric, a manipulation imitating its artifact is applied at increasing
strength to the real Grace Hopper portrait (tests/audit_support.py). The metric must
move monotonically with strength and end beyond the audit's flag limit, while every
OTHER manipulation leaves it within CROSS_TOLERANCE (in z units). The measured
responses are recorded in docs/metrics.md.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from audit_support import STRENGTHS, manipulated, reference_photos

from headshot.analysis.metrics import METRICS, normalise_face
from headshot.analysis.reference import ReferenceProfile, measure_image

# manipulation -> (metric that must respond, direction, the value the test follows)
VALIDATION = {
    "smooth_skin": ("skin_texture", "down"),
    "add_wrinkles": ("age_texture", "up"),
    "break_glasses_frame": ("glasses_asymmetry", "up"),
    "earring_right": ("ear_asymmetry", "up"),
    "warp_background": ("background_bend", "up"),
    "blur_hair": ("hair_detail", "down"),
    "shift_iris": ("gaze_offset", "up"),
    "remove_catchlights": ("catchlight_strength", "down"),
    "tone_cast": ("skin_tone_delta_e", "up"),
}
# gaze_offset is a distance from the subject's mean gaze: when the subject looked slightly
# the other way it first shrinks; its monotone response is checked on the signed position.
FOLLOWED_ELSEWHERE = {"shift_iris"}
FLAG_LIMIT = 3.0  # configs/audit.yaml z_limit
STEP_TOLERANCE = 0.6  # z: a step may go back this much (measurement noise) and still count as monotone
CROSS_TOLERANCE = 3.0  # z: how far another manipulation may move a metric (never a flag on its own)
# identity is judged on its own scale (relative distance, limit 1.6): allowed rise
IDENTITY_CROSS_TOLERANCE = 1.0


@pytest.fixture(scope="module")
def reference() -> ReferenceProfile:
    photos = reference_photos()
    return ReferenceProfile.from_measurements(list(photos), [measure_image(p) for p in photos.values()])


@pytest.fixture(scope="module")
def base():
    photo = reference_photos()["hopper_01_original"]
    return photo, normalise_face(np.asarray(photo))


@pytest.fixture(scope="module")
def lined_base(base):
    """The portrait with straight lines composited into its background (it has none)."""
    photo, face = base
    lined = manipulated(photo, "warp_background", 0.0, face)
    return lined, normalise_face(np.asarray(lined))


@pytest.fixture(scope="module")
def responses(reference, base):
    """manipulation -> [(strength, values, z)] measured once for all tests. The
    background manipulation composites its own lines (straight at strength 0)."""
    table = {}
    photo, face = base
    for name in VALIDATION:
        rows = []
        for strength in STRENGTHS:
            measured = measure_image(manipulated(photo, name, strength, face))
            values = reference.metric_values(measured)
            z = {spec.name: reference.z_score(spec.name, values[spec.name]) for spec in METRICS}
            rows.append((strength, values, z))
        table[name] = rows
    return table


@pytest.mark.parametrize("manipulation", list(VALIDATION))
def test_metric_moves_monotonically_with_its_artifact(responses, manipulation):
    metric, direction = VALIDATION[manipulation]
    sign = 1 if direction == "up" else -1
    z = [sign * row[2][metric] for row in responses[manipulation]]
    assert all(math.isfinite(v) for v in z), f"{metric} not measured: {z}"
    if manipulation not in FOLLOWED_ELSEWHERE:
        for weaker, stronger in zip(z, z[1:]):
            assert stronger >= weaker - STEP_TOLERANCE, f"{metric} under {manipulation}: {z}"
    assert z[-1] - z[0] > FLAG_LIMIT - 0.5, f"{metric} barely moves under {manipulation}: {z}"
    assert z[-1] > FLAG_LIMIT, f"{metric} under {manipulation} at full strength is not flagged: {z}"
    assert z[0] < FLAG_LIMIT, f"{metric} flags the unmanipulated photo: {z}"


def test_gaze_position_follows_the_iris_shift(responses):
    """The signed horizontal iris position, not only the distance from the mean, moves
    with the shift (the distance first shrinks when the subject looked the other way)."""
    gaze = [row[1]["gaze_h"] for row in responses["shift_iris"]]
    for weaker, stronger in zip(gaze, gaze[1:]):
        assert stronger >= weaker - 0.02, gaze
    assert gaze[-1] - gaze[0] > 0.15, gaze


@pytest.mark.parametrize("manipulation", list(VALIDATION))
def test_other_metrics_stay_put(responses, manipulation):
    target = VALIDATION[manipulation][0]
    rows = responses[manipulation]
    _, values0, z0 = rows[0]
    for strength, values, z in rows[1:]:
        for spec in METRICS:
            if spec.name == target:
                continue
            if spec.name == "identity_relative":
                moved = values[spec.name] - values0[spec.name]
                assert moved < IDENTITY_CROSS_TOLERANCE, (
                    f"identity under {manipulation} {strength}: {moved:+.2f}"
                )
                continue
            if not (math.isfinite(z[spec.name]) and math.isfinite(z0[spec.name])):
                assert math.isfinite(z[spec.name]) == math.isfinite(z0[spec.name]), (manipulation, spec.name)
                continue
            moved = z[spec.name] - z0[spec.name]
            assert abs(moved) < CROSS_TOLERANCE, (
                f"{spec.name} moved {moved:+.2f} z under {manipulation} {strength}"
            )


@pytest.mark.parametrize("manipulation", [m for m in VALIDATION if m != "warp_background"])
def test_background_bend_ignores_other_manipulations(reference, lined_base, manipulation):
    """On the portrait with background lines, face and hair changes leave the lines alone."""
    photo, face = lined_base
    plain = reference.metric_values(measure_image(photo))["background_bend"]
    changed = reference.metric_values(measure_image(manipulated(photo, manipulation, 1.0, face)))[
        "background_bend"
    ]
    spread = reference.stats("background_bend")[1]
    assert abs(changed - plain) / spread < CROSS_TOLERANCE, (plain, changed)


def _ear_z(reference, photo, face, strength, manipulation="earring"):
    values = reference.metric_values(measure_image(manipulated(photo, manipulation, strength, face)))
    return reference.z_score("ear_asymmetry", values["ear_asymmetry"])


def test_an_earring_on_the_other_ear_is_flagged_at_full_strength(reference, base):
    photo, face = base
    assert _ear_z(reference, photo, face, 1.0) > FLAG_LIMIT


def test_ear_asymmetry_rises_monotonically_on_either_ear(reference, base):
    """On the portrait the image-left ear has the weaker natural colour spot: a stud there
    must not first cancel the other ear's natural spot (only what exceeds the subject's
    own earlobe level counts), so the metric rises from the start on both ears."""
    photo, face = base
    for manipulation in ("earring", "earring_right"):
        z = [_ear_z(reference, photo, face, s, manipulation) for s in STRENGTHS]
        assert all(b >= a - STEP_TOLERANCE for a, b in zip(z, z[1:])), (manipulation, z)
        assert z[0] < FLAG_LIMIT < z[-1], (manipulation, z)


@pytest.mark.xfail(
    strict=True,
    reason="known (docs/metrics.md): the image-right stud sits against blue sky, the left one on skin",
)
def test_matching_earrings_on_both_ears_are_not_asymmetric(reference, base):
    """The same stud on both earlobes is a pair, not an asymmetry. It fails on the sample
    portrait: a colour spot is measured against what surrounds it, and the gold stud
    against blue sky gives about twice the response of the same stud against skin."""
    photo, face = base
    one_ear = manipulated(photo, "earring", 1.0, face)
    both_ears = manipulated(one_ear, "earring_right", 1.0, face)
    values = reference.metric_values(measure_image(both_ears))
    assert reference.z_score("ear_asymmetry", values["ear_asymmetry"]) < FLAG_LIMIT, values
