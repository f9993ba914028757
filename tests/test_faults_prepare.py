"""Faults during `prepare`: a failing run, name clashes, kills, special files, read-only outputs.

Each case: exit 1 with one line (or a SIGKILL at a write point), the earlier dataset
byte-identical, and no temporary file or staging folder after the next run.
"""

from __future__ import annotations

import os
import shutil

import pytest

from headshot.dataset_record import read_dataset
from tests.fault_support import (
    assert_killed,
    assert_one_line_error,
    leftovers,
    read_only,
    run_headshot,
    snapshot,
)

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of `make test-fast`


@pytest.fixture
def prepared(tmp_path, sample_selfies, run_cli):
    """A good dataset (8 accepted photos) for subject 'demo' under tmp/out."""
    photos = tmp_path / "photos"
    shutil.copytree(sample_selfies, photos)
    outputs = tmp_path / "out"
    args = ["prepare", photos, "-s", "demo", "--outputs", outputs, "--resolution", "64", "--workers", "1"]
    result = run_cli(*args)
    assert result.code == 0, result.err
    dataset = outputs / "demo" / "dataset"
    assert len(read_dataset(dataset).accepted) == 8
    return dataset, photos, args


def test_a_failing_prepare_keeps_the_good_dataset(prepared, tmp_path, sample_selfies, run_cli):
    """Issue 11, case 2: too few usable photos used to leave dataset.json with 0 accepted and
    the crops deleted."""
    dataset, _, args = prepared
    before = snapshot(dataset)
    other = tmp_path / "other_folder"
    other.mkdir()
    for name in ("hopper_blurred.jpg", "other_person_astronaut.jpg", "hopper_01_original.jpg"):
        shutil.copy(sample_selfies / name, other / name)
    result = run_cli("prepare", other, *args[2:])
    assert result.code == 1 and "Traceback" not in result.err
    assert "only 1 of 3 photos are usable" in result.err and f"{dataset} is kept" in result.err
    assert snapshot(dataset) == before
    assert leftovers(dataset.parent) == []


def test_photos_that_would_become_one_crop_are_an_error_naming_both(prepared, run_cli):
    """Issue 11, case 3: face.jpg and face.JPG became one crop (one lost, the other trained twice)."""
    dataset, photos, args = prepared
    before = snapshot(dataset)
    shutil.copy(photos / "hopper_01_original.jpg", photos / "hopper_01_original.JPG")
    result = run_cli(*args)
    assert result.code == 1
    assert_one_line_error(result.err, "hopper_01_original.jpg", "hopper_01_original.JPG")
    assert snapshot(dataset) == before


def test_many_rejected_photos_are_summarised_not_listed(tmp_path, sample_selfies, run_cli):
    photos = tmp_path / "many"
    photos.mkdir()
    for number in range(14):
        (photos / f"broken-{number:02d}.jpg").write_bytes(b"not an image")
    shutil.copy(sample_selfies / "hopper_01_original.jpg", photos / "ok.jpg")
    result = run_cli("prepare", photos, "-s", "m", "--outputs", tmp_path / "out", "--resolution", "64")
    assert result.code == 1
    error = result.err[result.err.index("error:") :]
    assert "broken-09.jpg" in error and "broken-10.jpg" not in error
    assert "... and 4 more (unreadable 4)" in error


def test_special_and_unreadable_files_in_the_photo_folder(prepared, run_cli):
    dataset, photos, args = prepared
    os.mkfifo(photos / "a_pipe.jpg")  # would block a reader forever
    (photos / "a_folder.png").mkdir()
    (photos / "dangling.jpg").symlink_to(photos / "missing.jpg")
    unreadable = photos / "locked.jpg"
    shutil.copy(photos / "hopper_02_mirror.jpg", unreadable)
    unreadable.chmod(0)
    result = run_cli(*args)
    assert result.code == 0, result.err
    record = read_dataset(dataset)
    sources = {p.source: p for p in record.photos}
    assert not {"a_pipe.jpg", "a_folder.png", "dangling.jpg"} & set(sources)
    if os.geteuid() != 0:  # root reads a mode-000 file anyway
        assert sources["locked.jpg"].reason_code == "unreadable"
        assert "Permission denied" in sources["locked.jpg"].reason


def test_a_read_only_outputs_folder_is_one_line(prepared, run_cli):
    dataset, _, args = prepared
    before = snapshot(dataset.parent)
    with read_only(dataset.parent):
        result = run_cli(*args)
    assert result.code == 1
    assert_one_line_error(result.err, str(dataset.parent))
    assert snapshot(dataset.parent) == before


@pytest.mark.parametrize(
    ("point", "swapped"),
    [("kill:*.png@5", False), ("kill:dataset.json", False), ("kill:commit:dataset", True)],
)
def test_a_kill_while_writing_the_dataset_loses_nothing(prepared, run_cli, point, swapped):
    dataset, _, args = prepared
    before = snapshot(dataset)
    assert_killed(run_headshot(*args, fault=point))
    if swapped:
        assert not dataset.exists()  # stopped between moving the old folder aside and the new in
    else:
        assert snapshot(dataset) == before
    result = run_cli(*args)
    assert result.code == 0, result.err
    assert f"{dataset}: an earlier run stopped" in result.err
    assert leftovers(dataset.parent) == []
    after = snapshot(dataset)
    assert after.keys() == before.keys() and after["dataset.json"] == before["dataset.json"]


def test_dataset_paths_must_stay_inside_the_dataset(prepared, tmp_path):
    """Issue 11, case 6: `../../outside/x.png` was trained on; an absolute path crashed."""
    import json

    from headshot.errors import HeadshotError

    dataset, _, _ = prepared
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(next((dataset / "images").iterdir()), outside / "x.png")
    record = json.loads((dataset / "dataset.json").read_text())
    for bad in ("../../outside/x.png", str(outside / "x.png")):
        accepted = next(p for p in record["photos"] if p["verdict"] == "accepted")
        accepted["image"] = bad
        (dataset / "dataset.json").write_text(json.dumps(record))
        with pytest.raises(HeadshotError, match="leaves the record's folder"):
            read_dataset(dataset)
