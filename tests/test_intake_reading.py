"""Reading photos: every accepted format comes out upright 8-bit RGB; bad files say why."""

from __future__ import annotations

import time

import numpy as np
import pytest
from intake_support import (
    save_png16_grey,
    save_png16_rgb,
    save_rgba,
    save_with_exif_rotation_and_gps,
    write_png_bomb,
    write_truncated_jpeg,
)
from PIL import Image

from headshot.analysis.image_io import HEIC_SUPPORTED, read_photo
from headshot.errors import HeadshotError
from headshot.samples import grace_hopper


@pytest.fixture(scope="module")
def portrait() -> Image.Image:
    return grace_hopper()


def _difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean() / 255)


WRITERS = {
    "photo.jpg": lambda im, p: im.save(p, quality=95),
    "photo.png": lambda im, p: im.save(p),
    "photo16.png": save_png16_rgb,
    "photo.webp": lambda im, p: im.save(p, lossless=True),
    "photo.tif": lambda im, p: im.save(p),
    "photo_cmyk.tif": lambda im, p: im.convert("CMYK").save(p),
    "photo_cmyk.jpg": lambda im, p: im.convert("CMYK").save(p, quality=95),
    "photo.bmp": lambda im, p: im.save(p),
}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_colour_formats_read_as_the_same_rgb_pixels(tmp_path, portrait, name):
    path = tmp_path / name
    WRITERS[name](portrait, path)
    image = read_photo(path)
    assert image.mode == "RGB" and image.size == portrait.size
    assert _difference(image, portrait) < 0.02, "colours survive the format (no inversion, no clipping)"


def test_greyscale_8_and_16_bit_are_scaled_not_clipped(tmp_path, portrait):
    grey = portrait.convert("L")
    grey.save(tmp_path / "grey.png")
    save_png16_grey(portrait, tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode.startswith("I")
    for name in ("grey.png", "grey16.png"):
        image = read_photo(tmp_path / name)
        assert image.mode == "RGB"
        assert _difference(image, grey.convert("RGB")) < 0.01, name


def test_palette_and_alpha_images(tmp_path, portrait):
    portrait.quantize(256).save(tmp_path / "palette.png")
    assert _difference(read_photo(tmp_path / "palette.png"), portrait) < 0.05
    save_rgba(portrait, tmp_path / "alpha.png")
    image = read_photo(tmp_path / "alpha.png")
    assert image.mode == "RGB"
    assert image.getpixel((5, 5)) == (255, 255, 255), "transparent areas become a white backdrop"
    assert image.getpixel((300, 300)) == portrait.getpixel((300, 300))


def test_heic(tmp_path, portrait):
    # The set-up installs the `heic` extra (pillow-heif), so HEIC support is required here.
    assert HEIC_SUPPORTED, "pillow-heif is part of the project's set-up (extra 'heic')"
    portrait.save(tmp_path / "photo.heic", quality=95)
    image = read_photo(tmp_path / "photo.heic")
    assert image.size == portrait.size and _difference(image, portrait) < 0.04


def test_exif_orientation_is_applied_and_metadata_dropped(tmp_path, portrait):
    path = tmp_path / "sideways.jpg"
    save_with_exif_rotation_and_gps(portrait, path)
    assert Image.open(path).size == (portrait.height, portrait.width), "stored sideways"
    image = read_photo(path)
    assert image.size == portrait.size
    assert _difference(image, portrait) < 0.03, "displayed upright"
    assert "exif" not in image.info and not image.getexif()


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.jpg", b"", "empty file"),
        ("notes.jpg", b"these are my notes, not a photo\n", "not an image"),
    ],
)
def test_unreadable_files_name_the_file_and_reason(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(HeadshotError, match=rf"^{name}: {reason}"):
        read_photo(path)


def test_truncated_jpeg(tmp_path, portrait):
    path = tmp_path / "cut.jpg"
    write_truncated_jpeg(portrait, path)
    with pytest.raises(HeadshotError, match=r"^cut.jpg: truncated or corrupt"):
        read_photo(path)


def test_one_pixel_image_reads(tmp_path):
    Image.new("RGB", (1, 1), (10, 20, 30)).save(tmp_path / "dot.png")
    assert read_photo(tmp_path / "dot.png").getpixel((0, 0)) == (10, 20, 30)


def test_decompression_bomb_is_refused_from_its_header(tmp_path):
    path = tmp_path / "bomb.png"
    write_png_bomb(path)
    assert path.stat().st_size < 1_000_000
    started = time.perf_counter()
    with pytest.raises(HeadshotError, match=r"^bomb.png: refused, 30000x30000 = 900 megapixels"):
        read_photo(path)
    assert time.perf_counter() - started < 1.0, "refused before decoding 900 megapixels"


def test_pixel_limit_is_an_option(tmp_path, portrait):
    portrait.save(tmp_path / "photo.png")
    with pytest.raises(HeadshotError, match="over the limit"):
        read_photo(tmp_path / "photo.png", max_pixels=100_000)
