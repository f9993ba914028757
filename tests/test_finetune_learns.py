"""It learns: DreamBooth's claims measured on the tiny SD models, with distances that ignore size.

Distances are between standardised latents (each centred and scaled to unit RMS,
`finetune_support.standardised`): an untrained tiny model renders latents ~9x the size
of the training latents, and under a raw distance merely shrinking them passed for
learning. Latents, not pixels: the tiny VAE is random, so decoding and re-encoding is
not an identity (0.99 between a render's latents and its decoded image's).

The claims, each by MARGIN (10%):
1. prior preservation keeps the class prompt's renders nearer the base model's own class
   renders (same seeds) than training without it does;
2. trained instance renders are nearer the subject's latents than the untrained
   baseline's (the base model, same prompt and seeds: size-matched by standardising);
3. trained instance renders are nearer the subject than the trained class renders are:
   the identifier, not the whole model, came to mean the person;
4. the FLUX tests' measure (`learning_support.lora_learning_numbers`, cosine distances):
   trained instance renders nearer the subject than the base model's class renders and
   than the instance renders of a size-matched untrained LoRA.

The plain random tiny UNet shows none of them (SD1.5, an earlier version of this test:
1. 0.480 with prior vs 0.474 without, reversed; 2. 1.357 vs 1.446; 3. 1.357 vs 1.357). The
tiny models here are pre-trained at build time (`headshot.training.tiny_model`, 200 steps on scikit-image's
LFW faces as "a photo of person"), and the LoRA trains 300 steps of batch 8, text encoder
LoRA included, with 32 class images. Measured (deterministic on 2 CPU cores):

  claim                          SD1.5             SDXL
  1. prior / no-prior drift      0.355 vs 0.500    0.342 vs 0.441
  2. trained / base instance     0.792 vs 0.965    0.786 vs 0.987
  3. trained instance / class    0.792 vs 0.957    0.786 vs 0.939
  4. trained / base class        0.322 vs 0.472    0.311 vs 0.494   (cosine)
     trained / untrained LoRA    0.322 vs 0.550    0.311 vs 0.879   (cosine)

The base model itself still barely tells the instance prompt from the class prompt: its
renders of the two differ by 0.0105 (SD1.5; SDXL 0.025); its random CLIP encoder's first
layer adds a component common to every token ~10x the token embeddings' size, so the two
prompts' hidden states have cosine 0.994 (0.988 at the identifier's position), and its
noise prediction moves 0.4% between them (1.8% between "person" and "background", the two
pre-training captions). It is the LoRA that learns the difference, and only with enough
class images: with 8 (every batch of 8 then held all of them) claims 1 and 3 failed.
Measured before, on the same models (claims 1, 2, 3; then claim 4's two pairs):
- batch 1, 150 steps, lr 1e-2, 8 class images, no text encoder LoRA (this test's earlier
  options): SD1.5 0.338 vs 0.403; 0.932 vs 0.965; 0.932 vs 0.932; 0.438 vs 0.472 and 0.540.
  SDXL 0.426 vs 0.496; 1.099 vs 0.987 (away); 1.099 vs 1.100; 0.604 vs 0.494 and 0.709;
- batch 8, lr 3e-3, 300 steps, 8 class images: SD1.5 0.463 vs 0.508 (9%); 0.790 vs 0.965;
  0.790 vs 0.887. SDXL 0.410 vs 0.434; 0.868 vs 0.987; 0.868 vs 0.928 (6%). With the text
  encoder LoRA (SD1.5): 0.472 vs 0.500; 0.766 vs 0.884. Prior loss weight 2: 0.471 vs 0.508;
- 32 class images without the text encoder LoRA: SD1.5 0.355 vs 0.508; 0.835 vs 0.965;
  0.835 vs 0.964. SDXL 0.347 vs 0.434; 0.836 vs 0.987; 0.836 vs 0.935 (10.6%, too near).
Tried on the pre-training side, without effect on the base model's prompt separation:
eight words in the identifier's slot bound to visible changes of the LFW photos (red,
green, blue tints, dark, bright, blurry, a closer crop) with 10% empty captions (the noise
prediction then moved 0.3% between the prompts), the same with the text encoder pre-trained
too (0.08%), token embeddings scaled 10x (0.12%): 200 steps of the noise objective barely
reward reading the caption. Earlier: 400 pre-training steps, attention-only LoRA layers,
four brightness-bound captions.
"""

from __future__ import annotations

import shutil

import pytest
import torch
from finetune_support import (
    fast_options,
    make_dataset,
    measure_learning,
    nearest_distance,
    paired_distance,
    render_latents,
)
from learning_support import lora_learning_numbers

from headshot.training.data import encode_latents, load_instance_images, read_training_dataset
from headshot.training.finetune import finetune_dataset
from headshot.training.finetune_config import FinetuneConfig
from headshot.training.tiny_model import save_tiny_model

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of `make test-fast`

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
    preservation on the subject, the distances of measure_learning and (with prior
    preservation) those of the FLUX tests' lora_learning_numbers."""
    family = request.param
    root = tmp_path_factory.mktemp(f"learns-{family}")
    model = save_tiny_model(family, root / "model", pretrain_steps=PRETRAIN_STEPS)
    dataset = make_dataset(root / "with-prior", family)
    control = shutil.copytree(dataset, root / "no-prior" / "ada" / "dataset")
    # Batch 8 and 32 class images: with batch 1 and 8 class images (each batch then held
    # all of them) the LoRA moved both prompts' renders alike (module docstring).
    options = fast_options(
        steps=300, lr=3e-3, batch_size=8, rank=8, unet_lora_layers="all", train_text_encoder=True,
        num_class_images=32, class_inference_steps=10, snr_gamma=None, face_loss_weight=1.0,
    )  # fmt: skip
    config = FinetuneConfig(base_model=str(model), cache_dir=root / "cache", **options)
    record = finetune_dataset(dataset, config)
    finetune_dataset(control, config.model_copy(update={"prior_preservation": False}))
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    images = load_instance_images(dataset, read_training_dataset(dataset))
    subject = encode_latents(pipe.vae, images, images.pixels.shape[-1]).latents
    lora = dataset.parent / "lora"
    numbers = measure_learning(model, lora, control.parent / "lora", subject, record)
    numbers.update(lora_learning_numbers(pipe, lora, record, subject, render_latents, root))
    return numbers


def test_prior_preservation_keeps_the_class_renders_near_the_base_models(learned):
    # Measured: SD1.5 0.355 with prior preservation, 0.500 without; SDXL 0.342 and 0.441.
    assert learned["prior class -> base class"] < (1 - MARGIN) * learned["no-prior class -> base class"], (
        learned
    )


def test_instance_renders_move_toward_the_subject(learned):
    # Measured: SD1.5 0.792 trained vs 0.965 base; SDXL 0.786 vs 0.987.
    assert learned["trained instance -> subject"] < (1 - MARGIN) * learned["base instance -> subject"], (
        learned
    )


def test_the_identifier_not_the_class_means_the_subject(learned):
    # Measured: SD1.5 instance 0.792 vs class 0.957; SDXL 0.786 vs 0.939.
    assert learned["trained instance -> subject"] < (1 - MARGIN) * learned["trained class -> subject"], (
        learned
    )


def test_instance_renders_beat_the_base_class_and_a_size_matched_untrained_lora(learned):
    # The FLUX tests' measure (cosine distances, 1 = unrelated). Measured: SD1.5 trained 0.322,
    # base class 0.472, untrained LoRA 0.550; SDXL 0.311, 0.494, 0.879.
    assert learned["trained instance"] < (1 - MARGIN) * learned["base class renders"], learned
    assert learned["trained instance"] < (1 - MARGIN) * learned["size-matched untrained LoRA"], learned
