"""The family contract at full size, on the meta device: every registered family's real model.

The shipped configs (configs/full-size/) build each real model without its weights. At 1024 px
the family's prompt conditioning, latent layout, prediction, loss, LoRA and export names must
be those of the real model, and the memory plan must count what training really holds. Each
family supplies its expected facts in tests/family_cases.py, as the tiny contract suite does.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from family_cases import CASES

from headshot.families import get_family
from headshot.full_size import (
    component_config,
    meta_component,
    no_initialisation,
    shipped,
    write_config_folder,
)
from headshot.memory_plan import components, prompt_shape, training_inputs
from headshot.training.adapters import add_denoiser_lora
from headshot.training.finetune_config import FinetuneConfig
from headshot.training.memory_check import estimate_finetune

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of `make test-fast`

PROMPT = "a photo of sks person with earrings"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("full-size")
    return {case.name: write_config_folder(shipped(case.full_size), root / case.full_size) for case in CASES}


@pytest.fixture(params=CASES, ids=[case.name for case in CASES])
def case(request):
    return request.param


_DENOISERS: dict[str, torch.nn.Module] = {}


@pytest.fixture
def lora_denoiser(case, folders):
    """The full-size denoiser in bf16 on the meta device with the LoRA training adds (rank 16,
    attention layers), built once per family."""
    if case.name not in _DENOISERS:
        family = get_family(case.name)
        denoiser = _meta(folders[case.name], family.denoiser, torch.bfloat16)
        denoiser.requires_grad_(False)
        with torch.device("meta"), no_initialisation():
            add_denoiser_lora(family, denoiser, _config(rank=16))
        _DENOISERS[case.name] = denoiser
    return _DENOISERS[case.name]


def _meta(folder, name, dtype=None):
    library, class_name = components(folder)[name]
    return meta_component(folder, name, library, class_name, dtype)


def _config(**options) -> FinetuneConfig:
    return FinetuneConfig(base_model="unused", max_sequence_length=512, **options)


def _wrapped(model) -> dict[str, torch.nn.Module]:
    from peft.tuners.lora import LoraLayer

    return {name: module for name, module in model.named_modules() if isinstance(module, LoraLayer)}


def test_every_family_ships_full_size_configs_of_the_published_size(case, folders):
    folder = folders[case.name]
    family = get_family(case.name)
    assert family.recognise(components(folder) and _index(folder), None)
    denoiser = _meta(folder, family.denoiser)
    assert sum(p.numel() for p in denoiser.parameters()) / 1e9 == pytest.approx(
        case.denoiser_billions, abs=0.01
    )
    assert all(p.device.type == "meta" for p in denoiser.parameters())  # no memory
    assert family.resolution_from_folder(folder) == case.native_resolution


def _index(folder):
    from headshot.families.base import read_model_index

    return read_model_index(folder)


def test_prompt_shapes_derived_from_configs_are_what_the_encoders_give(case, folders, request):
    """The derivation the memory plan uses, held to the real encoders: run on the tiny model (all
    families), and on the meta device at full size where the encoder can run there."""
    from headshot.models.loading import load_base_model
    from headshot.models.model_spec import resolve_base_model

    family = get_family(case.name)
    config = _config()
    tiny_folder = request.getfixturevalue(case.fixture)
    pipe = load_base_model(resolve_base_model(str(tiny_folder))).pipeline
    tiny_config = FinetuneConfig(base_model="unused", max_sequence_length=32)
    with torch.no_grad():
        real = family.encode_prompt(
            family.text_encoders(pipe), family.tokenize(pipe, PROMPT, tiny_config), "cpu"
        )
    derived = _derived(family, tiny_folder, tiny_config)
    assert derived == (real.hidden.shape[1], real.hidden.shape[2], _pooled(real))

    full = folders[case.name]
    assert _derived(family, full, config) == case.prompt_512
    if case.encoder_runs_on_meta:
        encoders = [_meta(full, name) for name in family.text_encoder_names]
        lengths = [case.prompt_512[0] if i == len(encoders) - 1 else 77 for i in range(len(encoders))]
        ids = [torch.zeros(1, length, dtype=torch.long, device="meta") for length in lengths]
        with torch.no_grad():
            out = family.encode_prompt(encoders, ids, "meta")
        assert (out.hidden.shape[1], out.hidden.shape[2], _pooled(out)) == case.prompt_512


def _derived(family, folder, config):
    return prompt_shape(folder, family, config)


def _pooled(embeddings):
    return None if embeddings.pooled is None else embeddings.pooled.shape[-1]


def test_a_full_size_training_step_forms_the_loss_in_the_family_layout(case, folders, lora_denoiser):
    from headshot.training.loss import Batch, LossSettings, dreambooth_loss

    folder = folders[case.name]
    family = get_family(case.name)
    config = _config(prior_preservation=False)
    vae = _meta(folder, "vae", torch.bfloat16)
    with torch.no_grad():
        latents = family.encode_latents(
            vae, torch.empty(1, 3, 1024, 1024, device="meta", dtype=torch.bfloat16)
        )
    assert tuple(latents.shape[1:]) == case.latents_1024
    assert family.training_latent_shape(component_config(folder, "vae"), 1024) == case.latents_1024
    noisy, prompts, time_ids = training_inputs(
        folder, components(folder), family, config, 1024, torch.bfloat16
    )
    assert noisy.shape == latents.shape

    denoiser = lora_denoiser
    _, scheduler_class = components(folder)["scheduler"]
    scheduler = getattr(__import__("diffusers"), scheduler_class).from_config(
        component_config(folder, "scheduler")
    )
    objective = family.training_objective(SimpleNamespace(scheduler=scheduler), config)
    batch = Batch(
        latents=latents,
        masks=torch.empty(1, 1, *latents.shape[-2:], device="meta"),
        time_ids=time_ids,
        prompts=prompts,
        num_instance=1,
        noise_seeds=[0],
    )
    loss, instance, prior = dreambooth_loss(family, denoiser, objective, batch, LossSettings(1.0, 2.0))
    assert loss.shape == () and loss.requires_grad and prior is None  # a loss the LoRA can learn from


def test_the_plan_counts_the_lora_peft_wraps_and_the_activations_at_full_size(case, folders, lora_denoiser):
    folder = folders[case.name]
    family = get_family(case.name)
    config = _config(rank=16)
    wrapped = _wrapped(lora_denoiser)
    assert len(wrapped) == case.attention_lora_layers
    expected = sum(16 * (m.base_layer.in_features + m.base_layer.out_features) for m in wrapped.values())

    plain = estimate_finetune(folder, family, config, 1024, "cuda", torch.bfloat16)
    assert plain.lora_parameters == expected
    assert plain.activations and plain.activations > 2**30  # counted at 1024 px, never a silent zero
    checkpointed = estimate_finetune(
        folder,
        family,
        config.model_copy(update={"gradient_checkpointing": True}),
        1024,
        "cuda",
        torch.bfloat16,
    )
    assert checkpointed.activations < plain.activations / 2
    assert checkpointed.peak < plain.peak


def test_exported_names_at_full_size_are_the_ones_the_other_tools_load(case, folders, lora_denoiser):
    folder = folders[case.name]
    family = get_family(case.name)
    names = family.lora_file_names(list(_wrapped(lora_denoiser)))
    assert names == case.full_size_lora_file_names(component_config(folder, family.denoiser))
