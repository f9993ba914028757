"""The invisible watermark on real photos: survives JPEG q70 and 0.5x resize, no false positives."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from headshot.samples import astronaut, grace_hopper
from headshot.signing import watermark


def _real_photos() -> dict[str, Image.Image]:
    import skimage.data

    photos = {"grace_hopper": grace_hopper(), "astronaut": astronaut()}
    for name in ("coffee", "chelsea", "rocket", "camera"):
        photos[name] = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
    return photos


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _half(image: Image.Image) -> Image.Image:
    return image.resize((image.width // 2, image.height // 2), Image.LANCZOS)


@pytest.mark.parametrize("name", ["grace_hopper", "coffee", "rocket"])
def test_mark_survives_jpeg_q70_and_half_size_and_stays_invisible(name):
    photo = _real_photos()[name]
    marked = watermark.embed(photo, "c0ffee42")
    error = np.asarray(marked, dtype=np.float64) - np.asarray(photo, dtype=np.float64)
    psnr = 10 * np.log10(255**2 / (error**2).mean())
    assert psnr > 35, f"PSNR {psnr:.1f} dB"
    for attacked in (marked, _jpeg(marked, 70), _half(marked), _jpeg(_half(marked), 70)):
        result = watermark.detect(attacked)
        assert result.found and result.identifier == "c0ffee42"


def test_unmarked_real_photos_never_yield_an_identifier():
    trials = 0
    for photo in _real_photos().values():
        for variant in (photo, _jpeg(photo, 70), _half(photo)):
            for key in (watermark.DEFAULT_KEY, "another-key", "third-key"):
                assert not watermark.detect(variant, key=key).found
                trials += 1
    assert trials == 54


def test_a_different_key_does_not_read_the_mark():
    marked = watermark.embed(grace_hopper(), "0badcafe")
    assert watermark.detect(marked).identifier == "0badcafe"
    assert not watermark.detect(marked, key="someone-else").found


def test_tiny_images_carry_the_mark_in_their_delivered_file():
    """The demo's tiny model renders noise-like 64x64 images, delivered as JPEG q92."""
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    for tiny in (grace_hopper().resize((64, 64)), noise):
        marked = watermark.embed(tiny, "00000001")
        assert watermark.detect(_jpeg(marked, 92)).identifier == "00000001"


def test_a_mirrored_copy_is_still_read_but_a_cropped_one_is_not():
    """The documented limits: flips are handled, crops are not (docs/watermark.md)."""
    from PIL import ImageOps

    marked = watermark.embed(grace_hopper(), "feedf00d")
    assert watermark.detect(ImageOps.mirror(_jpeg(marked, 80))).identifier == "feedf00d"
    w, h = marked.size
    assert not watermark.detect(marked.crop((w // 20, h // 20, w - w // 20, h - h // 20))).found
