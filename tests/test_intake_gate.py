"""The quality gate on one realistic upload: every format accepted, every reason given.

One folder holds distinct framings of the Hopper portrait in every accepted format,
plus one photo for each way a photo can fail. It is prepared once (module fixture)
and each test checks one promise about the result.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from intake_support import (
    SECRET_EXIF_WORDS,
    blurred,
    exposure,
    hopper_cropped,
    no_face,
    other_person,
    save_png16_rgb,
    save_rgba,
    save_with_exif_rotation_and_gps,
    turned_head,
    two_people,
    write_png_bomb,
    write_truncated_jpeg,
)
from PIL import Image

from headshot.analysis.faces import detect_faces
from headshot.dataset_record import read_dataset
from headshot.errors import HeadshotError
from headshot.samples import grace_hopper
from headshot.training.intake import PrepareConfig, prepare_dataset

RESOLUTION = 256

# Each accepted format holds a different framing (height) of the portrait, so that
# none is a duplicate of another: a crop changes the picture.
ACCEPTED_FORMATS = {
    "a01_jpeg.jpg": (600, lambda im, p: im.save(p, quality=92)),
    "a02_png8.png": (585, lambda im, p: im.save(p)),
    "a03_png16.png": (570, save_png16_rgb),
    "a04_webp.webp": (555, lambda im, p: im.save(p, quality=92)),
    "a05_tiff.tif": (540, lambda im, p: im.save(p)),
    "a06_cmyk.tif": (525, lambda im, p: im.convert("CMYK").save(p)),
    "a07_grey.png": (510, lambda im, p: im.convert("L").save(p)),
    "a08_palette.png": (495, lambda im, p: im.quantize(256).save(p)),
    "a09_rgba.png": (480, save_rgba),
}
EXIF_ROTATED = "a10_exif_rotated.jpg"

EXPECTED_REJECTIONS = {
    "z_blurred.jpg": "blurred",
    "z_bomb.png": "unreadable",
    "z_copy_of_a01.png": "duplicate",
    "z_dark.jpg": "bad_exposure",
    "z_empty.jpg": "unreadable",
    "z_no_face.jpg": "no_face",
    "z_one_pixel.png": "no_face",
    "z_other_person.jpg": "different_person",
    "z_small.jpg": "too_small",
    "z_text.jpg": "unreadable",
    "z_truncated.jpg": "unreadable",
    "z_turned_away.png": "turned_away",
    "z_two_people.jpg": "many_faces",
}


def _write_upload(folder):
    folder.mkdir()
    portrait = grace_hopper()
    for name, (height, write) in ACCEPTED_FORMATS.items():
        write(hopper_cropped(height), folder / name)
    save_with_exif_rotation_and_gps(hopper_cropped(465), folder / EXIF_ROTATED)
    blurred(portrait).save(folder / "z_blurred.jpg", quality=92)
    write_png_bomb(folder / "z_bomb.png")
    hopper_cropped(600).resize((410, 480), Image.Resampling.LANCZOS).save(folder / "z_copy_of_a01.png")
    exposure(portrait, 0.22).save(folder / "z_dark.jpg", quality=92)
    (folder / "z_empty.jpg").write_bytes(b"")
    no_face().save(folder / "z_no_face.jpg", quality=92)
    Image.new("RGB", (1, 1), (200, 150, 120)).save(folder / "z_one_pixel.png")
    other_person().save(folder / "z_other_person.jpg", quality=92)
    portrait.resize((140, 164), Image.Resampling.LANCZOS).save(folder / "z_small.jpg", quality=92)
    (folder / "z_text.jpg").write_text("not a photo, just notes\n")
    write_truncated_jpeg(portrait, folder / "z_truncated.jpg")
    turned_head(portrait, -50).save(folder / "z_turned_away.png")
    two_people().save(folder / "z_two_people.jpg", quality=92)
    (folder / "README.txt").write_text("ignored: not a photo by its name\n")


@pytest.fixture(scope="module")
def upload(tmp_path_factory):
    folder = tmp_path_factory.mktemp("upload") / "photos"
    _write_upload(folder)
    return folder


@pytest.fixture(scope="module")
def prepared(upload, tmp_path_factory):
    outputs = tmp_path_factory.mktemp("outputs")
    config = PrepareConfig(photos=upload, subject="grace", outputs=outputs, resolution=RESOLUTION)
    record = prepare_dataset(config, show_summary=False)
    return record, config.layout.dataset


def test_every_accepted_format_is_accepted(prepared):
    record, _ = prepared
    verdicts = {photo.source: photo.verdict for photo in record.photos}
    for name in [*ACCEPTED_FORMATS, EXIF_ROTATED]:
        assert verdicts[name] == "accepted", (name, record.photos)


def test_each_rejection_has_its_reason(prepared):
    record, _ = prepared
    rejected = {p.source: p.reason_code for p in record.photos if p.verdict == "rejected"}
    assert rejected == EXPECTED_REJECTIONS
    by_name = {p.source: p for p in record.photos}
    assert "a01_jpeg.jpg" in by_name["z_copy_of_a01.png"].reason
    assert "megapixels" in by_name["z_bomb.png"].reason
    assert by_name["z_empty.jpg"].reason == "empty file"
    assert by_name["z_truncated.jpg"].reason.startswith("truncated")
    assert by_name["z_text.jpg"].reason.startswith("not an image")
    assert "README.txt" not in by_name, "only photo files are considered"


def test_dataset_folder_matches_its_record(prepared):
    record, folder = prepared
    assert read_dataset(folder) == record
    assert record.resolution == RESOLUTION and record.family == "flux2-klein"  # the default base model
    assert sorted(p.source for p in record.photos) == [p.source for p in record.photos]
    for photo in record.accepted:
        crop, mask = Image.open(folder / photo.image), Image.open(folder / photo.mask)
        assert crop.size == mask.size == (RESOLUTION, RESOLUTION) and crop.mode == "RGB"
        assert set(np.unique(np.asarray(mask))) == {0, 255}
        assert len(photo.embedding) == 128 and len(photo.landmarks5) == 5
        left, top, right, bottom = photo.crop_box
        assert right - left == bottom - top, "square crops"
        assert 0 <= left and 0 <= top and right <= photo.width and bottom <= photo.height
    images = sorted(p.name for p in (folder / "images").iterdir())
    assert images == sorted(p.image.removeprefix("images/") for p in record.accepted)


def test_crops_are_headshots_with_the_face_in_the_mask(prepared):
    record, folder = prepared
    for photo in record.accepted:
        crop = Image.open(folder / photo.image).convert("RGB")
        faces = detect_faces(crop)
        assert len(faces) == 1, photo.source
        face = faces[0]
        mask = np.asarray(Image.open(folder / photo.mask)) > 0
        nose = face.landmarks5[4].astype(int)
        assert mask[nose[1], nose[0]], "the mask covers the face"
        # Headroom: the face sits below the centre, with room for hair above.
        assert 0.45 * RESOLUTION < face.center[1] < 0.7 * RESOLUTION
        assert 0.3 * RESOLUTION < face.width < 0.6 * RESOLUTION


def test_exif_rotated_photo_is_cropped_upright(prepared, upload):
    record, folder = prepared
    stored = Image.open(upload / EXIF_ROTATED).convert("RGB")
    assert not detect_faces(stored, embeddings=False), "sideways as stored: no upright face"
    photo = next(p for p in record.photos if p.source == EXIF_ROTATED)
    assert (photo.width, photo.height) == (512, 465), "dimensions of the upright photo"
    face = detect_faces(Image.open(folder / photo.image).convert("RGB"))[0]
    eyes_y = face.landmarks5[:4, 1].mean()
    assert eyes_y < face.landmarks5[4, 1], "eyes above the nose"


def test_nothing_from_exif_reaches_any_output(prepared):
    _, folder = prepared
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        for word in SECRET_EXIF_WORDS:
            assert word not in data, (path, word)
        if path.suffix == ".png":
            image = Image.open(path)
            assert not image.getexif() and "icc_profile" not in image.info and not image.text
    text = (folder / "dataset.json").read_text()
    assert str(folder.parent.parent) not in text, "no absolute paths in dataset.json"
    assert "52.0" not in json.dumps(json.loads(text)["config"])


def test_different_person_is_judged_against_a_robust_centre(prepared):
    record, _ = prepared
    by_name = {p.source: p for p in record.photos}
    other = by_name["z_other_person.jpg"].metrics["identity_distance"]
    subject = max(p.metrics["identity_distance"] for p in record.accepted)
    assert subject < 0.4 < 0.6 < other


def test_too_few_photos_is_an_error_listing_each_rejection(upload, tmp_path):
    small = tmp_path / "few"
    small.mkdir()
    for name in ("a01_jpeg.jpg", "a02_png8.png", "z_blurred.jpg", "z_empty.jpg", "z_two_people.jpg"):
        shutil.copy(upload / name, small / name)
    config = PrepareConfig(photos=small, subject="few", outputs=tmp_path / "out", resolution=64, workers=1)
    with pytest.raises(HeadshotError) as caught:
        prepare_dataset(config, show_summary=False)
    message = str(caught.value)
    assert "only 2 of 5 photos are usable; at least 5 are needed" in message
    assert "z_empty.jpg: unreadable: empty file" in message
    assert "z_two_people.jpg: many_faces" in message
    assert read_dataset(config.layout.dataset).accepted, "dataset.json is written for inspection"
