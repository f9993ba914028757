"""It learns, on FLUX.2 [klein]: instance-prompt renders move toward the subject's latents, and
(not yet) only the identifier's.

Measured as for FLUX.1 (tests/learning_support.py): size-independent cosine distances
against two baselines, the base model's class-prompt renders and the instance prompt under a
size-matched untrained LoRA (same shapes and norms, random directions). Renders come back
from the pipeline as the VAE's own latents (un-normalised, unpatchified); the subject's
training latents are taken to that space by the family's `vae_latents`. The LoRA trains with
prior preservation on 8 class images rendered as the test renders (8 steps, no guidance).

As for FLUX.1 (tests/test_flux_learns.py), identifier specificity and prior preservation are
strict xfails: the LoRA pulls every prompt toward the subject. Measured on 2 CPU cores
(deterministic): trained class renders 0.7337 from the subject, instance renders 0.7336; the
class prompt's renders moved 0.0801 from the base model's own, the instance prompt's 0.0800.
The tiny klein renders the two prompts alike (cosine distance 1e-4 between its renders of them).
"""

from __future__ import annotations

import pytest
import torch
from finetune_support import fast_options, make_dataset
from learning_support import lora_learning_numbers

from headshot.families import get_family
from headshot.training.data import encode_latents, load_instance_images, read_training_dataset
from headshot.training.finetune import finetune_dataset
from headshot.training.finetune_config import FinetuneConfig

SEEDS = range(4)
MARGIN = 0.10
PULLS_EVERY_PROMPT = (
    "the tiny klein LoRA pulls the class prompt toward the subject as much as the instance prompt "
    "(module docstring)"
)


def _renders(pipe, prompt: str) -> torch.Tensor:
    options = dict(num_inference_steps=8, guidance_scale=1.0, height=64, width=64, max_sequence_length=32)
    images = []
    for seed in SEEDS:
        generator = torch.Generator().manual_seed(seed)
        images.append(pipe(prompt=prompt, output_type="latent", generator=generator, **options).images)
    return torch.cat(images)


@pytest.fixture(scope="module")
def learned(tiny_flux2_klein, tmp_path_factory) -> dict[str, float]:
    from diffusers import Flux2KleinPipeline

    family = get_family("flux2-klein")
    root = tmp_path_factory.mktemp("klein-learns")
    dataset = make_dataset(root / "outputs", "flux2-klein")
    options = fast_options(steps=300, lr=1e-2, rank=8, lora_layers="all", face_loss_weight=1.0,
                           max_sequence_length=32, num_class_images=8, class_inference_steps=8,
                           class_guidance_scale=1.0)  # fmt: skip
    config = FinetuneConfig(base_model=str(tiny_flux2_klein), cache_dir=root / "cache", **options)
    record = finetune_dataset(dataset, config)
    lora = dataset.parent / "lora"

    pipe = Flux2KleinPipeline.from_pretrained(tiny_flux2_klein)
    pipe.set_progress_bar_config(disable=True)
    images = load_instance_images(dataset, read_training_dataset(dataset))
    with torch.no_grad():
        subject = family.vae_latents(pipe.vae, encode_latents(pipe.vae, images, 64, family=family).latents)
    return lora_learning_numbers(pipe, lora, record, subject, _renders, root, specificity=True)


def test_klein_lora_moves_instance_renders_to_the_subject(learned):
    # Measured on 2 CPU cores (deterministic): trained 0.734, base class renders 0.765,
    # size-matched untrained LoRA 0.762 (cosine distances; 1 = unrelated): 4% nearer. The
    # tiny klein learns more slowly than the tiny FLUX.1 (12% there); the margin asked is 2%.
    assert learned["trained instance"] < 0.98 * learned["base class renders"], learned
    assert learned["trained instance"] < 0.98 * learned["size-matched untrained LoRA"], learned


@pytest.mark.xfail(strict=True, reason=PULLS_EVERY_PROMPT)
def test_the_identifier_not_the_class_means_the_subject(learned):
    # Measured: instance 0.7336 vs class 0.7337 (SD: 0.792 vs 0.957).
    assert learned["trained instance"] < (1 - MARGIN) * learned["trained class"], learned


@pytest.mark.xfail(strict=True, reason=PULLS_EVERY_PROMPT)
def test_prior_preservation_keeps_the_class_prompt_where_the_base_model_had_it(learned):
    # Measured: the class prompt's renders moved 0.0801, the instance prompt's 0.0800.
    assert learned["class prompt moved"] < (1 - MARGIN) * learned["instance prompt moved"], learned
