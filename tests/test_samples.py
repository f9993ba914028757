"""The demo's sample subject is made from real packaged public-domain portraits."""

from __future__ import annotations

from PIL import Image

from headshot.samples import SUBJECT_VARIANTS, make_sample_selfies


def test_sample_selfies_are_real_varied_photos(tmp_path):
    first = make_sample_selfies(tmp_path / "a")
    second = make_sample_selfies(tmp_path / "b")
    assert len(first) == len(SUBJECT_VARIANTS) + 2
    sizes = {Image.open(path).size for path in first}
    assert len(sizes) > 1, "crops change the framing"
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), "the set is deterministic"


def test_stage_outputs_are_readable_like_ordinary_files(tmp_path):
    import os
    import stat

    from headshot.records import atomic_write_text

    target = tmp_path / "record.json"
    atomic_write_text(target, "{}")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
