"""It learns, on FLUX.2 [klein]: instance-prompt renders move toward the subject's latents.

Measured as for FLUX.1 (tests/learning_support.py): size-independent cosine distances
against two baselines, the base model's class-prompt renders and the instance prompt under a
size-matched untrained LoRA (same shapes and norms, random directions). Renders come back
from the pipeline as the VAE's own latents (un-normalised, unpatchified); the subject's
training latents are taken to that space by the family's `vae_latents`.
"""

from __future__ import annotations

import torch
from finetune_support import fast_options, make_dataset
from learning_support import lora_learning_numbers

from headshot.families import get_family
from headshot.training.data import encode_latents, load_instance_images, read_training_dataset
from headshot.training.finetune import finetune_dataset
from headshot.training.finetune_config import FinetuneConfig

SEEDS = range(4)


def _renders(pipe, prompt: str) -> torch.Tensor:
    options = dict(num_inference_steps=8, guidance_scale=1.0, height=64, width=64, max_sequence_length=32)
    images = []
    for seed in SEEDS:
        generator = torch.Generator().manual_seed(seed)
        images.append(pipe(prompt=prompt, output_type="latent", generator=generator, **options).images)
    return torch.cat(images)


def test_klein_lora_moves_instance_renders_to_the_subject(tiny_flux2_klein, tmp_path):
    from diffusers import Flux2KleinPipeline

    family = get_family("flux2-klein")
    dataset = make_dataset(tmp_path / "outputs", "flux2-klein")
    options = fast_options(steps=300, lr=1e-2, rank=8, lora_layers="all", prior_preservation=False,
                           face_loss_weight=1.0, max_sequence_length=32)  # fmt: skip
    record = finetune_dataset(dataset, FinetuneConfig(base_model=str(tiny_flux2_klein), **options))
    lora = dataset.parent / "lora"

    pipe = Flux2KleinPipeline.from_pretrained(tiny_flux2_klein)
    pipe.set_progress_bar_config(disable=True)
    images = load_instance_images(dataset, read_training_dataset(dataset))
    with torch.no_grad():
        subject = family.vae_latents(pipe.vae, encode_latents(pipe.vae, images, 64, family=family).latents)
    numbers = lora_learning_numbers(pipe, lora, record, subject, _renders, tmp_path)
    # Measured on 2 CPU cores (deterministic): trained 0.736, base class renders 0.765,
    # size-matched untrained LoRA 0.764 (cosine distances; 1 = unrelated): 3.8% nearer. The
    # tiny klein learns more slowly than the tiny FLUX.1 (15% there); the margin asked is 2%.
    assert numbers["trained instance"] < 0.98 * numbers["base class renders"], numbers
    assert numbers["trained instance"] < 0.98 * numbers["size-matched untrained LoRA"], numbers
