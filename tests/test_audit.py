"""`headshot audit`: the subject's own photos pass, manipulated copies get the right flag,
bad files get a row with the reason, and the report is one self-contained page."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
from audit_support import manipulated, reference_photos, write_reference_dataset
from PIL import Image

from headshot.analysis.audit import AuditConfig, audit_folder, audit_image, load_reference
from headshot.samples import astronaut, make_sample_selfies

# manipulation at full strength -> the flag it must raise
EXPECTED_FLAG = {
    "smooth_skin": "plastic_skin",
    "add_wrinkles": "looks_older",
    "break_glasses_frame": "glasses_asymmetry",
    "warp_background": "warped_background",
    "blur_hair": "hair_merging",
    "shift_iris": "gaze_off_camera",
    "remove_catchlights": "dead_eyes",
    "tone_cast": "skin_tone_shift",
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """outputs/hopper/dataset in `headshot prepare`'s format, from the real sample photos."""
    root = tmp_path_factory.mktemp("outputs") / "hopper"
    return write_reference_dataset(root / "dataset", reference_photos())


@pytest.fixture(scope="module")
def reference(dataset):
    return load_reference(dataset)


@pytest.fixture(scope="module")
def manipulated_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("manipulated")
    photo = reference_photos()["hopper_01_original"]
    for name in EXPECTED_FLAG:
        manipulated(photo, name, 1.0).save(folder / f"{name}.png")
    return folder


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["file"]: row for row in csv.DictReader(handle)}


def test_the_subjects_own_photos_flag_nothing(tmp_path, dataset, run_cli):
    photos = tmp_path / "photos"
    make_sample_selfies(photos, with_rejects=False)
    # any resolution: the same photo at twice the size scores the same
    original = Image.open(photos / "hopper_01_original.jpg")
    original.resize((original.width * 2, original.height * 2), Image.LANCZOS).save(photos / "hopper_big.png")
    result = run_cli("audit", photos, "--dataset", dataset, "--out", tmp_path / "audit")
    assert result.code == 0, result.err
    rows = read_rows(tmp_path / "audit" / "metrics.csv")
    assert len(rows) == 9
    for name, row in rows.items():
        assert row["status"] == "ok", (name, row["reason"])
        assert row["flags"] == "", (name, row["flags"])
    assert "hopper_big.png: ok - no flags" in result.out


def test_manipulated_copies_flag_their_artifact_and_only_it(tmp_path, dataset, manipulated_folder):
    result = audit_folder(manipulated_folder, dataset, tmp_path / "audit")
    rows = {row.name: row for row in result.rows}
    for manipulation, flag in EXPECTED_FLAG.items():
        row = rows[f"{manipulation}.png"]
        assert row.status == "ok"
        assert row.flags == [flag], (manipulation, row.flags, row.z)
        assert row.passes_likeness


def test_another_person_fails_likeness(reference):
    verdict = audit_image(astronaut(), reference, name="astronaut")
    assert verdict.status == "ok"
    assert "identity_drift" in verdict.flags
    assert not verdict.passes_likeness
    assert verdict.values["identity_distance"] >= 0.6


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
    assert "truncated.jpg" in rows["truncated.jpg"]["reason"]
    assert rows["noise.png"]["status"] == "no_face"
    assert "no face found" in rows["noise.png"]["reason"]
    assert rows["noise.png"]["skin_texture"] == ""
    assert rows["real.jpg"]["status"] == "ok"
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "no face found: not scored" in page and "unreadable: not scored" in page


def test_report_is_self_contained_with_images_scores_flags_and_plots(tmp_path, dataset, manipulated_folder):
    result = audit_folder(manipulated_folder, dataset)
    assert result.out == dataset.parent / "audit"  # default: the dataset's sibling audit/
    page = result.report_path.read_text(encoding="utf-8")
    assert not re.search(r"(src|href)=['\"](?!data:)", page), "the page must not load anything external"
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
    assert missing.code == 1 and "--dataset" in missing.err
    no_folder = run_cli("audit", tmp_path / "nowhere", "--dataset", dataset)
    assert no_folder.code == 1 and "nowhere" in no_folder.err


def test_per_metric_limits_and_unflagged_metrics_apply(reference):
    photo = manipulated(reference_photos()["hopper_01_original"], "smooth_skin", 1.0)
    strict = audit_image(photo, reference, AuditConfig(unflagged=["skin_texture"]))
    assert "plastic_skin" not in strict.flags
    assert strict.z["skin_texture"] < -3
    lenient = audit_image(photo, reference, AuditConfig(z_limits={"skin_texture": 50}))
    assert "plastic_skin" not in lenient.flags


def test_run_audit_reports_faceless_tiny_model_headshots(tmp_path, dataset):
    """After generate on a tiny random model the headshots hold no face: the audit says
    so per image instead of failing."""
    import shutil

    from headshot.layout import SubjectLayout
    from headshot.workflow import RunConfig, run_audit

    layout = SubjectLayout.for_subject(tmp_path / "outputs", "demo")
    shutil.copytree(dataset, layout.dataset)
    layout.headshots.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for index in range(2):
        noise = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(noise).save(layout.headshots / f"studio_{index}.jpg", quality=90)
    (layout.headshots / "index.json").write_text("{}")
    run_audit(RunConfig(photos=tmp_path, subject="demo", outputs=tmp_path / "outputs"), layout)
    rows = read_rows(layout.audit / "metrics.csv")
    assert [row["status"] for row in rows.values()] == ["no_face", "no_face"]
    assert "no face found: not scored" in (layout.audit / "report.html").read_text(encoding="utf-8")
