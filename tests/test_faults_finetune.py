"""Faults during `finetune`: kills while saving, damaged checkpoints, damaged or empty LoRA files.

The LoRA, its kohya export and training.json are one set: a kill never leaves a new LoRA
beside the old record (issue 11, case 4), and the next run says so and repairs it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from finetune_support import fast_options, make_dataset

from headshot.layout import LORA_FILE
from headshot.records import sha256_file
from headshot.training.training_record import read_training_record
from tests.fault_support import assert_killed, assert_one_line_error, leftovers, run_headshot, snapshot

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of `make test-fast`


def _config(tmp_path: Path, name: str, **overrides) -> Path:
    options = fast_options(
        **{"steps": 2, "num_class_images": 2, "cache_dir": str(tmp_path / "cache"), **overrides}
    )
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(options))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_sd15):
    """A dataset and a finished LoRA (seed 0); each test works on a copy."""
    from headshot.training.finetune import finetune_dataset
    from headshot.training.finetune_config import FinetuneConfig

    root = tmp_path_factory.mktemp("trained")
    dataset = make_dataset(root / "outputs", "sd15", count=3)
    options = fast_options(steps=2, num_class_images=2, cache_dir=str(root / "cache"))
    finetune_dataset(dataset, FinetuneConfig(base_model=str(tiny_sd15), **options))
    return dataset.parent


@pytest.fixture
def subject(trained, tmp_path):
    import shutil

    return Path(shutil.copytree(trained, tmp_path / "outputs" / "ada"))


def _lora_set(lora: Path) -> dict[str, bytes]:
    """What finetune delivers (samples and checkpoints belong to the run in progress)."""
    return {
        k: v for k, v in snapshot(lora).items() if k.split("/")[0] in ("kohya", "training.json", LORA_FILE)
    }


@pytest.mark.parametrize(
    ("point", "completed"),
    [
        ("kill:training.json", False),  # the record of the new set, in the staging folder
        ("kill:commit:lora@2", True),  # kohya and LoRA moved in, training.json not yet
        ("kill:state.json", False),  # the checkpoint being written (a partial folder)
    ],
)
def test_a_kill_while_saving_never_splits_lora_and_record(
    subject, tmp_path, tiny_sd15, run_cli, point, completed
):
    lora = subject / "lora"
    before = _lora_set(lora)
    config = _config(tmp_path, "seed1", seed=1, checkpoint_steps=1)
    result = run_headshot("finetune", subject / "dataset", "-m", tiny_sd15, "--config", config, fault=point)
    assert_killed(result)
    if not completed:
        assert _lora_set(lora) == before  # the LoRA, its kohya export and training.json
    record = read_training_record(lora)  # what generate does first: repair, then read
    assert record.lora_sha256 == sha256_file(lora / record.lora_file), "LoRA and training.json disagree"
    assert record.config["seed"] == (1 if completed else 0)
    assert not [name for name in leftovers(lora) if ".staged" in name]
    # The next finetune repairs what is left and trains; nothing temporary stays.
    result = run_cli("finetune", subject / "dataset", "-m", tiny_sd15, "--config", config)
    assert result.code == 0, result.err
    assert leftovers(subject.parent) == []


def test_an_empty_or_damaged_lora_is_one_line(subject, run_cli):
    from safetensors.torch import save

    lora = subject / "lora" / "pytorch_lora_weights.safetensors"
    for content, reason in (
        (save({}), "holds no tensors"),
        (b"\x08\x00\x00\x00\x00\x00\x00\x00{", "not a readable"),
    ):
        lora.write_bytes(content)
        result = run_cli("generate", subject / "lora", "--seeds", "1")
        assert result.code == 1
        assert_one_line_error(result.err, str(lora), reason)


@pytest.fixture(scope="module")
def checkpointed(trained, tmp_path_factory, tiny_sd15):
    """The trained subject plus a run stopped after step 1 of 4 (one checkpoint), built once."""
    import shutil

    from headshot.training.finetune import finetune_dataset
    from headshot.training.finetune_config import FinetuneConfig

    root = tmp_path_factory.mktemp("checkpointed")
    subject = Path(shutil.copytree(trained, root / "outputs" / "ada"))
    config = _config(root, "stop", steps=4, checkpoint_steps=1, stop_after_steps=1)
    options = yaml.safe_load(config.read_text())
    assert finetune_dataset(subject / "dataset", FinetuneConfig(base_model=str(tiny_sd15), **options)) is None
    return subject, config


def _checkpoint(checkpointed, tmp_path: Path) -> tuple[Path, Path, Path]:
    import shutil

    source, config = checkpointed
    subject = Path(shutil.copytree(source, tmp_path / "outputs" / "ada"))
    return subject, subject / "lora" / "checkpoints" / "step-000001", config


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("state.json", b'{"step": "x", "losses": [], "wall_time_s": 0, "settings": {}}'),
        ("state.json", b"[" * 50_000),
        ("lora.safetensors", b"garbage"),
        ("optimizer.pt", b"garbage"),
        ("scheduler.pt", b""),
        ("rng.safetensors", b"\x00" * 16),
    ],
)
def test_a_damaged_checkpoint_with_resume_is_one_line(
    checkpointed, tmp_path, tiny_sd15, run_cli, name, content
):
    subject, checkpoint, config = _checkpoint(checkpointed, tmp_path)
    (checkpoint / name).write_bytes(content)
    record_before = (subject / "lora" / "training.json").read_bytes()
    result = run_cli("finetune", subject / "dataset", "-m", tiny_sd15, "--config", config, "--resume")
    assert result.code == 1
    assert_one_line_error(result.err, str(checkpoint / name))
    assert (subject / "lora" / "training.json").read_bytes() == record_before


def test_checkpoint_state_has_no_absolute_path(checkpointed, tmp_path, tiny_sd15):
    subject, checkpoint, _ = _checkpoint(checkpointed, tmp_path)
    state = (checkpoint / "state.json").read_text()
    assert str(checkpointed[0].parent) not in state and str(tiny_sd15.parent) not in state
    assert json.loads(state)["settings"]["base_model"] == "tiny-sd15"


def test_a_full_disk_while_checkpointing_is_one_line_and_cleaned_next_run(
    subject, tmp_path, tiny_sd15, run_cli, monkeypatch
):
    lora = subject / "lora"
    before = _lora_set(lora)
    config = _config(tmp_path, "ckpt", seed=1, checkpoint_steps=1)
    monkeypatch.setenv("HEADSHOT_FAULT", "enospc:state.json")
    result = run_cli("finetune", subject / "dataset", "-m", tiny_sd15, "--config", config)
    assert result.code == 1
    assert_one_line_error(result.err, "state.json", "No space left on device")
    assert _lora_set(lora) == before
    monkeypatch.delenv("HEADSHOT_FAULT")
    assert run_cli("finetune", subject / "dataset", "-m", tiny_sd15, "--config", config).code == 0
    assert leftovers(subject.parent) == []


def test_a_read_only_lora_folder_is_one_line(subject, tmp_path, tiny_sd15, run_cli):
    from tests.fault_support import read_only

    lora = subject / "lora"
    before = snapshot(lora)
    config = _config(tmp_path, "ro", seed=1)
    with read_only(lora):
        result = run_cli("finetune", subject / "dataset", "-m", tiny_sd15, "--config", config)
    assert result.code == 1
    assert_one_line_error(result.err, str(lora))
    assert snapshot(lora) == before
