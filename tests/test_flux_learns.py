"""It learns, on FLUX: instance-prompt renders move toward the subject's latents, and (not yet)
only the identifier's.

Measured with size-independent cosine distances (tests/learning_support.py) against two
baselines: the base model's renders of the class prompt, and the instance prompt under a
size-matched untrained LoRA (same shapes and norms, random directions). The LoRA trains with
prior preservation, as DreamBooth does, on 8 class images rendered as the test renders (8
steps, no guidance).

SD's learning tests (tests/test_finetune_learns.py) also hold that the identifier, not the
whole model, came to mean the subject, and that prior preservation keeps the class prompt
where the base model had it; a LoRA that pulls every prompt toward the subject fails both.
This one does, so both are strict xfails: measured on 2 CPU cores (deterministic), the trained
class renders are 0.872 from the subject against the instance renders' 0.852 (2% nearer; 10%
asked), and the LoRA moved the class prompt's renders as far from the base model's own as the
instance prompt's (0.163 and 0.162). The tiny random FLUX renders the two prompts alike (cosine
distance under 1e-4 between its renders of them), and 300 steps of batch 1 with 8 class images do not teach it
the difference; SD needed pre-training, the text encoder's LoRA, batch 8 and 32 class images.
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
    "the tiny FLUX LoRA pulls the class prompt toward the subject as much as the instance prompt "
    "(module docstring)"
)


def _renders(pipe, prompt: str) -> torch.Tensor:
    family = get_family("flux")
    latents = [
        pipe(prompt, num_inference_steps=8, guidance_scale=1.0, height=64, width=64, max_sequence_length=32,
             output_type="latent", generator=torch.Generator().manual_seed(seed)).images
        for seed in SEEDS
    ]  # fmt: skip
    return torch.cat([family.latents_for_decoding(pipe, latent, 64) for latent in latents])


@pytest.fixture(scope="module")
def learned(tiny_flux, tmp_path_factory) -> dict[str, float]:
    from diffusers import FluxPipeline

    root = tmp_path_factory.mktemp("flux-learns")
    dataset = make_dataset(root / "outputs", "flux")
    options = fast_options(steps=300, lr=1e-2, rank=8, lora_layers="all", face_loss_weight=1.0,
                           max_sequence_length=32, num_class_images=8, class_inference_steps=8,
                           class_guidance_scale=1.0)  # fmt: skip
    config = FinetuneConfig(base_model=str(tiny_flux), cache_dir=root / "cache", **options)
    record = finetune_dataset(dataset, config)
    lora = dataset.parent / "lora"

    pipe = FluxPipeline.from_pretrained(tiny_flux)
    pipe.set_progress_bar_config(disable=True)
    subject = encode_latents(
        pipe.vae, load_instance_images(dataset, read_training_dataset(dataset)), 64
    ).latents
    return lora_learning_numbers(pipe, lora, record, subject, _renders, root, specificity=True)


def test_flux_lora_moves_instance_renders_to_the_subject(learned):
    # Measured on 2 CPU cores (deterministic): trained 0.852, base class renders 0.969,
    # size-matched untrained LoRA 0.972 (cosine distances; 1 = unrelated). Margin: 10%.
    assert learned["trained instance"] < (1 - MARGIN) * learned["base class renders"], learned
    assert learned["trained instance"] < (1 - MARGIN) * learned["size-matched untrained LoRA"], learned


@pytest.mark.xfail(strict=True, reason=PULLS_EVERY_PROMPT)
def test_the_identifier_not_the_class_means_the_subject(learned):
    # Measured: instance 0.852 vs class 0.872 (SD: 0.792 vs 0.957).
    assert learned["trained instance"] < (1 - MARGIN) * learned["trained class"], learned


@pytest.mark.xfail(strict=True, reason=PULLS_EVERY_PROMPT)
def test_prior_preservation_keeps_the_class_prompt_where_the_base_model_had_it(learned):
    # Measured: the class prompt's renders moved 0.163, the instance prompt's 0.162.
    assert learned["class prompt moved"] < (1 - MARGIN) * learned["instance prompt moved"], learned
