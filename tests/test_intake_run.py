"""`headshot prepare` end to end: the demo set, reproducibility, resolution, the CLI; `headshot run`."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import yaml

from headshot.dataset_record import read_dataset
from headshot.errors import HeadshotError
from headshot.training.intake import PrepareConfig, prepare_dataset
from headshot.training.resolution import training_size
from headshot.training.training_record import read_training_record

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of `make test-fast`


@pytest.fixture(scope="module")
def few_selfies(sample_selfies, tmp_path_factory):
    """Five Hopper photos and the astronaut: a small, quick set."""
    folder = tmp_path_factory.mktemp("few") / "photos"
    folder.mkdir()
    for path in sorted(sample_selfies.glob("hopper_0[1-5]*.jpg")) + [
        sample_selfies / "other_person_astronaut.jpg"
    ]:
        shutil.copy(path, folder / path.name)
    return folder


def _snapshot(folder):
    """Every file the dataset folder holds except the run's timings, by relative path."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != "prepare_run.json"
    }


def test_demo_selfies_keep_hopper_and_reject_the_astronaut_and_the_blur(sample_selfies, tiny_sd15, tmp_path):
    config = PrepareConfig(photos=sample_selfies, subject="demo", base_model=str(tiny_sd15), outputs=tmp_path)
    record = prepare_dataset(config, show_summary=False)
    assert (record.family, record.resolution) == ("sd15", 64), "from the tiny model's own configs"
    verdicts = {p.source: p.reason_code or "accepted" for p in record.photos}
    assert verdicts.pop("other_person_astronaut.jpg") == "many_faces"
    assert verdicts.pop("hopper_blurred.jpg") == "blurred"
    # Mirrored, rotated, cropped and re-exposed shots are the same person and different photos.
    assert set(verdicts.values()) == {"accepted"} and len(verdicts) == 8
    assert record.config["base_model"] == tiny_sd15.name, "no absolute paths in the record"

    assert str(tmp_path) not in (config.layout.dataset / "dataset.json").read_text()

    first = _snapshot(config.layout.dataset)
    prepare_dataset(config.model_copy(update={"workers": 1}), show_summary=False)
    assert _snapshot(config.layout.dataset) == first, "re-running (in one process) gives identical files"


def test_removed_photos_leave_no_stale_crops(few_selfies, tmp_path):
    photos = tmp_path / "photos"
    shutil.copytree(few_selfies, photos)
    config = PrepareConfig(photos=photos, subject="s", outputs=tmp_path / "out", resolution=64, min_photos=1)
    prepare_dataset(config, show_summary=False)
    (photos / "hopper_02_mirror.jpg").unlink()
    record = prepare_dataset(config, show_summary=False)
    images = sorted(p.name for p in (config.layout.dataset / "images").iterdir())
    assert "hopper_02_mirror.png" not in images and len(images) == len(record.accepted) == 4
    assert read_dataset(config.layout.dataset) == record


def test_training_resolution_comes_from_the_base_model(tiny_sd15, tiny_sdxl):
    assert training_size(str(tiny_sd15)) == ("sd15", 64)
    assert training_size(str(tiny_sdxl)) == ("sdxl", 64)
    assert training_size("sdxl") == ("sdxl", 1024)
    assert training_size("sd15") == ("sd15", 512)
    assert training_size("someone/unknown-model", family="sdxl") == ("sdxl", 1024)
    assert training_size("flux-dev") == ("flux", 1024)
    with pytest.raises(HeadshotError, match="'someone/unknown-model': cannot tell which model family"):
        training_size("someone/unknown-model")


def test_cli_prepare_writes_the_dataset_with_config_and_overrides(run_cli, few_selfies, tiny_sdxl, tmp_path):
    settings = tmp_path / "prepare.yaml"
    settings.write_text("min_photos: 50\nquality:\n  max_yaw_degrees: 25\n")
    result = run_cli(
        "prepare", few_selfies, "-s", "ada", "-m", tiny_sdxl, "--outputs", tmp_path,
        "--config", settings, "--min-photos", "4",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "5 accepted, 1 rejected" in result.out and "many_faces" in result.out
    record = read_dataset(tmp_path / "ada" / "dataset")
    assert record.family == "sdxl" and record.config["min_photos"] == 4
    assert record.config["quality"]["max_yaw_degrees"] == 25


def test_cli_too_few_photos_exits_1_naming_each_failure(run_cli, sample_selfies, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("hopper_01_original.jpg", "hopper_blurred.jpg", "other_person_astronaut.jpg"):
        shutil.copy(sample_selfies / name, photos / name)
    result = run_cli("prepare", photos, "-s", "few", "--outputs", tmp_path / "out", "--resolution", "64")
    assert result.code == 1
    assert "only 1 of 3 photos are usable; at least 5 are needed" in result.err
    assert "hopper_blurred.jpg: blurred" in result.err
    assert "other_person_astronaut.jpg: many_faces" in result.err
    assert "Traceback" not in result.err
    assert (tmp_path / "out" / "few" / "dataset" / "dataset.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["prepare", "{tmp}/missing", "-s", "x"], "missing: photo folder not found"),
        (["prepare", "{tmp}", "-s", "x"], "no photos found"),
        (["prepare", "{tmp}", "-s", "../up"], "subject '../up' is not a safe folder name"),
        (["prepare", "{tmp}", "-s", "x", "--detector", "fast"], "command line: field 'detector'"),
    ],
)
def test_cli_bad_input_is_a_clear_error(run_cli, tmp_path, args, message):
    result = run_cli(*[arg.format(tmp=tmp_path) for arg in args])
    assert result.code == 1 and message in result.err and "Traceback" not in result.err


def test_run_chains_every_stage_and_succeeds(run_cli, few_selfies, tiny_sd15, tmp_path, monkeypatch):
    from finetune_support import fast_options

    monkeypatch.setenv("HEADSHOT_CACHE", str(tmp_path / "cache"))
    stages = {
        "finetune": fast_options(steps=4),
        # Random weights draw no face: accept faceless candidates, as the demo's config does.
        "generate": {"templates": ["studio-grey"], "seeds_per_template": 1, "steps": 2,
                     "ranking": {"require_face": False, "max_relative_distance": None}},
        "prepare": {"min_photos": 5},
    }  # fmt: skip
    run = {}
    for stage, options in stages.items():
        (tmp_path / f"{stage}.yaml").write_text(yaml.safe_dump(options))
        run[f"{stage}_config"] = str(tmp_path / f"{stage}.yaml")
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(run))
    result = run_cli(
        "run", few_selfies, "-s", "demo", "-m", tiny_sd15, "--outputs", tmp_path / "out",
        "--config", tmp_path / "run.yaml",
    )  # fmt: skip
    assert result.code == 0, result.err
    subject = tmp_path / "out" / "demo"
    record = read_dataset(subject / "dataset")
    assert len(record.accepted) == 5 and record.resolution == 64
    assert read_training_record(subject / "lora").steps == 4
    index = json.loads((subject / "headshots" / "index.json").read_text())
    delivered = sorted(subject / c["delivered"] for c in index["candidates"] if c["delivered"])
    assert delivered and delivered == sorted((subject / "headshots").glob("*.jpg"))
    with open(subject / "audit" / "metrics.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(delivered)
