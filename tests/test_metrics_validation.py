"""Each artifact metric against a controlled manipulation of a real photo.

For every metric, a manipulation imitating its artifact is applied at increasing
strength to the real Grace Hopper portrait (tests/audit_support.py), scored against a
reference of the 7 OTHER sample photos (leave-one-out: the manipulated photo never sets
its own mean and spread). The metric must rise with every step of strength, by at least
MIN_STEP z (in its artifact direction), and end beyond the audit's flag limit, while every
OTHER manipulation moves it by under CROSS_TOLERANCE z and keeps it at least ABSOLUTE_MARGIN z
inside the limit. The measured responses are in docs/metrics.md (bench/metric_responses.py prints them).

Where today's metrics miss these bars, the case is marked `xfail(strict=True)` with the
measured number, and docs/metrics.md lists it: the claim stays tested, and a fix that
makes it pass turns the mark into a failure until the mark is removed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from audit_support import HELD_OUT, STRENGTHS, VALIDATION, held_out_reference, manipulated, reference_photos

from headshot.analysis.metrics import METRICS, normalise_face
from headshot.analysis.reference import ReferenceProfile, measure_image

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of `make test-fast`

# Metrics that respond to another's artifact by their definition, not by cross-talk:
# catchlight_strength is the mean over both eyes, so one dead eye halves it.
ALSO_RESPONDS = {"remove_one_catchlight": {"catchlight_strength"}}
FLAG_LIMIT = 3.0  # configs/audit.yaml z_limit
CROSS_TOLERANCE = 1.0  # z: how far another manipulation may move a metric
ABSOLUTE_MARGIN = 1.0  # z: how far inside the limit every other metric must stay
MIN_STEP = 0.1  # z: a stronger artifact must raise its metric by at least this much (a rise of
# 0.005 z is a flat response, not a rising one)
# identity is judged on its own scale (relative distance, limit 1.6, the subject's own
# spread = 1): other manipulations may raise it by under half that spread, and it must
# stay within the subject's own spread.
IDENTITY_CROSS_TOLERANCE = 0.5
IDENTITY_MAX = 1.0

# Measured where today's metrics miss the bars (value at the worst strength), see docs/metrics.md.
NOT_STRICTLY_RISING = {
    "earring": "ear_asymmetry 0.027, 0.027, 0.029, 0.162, 0.245 (z +0.15, +0.16, +0.20, +2.85, +4.51): "
    "a stud at a quarter or half opacity is below the earlobe's natural spot and is not seen",
    "shift_iris": "gaze_offset 0.037, 0.034, 0.073, 0.111, 0.182: a small shift first nears the mean gaze",
}
CROSS_TALK = {  # (manipulation, metric): the largest move, and the largest |z| reached
    ("smooth_skin", "age_texture"): "-1.1 z, to |z| 1.3",
    ("smooth_skin", "catchlight_strength"): "-1.6 z, to |z| 1.5",
    ("add_wrinkles", "identity_relative"): "rises +0.82, to 1.21",
    ("break_glasses_frame", "age_texture"): "-1.9 z, to |z| 2.1",
    ("shift_iris", "glasses_asymmetry"): "+1.3 z, to |z| 1.2",
    ("shift_iris_left", "skin_texture"): "+1.1 z, to |z| 1.3",
    ("shift_iris_left", "catchlight_strength"): "-5.0 z, to |z| 4.9: moved past the read region",
    ("shift_iris_left", "catchlight_mismatch"): "-1.2 z, to |z| 1.0",
    ("remove_catchlights", "catchlight_mismatch"): "-1.1 z, to |z| 0.9",
    ("tone_cast", "skin_texture"): "-1.5 z, to |z| 1.3",
    ("tone_cast", "ear_asymmetry"): "+1.3 z, to |z| 1.4",
    ("tone_cast", "catchlight_strength"): "-1.1 z, to |z| 1.0",
}


def _known(cases: dict, key, reason: str = "known (docs/metrics.md): "):
    if key in cases:
        return pytest.param(*(key if isinstance(key, tuple) else (key,)), marks=pytest.mark.xfail(
            strict=True, reason=reason + cases[key]))  # fmt: skip
    return pytest.param(*(key if isinstance(key, tuple) else (key,)))


@pytest.fixture(scope="module")
def reference() -> ReferenceProfile:
    return held_out_reference()


@pytest.fixture(scope="module")
def base():
    photo = reference_photos()[HELD_OUT]
    return photo, normalise_face(np.asarray(photo))


@pytest.fixture(scope="module")
def lined_base(base):
    """The portrait with straight lines composited into its background (it has none)."""
    photo, face = base
    lined = manipulated(photo, "warp_background", 0.0, face)
    return lined, normalise_face(np.asarray(lined))


@pytest.fixture(scope="module")
def lined_bend(reference, lined_base) -> float:
    """background_bend of the lined portrait as it is, measured once."""
    return reference.metric_values(measure_image(lined_base[0]))["background_bend"]


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


@pytest.mark.parametrize("manipulation", [_known(NOT_STRICTLY_RISING, m) for m in VALIDATION])
def test_metric_rises_strictly_with_its_artifact(responses, manipulation):
    metric, direction = VALIDATION[manipulation]
    sign = 1 if direction == "up" else -1
    z = [sign * row[2][metric] for row in responses[manipulation]]
    assert all(math.isfinite(v) for v in z), f"{metric} not measured: {z}"
    steps = [stronger - weaker for weaker, stronger in zip(z, z[1:])]
    assert min(steps) >= MIN_STEP, f"{metric} under {manipulation}: {z}"
    assert z[-1] > FLAG_LIMIT, f"{metric} under {manipulation} at full strength is not flagged: {z}"
    assert z[0] < FLAG_LIMIT - ABSOLUTE_MARGIN, f"{metric} near the limit on the unmanipulated photo: {z}"


def test_gaze_position_follows_the_iris_shift(responses):
    """The signed horizontal iris position moves strictly with the shift, and the shifted
    gaze is flagged (the distance from the mean first shrinks: NOT_STRICTLY_RISING)."""
    gaze = [row[1]["gaze_h"] for row in responses["shift_iris"]]
    assert all(stronger > weaker for weaker, stronger in zip(gaze, gaze[1:])), gaze
    assert gaze[-1] - gaze[0] > 0.15, gaze
    assert responses["shift_iris"][-1][2]["gaze_offset"] > FLAG_LIMIT


CROSS_CASES = [
    (manipulation, spec.name)
    for manipulation, (target, _) in VALIDATION.items()
    for spec in METRICS
    # background_bend needs lines in the background: the portrait has none (NaN at every
    # strength); it is checked on the lined portrait by test_background_bend_ignores_...
    if spec.name not in {target, "background_bend"} | ALSO_RESPONDS.get(manipulation, set())
]


@pytest.mark.parametrize(("manipulation", "metric"), [_known(CROSS_TALK, case) for case in CROSS_CASES])
def test_other_metrics_stay_put(responses, manipulation, metric):
    rows = responses[manipulation]
    _, values0, z0 = rows[0]
    for strength, values, z in rows[1:]:
        if metric == "identity_relative":
            value = values[metric]
            assert math.isfinite(value) and math.isfinite(values0[metric]), (manipulation, strength, value)
            assert value - values0[metric] < IDENTITY_CROSS_TOLERANCE, (manipulation, strength, value)
            assert value < IDENTITY_MAX, (manipulation, strength, value)
            continue
        # a metric that cannot be measured is no evidence that it stayed put
        assert math.isfinite(z[metric]) and math.isfinite(z0[metric]), (
            manipulation,
            strength,
            z0[metric],
            z[metric],
        )
        moved = z[metric] - z0[metric]
        assert abs(moved) < CROSS_TOLERANCE, f"{metric} moved {moved:+.2f} z under {manipulation} {strength}"
        assert abs(z[metric]) <= FLAG_LIMIT - ABSOLUTE_MARGIN, (
            f"{metric} at {z[metric]:+.2f} z under {manipulation}"
        )


@pytest.mark.parametrize("manipulation", [m for m in VALIDATION if m != "warp_background"])
def test_background_bend_ignores_other_manipulations(reference, lined_base, lined_bend, manipulation):
    """On the portrait with background lines, face and hair changes leave the lines alone."""
    photo, face = lined_base
    plain = lined_bend
    changed = reference.metric_values(measure_image(manipulated(photo, manipulation, 1.0, face)))[
        "background_bend"
    ]
    assert math.isfinite(plain) and math.isfinite(changed), (plain, changed)
    moved = (changed - plain) / reference.stats("background_bend")[1]
    assert abs(moved) < CROSS_TOLERANCE, (plain, changed)
    assert abs(reference.z_score("background_bend", changed)) <= FLAG_LIMIT - ABSOLUTE_MARGIN, changed


def _ear_z(reference, photo, face, strength, manipulation="earring"):
    values = reference.metric_values(measure_image(manipulated(photo, manipulation, strength, face)))
    return reference.z_score("ear_asymmetry", values["ear_asymmetry"])


def test_an_earring_on_the_other_ear_is_flagged_at_full_strength(reference, base):
    photo, face = base
    assert _ear_z(reference, photo, face, 1.0) > FLAG_LIMIT


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


def _neutral_copies(photo):
    """What happens to a photo without changing what it shows: re-saved as JPEG, moved by a
    pixel or two, resampled by 2%, one or two grey levels brighter or darker."""
    import io

    from PIL import Image

    def jpeg(quality):
        buffer = io.BytesIO()
        photo.save(buffer, "JPEG", quality=quality)
        buffer.seek(0)
        return Image.open(buffer).convert("RGB")

    array = np.asarray(photo)
    width, height = photo.size
    small = photo.resize((round(width * 0.98), round(height * 0.98)), Image.LANCZOS)
    return {
        "jpeg q95": jpeg(95),
        "jpeg q90": jpeg(90),
        "1 px right": Image.fromarray(np.roll(array, 1, axis=1)),
        "2 px down": Image.fromarray(np.roll(array, 2, axis=0)),
        "resampled 98%": small.resize((width, height), Image.LANCZOS),
        "+2 grey levels": Image.fromarray(np.clip(array.astype(np.int16) + 2, 0, 255).astype(np.uint8)),
        "-2 grey levels": Image.fromarray(np.clip(array.astype(np.int16) - 2, 0, 255).astype(np.uint8)),
    }


@pytest.fixture(scope="module")
def neutral(reference, base):
    """metric -> the largest move over the neutral copies of the portrait: in z, and for
    identity in its own unit (the relative distance), as the cross-talk bars measure them."""
    photo, _ = base
    start = _scaled(reference, photo)
    moves = {name: 0.0 for name in start}
    for copy in _neutral_copies(photo).values():
        for name, value in _scaled(reference, copy).items():
            moves[name] = max(moves[name], abs(value - start[name]))
    return moves


def _scaled(reference, photo) -> dict[str, float]:
    values = reference.metric_values(measure_image(photo))
    return {
        spec.name: values[spec.name]
        if spec.name == "identity_relative"
        else reference.z_score(spec.name, values[spec.name])
        for spec in METRICS
    }


# Before the landmarks were steadied (faces.steady_shape) and the catchlight averaged over a
# few pixels, these copies moved age_texture by 2.2 z, catchlight_strength 1.9 z and gaze_offset
# 1.2 z (docs/metrics.md): the dlib points jumped by up to 2.5 px, and the crop with them.


@pytest.mark.parametrize("metric", [spec.name for spec in METRICS if spec.name != "background_bend"])
def test_a_resaved_or_shifted_copy_measures_the_same(neutral, metric):
    """A photo re-saved, moved by a pixel or a shade brighter is the same photo: every metric
    must move by under the cross-talk tolerance (background_bend: the portrait has no lines)."""
    tolerance = IDENTITY_CROSS_TOLERANCE if metric == "identity_relative" else CROSS_TOLERANCE
    assert neutral[metric] < tolerance, f"{metric} moved {neutral[metric]:.2f}"


@pytest.mark.parametrize("strength", [0.0, 0.5])
def test_background_bend_of_a_resaved_or_shifted_copy_is_the_same(
    reference, base, lined_base, lined_bend, strength
):
    """The same neutral copies of the portrait with background lines, straight and bent."""
    if strength == 0.0:
        photo, plain = lined_base[0], lined_bend
    else:
        photo = manipulated(base[0], "warp_background", strength, base[1])
        plain = reference.metric_values(measure_image(photo))["background_bend"]
    spread = reference.stats("background_bend")[1]
    for name, copy in _neutral_copies(photo).items():
        value = reference.metric_values(measure_image(copy))["background_bend"]
        assert math.isfinite(value), name
        assert abs(value - plain) / spread < CROSS_TOLERANCE, f"{name}: {plain:.3f} -> {value:.3f}"
