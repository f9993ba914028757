"""What `verify` tells a recipient about the checks a headshot passed before delivery."""

from __future__ import annotations

from headshot.signing.commands import describe_checks


def test_a_headshot_without_a_face_says_what_was_not_checked_and_why():
    """Issue 25: it said "checked: nothing recorded"; generate records no likeness and no
    audit when it finds no face (or an audit with status no_face)."""
    for checks in (
        {"metrics_version": 3},
        {"metrics_version": 3, "audit": {"status": "no_face", "flags": []}},
    ):
        text = describe_checks(checks)
        assert text.startswith("not checked: no face was found in this image"), text
        assert "looks like the person" in text and "nothing recorded" not in text


def test_a_checked_headshot_still_lists_its_checks():
    checks = {"metrics_version": 3, "likeness": {"relative_distance": 0.8, "threshold": 1.5}}
    checks["audit"] = {"status": "ok", "flags": []}
    assert describe_checks(checks) == (
        "checked: likeness 0.80 x the subject's own photo spread, delivered only up to 1.50; "
        "audit ok: no artifact flagged (metrics v3)"
    )
