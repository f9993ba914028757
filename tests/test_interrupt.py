"""Ctrl-C (issue 25, defect 2): finetune says what it kept and the exact command that goes on,
and that command, run again unchanged, continues from the checkpoint instead of starting over.

The interrupt is a real SIGINT the process sends itself at a named write point
(HEADSHOT_FAULT=int:POINT, headshot.storage.fault_point): deterministic, no timing luck.
"""

from __future__ import annotations

import re
import shlex

import pytest
import yaml
from finetune_support import fast_options, make_dataset

from headshot.training.training_record import read_training_record
from tests.fault_support import run_headshot

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of `make test-fast`


def test_ctrl_c_in_finetune_says_what_is_kept_and_the_same_command_continues(
    run_cli, tiny_sd15, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # paths inside the current folder are shown relative to it
    dataset = make_dataset(tmp_path / "outputs", "sd15", count=2)
    config = tmp_path / "finetune.yaml"
    options = fast_options(steps=3, checkpoint_steps=1, num_class_images=1, cache_dir=str(tmp_path / "cache"))
    config.write_text(yaml.safe_dump(options))
    command = ["finetune", dataset, "-m", tiny_sd15, "--config", config]
    # Ctrl-C while the second checkpoint is written: the first one (step 1) is complete.
    result = run_headshot(*command, fault="int:state.json@2")
    assert result.returncode == 130, result.stderr[-3000:]
    checkpoint = dataset.parent / "lora" / "checkpoints" / "step-000001"
    assert f"interrupted: checkpoint at step 1 of 3 in {checkpoint.relative_to(tmp_path)}" in result.stderr
    assert "Traceback" not in result.stderr
    again = next(line for line in result.stderr.splitlines() if line.startswith("continue with: "))
    assert shlex.split(again.removeprefix("continue with: ")) == ["headshot", *map(str, command)]

    # The same command, without --resume: it continues (no "removing the old checkpoints").
    result = run_cli(*command)
    assert result.code == 0, result.err
    flat = result.err.replace("\n", "")  # the console wraps long lines
    assert re.search(rf"resuming from ?{re.escape(str(checkpoint))} ?\(step 1\)", flat), result.err
    assert "removing the old checkpoints" not in result.err
    assert read_training_record(dataset.parent / "lora").steps == 3
    assert result.out.strip().endswith("LoRA in outputs/ada/lora")  # the result, on stdout

    # Other settings, or --restart, start a new run.
    result = run_cli(*command, "--restart")
    assert result.code == 0, result.err
    assert "resuming" not in result.err and "starting a new run" in result.err
