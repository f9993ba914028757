"""One command line (issue 25's polish): a short flag means one thing in every command; a
missing argument is a usage error (exit 2) worded as one; a command that fails before its
work began leaves nothing behind; the demo says when it replaces another family's demo."""

from __future__ import annotations

import os

import pytest
import typer

from headshot.cli import app

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of `make test-fast`


def _commands(command, prefix=()):
    yield prefix, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*prefix, name))


def test_each_short_flag_means_one_option_in_every_command():
    meanings: dict[str, set[str]] = {}
    for _path, command in _commands(typer.main.get_command(app)):
        for param in command.params:
            longs = [name for name in param.opts if name.startswith("--")]
            for short in (name for name in param.opts if len(name) == 2 and name.startswith("-")):
                meanings.setdefault(short, set()).update(longs)
    assert meanings, "no short flags found"
    clashes = {short: sorted(longs) for short, longs in meanings.items() if len(longs) > 1}
    assert clashes == {}, f"one short flag, several meanings: {clashes}"
    assert meanings["-t"] == {"--template"} and meanings["-p"] == {"--photos"}


def test_a_missing_argument_is_a_usage_error_worded_as_one(run_cli, tmp_path):
    for args, missing in (
        (["prepare"], "Missing argument 'PHOTOS'"),
        (["prepare", tmp_path], "Missing option '--subject'"),
        (["run", tmp_path], "Missing option '--subject'"),
        (["audit", tmp_path], "Missing option '--dataset'"),
        (["finetune"], "Missing argument"),
    ):
        result = run_cli(*args)
        assert result.code == 2, (args, result.err)
        assert missing in " ".join(result.err.replace("│", " ").split()), (args, result.err)
    # Given in the --config file instead, it is not missing.
    config = tmp_path / "prepare.yaml"
    config.write_text(f"photos: {tmp_path / 'none'}\nsubject: ada\noutputs: {tmp_path / 'out'}\n")
    result = run_cli("prepare", "--config", config)
    assert result.code == 1 and "photo folder not found" in result.err, result.err


def test_a_command_that_fails_before_its_work_leaves_no_subject_folder(run_cli, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()  # no photos in it
    outputs = tmp_path / "outputs"
    result = run_cli("prepare", photos, "-s", "ada", "--outputs", outputs)
    assert result.code == 1 and "no photos" in result.err, result.err
    assert not outputs.exists(), sorted(p.as_posix() for p in outputs.rglob("*"))
    # An existing subject keeps its files and loses only the lock file.
    (outputs / "ada").mkdir(parents=True)
    (outputs / "ada" / "notes.txt").write_text("mine")
    assert run_cli("prepare", photos, "-s", "ada", "--outputs", outputs).code == 1
    assert sorted(p.name for p in (outputs / "ada").iterdir()) == ["notes.txt"]


def test_demo_says_it_replaces_another_familys_demo(tmp_path, tiny_sd15):
    import json

    from tests.fault_support import run_headshot

    outputs = tmp_path / "outputs"
    (outputs / "demo" / "dataset").mkdir(parents=True)
    (outputs / "demo" / "dataset" / "dataset.json").write_text(json.dumps({"family": "sdxl"}))
    (outputs / "models").mkdir()
    os.symlink(tiny_sd15, outputs / "models" / "tiny-sd15")  # built: the demo goes on at once
    # Ctrl-C at the demo's first write, right after what it says first.
    result = run_headshot("demo", "--family", "sd15", "--outputs", outputs, fault="int:*.jpg")
    assert result.returncode == 130, result.stderr[-2000:]
    flat = " ".join(result.stderr.split())
    assert f"replacing the earlier sdxl demo in {outputs / 'demo'} with a sd15 one" in flat


def test_a_changed_fingerprint_is_shown_short():
    from headshot.training.checkpoints import Checkpoint, TrainingState, changed_settings

    old, new = "a" * 64, "b" * 64
    checkpoint = Checkpoint(folder=None, state=TrainingState(), settings={"dataset_sha256": old}, lora={})
    said = changed_settings(checkpoint, {"dataset_sha256": new})
    assert said == f"dataset_sha256: {old[:12]} -> {new[:12]}"
