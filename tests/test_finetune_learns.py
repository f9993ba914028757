"""It learns: DreamBooth's claims measured on the tiny models, with distances that ignore size.

Distances are between standardised latents (each centred and scaled to unit RMS,
`finetune_support.standardised`): an untrained tiny model renders latents ~9x the size
of the training latents, and under a raw distance merely shrinking them passed for
learning. Latents, not pixels: the tiny VAE is random, so decoding and re-encoding is
not an identity.

The claims, each by MARGIN (10%):
1. prior preservation keeps the class prompt's renders nearer the base model's own class
   renders (same seeds) than training without it does;
2. trained instance renders are nearer the subject's latents than the untrained
   baseline's (the base model, same prompt and seeds: size-matched by standardising);
3. trained instance renders are nearer the subject than the trained class renders are:
   the identifier, not the whole model, came to mean the person.

The plain random tiny UNet shows none of them (SD1.5, measured with the earlier version
of this test's options: 1. 0.480 with prior vs 0.474 without, reversed; 2. 1.357 vs
1.446, 6%; 3. 1.357 vs 1.357). The tiny models here are pre-trained at build time
(`tiny_pretrain`, 200 steps on scikit-image's LFW faces as "a photo of person"), which
makes claim 1 hold (SD1.5 0.338 vs 0.403, SDXL 0.426 vs 0.496: margins of 16% and 14%,
and they move with the tiny model's random weights: 3.5% at lr 2e-3 after the tiny
tokenizer's vocabulary grew). Claims 2 and 3 do not hold in a test-sized run (SD1.5:
2. 0.932 vs 0.965, 3%; 3. 0.932 vs 0.932; SDXL: 2. 1.099 vs 0.987, away from the subject;
3. 1.099 vs 1.100) and are strict xfails, so a tiny model that shows them turns them into
failures until the marks go. Why, measured: the tiny model barely tells the instance prompt
from the class prompt (their base renders differ by 0.006), so the LoRA moves both prompts'
renders alike; a longer run (300 steps), a lower learning rate, 400 pre-training steps,
attention-only LoRA layers and training the text encoder too did not change that.
"""

from __future__ import annotations

import shutil

import pytest
import torch
from finetune_support import fast_options, make_dataset, measure_learning, nearest_distance, paired_distance

from headshot.pipelines.tiny import save_tiny_model
from headshot.training.data import encode_latents, load_instance_images, read_training_dataset
from headshot.training.finetune import finetune_dataset
from headshot.training.finetune_config import FinetuneConfig

MARGIN = 0.10
PRETRAIN_STEPS = 200


def test_the_distances_ignore_size_and_see_pattern():
    torch.manual_seed(0)
    targets = torch.randn(3, 4, 8, 8)
    assert nearest_distance(9.0 * targets, targets) < 1e-6  # a render ~9x too large is the same pattern
    assert nearest_distance(targets[:1] + 0.5, targets) < 1e-6  # and so is one that is offset
    unrelated = torch.randn(3, 4, 8, 8)
    assert nearest_distance(unrelated, targets) > 1.2  # sqrt(2) for independent patterns
    assert paired_distance(targets, 0.1 * targets) < 1e-6 and paired_distance(targets, -targets) > 1.99


@pytest.fixture(scope="module", params=["sd15", "sdxl"])
def learned(request, tmp_path_factory):
    """Per family: the pre-trained tiny model, LoRAs trained with and without prior
    preservation on the subject, and the distances of measure_learning."""
    family = request.param
    root = tmp_path_factory.mktemp(f"learns-{family}")
    model = save_tiny_model(family, root / "model", pretrain_steps=PRETRAIN_STEPS)
    dataset = make_dataset(root / "with-prior", family)
    control = shutil.copytree(dataset, root / "no-prior" / "ada" / "dataset")
    options = fast_options(
        steps=150, lr=1e-2, rank=8, unet_lora_layers="all", num_class_images=8, class_inference_steps=10,
        snr_gamma=None, face_loss_weight=1.0,
    )  # fmt: skip
    config = FinetuneConfig(base_model=str(model), cache_dir=root / "cache", **options)
    record = finetune_dataset(dataset, config)
    finetune_dataset(control, config.model_copy(update={"prior_preservation": False}))
    from diffusers import DiffusionPipeline

    vae = DiffusionPipeline.from_pretrained(model).vae
    images = load_instance_images(dataset, read_training_dataset(dataset))
    subject = encode_latents(vae, images, images.pixels.shape[-1]).latents
    return measure_learning(model, dataset.parent / "lora", control.parent / "lora", subject, record)


def test_prior_preservation_keeps_the_class_renders_near_the_base_models(learned):
    # Measured: SD1.5 0.338 with prior preservation, 0.403 without; SDXL 0.426 and 0.496.
    assert learned["prior class -> base class"] < (1 - MARGIN) * learned["no-prior class -> base class"], (
        learned
    )


@pytest.mark.xfail(strict=True, reason="measured: SD1.5 0.932 vs 0.965, SDXL 1.099 vs 0.987 (module doc)")
def test_instance_renders_move_toward_the_subject(learned):
    assert learned["trained instance -> subject"] < (1 - MARGIN) * learned["base instance -> subject"], (
        learned
    )


@pytest.mark.xfail(strict=True, reason="measured: SD1.5 0.932 vs 0.932, SDXL 1.099 vs 1.100 (module doc)")
def test_the_identifier_not_the_class_means_the_subject(learned):
    assert learned["trained instance -> subject"] < (1 - MARGIN) * learned["trained class -> subject"], (
        learned
    )
