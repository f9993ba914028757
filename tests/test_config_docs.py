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


def test_the_default_base_model_and_flux_devs_licence_are_stated_where_offered(run_cli):
    from headshot.config import DEFAULT_BASE_MODEL
    from headshot.models.model_spec import resolve_base_model
    from headshot.training.intake import PrepareConfig
    from headshot.workflow import RunConfig

    # FLUX.2 [klein] 4B base (Apache-2.0) wherever a command needs a model and is given none.
    assert DEFAULT_BASE_MODEL == "flux2-klein-base"
    assert resolve_base_model(DEFAULT_BASE_MODEL).family == "flux2-klein"
    defaults = {FinetuneConfig().base_model, RunConfig(photos=".", subject="a").base_model}
    assert defaults | {PrepareConfig(photos=".", subject="a").base_model} == {DEFAULT_BASE_MODEL}
    for command in ("prepare", "finetune", "run"):
        result = run_cli(command, "--help")
        flattened = " ".join(result.out.replace("│", " ").split())
        assert "flux2-klein-base (FLUX.2 [klein] 4B base, Apache-2.0: the default" in flattened, command
        assert "flux-dev (FLUX.1-dev: non-commercial licence)" in flattened, command
    shipped = configs_root() / "finetune.yaml"
    assert "flux-dev (FLUX.1-dev: NON-COMMERCIAL licence" in shipped.read_text()
    assert "Non-Commercial License" in (configs_root() / "models" / "flux-dev.yaml").read_text()
