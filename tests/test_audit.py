"""`headshot audit`: the subject's own photos pass, manipulated copies get the right flag,
bad files get a row with the reason, and the report is one self-contained page."""

from __future__ import annotations

import csv
import math
import re

import numpy as np
import pytest
from audit_support import HELD_OUT, held_out_reference, manipulated, prepared, reference_photos
from PIL import Image

from headshot.analysis.audit import AuditConfig, audit_folder, audit_image, load_reference
from headshot.errors import HeadshotError
from headshot.samples import astronaut

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of `make test-fast`

# manipulation at full strength -> the flag it must raise
EXPECTED_FLAG = {
    "smooth_skin": "plastic_skin",
    "add_wrinkles": "looks_older",
    "break_glasses_frame": "glasses_asymmetry",
    "earring": "earring_asymmetry",
    "earring_right": "earring_asymmetry",
    "warp_background": "warped_background",
    "blur_hair": "hair_merging",
    "shift_iris": "gaze_off_camera",
    "remove_catchlights": "dead_eyes",
    "remove_one_catchlight": "catchlight_mismatch",
    "tone_cast": "skin_tone_shift",
}
# One dead eye also halves catchlight_strength (the mean over both eyes): dead_eyes as well.
ALSO_FLAGGED = {"remove_one_catchlight": ["dead_eyes"]}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, sample_selfies):
    """The subject's dataset prepared from 7 of the sample photos: HELD_OUT, the photo the
    manipulations are applied to, is not among them (leave-one-out)."""
    import shutil

    photos = tmp_path_factory.mktemp("photos")
    for path in sample_selfies.glob("*.jpg"):
        if path.stem != HELD_OUT:
            shutil.copy(path, photos / path.name)
    return prepared(photos, tmp_path_factory.mktemp("outputs"))


@pytest.fixture(scope="module")
def reference(dataset):
    return load_reference(dataset)


@pytest.fixture(scope="module")
def manipulated_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("manipulated")
    photo = reference_photos()[HELD_OUT]
    for name in EXPECTED_FLAG:
        manipulated(photo, name, 1.0).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def manipulated_audit(dataset, manipulated_folder):
    """The audit of the manipulated copies, into the default folder (dataset/../audit)."""
    return audit_folder(manipulated_folder, dataset)


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["file"]: row for row in csv.DictReader(handle)}


def test_each_of_the_subjects_photos_held_out_flags_nothing():
    """Leave-one-out: every sample photo of the subject, audited against a reference of
    the 7 others (never against itself, which would make every spread its own floor)."""
    from headshot.analysis.reference import ReferenceProfile, measure_image

    photos = reference_photos()
    measured = {name: measure_image(photo) for name, photo in photos.items()}
    largest = {}
    for name, photo in photos.items():
        others = [other for other in photos if other != name]
        reference = ReferenceProfile.from_measurements(others, [measured[other] for other in others])
        verdict = audit_image(photo, reference, name=name)
        assert verdict.status == "ok" and verdict.flags == [], (name, verdict.flags, verdict.z)
        assert verdict.passes_likeness, (name, verdict.values["identity_relative"])
        largest[name] = max(abs(z) for z in verdict.z.values() if math.isfinite(z))
    # Measured: the largest |z| of a held-out photo is 1.8 (the warm mirror; limit 3), 0.9 on average.
    assert max(largest.values()) < 3.0 and np.mean(list(largest.values())) > 0.5, largest


def test_audit_of_held_out_photos_passes_the_subject_and_flags_the_astronaut(
    tmp_path, dataset, sample_selfies, run_cli
):
    """`headshot audit` with a dataset prepared from 7 of the subject's photos: the 8th (at
    its own size and at twice it) flags nothing; the astronaut is another person."""
    audited = tmp_path / "audited"
    audited.mkdir()
    original = Image.open(sample_selfies / f"{HELD_OUT}.jpg")
    original.save(audited / "held_out.png")
    original.resize((original.width * 2, original.height * 2), Image.LANCZOS).save(
        audited / "held_out_big.png"
    )
    astronaut().save(audited / "astronaut.png")
    result = run_cli("audit", audited, "--dataset", dataset, "--out", tmp_path / "audit")
    assert result.code == 0, result.err
    rows = read_rows(tmp_path / "audit" / "metrics.csv")
    assert set(rows) == {"held_out.png", "held_out_big.png", "astronaut.png"}
    for name in ("held_out.png", "held_out_big.png"):
        assert rows[name]["status"] == "ok" and rows[name]["flags"] == "", (name, rows[name])
        assert f"{name}: ok - no flags" in result.out
    assert rows["astronaut.png"]["status"] == "ok"
    assert "identity_drift" in rows["astronaut.png"]["flags"].split(";"), rows["astronaut.png"]
    assert float(rows["astronaut.png"]["identity_relative"]) > 1.6


@pytest.mark.parametrize("manipulation", list(EXPECTED_FLAG))
def test_manipulated_copies_flag_their_artifact_and_only_it(manipulated_audit, manipulation):
    row = {row.name: row for row in manipulated_audit.rows}[f"{manipulation}.png"]
    assert row.status == "ok"
    assert sorted(row.flags) == sorted([EXPECTED_FLAG[manipulation], *ALSO_FLAGGED.get(manipulation, [])]), (
        manipulation,
        row.flags,
    )
    assert row.passes_likeness
    assert row.artifact_score > 3


def test_another_person_fails_likeness(reference):
    verdict = audit_image(astronaut(), reference, name="astronaut")
    assert verdict.status == "ok"
    assert "identity_drift" in verdict.flags
    assert not verdict.passes_likeness
    assert verdict.values["identity_distance"] >= 0.6


def test_phone_photos_stored_sideways_are_turned_upright(tmp_path):
    from headshot.analysis.image_io import read_photo

    reference = held_out_reference()  # the photo is not one of the reference's own
    photo = reference_photos()[HELD_OUT]
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    photo.rotate(90, expand=True).save(tmp_path / "sideways.jpg", exif=exif, quality=95)
    upright = read_photo(tmp_path / "sideways.jpg")
    assert upright.size == photo.size
    verdict = audit_image(upright, reference)
    assert verdict.status == "ok" and verdict.flags == []
    assert verdict.artifact_score < 3


def test_unreadable_and_faceless_images_get_a_row_with_the_reason(tmp_path, dataset, run_cli):
    images = tmp_path / "images"
    images.mkdir()
    (images / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(images / "noise.png")
    (images / "notes.txt").write_text("not an image: ignored")
    reference_photos()["hopper_01_original"].save(images / "real.jpg")
    out = tmp_path / "audit"
    result = run_cli("audit", images, "--dataset", dataset, "--out", out)
    assert result.code == 0, result.err
    rows = read_rows(out / "metrics.csv")
    assert set(rows) == {"truncated.jpg", "noise.png", "real.jpg"}
    assert rows["truncated.jpg"]["status"] == "unreadable"
    assert rows["truncated.jpg"]["reason"].startswith("truncated.jpg: ")
    assert rows["noise.png"]["status"] == "no_face"
    assert "no face found" in rows["noise.png"]["reason"]
    assert rows["noise.png"]["skin_texture"] == ""
    assert rows["real.jpg"]["status"] == "ok"
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "no face found: not scored" in page and "unreadable: not scored" in page


def test_report_is_self_contained_with_images_scores_flags_and_plots(dataset, manipulated_audit):
    result = manipulated_audit
    assert result.out == dataset.parent / "audit"  # default: the dataset's sibling audit/
    page = result.report_path.read_text(encoding="utf-8")
    assert not re.search(r"src=['\"](?!data:)", page), "the page must not load anything external"
    # Each thumbnail links to its full-size file, relative to the page: nothing on another host.
    assert not re.search(r"href=['\"](?:[a-z]+:|//)", page)
    assert page.count("<a href='../") == len(EXPECTED_FLAG)
    assert page.count("data:image/png;base64,") == len(EXPECTED_FLAG) + 1  # thumbnails + the plot
    for name, flag in EXPECTED_FLAG.items():
        assert f"{name}.png" in page and flag in page
    assert "<td class='flag'>skin_texture</td>" in page
    plot = Image.open(result.out / "plots" / "metrics.png")
    assert plot.width > 600 and plot.height > 300
    header = next(csv.reader(open(result.csv_path, encoding="utf-8")))
    expected = {"file", "status", "reason", "flags", "skin_texture", "skin_texture_z", "identity_distance"}
    assert expected <= set(header)


def test_config_errors_name_the_file_and_field(tmp_path, dataset, run_cli, manipulated_folder):
    bad = tmp_path / "audit.yaml"
    bad.write_text("z_limit: strict\nz_limits: {plastic: 2}\n")
    result = run_cli("audit", manipulated_folder, "--dataset", dataset, "--config", bad)
    assert result.code == 1
    assert f"{bad}: field 'z_limit': expected a number" in result.err
    assert "unknown metric plastic" in result.err
    assert "Traceback" not in result.err
    missing = run_cli("audit", manipulated_folder)
    assert missing.code == 2 and "--dataset" in missing.err  # a usage error, worded as one
    no_folder = run_cli("audit", tmp_path / "nowhere", "--dataset", dataset)
    assert no_folder.code == 1 and "nowhere" in no_folder.err


def test_per_metric_limits_and_unflagged_metrics_apply(reference):
    photo = manipulated(reference_photos()["hopper_01_original"], "smooth_skin", 1.0)
    strict = audit_image(photo, reference, AuditConfig(unflagged=["skin_texture"]))
    assert "plastic_skin" not in strict.flags
    assert strict.z["skin_texture"] < -3
    lenient = audit_image(photo, reference, AuditConfig(z_limits={"skin_texture": 50}))
    assert "plastic_skin" not in lenient.flags


def test_run_audit_reports_faceless_tiny_model_headshots(tmp_path, sample_selfies):
    """As in the demo: a tiny model's 64 px dataset crops are too small for a face, so the
    reference comes from the run's source photos; its headshots hold no face, and the audit
    says so per image instead of failing."""
    from headshot.layout import SubjectLayout
    from headshot.workflow import RunConfig, run_audit

    outputs = tmp_path / "outputs"
    dataset = prepared(sample_selfies, outputs, resolution=64)
    layout = SubjectLayout.of_stage_folder(dataset)
    layout.headshots.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for index in range(2):
        noise = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(noise).save(layout.headshots / f"studio_{index}.jpg", quality=90)
    (layout.headshots / "index.json").write_text("{}")
    run_audit(RunConfig(photos=sample_selfies, subject="hopper", outputs=outputs), layout)
    rows = read_rows(layout.audit / "metrics.csv")
    assert [row["status"] for row in rows.values()] == ["no_face", "no_face"]
    page = (layout.audit / "report.html").read_text(encoding="utf-8")
    assert "no face found: not scored" in page
    assert "Judged against 8 real photos" in page
    assert page.count("(source photo)") == 8


def test_a_dataset_without_any_face_is_a_clear_error(tmp_path, dataset):
    import shutil

    faceless = tmp_path / "dataset"
    shutil.copytree(dataset, faceless)
    for crop in (faceless / "images").glob("*.png"):
        Image.new("RGB", (512, 512), (120, 120, 120)).save(crop)
    with pytest.raises(HeadshotError, match="no face found in any accepted photo's crop.*--photos"):
        load_reference(faceless)


def test_a_read_only_audit_folder_is_one_line(tmp_path, dataset, run_cli):
    """Issue 11: read-only output folders gave a traceback in every stage but sign."""
    from tests.fault_support import assert_one_line_error, read_only, snapshot

    images = tmp_path / "images"
    images.mkdir()
    reference_photos()["hopper_01_original"].save(images / "real.jpg")
    out = tmp_path / "audit"
    assert run_cli("audit", images, "--dataset", dataset, "--out", out).code == 0
    before = snapshot(out)
    with read_only(out):
        result = run_cli("audit", images, "--dataset", dataset, "--out", out)
    assert result.code == 1
    assert_one_line_error(result.err, str(out))
    assert snapshot(out) == before


def test_a_dataset_of_tiny_crops_measures_no_detail_and_says_so(tmp_path, dataset, run_cli):
    """Issue 25: against a 64 px dataset (a tiny model's), the subject's own photos were
    flagged (looks_older, identity_drift), silently. Faces that small carry no texture: those
    metrics are not measured, the terminal and the report say so, skin tone still is."""
    import shutil

    tiny = tmp_path / "dataset"
    shutil.copytree(dataset, tiny)
    for crop in (tiny / "images").glob("*.png"):
        with Image.open(crop) as image:
            image.convert("RGB").resize((64, 64), Image.LANCZOS).save(crop)
    own = tmp_path / "own"
    own.mkdir()
    # Against this dataset before the fix: hopper_06 flagged identity_drift, most others looks_older.
    reference_photos()["hopper_06_brighter"].save(own / "hopper_06_brighter.jpg", quality=92)
    result = run_cli("audit", own, "--dataset", tiny, "--out", tmp_path / "audit")
    assert result.code == 0, result.err
    assert "not measured: skin_texture, age_texture" in result.err and "--photos" in result.err
    assert result.out.count("- no flags") == 1, result.out
    rows = read_rows(tmp_path / "audit" / "metrics.csv")
    assert all(row["age_texture_z"] == "" and row["skin_tone_delta_e_z"] != "" for row in rows.values())
    page = (tmp_path / "audit" / "report.html").read_text(encoding="utf-8")
    assert "Reference too small:" in page and page.count("not measured") >= 10
