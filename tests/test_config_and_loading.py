"""Config errors and model-loading errors: each a clear message naming the culprit, exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from headshot.config import StrictModel, load_config
from headshot.errors import HeadshotError


class _Example(StrictModel):
    lr: float = 1e-4
    steps: int = 10


def test_wrong_type_names_file_and_field(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("lr: fast\n")
    with pytest.raises(HeadshotError) as info:
        load_config(_Example, bad)
    assert str(info.value).startswith(f"{bad}: field 'lr': expected a number")


def test_unknown_key_is_an_error_not_ignored(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("learning_rate: 0.1\n")
    with pytest.raises(HeadshotError, match=r"x.yaml: field 'learning_rate': unknown field"):
        load_config(_Example, bad)


def test_command_line_overrides_file(tmp_path):
    good = tmp_path / "x.yaml"
    good.write_text("lr: 0.5\nsteps: 3\n")
    config = load_config(_Example, good, {"steps": 7, "lr": None})
    assert (config.lr, config.steps) == (0.5, 7)


def test_cli_reports_config_errors_with_exit_1(run_cli, tmp_path):
    bad = tmp_path / "run.yaml"
    bad.write_text("subject: ada\nphotos: .\nbase_model: [1, 2]\n")
    result = run_cli("run", "--config", bad)
    assert result.code == 1
    assert f"{bad}: field 'base_model': expected text" in result.err
    assert "Traceback" not in result.err

    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("subject: ada\nphotos: .\nlearning_rat: 3\n")
    result = run_cli("run", "--config", unknown)
    assert result.code == 1
    assert f"{unknown}: field 'learning_rat': unknown field" in result.err


def test_cli_missing_config_file(run_cli, tmp_path):
    result = run_cli("run", tmp_path, "--subject", "ada", "--config", tmp_path / "nope.yaml")
    assert result.code == 1
    assert "nope.yaml: config file not found" in result.err


def test_usage_error_exits_2(run_cli):
    assert run_cli("tiny-model", "--family", "sd15").code == 2
    assert run_cli("no-such-command").code == 2


def test_missing_hub_model_says_where_it_looked_and_what_to_do(run_cli, tmp_path):
    from headshot.models.loading import load_base_model
    from headshot.models.model_spec import resolve_base_model

    with pytest.raises(HeadshotError) as info:
        load_base_model(resolve_base_model("sdxl"))
    message = str(info.value)
    assert "stabilityai/stable-diffusion-xl-base-1.0" in message
    assert "cache" in message and "hub" in message
    assert "headshot tiny-model" in message


def test_missing_local_model_folder(tmp_path):
    from headshot.models.loading import load_base_model
    from headshot.models.model_spec import resolve_base_model

    with pytest.raises(HeadshotError, match=r"not found: no file or folder at .*missing-model"):
        load_base_model(resolve_base_model(str(tmp_path / "missing-model")))


def test_tiny_preset_tells_how_to_build_it(monkeypatch, tmp_path):
    from headshot.models.loading import load_base_model
    from headshot.models.model_spec import resolve_base_model

    monkeypatch.chdir(tmp_path)
    with pytest.raises(HeadshotError) as info:
        load_base_model(resolve_base_model("tiny-sdxl"))
    assert "headshot tiny-model --family sdxl --out outputs/models/tiny-sdxl" in str(info.value)


@pytest.mark.parametrize("suffix", [".ckpt", ".bin"])
def test_pickle_checkpoint_refused_without_flag(tmp_path, suffix):
    from headshot.models.loading import load_base_model
    from headshot.models.model_spec import resolve_base_model

    checkpoint = tmp_path / f"model{suffix}"
    checkpoint.write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(HeadshotError) as info:
        load_base_model(resolve_base_model(str(checkpoint)))
    assert f"{checkpoint}: refusing a pickle checkpoint ({suffix})" in str(info.value)
    assert "--allow-pickle" in str(info.value)


def test_folder_with_only_pickle_weights_is_refused(tiny_sd15, tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file

    from headshot.models.loading import load_base_model
    from headshot.models.model_spec import resolve_base_model

    copy = Path(shutil.copytree(tiny_sd15, tmp_path / "pickled"))
    for weights in copy.rglob("*.safetensors"):
        pickle_name = {"model.safetensors": "pytorch_model.bin"}.get(weights.name)
        torch.save(load_file(weights), weights.with_name(pickle_name or weights.stem + ".bin"))
        weights.unlink()
    with pytest.raises(HeadshotError, match="no .safetensors weights"):
        load_base_model(resolve_base_model(str(copy)))
    # With the explicit flag the user takes responsibility and the model loads.
    loaded = load_base_model(resolve_base_model(str(copy)), allow_pickle=True)
    assert loaded.family.name == "sd15"


def test_corrupt_safetensors_file(tmp_path):
    from headshot.models.loading import load_base_model
    from headshot.models.model_spec import resolve_base_model

    broken = tmp_path / "model.safetensors"
    broken.write_bytes(b"\x00\x01garbage")
    with pytest.raises(HeadshotError, match=r"model.safetensors: not a readable .safetensors file"):
        load_base_model(resolve_base_model(str(broken)))


def test_cli_pickle_refusal_exit_code(run_cli, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"x")
    result = run_cli("run", photos, "--subject", "ada", "--base-model", checkpoint)
    assert result.code == 1
    assert f"{checkpoint}: refusing a pickle checkpoint (.ckpt)" in result.err
    assert "Traceback" not in result.err


def test_cli_missing_base_model_exit_code(run_cli, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    result = run_cli("run", photos, "--subject", "ada", "--base-model", tmp_path / "nowhere")
    assert result.code == 1
    assert "base model" in result.err and "nowhere" in result.err
