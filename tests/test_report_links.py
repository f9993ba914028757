"""Audit and showcase reports: thumbnails large enough to see an earring, each linked to its
full-size image, and the audit plot's points numbered as the image cards are."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
from PIL import Image

from headshot.analysis.audit import AuditConfig, AuditResult, ImageAudit
from headshot.analysis.metrics import METRICS
from headshot.analysis.reference import ReferenceProfile


def _reference() -> ReferenceProfile:
    """A reference profile as measured (three real photos' values per metric), built directly."""
    profile = ReferenceProfile(
        names=["a.jpg", "b.jpg", "c.jpg"],
        identity=None,
        identity_min_spread=0.2,
        tone_chromaticity=np.full(3, 1 / 3),
        tone_ita=40.0,
        gaze=(0.0, 0.0),
        ear_spot=0.0,
    )
    profile.values = {spec.name: [1.0, 1.1, 0.9] for spec in METRICS}
    profile.spread_floor = {spec.name: spec.min_spread for spec in METRICS}
    return profile


def _thumbnail_sizes(page: str) -> list[tuple[int, int]]:
    sizes = []
    for data in re.findall(r"<img src='data:image/png;base64,([^']+)' alt='[^']*\.(?:jpg|png)'", page):
        with Image.open(io.BytesIO(base64.b64decode(data))) as image:
            sizes.append(image.size)
    return sizes


def test_audit_cards_link_their_file_and_the_plot_numbers_each_point(tmp_path):
    from headshot.analysis.report import _image_card, _link, comparison_figure

    images, out = tmp_path / "headshots", tmp_path / "audit"
    rows = []
    for number, name in enumerate(("studio-1.jpg", "office 2.jpg"), start=1):
        values = {spec.name: 1.0 + number / 10 for spec in METRICS}
        row = ImageAudit(name, "ok", values=values, z={spec.name: 0.5 for spec in METRICS})
        row.image = Image.new("RGB", (1024, 1024), (120, 110, 100))
        rows.append(row)
    result = AuditResult(rows, _reference(), out, images)
    config = AuditConfig()
    page = "".join(_image_card(row, config, {}, n, _link(result, row)) for n, row in enumerate(rows, start=1))
    assert "<a href='../headshots/studio-1.jpg' title='full size'><img" in page
    assert "<a href='../headshots/office%202.jpg' title='full size'><img" in page
    assert "<b>1. studio-1.jpg</b>" in page and "<b>2. office 2.jpg</b>" in page
    assert _thumbnail_sizes(page) == [(256, 256), (256, 256)]
    figure = comparison_figure(result, config)
    assert [text.get_text() for text in figure.axes[0].texts] == ["1", "2"]


def test_showcase_thumbnails_are_320_px_and_link_the_full_size_exhibit(tmp_path):
    from headshot.pipelines.showcase import _body

    record = {
        "exhibit": "earring",
        "what": "one earring added",
        "would_deliver": False,
        "reason": "flagged earring_asymmetry",
        "audit": {"flags": ["earring_asymmetry"]},
        "likeness": {"relative": 0.4},
    }
    page = _body(tmp_path / "held.jpg", [record], {"earring": Image.new("RGB", (512, 600))})
    assert "<a href='earring.png' title='full size'><img" in page
    data = re.search(r"base64,([^']+)'", page).group(1)
    with Image.open(io.BytesIO(base64.b64decode(data))) as thumbnail:
        assert max(thumbnail.size) == 320  # was 160: an earring is a few pixels there
