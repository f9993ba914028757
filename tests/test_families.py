"""The family contract: every registered family's tiny model passes the same tests.

Each family supplies only its case (tests/family_cases.py): which fixture builds its tiny
model and the shapes to expect. Loading, recognition, prompt encoding, a prediction, the
LoRA export and option checks are the same tests for all of them.
"""

from __future__ import annotations

import pytest
import torch
from family_cases import CASES

from headshot.errors import HeadshotError
from headshot.families import family_names, get_family
from headshot.training.finetune_config import FinetuneConfig

PROMPT = "a photo of sks person with earrings"


@pytest.fixture(params=CASES, ids=[case.name for case in CASES])
def case(request):
    return request.param


@pytest.fixture
def model(case, request):
    return request.getfixturevalue(case.fixture)


def _pipeline(folder):
    from headshot.models.loading import load_base_model
    from headshot.models.model_spec import resolve_base_model

    loaded = load_base_model(resolve_base_model(str(folder)))
    return loaded


def test_every_registered_family_has_a_contract_case():
    assert [case.name for case in CASES] == family_names()


def test_tiny_model_loads_in_plain_diffusers_and_through_the_loader(case, model):
    from diffusers import DiffusionPipeline

    plain = DiffusionPipeline.from_pretrained(model)
    assert type(plain).__name__ == case.pipeline_class
    loaded = _pipeline(model)
    family = loaded.family
    assert family.name == case.name and family.pipeline_class_name == case.pipeline_class
    assert loaded.resolution == 64  # the tiny model's own size, not the family's native one
    assert family.native_resolution == case.native_resolution
    assert family.size_multiple == case.size_multiple
    assert family.denoiser == case.denoiser
    assert family.denoiser_of(loaded.pipeline) is getattr(loaded.pipeline, case.denoiser)
    assert loaded.pipeline.vae.config.latent_channels == case.latent_channels
    assert family.resolution_from_folder(model) == 64


def test_single_file_checkpoint_in_the_original_layout_is_recognised(case, tmp_path):
    from safetensors.torch import save_file

    from headshot.models.loading import single_file_family
    from headshot.models.model_spec import BaseModelSpec
    from headshot.training.resolution import training_size

    path = tmp_path / "model.safetensors"
    save_file({key: torch.zeros(1) for key in case.single_file_keys}, str(path))
    assert single_file_family(BaseModelSpec(source=str(path)), path) == case.name
    assert training_size(str(path)) == (case.name, case.native_resolution)


def test_prompts_are_encoded_as_the_pipeline_encodes_them(case, model):
    pipe = _pipeline(model).pipeline
    family = get_family(case.name)
    config = FinetuneConfig(base_model="unused", max_sequence_length=32)
    ids = family.tokenize(pipe, PROMPT, config)
    with torch.no_grad():
        ours = family.encode_prompt(family.text_encoders(pipe), ids, "cpu")
        hidden, pooled = case.reference_prompt_embeddings(pipe, PROMPT)
    assert ours.hidden.shape[-1] == case.hidden_dim
    torch.testing.assert_close(ours.hidden, hidden)
    if case.pooled_dim is None:
        assert ours.pooled is None
    else:
        assert ours.pooled.shape == (1, case.pooled_dim)
        torch.testing.assert_close(ours.pooled, pooled)


def test_a_training_prediction_keeps_the_vae_latent_layout(case, model):
    pipe = _pipeline(model).pipeline
    family = get_family(case.name)
    config = FinetuneConfig(base_model="unused", max_sequence_length=32)
    with torch.no_grad():
        prompts = family.encode_prompt(
            family.text_encoders(pipe), family.tokenize(pipe, PROMPT, config), "cpu"
        )
        pixels = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
        latents = family.encode_latents(pipe.vae, pixels)  # the layout training sees
        assert latents.shape == (2, *case.training_latents)
        decoded = pipe.vae.decode(family.vae_latents(pipe.vae, latents)).sample
        assert decoded.shape == pixels.shape  # and back through the family's inverse
        time_ids = torch.stack([family.time_ids((64, 64), 64)] * 2)
        objective = family.training_objective(pipe, config)
        noisy, timesteps, target = objective.sample(latents, [1, 2])
        prediction = family.predict(
            family.denoiser_of(pipe), noisy, timesteps, prompts.repeat(2), time_ids, config.training_guidance
        )
    assert noisy.shape == target.shape == prediction.shape == latents.shape
    assert objective.weights(timesteps).shape == (2,)
    assert torch.isfinite(prediction).all()


def test_exported_lora_loads_unmodified_in_plain_diffusers_and_changes_the_output(case, model, tmp_path):
    from diffusers import DiffusionPipeline

    from headshot.training.adapters import add_lora_adapters

    def render(pipe):
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            return pipe(prompt=PROMPT, num_inference_steps=2, height=64, width=64, output_type="np",
                        generator=generator, guidance_scale=1.0).images  # fmt: skip

    family = get_family(case.name)
    trained = _pipeline(model).pipeline
    add_lora_adapters(trained, FinetuneConfig(base_model="unused", rank=4, alpha=8), seed=0, family=family)
    with torch.no_grad():
        for name, parameter in family.denoiser_of(trained).named_parameters():
            if "lora_B" in name:  # peft starts B at zero; make the adapter act
                parameter.copy_(
                    torch.randn(parameter.shape, generator=torch.Generator().manual_seed(2)) * 0.3
                )
    in_memory = render(trained)
    lora_file, other_file = family.export(trained, tmp_path / "lora", "ada", False, scale=8 / 4)
    assert lora_file.is_file() and other_file.is_file()

    plain = DiffusionPipeline.from_pretrained(model)
    plain.set_progress_bar_config(disable=True)
    base = render(plain)
    plain.load_lora_weights(tmp_path / "lora")
    loaded = render(plain)
    assert abs(loaded - base).mean() > 1e-3, "the exported LoRA changes nothing"
    assert abs(loaded - in_memory).max() < 1e-3, "diffusers renders the export unlike the trained model"


def test_options_a_family_cannot_use_are_errors_naming_option_and_family(case):
    family = get_family(case.name)
    if family.objective == "flow":
        wrong = [("snr_gamma", 5.0), ("noise_offset", 0.05)]
    else:
        wrong = [("timestep_sampling", "uniform"), ("training_guidance", 3.5)]
    for option, value in wrong:
        config = FinetuneConfig(base_model="unused", **{option: value})
        with pytest.raises(HeadshotError) as error:
            family.check_training_options(config, "finetune.yaml")
        assert f"option '{option}'" in str(error.value) and case.name in str(error.value)
        assert str(error.value).startswith("finetune.yaml: ")
    family.check_training_options(FinetuneConfig(base_model="unused"), "defaults")  # defaults are fine


def test_every_shipped_template_has_a_sampler_and_size_for_the_family(case):
    from headshot.pipelines.templates import (
        check_templates_for_family,
        load_templates,
        shipped_template_names,
    )

    family = get_family(case.name)
    templates = load_templates(shipped_template_names())
    check_templates_for_family(templates, family, None, family.native_resolution)
    for item in templates:
        assert item.template.settings_for(family)[0] in family.samplers
    odd = case.size_multiple + 8 if case.size_multiple > 8 else 68
    with pytest.raises(HeadshotError, match=f"not a multiple of {case.size_multiple}"):
        check_templates_for_family(templates, family, odd, family.native_resolution)


def test_the_unregistered_template_documents_every_hook_of_a_family():
    from headshot.families import Family
    from headshot.families._template import TemplateFamily

    hooks = {name for name, value in vars(Family).items() if callable(value) and not name.startswith("_")}
    documented = {name for name, value in vars(TemplateFamily).items() if callable(value) and value.__doc__}
    assert hooks - {"recognise", "load_kwargs", "denoiser_of", "text_encoders", "tokenizers"} <= documented
    assert "template" not in family_names()


def test_records_and_configs_check_the_family_against_the_registry_and_read_old_names(tmp_path):
    from pydantic import ValidationError

    from headshot.dataset_record import DatasetRecord
    from headshot.training.checkpoints import Checkpoint, changed_settings

    assert FinetuneConfig(base_model="x", unet_lora_layers="all").lora_layers == "all"  # the old name
    assert DatasetRecord(subject="a", family="flux1", resolution=64, photos=[]).family == "flux"
    with pytest.raises(ValidationError, match="unknown model family 'sd3'.*sd15, sdxl, flux"):
        DatasetRecord(subject="a", family="sd3", resolution=64, photos=[])
    settings = FinetuneConfig(base_model="x", lora_layers="all").result_settings()
    old = {("unet_lora_layers" if k == "lora_layers" else k): v for k, v in settings.items()}
    old = {k: v for k, v in old.items() if k not in ("timestep_sampling", "max_sequence_length")}
    checkpoint = Checkpoint(folder=tmp_path, state=None, lora={}, settings=old)
    assert changed_settings(checkpoint, settings) is None
    assert "lr: 0.0001 -> 0.5" in changed_settings(checkpoint, {**settings, "lr": 0.5})
