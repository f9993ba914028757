"""It learns, on every flow-matching family (tests/flow_cases.py): instance-prompt renders move
toward the subject's latents, and (not yet) only the identifier's.

Measured with size-independent cosine distances (tests/learning_support.py) against two
baselines: the base model's renders of the class prompt, and the instance prompt under a
size-matched untrained LoRA (same shapes and norms, random directions). The LoRA trains with
prior preservation, as DreamBooth does, on 8 class images rendered as the test renders (8
steps, no guidance). Renders and the subject are compared in the layout the pipeline's
"latent" output has (FLUX.1: its training latents; FLUX.2 [klein]: the VAE's own latents,
un-normalised and unpatchified, where the family's `vae_latents` takes the subject).

SD's learning tests (tests/test_finetune_learns.py) also hold that the identifier, not the
whole model, came to mean the subject, and that prior preservation keeps the class prompt
where the base model had it; a LoRA that pulls every prompt toward the subject fails both.
The tiny flow models' LoRAs do, so both are strict xfails (each case's measured numbers are in
tests/flow_cases.py): the tiny random FLUX.1 and klein render the two prompts alike (cosine
distance under 1e-4 between their renders of them), and 300 steps of batch 1 with 8 class
images do not teach them the difference; SD needed pre-training, the text encoder's LoRA,
batch 8 and 32 class images.
"""

from __future__ import annotations

import pytest
import torch
from finetune_support import fast_options, make_dataset
from learning_support import lora_learning_numbers

from headshot.families import family_of_pipeline, get_family
from headshot.training.data import encode_latents, load_instance_images, read_training_dataset
from headshot.training.finetune import finetune_dataset
from headshot.training.finetune_config import FinetuneConfig

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of `make test-fast`

SEEDS = range(4)
SPECIFICITY_MARGIN = 0.10  # what SD's learning tests ask of the identifier and the prior


@pytest.fixture
def pulls_every_prompt(flow_case, request):
    """Marks the test a strict xfail, for the case's reason."""
    request.applymarker(pytest.mark.xfail(strict=True, reason=flow_case.pulls_every_prompt))


def _renders(pipe, prompt: str) -> torch.Tensor:
    family = family_of_pipeline(pipe)
    options = dict(num_inference_steps=8, guidance_scale=1.0, height=64, width=64, max_sequence_length=32)
    latents = []
    for seed in SEEDS:
        generator = torch.Generator().manual_seed(seed)
        latents.append(pipe(prompt=prompt, output_type="latent", generator=generator, **options).images)
    return torch.cat([family.latents_for_decoding(pipe, latent, 64) for latent in latents])


@pytest.fixture(scope="module")
def learned(flow_case, flow_model, tmp_path_factory) -> dict[str, float]:
    family = get_family(flow_case.name)
    root = tmp_path_factory.mktemp(f"{flow_case.name}-learns")
    dataset = make_dataset(root / "outputs", flow_case.name)
    options = fast_options(steps=300, lr=1e-2, rank=8, lora_layers="all", face_loss_weight=1.0,
                           max_sequence_length=32, num_class_images=8, class_inference_steps=8,
                           class_guidance_scale=1.0)  # fmt: skip
    config = FinetuneConfig(base_model=str(flow_model), cache_dir=root / "cache", **options)
    record = finetune_dataset(dataset, config)
    lora = dataset.parent / "lora"

    pipe = flow_case.load(flow_model)
    pipe.set_progress_bar_config(disable=True)
    images = load_instance_images(dataset, read_training_dataset(dataset))
    with torch.no_grad():
        subject = encode_latents(pipe.vae, images, 64, family=family).latents
        if flow_case.renders_vae_latents:
            subject = family.vae_latents(pipe.vae, subject)
    return lora_learning_numbers(pipe, lora, record, subject, _renders, root, specificity=True)


def test_the_lora_moves_instance_renders_to_the_subject(flow_case, learned):
    # Measured numbers and each family's margin: tests/flow_cases.py.
    margin = flow_case.learns_margin
    assert learned["trained instance"] < (1 - margin) * learned["base class renders"], learned
    assert learned["trained instance"] < (1 - margin) * learned["size-matched untrained LoRA"], learned


def test_the_identifier_not_the_class_means_the_subject(learned, pulls_every_prompt):
    assert learned["trained instance"] < (1 - SPECIFICITY_MARGIN) * learned["trained class"], learned


def test_prior_preservation_keeps_the_class_prompt_where_the_base_model_had_it(learned, pulls_every_prompt):
    moved = learned["instance prompt moved"]
    assert learned["class prompt moved"] < (1 - SPECIFICITY_MARGIN) * moved, learned
