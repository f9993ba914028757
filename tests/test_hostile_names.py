"""Hostile names and records (issue 25, defect 10), fixed as classes of input:

- text that came from outside (file names, folders, a manifest's texts) is escaped wherever
  it is shown on a terminal (headshot.terminal), in tables and in error lines alike;
- a name that becomes a folder is checked at every entry point (`--subject`, and a stage
  folder's parent, which names the subject for finetune, generate and the rest);
- a record read back from disk is range-checked like a config.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from headshot.errors import HeadshotError
from tests.fault_support import assert_one_line_error

# ESC[2J clears the screen, ESC]0;..BEL sets the window title, U+202E reverses what follows;
# [red] would be read as a style by rich.
HOSTILE = "a\x1b[2J\x1b]0;t\x07\u202e[red]b.jpg"
ESCAPED = "a\\x1b[2J\\x1b]0;t\\x07\\u202e[red]b.jpg"


def _no_raw_controls(text: str) -> None:
    for raw in ("\x1b[2J", "\x1b]", "\x07", "\u202e"):
        assert raw not in text, f"{raw!r} printed raw"


def test_prepare_table_shows_a_hostile_file_name_escaped():
    from rich.console import Console

    from headshot.dataset_record import DatasetRecord, PhotoRecord
    from headshot.training.intake_summary import print_summary, too_few_message

    photo = PhotoRecord(
        source=HOSTILE, sha256="0" * 64, verdict="rejected", reason_code="no_face", reason="x"
    )
    record = DatasetRecord(subject="ada", family="sd15", resolution=64, photos=[photo])
    buffer = io.StringIO()
    print_summary(record, Path("out"), Console(file=buffer, force_terminal=True, width=200))
    _no_raw_controls(buffer.getvalue())
    assert ESCAPED in buffer.getvalue()
    message = too_few_message(record, 5, Path("photos"))
    _no_raw_controls(message)
    assert ESCAPED in message


def test_error_lines_show_names_escaped(run_cli, tmp_path):
    result = run_cli("verify", tmp_path / HOSTILE)
    assert result.code == 1
    _no_raw_controls(result.err)
    assert_one_line_error(result.err, ESCAPED)


@pytest.mark.parametrize("subject", ["ada\n", "ada\x1b", "ad\u202ea", "../ada"])
def test_unsafe_subject_names_are_refused_at_every_entry_point(run_cli, tmp_path, subject):
    outputs = tmp_path / "outputs"
    photos = tmp_path / "photos"
    photos.mkdir()
    for command in (
        ["prepare", photos, "-s", subject, "--outputs", outputs],
        ["run", photos, "-s", subject, "--outputs", outputs, "-m", str(tmp_path / "no-model")],
    ):
        result = run_cli(*command)
        assert result.code == 1 and "not a safe folder name" in result.err, (command, result.err)
        _no_raw_controls(result.err)
    assert not outputs.exists()


def test_a_stage_folder_under_an_unsafe_subject_folder_is_refused(run_cli, tmp_path):
    dataset = tmp_path / "outputs" / "ada\x1b[2J" / "dataset"
    dataset.mkdir(parents=True)
    for command in (["finetune", dataset, "-m", "sd15"], ["generate", dataset.parent / "lora"]):
        result = run_cli(*command)
        assert result.code == 1, result.err
        assert_one_line_error(result.err, "not a safe folder name")
        _no_raw_controls(result.err)
    assert sorted(p.name for p in dataset.parent.iterdir()) == ["dataset"]  # nothing written


def _training_json() -> dict:
    return {
        "subject": "ada",
        "identifier": "sks",
        "class_noun": "person",
        "instance_prompt": "a photo of sks person",
        "class_prompt": "a photo of person",
        "base_model": "sd15",
        "base_model_sha256": "a" * 64,
        "family": "sd15",
        "resolution": 64,
        "lora_sha256": "b" * 64,
        "dataset_sha256": "c" * 64,
        "steps": 10,
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("steps", -5),
        ("resolution", 10**9),
        ("rank", 0),
        ("num_processes", 0),
        ("lora_sha256", "not-a-hash"),
        ("subject", "ada\x1b"),
        ("identifier", ""),
        ("format", 99),
    ],
)
def test_training_record_values_out_of_range_are_refused(tmp_path, field, value):
    from headshot.training.training_record import read_training_record

    lora = tmp_path / "ada" / "lora"
    lora.mkdir(parents=True)
    (lora / "training.json").write_text(json.dumps({**_training_json(), field: value}))
    with pytest.raises(HeadshotError, match=f"training.json: field '{field}'"):
        read_training_record(lora)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("photos.0.embedding", [0.1, 0.2, 0.3]),
        ("photos.0.crop_box", [0, 0, 10]),
        ("photos.0.width", -3),
        ("resolution", 0),
        ("subject", "../x"),
    ],
)
def test_dataset_record_values_out_of_range_are_refused(tmp_path, field, value):
    from headshot.dataset_record import read_dataset

    photo = {"source": "a.jpg", "sha256": "0" * 64, "verdict": "rejected", "reason_code": "no_face"}
    record = {"subject": "ada", "family": "sd15", "resolution": 64, "photos": [photo]}
    *parents, name = field.split(".")
    target = record
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[name] = value
    dataset = tmp_path / "ada" / "dataset"
    dataset.mkdir(parents=True)
    (dataset / "dataset.json").write_text(json.dumps(record))
    with pytest.raises(HeadshotError, match=f"dataset.json: field '{field}'"):
        read_dataset(dataset)
