"""Options mean what their help says (issue 25): `--snr-gamma` takes the words its help offers,
and the config model, the shipped YAML and the finetune docs page agree on its default."""

from __future__ import annotations

from pathlib import Path

import pytest

from headshot.config import configs_root, load_config, read_yaml
from headshot.training.finetune_config import FinetuneConfig


@pytest.mark.parametrize(("given", "expected"), [("auto", "auto"), ("null", None), ("2.5", 2.5)])
def test_snr_gamma_takes_every_value_its_help_offers(run_cli, tmp_path, given, expected):
    help_text = " ".join(run_cli("finetune", "--help").out.replace("│", " ").split())
    assert "auto:" in help_text and "null: off" in help_text
    # Accepted on the command line: the run goes on to the next problem (steps 0), not a usage error.
    result = run_cli("finetune", tmp_path / "dataset", "--snr-gamma", given, "--steps", "0")
    assert result.code == 1, result.err
    assert "steps" in result.err and "snr_gamma" not in result.err, result.err
    # The same words mean the same in a YAML file and on the command line.
    assert load_config(FinetuneConfig, None, {"snr_gamma": given}).snr_gamma == expected
    yaml_file = tmp_path / "finetune.yaml"
    yaml_file.write_text(f"snr_gamma: {given}\n")
    assert load_config(FinetuneConfig, yaml_file).snr_gamma == expected


def test_snr_gamma_zero_is_refused_naming_the_option(run_cli, tmp_path):
    result = run_cli("finetune", tmp_path / "dataset", "--snr-gamma", "0")
    assert result.code == 1 and "snr_gamma must be greater than 0" in result.err, result.err


def test_snr_gamma_default_is_one_fact():
    default = FinetuneConfig.model_fields["snr_gamma"].default
    assert read_yaml(configs_root() / "finetune.yaml")["snr_gamma"] == default
    page = (Path(__file__).resolve().parents[1] / "docs" / "finetune.md").read_text(encoding="utf-8")
    rows = [line for line in page.splitlines() if line.startswith("| `snr_gamma` |")]
    assert len(rows) == 2, rows  # the main options' table and the generated table of all options
    for row in rows:
        assert row.split("|")[2].strip() == f"`{default}`", row
