"""Records name paths portably: relative to the subject folder, or by name; never absolute."""

from __future__ import annotations

from pathlib import Path

from headshot.records import model_from_record, portable_record, recorded_model


def test_a_local_model_under_the_outputs_folder_is_found_again_from_the_record(tmp_path):
    outputs = tmp_path / "outputs"
    model, subject = outputs / "models" / "tiny-sd15", outputs / "ada"
    model.mkdir(parents=True)
    subject.mkdir()
    recorded = recorded_model(str(model), subject)
    assert recorded == "../models/tiny-sd15"
    assert Path(model_from_record(recorded, subject)).resolve() == model.resolve()


def test_a_local_model_elsewhere_is_located_relative_to_the_subject(tmp_path):
    elsewhere = tmp_path / "srv" / "models" / "my-sdxl"
    elsewhere.mkdir(parents=True)
    subject = tmp_path / "outputs" / "ada"
    subject.mkdir(parents=True)
    recorded = recorded_model(str(elsewhere), subject)
    assert recorded == "../../srv/models/my-sdxl"
    assert Path(model_from_record(recorded, subject)).resolve() == elsewhere.resolve()
    assert recorded_model("stabilityai/stable-diffusion-xl-base-1.0", subject).startswith("stabilityai/")
    assert model_from_record("sdxl", subject) == "sdxl"


def test_a_relative_path_through_a_users_home_is_named_not_located(tmp_path):
    import getpass

    elsewhere = tmp_path / "home" / getpass.getuser() / "models" / "my-sdxl"
    elsewhere.mkdir(parents=True)
    subject = tmp_path / "outputs" / "ada"
    subject.mkdir(parents=True)
    assert recorded_model(str(elsewhere), subject) == "local:my-sdxl"


def test_portable_record_rewrites_absolute_paths_at_any_depth(tmp_path):
    subject = tmp_path / "outputs" / "ada"
    record = {
        "dataset": str(subject / "dataset"),
        "nested": [{"signing_config": str(tmp_path / "home" / "alice" / "signing.yaml")}],
        "prompt": "a photo of sks person",
        "path": subject / "renders" / "x.png",
    }
    assert portable_record(record, subject) == {
        "dataset": "dataset",
        "nested": [{"signing_config": "signing.yaml"}],
        "prompt": "a photo of sks person",
        "path": "renders/x.png",
    }
