"""Each option is described once, in its config model; the YAML comments and the CLI help
are derived from that description, so the three cannot drift apart."""

from __future__ import annotations

from headshot.config import configs_root
from headshot.config_docs import option_help, sync_yaml_comments, yaml_in_sync
from headshot.training.finetune_config import FinetuneConfig


def test_shipped_finetune_yaml_comments_are_the_config_models_descriptions():
    path = configs_root() / "finetune.yaml"
    assert yaml_in_sync(FinetuneConfig, path), "run: .venv/bin/python tools/sync_config_docs.py"
    text = path.read_text()
    for name, field in FinetuneConfig.model_fields.items():
        if field.description:
            assert f"# {field.description}" in text, name


def test_sync_rewrites_a_stale_comment_and_keeps_the_value():
    stale = "timestep_sampling: uniform   # an old description\nsteps: 5  # kept\n"
    synced = sync_yaml_comments(FinetuneConfig, stale)
    description = FinetuneConfig.model_fields["timestep_sampling"].description
    assert synced == f"timestep_sampling: uniform{' ' * 4}# {description}\nsteps: 5  # kept\n"


def test_cli_help_is_the_description(run_cli):
    result = run_cli("finetune", "--help")
    flattened = " ".join(result.out.replace("│", " ").split())
    for name in ("lora_layers", "timestep_sampling", "training_guidance", "max_sequence_length", "snr_gamma"):
        first_words = " ".join(option_help(FinetuneConfig, name).split()[:4])
        assert first_words in flattened, name
