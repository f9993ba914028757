"""Kill and resume: a `headshot finetune` process killed mid-run and resumed ends bit-identical."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from finetune_support import fast_options, make_dataset
from safetensors.torch import load_file

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of `make test-fast`

STEPS = 40


def _config(tmp_path: Path, **overrides) -> Path:
    settings = dict(
        steps=STEPS, checkpoint_steps=3, lora_dropout=0.1, noise_offset=0.05, batch_size=2,
        lr_scheduler="cosine", cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    options = fast_options(**{**settings, **overrides})
    path = tmp_path / "finetune.yaml"
    path.write_text(yaml.safe_dump(options))
    return path


def _weights(dataset: Path) -> dict[str, torch.Tensor]:
    return load_file(dataset.parent / "lora" / "pytorch_lora_weights.safetensors")


def _assert_bit_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [key for key in a if not torch.equal(a[key], b[key])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:2]}"


def test_killed_run_resumed_equals_uninterrupted_run(run_cli, tiny_sd15, tmp_path):
    source = make_dataset(tmp_path / "straight", "sd15", count=5)
    config = _config(tmp_path)
    result = run_cli("finetune", source, "-m", tiny_sd15, "--config", config)
    assert result.code == 0, result.err
    straight = _weights(source)

    killed = shutil.copytree(source, tmp_path / "killed" / "ada" / "dataset")
    checkpoints = killed.parent / "lora" / "checkpoints"
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    command = [sys.executable, "-m", "headshot", "finetune", str(killed), "-m", str(tiny_sd15)]
    process = subprocess.Popen([*command, "--config", str(config)], env=environment, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (checkpoints / "step-000006").is_dir():
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint within 60 s"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    assert not (killed.parent / "lora" / "training.json").exists(), "killed before it finished"
    done = sorted(int(p.name.split("-")[1]) for p in checkpoints.glob("step-*"))
    assert 6 <= done[-1] < STEPS

    result = run_cli("finetune", killed, "-m", tiny_sd15, "--config", config, "--resume")
    assert result.code == 0, result.err
    assert f"resuming from {checkpoints}" in result.err.replace("\n", "")
    _assert_bit_identical(_weights(killed), straight)


def test_stop_after_steps_and_resume_equals_straight_run(run_cli, tiny_sd15, tmp_path):
    dataset = make_dataset(tmp_path / "a", "sd15", count=3)
    config = _config(tmp_path, steps=10, checkpoint_steps=4, train_text_encoder=True, gradient_accumulation=2)
    assert run_cli("finetune", dataset, "-m", tiny_sd15, "--config", config).code == 0
    straight = _weights(dataset)

    other = shutil.copytree(dataset, tmp_path / "b" / "ada" / "dataset")
    shutil.rmtree(other.parent / "lora", ignore_errors=True)
    result = run_cli("finetune", other, "-m", tiny_sd15, "--config", config, "--stop-after-steps", "5")
    assert result.code == 0 and "stopped after step 5 of 10" in result.err.replace("\n", " ")
    assert not (other.parent / "lora" / "pytorch_lora_weights.safetensors").exists()
    result = run_cli("finetune", other, "-m", tiny_sd15, "--config", config, "--resume", "--lr", "0.5")
    assert result.code == 1 and "cannot resume with changed settings (lr: 0.001 -> 0.5)" in result.err
    result = run_cli("finetune", other, "-m", tiny_sd15, "--config", config, "--resume")
    assert result.code == 0, result.err
    _assert_bit_identical(_weights(other), straight)


def test_checkpoint_whose_layers_do_not_match_is_one_clear_error(run_cli, tiny_sd15, tmp_path):
    from safetensors.torch import save_file

    dataset = make_dataset(tmp_path / "a", "sd15", count=3)
    config = _config(tmp_path, steps=4, checkpoint_steps=2)
    result = run_cli("finetune", dataset, "-m", tiny_sd15, "--config", config, "--stop-after-steps", "2")
    assert result.code == 0, result.err
    checkpoint = dataset.parent / "lora" / "checkpoints" / "step-000002"
    lora = load_file(checkpoint / "lora.safetensors")
    name = sorted(lora)[0]
    for label, broken in {
        "missing": {key: value for key, value in lora.items() if key != name},
        "shape": {**lora, name: torch.zeros(1, 1)},
    }.items():
        save_file(broken, checkpoint / "lora.safetensors")
        result = run_cli("finetune", dataset, "-m", tiny_sd15, "--config", config, "--resume")
        assert result.code == 1, label
        errors = [line for line in result.err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in result.err, result.err
        assert str(checkpoint) in errors[0] and "does not match the model's LoRA layers" in errors[0]
