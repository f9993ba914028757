"""Each option is described once, in its config model; the YAML comments, the CLI help and
the docs pages' option tables are derived from that description, so they cannot drift apart."""

from __future__ import annotations

from pathlib import Path

from headshot.config import configs_root
from headshot.config_docs import (
    docs_pages,
    option_help,
    option_keys,
    sync_markdown_options,
    sync_yaml_comments,
    tables_on_page,
    yaml_comments,
    yaml_in_sync,
)
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


# ---- the docs pages' option tables ----------------------------------------------------------

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_docs_option_table_is_in_sync_with_its_config_model():
    pages = list(docs_pages(DOCS, configs_root()))
    assert {model.__name__ for model, *_ in pages} >= {
        "PrepareConfig",
        "FinetuneConfig",
        "GenerateConfig",
        "AuditConfig",
        "StudyConfig",
        "BatchConfig",
    }
    for model, page, synced, _ in pages:
        stale = f"{page.name}: run python tools/sync_config_docs.py"
        assert synced == page.read_text(encoding="utf-8"), stale
        assert tables_on_page(synced) == [model.__name__], page.name
        for key in option_keys(model):  # every option of the model has its row
            assert f"| `{key}` |" in synced, (page.name, key)


def test_a_changed_description_or_default_makes_the_page_stale():
    from pydantic import Field, create_model

    from headshot.config import StrictModel

    page = "intro\n<!-- options: Toy -->\nold table\n<!-- /options -->\nafter\n"
    toy = create_model("Toy", __base__=StrictModel, steps=(int, Field(800, description="optimizer steps")))
    synced = sync_markdown_options(toy, page)
    assert synced.startswith("intro\n") and synced.endswith("after\n")
    assert "| `steps` | `800` | int | optimizer steps |" in synced
    assert sync_markdown_options(toy, synced) == synced
    changed = create_model("Toy", __base__=StrictModel, steps=(int, Field(800, description="updates")))
    assert sync_markdown_options(changed, synced) != synced
    later = create_model("Toy", __base__=StrictModel, steps=(int, Field(900, description="optimizer steps")))
    assert sync_markdown_options(later, synced) != synced


def test_a_model_without_descriptions_takes_the_shipped_yamls_comments():
    yaml_text = (
        "# Seeds per template: seed_start, seed_start+1, ...\n"
        "seeds: null\n"
        "seeds_per_template: 4\n"
        "seed_start: 0\n"
        "\n"
        "ranking:\n"
        "  top_k: 2                    # headshots delivered per template\n"
        "  flagged: fallback           # fallback: not delivered while a clean one passes;\n"
        "                              # never: never delivered\n"
        "# out: outputs/ada/audit      # default: the dataset's sibling audit/ folder\n"
    )
    known = {"seeds", "seeds_per_template", "seed_start", "ranking.top_k", "ranking.flagged", "out"}
    found = yaml_comments(yaml_text, known)
    assert found["seeds"] == found["seed_start"] == "Seeds per template: seed_start, seed_start+1, ..."
    assert "seeds_per_template" not in found  # the block above the run does not name it
    assert found["ranking.top_k"] == "headshots delivered per template"
    flagged = "fallback: not delivered while a clean one passes; never: never delivered"
    assert found["ranking.flagged"] == flagged
    assert found["out"] == "default: the dataset's sibling audit/ folder"
